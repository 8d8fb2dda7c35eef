# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_helperctl_global_optspecs
    string join \n h/help V/version
end

function __fish_helperctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_helperctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_helperctl_using_subcommand
    set -l cmd (__fish_helperctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c helperctl -n "__fish_helperctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c helperctl -n "__fish_helperctl_needs_command" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "status" -d 'Show the daemon, the store, every runtime and its token (never a secret)'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "renew" -d 'Give a runtime a new token because its token expires, expired or was rejected: shows where to make one and which scopes git needs, then reads it like `token set`'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "runtime" -d 'Add, remove or list runtimes (edits config.toml, keeping your comments)'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "token" -d 'Set, share or remove a runtime\'s token'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "login" -d 'Log in with OAuth instead of pasting a token: the device flow (GitHub, GitLab) or the browser flow with PKCE (Gitea, Forgejo, Codeberg). Needs the runtime\'s oauth_client_id (the OAuth app your admin registered for that host)'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "which" -d 'Show which runtime answers a URL, and why'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "forward" -d 'Use this machine\'s forwarded runtimes from git on HOST over SSH: prints (or, with --install, appends to ~/.ssh/config) the RemoteForward block, and the command to run on HOST. Only runtimes marked forward = true answer there'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "install" -d 'Point git at helperd: credential.helper (absolute path, the fastest form) and the credential.<url>.useHttpPath lines that path-routed hosts need'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "audit" -d 'Show the audit log: one line per decision (served, refused, stored, renewed, ...), never a secret'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "support" -d 'Support: a redacted diagnostics bundle, or read-only access for another local user'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "daemon" -d 'Start, stop, restart or reload the daemon'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "unlock" -d 'Unlock a passphrase-protected file store (passphrase from the terminal, hidden, or from stdin when it is not a terminal)'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "team" -d 'Team runtimes in OpenBao (`[openbao]` in config.toml): list them, publish one, or revoke one. Talks to OpenBao with this machine\'s [openbao] login (an admin\'s BAO_TOKEN, typically); the daemons of every runner pick changes up by themselves'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "store" -d 'Manage the secret store'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "debug" -d 'For tests: move the daemon\'s clock forward (only a daemon started with HELPERD_TEST_CLOCK=1 accepts it)'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c helperctl -n "__fish_helperctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand status" -l check -d 'Exit 3 when a token expires within DAYS (default: the warning window) or is expired or rejected: for cron and CI' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand status" -l json -d 'Print stable JSON instead of a table (fields documented in README.md)'
complete -c helperctl -n "__fish_helperctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand status" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand renew" -l name -d 'A name for the new token' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand renew" -l expires -d 'When the new token expires (a date or an RFC 3339 timestamp); asked on the terminal when left out' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand renew" -l offline -d 'Do not ask the host whether the new token works'
complete -c helperctl -n "__fish_helperctl_using_subcommand renew" -l rotate -d 'Have the host rotate the token instead (GitLab; the token needs the api or self_rotate scope): no copy and paste, a new expiry, the old token revoked'
complete -c helperctl -n "__fish_helperctl_using_subcommand renew" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand renew" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and not __fish_seen_subcommand_from add set remove list help" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and not __fish_seen_subcommand_from add set remove list help" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and not __fish_seen_subcommand_from add set remove list help" -f -a "add" -d 'Add a runtime: a named identity with its URL prefixes'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and not __fish_seen_subcommand_from add set remove list help" -f -a "set" -d 'Change a runtime: whether remote machines may use it over SSH'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and not __fish_seen_subcommand_from add set remove list help" -f -a "remove" -d 'Remove a runtime and take its token away'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and not __fish_seen_subcommand_from add set remove list help" -f -a "list" -d 'List the runtimes of config.toml'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and not __fish_seen_subcommand_from add set remove list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l url -d 'URL prefix this runtime answers (repeatable), e.g. https://github.com/acme/' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l provider -d 'github, gitlab, bitbucket (Cloud), bitbucket-server (Data Center), gitea (also Forgejo, Codeberg) or generic; guessed from the first URL\'s host when left out' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l username -d 'The username git sends (default: the provider\'s convention, e.g. x-access-token for GitHub, oauth2 for GitLab)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l api-url -d 'The provider\'s API (GitHub Enterprise, self-hosted GitLab, ...)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l auth -d 'basic (default) or bearer (Bearer-only tokens, e.g. Bitbucket DC project tokens)' -r -f -a "basic\t''
bearer\t''"
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l app-id -d 'A GitHub App runtime: the app\'s id. git then gets installation tokens the daemon mints (give it the app\'s key with `helperctl token set-app`)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l client-id -d 'The GitHub App\'s client id (Iv23...), used as the JWT\'s issuer' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l installation-id -d 'The app\'s installation to mint for (default: looked up once from the URL\'s account or repository, then recorded)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l permission -d 'A permission the installation tokens ask for, NAME=read|write|admin (repeatable), e.g. contents=write; default: all the installation has' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l rotate-days -d 'GitLab: the daemon rotates the token through the host\'s self-rotate endpoint when it enters its last N days (the token needs the api or self_rotate scope)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l rotate-via -d 'GitLab: the token\'s kind for rotation: personal (default), project:ID or group:ID (an id or a path like acme/app)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l email -d 'Bitbucket Cloud: your Atlassian account email, with which its API checks API tokens (git uses x-bitbucket-api-token-auth or your username)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -l forward -d 'Let remote machines use this runtime over SSH (see `helperctl forward`)'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from set" -l forward -d 'Remote machines may use it through the forward socket (`helperctl forward`)'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from set" -l no-forward -d 'Remote machines may not use it (the default)'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from list" -l json -d 'Print stable JSON'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a runtime: a named identity with its URL prefixes'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from help" -f -a "set" -d 'Change a runtime: whether remote machines may use it over SSH'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a runtime and take its token away'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the runtimes of config.toml'
complete -c helperctl -n "__fish_helperctl_using_subcommand runtime; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and not __fish_seen_subcommand_from set verify link remove set-app help" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and not __fish_seen_subcommand_from set verify link remove set-app help" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and not __fish_seen_subcommand_from set verify link remove set-app help" -f -a "set" -d 'Give a runtime a new token. The secret is read from the terminal (hidden), or from stdin when it is not a terminal. A token\'s expiry never changes: a new expiry means a new token'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and not __fish_seen_subcommand_from set verify link remove set-app help" -f -a "verify" -d 'Ask the host again whether a runtime\'s token works, its scopes and expiry'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and not __fish_seen_subcommand_from set verify link remove set-app help" -f -a "link" -d 'Authorise the token of another runtime for this one too (stored once)'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and not __fish_seen_subcommand_from set verify link remove set-app help" -f -a "remove" -d 'Take the token away from a runtime (deleted when no runtime uses it any more)'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and not __fish_seen_subcommand_from set verify link remove set-app help" -f -a "set-app" -d 'Give a GitHub App runtime (one with --app-id) its private key: the PEM file GitHub\'s "Generate a private key" downloads (PKCS#1), or PKCS#8. It is stored in the store of record like a token (the file can be deleted afterwards); the daemon mints hour-long installation tokens with it and keeps them in memory only'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and not __fish_seen_subcommand_from set verify link remove set-app help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set" -l name -d 'A name to recognise it by (e.g. its name on the host\'s token page)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set" -l expires -d 'When it expires: a date (2027-03-01, read as 00:00 UTC) or an RFC 3339 timestamp (2027-03-01T12:00:00Z)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set" -l scopes -d 'Its scopes, comma-separated (e.g. repo,read:org), for hosts that cannot report them; what the host reports wins' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set" -l offline -d 'Do not ask the host whether the token works (no network; nothing is checked)'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set" -l force -d 'Store it even though the host says it lacks scopes git needs (recorded)'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from verify" -l all
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from link" -l from -r
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from link" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from link" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from remove" -l revoke -d 'Also revoke it at the host, where the host\'s API allows it (says plainly where it does not). For a GitHub App runtime: revokes the installation token in use'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set-app" -l key-file -d 'The private key file (.pem); `-` reads it from stdin' -r -F
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set-app" -l offline -d 'Do not ask GitHub whether the key works, nor look up the installation now'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set-app" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from set-app" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "set" -d 'Give a runtime a new token. The secret is read from the terminal (hidden), or from stdin when it is not a terminal. A token\'s expiry never changes: a new expiry means a new token'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Ask the host again whether a runtime\'s token works, its scopes and expiry'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "link" -d 'Authorise the token of another runtime for this one too (stored once)'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Take the token away from a runtime (deleted when no runtime uses it any more)'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "set-app" -d 'Give a GitHub App runtime (one with --app-id) its private key: the PEM file GitHub\'s "Generate a private key" downloads (PKCS#1), or PKCS#8. It is stored in the store of record like a token (the file can be deleted afterwards); the daemon mints hour-long installation tokens with it and keeps them in memory only'
complete -c helperctl -n "__fish_helperctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand login" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand login" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand which" -l json -d 'Print stable JSON'
complete -c helperctl -n "__fish_helperctl_using_subcommand which" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand which" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand forward" -l remote-socket -d 'Where the forward ends on HOST: an absolute path; %r is the remote user [default: /tmp/helperd-forward-%r.sock]' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand forward" -l install -d 'Append the block to ~/.ssh/config (refused when a block for HOST exists)'
complete -c helperctl -n "__fish_helperctl_using_subcommand forward" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand forward" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand install" -l dry-run -d 'Print what would be done, change nothing'
complete -c helperctl -n "__fish_helperctl_using_subcommand install" -l systemd -d 'Also install and enable the systemd user units (socket activation)'
complete -c helperctl -n "__fish_helperctl_using_subcommand install" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand install" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand audit" -l since -d 'Only events since WHEN: a date (2026-11-01), an RFC 3339 time, or an age (30m, 2h, 3d, 1w)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand audit" -l runtime -d 'Only events of this runtime' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand audit" -l json -d 'Print JSON lines instead of a table'
complete -c helperctl -n "__fish_helperctl_using_subcommand audit" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand audit" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and not __fish_seen_subcommand_from bundle enable disable help" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and not __fish_seen_subcommand_from bundle enable disable help" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and not __fish_seen_subcommand_from bundle enable disable help" -f -a "bundle" -d 'Write a redacted diagnostics archive (versions, config, status, recent audit events, daemon log tail, environment facts; no secret) and print its path'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and not __fish_seen_subcommand_from bundle enable disable help" -f -a "enable" -d 'Let a local user run read-only `status` and `audit` against your daemon, for a while (audited)'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and not __fish_seen_subcommand_from bundle enable disable help" -f -a "disable" -d 'End support access now'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and not __fish_seen_subcommand_from bundle enable disable help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from bundle" -l output -d 'Where to write it (default: helperd-support-<time>.tar in the current folder)' -r -F
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from bundle" -l audit-events -d 'How many of the latest audit events to include' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from bundle" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from bundle" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from enable" -l user -d 'The local user name of the person helping you' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from enable" -l for -d 'How long: 30m, 2h, 1d (at most 7 days)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from enable" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from enable" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from disable" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from disable" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from help" -f -a "bundle" -d 'Write a redacted diagnostics archive (versions, config, status, recent audit events, daemon log tail, environment facts; no secret) and print its path'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from help" -f -a "enable" -d 'Let a local user run read-only `status` and `audit` against your daemon, for a while (audited)'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from help" -f -a "disable" -d 'End support access now'
complete -c helperctl -n "__fish_helperctl_using_subcommand support; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and not __fish_seen_subcommand_from start stop restart reload help" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and not __fish_seen_subcommand_from start stop restart reload help" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and not __fish_seen_subcommand_from start stop restart reload help" -f -a "start" -d 'Start the daemon in the background (nothing to do when it already runs)'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and not __fish_seen_subcommand_from start stop restart reload help" -f -a "stop" -d 'Ask the daemon to close its socket and exit'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and not __fish_seen_subcommand_from start stop restart reload help" -f -a "restart" -d 'Stop, then start the daemon'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and not __fish_seen_subcommand_from start stop restart reload help" -f -a "reload" -d 'Re-read config.toml now (the daemon also notices changes by itself)'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and not __fish_seen_subcommand_from start stop restart reload help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from start" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from stop" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from restart" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from restart" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from reload" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from reload" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "start" -d 'Start the daemon in the background (nothing to do when it already runs)'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "stop" -d 'Ask the daemon to close its socket and exit'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "restart" -d 'Stop, then start the daemon'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "reload" -d 'Re-read config.toml now (the daemon also notices changes by itself)'
complete -c helperctl -n "__fish_helperctl_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand unlock" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand unlock" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and not __fish_seen_subcommand_from list publish revoke help" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and not __fish_seen_subcommand_from list publish revoke help" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and not __fish_seen_subcommand_from list publish revoke help" -f -a "list" -d 'List the team runtimes under team_path: provider, URLs, expiry, KV version (never a token)'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and not __fish_seen_subcommand_from list publish revoke help" -f -a "publish" -d 'Publish a runtime to the team (a new KV version: every runner serves it within refresh_secs). Its definition comes from the local runtime of that name, or from --provider/--url/--username; the token is read from the terminal (hidden), or from stdin with --from-stdin. The system policy (require_expiry, max_days, allowed_hosts, ...) is checked first'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and not __fish_seen_subcommand_from list publish revoke help" -f -a "revoke" -d 'Revoke a team runtime: delete its entry (every version), so no runner serves it after its next read'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and not __fish_seen_subcommand_from list publish revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from list" -l json -d 'Print stable JSON'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l expires -d 'When the token expires (a date or an RFC 3339 timestamp)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l scope -d 'The token\'s scopes, for status (repeatable or comma-separated)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l name -d 'A name for the token (default: its KV path and version)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l provider -d 'The provider, when no local runtime has this name' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l url -d 'URL prefix (repeatable), when no local runtime has this name' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l username -d 'The username git sends, when no local runtime has this name' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l api-url -d 'The provider\'s API (GitHub Enterprise, ...), when not the local runtime\'s' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l app-id -d 'A GitHub App entry instead of a token: the app\'s id. Every runner mints its own hour-long installation tokens with the key (--key-file), kept in memory' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l installation-id -d 'The app\'s installation to mint for (default: each runner looks it up from the URL\'s account or repository)' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l client-id -d 'The GitHub App\'s client id (Iv23...), used as the JWT\'s issuer' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l permission -d 'A permission the installation tokens ask for, NAME=read|write|admin (repeatable); default: all the installation has' -r
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l key-file -d 'The app\'s private key (.pem, PKCS#1 as GitHub downloads it, or PKCS#8); `-` reads it from stdin. Checked before anything is written' -r -F
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -l from-stdin -d 'Read the token from stdin (a pipe), not the terminal'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from publish" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from revoke" -l at-host -d 'Also revoke the token at the provider, where its API allows it (GitHub, GitLab); otherwise say where to do it by hand'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the team runtimes under team_path: provider, URLs, expiry, KV version (never a token)'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from help" -f -a "publish" -d 'Publish a runtime to the team (a new KV version: every runner serves it within refresh_secs). Its definition comes from the local runtime of that name, or from --provider/--url/--username; the token is read from the terminal (hidden), or from stdin with --from-stdin. The system policy (require_expiry, max_days, allowed_hosts, ...) is checked first'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a team runtime: delete its entry (every version), so no runner serves it after its next read'
complete -c helperctl -n "__fish_helperctl_using_subcommand team; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand store; and not __fish_seen_subcommand_from set-passphrase help" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand store; and not __fish_seen_subcommand_from set-passphrase help" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand store; and not __fish_seen_subcommand_from set-passphrase help" -f -a "set-passphrase" -d 'Protect the encrypted file store with a passphrase instead of the key file (argon2id); afterwards every daemon start needs `helperctl unlock`'
complete -c helperctl -n "__fish_helperctl_using_subcommand store; and not __fish_seen_subcommand_from set-passphrase help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand store; and __fish_seen_subcommand_from set-passphrase" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand store; and __fish_seen_subcommand_from set-passphrase" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "set-passphrase" -d 'Protect the encrypted file store with a passphrase instead of the key file (argon2id); afterwards every daemon start needs `helperctl unlock`'
complete -c helperctl -n "__fish_helperctl_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand debug; and not __fish_seen_subcommand_from advance-clock help" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand debug; and not __fish_seen_subcommand_from advance-clock help" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand debug; and not __fish_seen_subcommand_from advance-clock help" -f -a "advance-clock" -d 'Move the daemon\'s clock forward, e.g. `10s`, `3d` (tokens expire without waiting)'
complete -c helperctl -n "__fish_helperctl_using_subcommand debug; and not __fish_seen_subcommand_from advance-clock help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand debug; and __fish_seen_subcommand_from advance-clock" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand debug; and __fish_seen_subcommand_from advance-clock" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand debug; and __fish_seen_subcommand_from help" -f -a "advance-clock" -d 'Move the daemon\'s clock forward, e.g. `10s`, `3d` (tokens expire without waiting)'
complete -c helperctl -n "__fish_helperctl_using_subcommand debug; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand completions" -s h -l help -d 'Print help'
complete -c helperctl -n "__fish_helperctl_using_subcommand completions" -s V -l version -d 'Print version'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "status" -d 'Show the daemon, the store, every runtime and its token (never a secret)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "renew" -d 'Give a runtime a new token because its token expires, expired or was rejected: shows where to make one and which scopes git needs, then reads it like `token set`'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "runtime" -d 'Add, remove or list runtimes (edits config.toml, keeping your comments)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "token" -d 'Set, share or remove a runtime\'s token'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "login" -d 'Log in with OAuth instead of pasting a token: the device flow (GitHub, GitLab) or the browser flow with PKCE (Gitea, Forgejo, Codeberg). Needs the runtime\'s oauth_client_id (the OAuth app your admin registered for that host)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "which" -d 'Show which runtime answers a URL, and why'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "forward" -d 'Use this machine\'s forwarded runtimes from git on HOST over SSH: prints (or, with --install, appends to ~/.ssh/config) the RemoteForward block, and the command to run on HOST. Only runtimes marked forward = true answer there'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "install" -d 'Point git at helperd: credential.helper (absolute path, the fastest form) and the credential.<url>.useHttpPath lines that path-routed hosts need'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "audit" -d 'Show the audit log: one line per decision (served, refused, stored, renewed, ...), never a secret'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "support" -d 'Support: a redacted diagnostics bundle, or read-only access for another local user'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "daemon" -d 'Start, stop, restart or reload the daemon'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "unlock" -d 'Unlock a passphrase-protected file store (passphrase from the terminal, hidden, or from stdin when it is not a terminal)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "team" -d 'Team runtimes in OpenBao (`[openbao]` in config.toml): list them, publish one, or revoke one. Talks to OpenBao with this machine\'s [openbao] login (an admin\'s BAO_TOKEN, typically); the daemons of every runner pick changes up by themselves'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "store" -d 'Manage the secret store'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "debug" -d 'For tests: move the daemon\'s clock forward (only a daemon started with HELPERD_TEST_CLOCK=1 accepts it)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and not __fish_seen_subcommand_from status renew runtime token login which forward install audit support daemon unlock team store debug completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from runtime" -f -a "add" -d 'Add a runtime: a named identity with its URL prefixes'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from runtime" -f -a "set" -d 'Change a runtime: whether remote machines may use it over SSH'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from runtime" -f -a "remove" -d 'Remove a runtime and take its token away'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from runtime" -f -a "list" -d 'List the runtimes of config.toml'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "set" -d 'Give a runtime a new token. The secret is read from the terminal (hidden), or from stdin when it is not a terminal. A token\'s expiry never changes: a new expiry means a new token'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "verify" -d 'Ask the host again whether a runtime\'s token works, its scopes and expiry'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "link" -d 'Authorise the token of another runtime for this one too (stored once)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "remove" -d 'Take the token away from a runtime (deleted when no runtime uses it any more)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "set-app" -d 'Give a GitHub App runtime (one with --app-id) its private key: the PEM file GitHub\'s "Generate a private key" downloads (PKCS#1), or PKCS#8. It is stored in the store of record like a token (the file can be deleted afterwards); the daemon mints hour-long installation tokens with it and keeps them in memory only'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from support" -f -a "bundle" -d 'Write a redacted diagnostics archive (versions, config, status, recent audit events, daemon log tail, environment facts; no secret) and print its path'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from support" -f -a "enable" -d 'Let a local user run read-only `status` and `audit` against your daemon, for a while (audited)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from support" -f -a "disable" -d 'End support access now'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "start" -d 'Start the daemon in the background (nothing to do when it already runs)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "stop" -d 'Ask the daemon to close its socket and exit'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "restart" -d 'Stop, then start the daemon'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "reload" -d 'Re-read config.toml now (the daemon also notices changes by itself)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from team" -f -a "list" -d 'List the team runtimes under team_path: provider, URLs, expiry, KV version (never a token)'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from team" -f -a "publish" -d 'Publish a runtime to the team (a new KV version: every runner serves it within refresh_secs). Its definition comes from the local runtime of that name, or from --provider/--url/--username; the token is read from the terminal (hidden), or from stdin with --from-stdin. The system policy (require_expiry, max_days, allowed_hosts, ...) is checked first'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from team" -f -a "revoke" -d 'Revoke a team runtime: delete its entry (every version), so no runner serves it after its next read'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from store" -f -a "set-passphrase" -d 'Protect the encrypted file store with a passphrase instead of the key file (argon2id); afterwards every daemon start needs `helperctl unlock`'
complete -c helperctl -n "__fish_helperctl_using_subcommand help; and __fish_seen_subcommand_from debug" -f -a "advance-clock" -d 'Move the daemon\'s clock forward, e.g. `10s`, `3d` (tokens expire without waiting)'
