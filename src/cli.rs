//! `helperctl`'s command line, as clap definitions (also the source of its man page and
//! shell completions).

use clap::{Parser, Subcommand};

/// Control the helperd git credential daemon.
///
/// helperctl talks to the daemon over its socket; it never opens the secret store itself.
/// Environment: HELPERD_HOME (everything under one folder), HELPERD_SOCKET (socket path).
#[derive(Debug, Parser)]
#[command(name = "helperctl", version, propagate_version = true)]
pub struct Cli {
    /// The subcommand to run (clap ignores doc comments on subcommand fields).
    #[command(subcommand)]
    pub command: Command,
}

/// `helperctl`'s subcommands; each variant's doc comment is its `--help` text.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon, the store, every runtime and its token (never a secret).
    Status {
        /// Print stable JSON instead of a table (fields documented in README.md).
        #[arg(long)]
        json: bool,
        /// Exit 3 when a token expires within DAYS (default: the warning window) or is
        /// expired or rejected: for cron and CI.
        #[arg(long, value_name = "DAYS", num_args = 0..=1, default_missing_value = "-1")]
        check: Option<i64>,
    },
    /// Give a runtime a new token because its token expires, expired or was rejected:
    /// shows where to make one and which scopes git needs, then reads it like `token set`.
    Renew {
        // The runtime's name in config.toml. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        runtime: String,
        /// A name for the new token.
        #[arg(long)]
        name: Option<String>,
        /// When the new token expires (a date or an RFC 3339 timestamp); asked on the
        /// terminal when left out.
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// Do not ask the host whether the new token works.
        #[arg(long)]
        offline: bool,
        /// Have the host rotate the token instead (GitLab; the token needs the api or
        /// self_rotate scope): no copy and paste, a new expiry, the old token revoked.
        #[arg(long, conflicts_with_all = ["name", "expires", "offline"])]
        rotate: bool,
    },
    /// Add, remove or list runtimes (edits config.toml, keeping your comments).
    Runtime {
        /// What to do with runtimes.
        #[command(subcommand)]
        action: RuntimeAction,
    },
    /// Set, share or remove a runtime's token.
    Token {
        /// What to do with tokens.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Log in with OAuth instead of pasting a token: the device flow (GitHub, GitLab) or
    /// the browser flow with PKCE (Gitea, Forgejo, Codeberg). Needs the runtime's
    /// oauth_client_id (the OAuth app your admin registered for that host).
    Login {
        // The runtime's name in config.toml. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        runtime: String,
    },
    /// Show which runtime answers a URL, and why.
    Which {
        /// e.g. https://github.com/acme/api.git
        url: String,
        /// Print stable JSON.
        #[arg(long)]
        json: bool,
    },
    /// Use this machine's forwarded runtimes from git on HOST over SSH: prints (or, with
    /// --install, appends to ~/.ssh/config) the RemoteForward block, and the command to
    /// run on HOST. Only runtimes marked forward = true answer there.
    Forward {
        /// The ssh host name or alias.
        host: String,
        /// Append the block to ~/.ssh/config (refused when a block for HOST exists).
        #[arg(long)]
        install: bool,
        /// Where the forward ends on HOST: an absolute path; %r is the remote user
        /// [default: /tmp/helperd-forward-%r.sock].
        #[arg(long, value_name = "PATH")]
        remote_socket: Option<String>,
    },
    /// Point git at helperd: credential.helper (absolute path, the fastest form) and the
    /// credential.<url>.useHttpPath lines that path-routed hosts need.
    Install {
        /// Print what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also install and enable the systemd user units (socket activation).
        #[arg(long)]
        systemd: bool,
    },
    /// Show the audit log: one line per decision (served, refused, stored, renewed, ...),
    /// never a secret.
    Audit {
        /// Only events since WHEN: a date (2026-11-01), an RFC 3339 time, or an age
        /// (30m, 2h, 3d, 1w).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only events of this runtime.
        #[arg(long)]
        runtime: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Support: a redacted diagnostics bundle, or read-only access for another local user.
    Support {
        /// Bundle, or grant or end support access.
        #[command(subcommand)]
        action: SupportAction,
    },
    /// Start, stop, restart or reload the daemon.
    Daemon {
        /// Start, stop, restart or reload.
        #[command(subcommand)]
        action: DaemonAction,
    },
    /// Unlock a passphrase-protected file store (passphrase from the terminal, hidden,
    /// or from stdin when it is not a terminal).
    Unlock,
    /// Team runtimes in OpenBao (`[openbao]` in config.toml): list them, publish one, or
    /// revoke one. Talks to OpenBao with this machine's [openbao] login (an admin's
    /// BAO_TOKEN, typically); the daemons of every runner pick changes up by themselves.
    Team {
        /// List, publish or revoke.
        #[command(subcommand)]
        action: TeamAction,
    },
    /// Manage the secret store.
    Store {
        /// What to do with the store.
        #[command(subcommand)]
        action: StoreAction,
    },
    /// For tests: move the daemon's clock forward (only a daemon started with
    /// HELPERD_TEST_CLOCK=1 accepts it).
    #[command(hide = true)]
    Debug {
        /// The test-only action.
        #[command(subcommand)]
        action: DebugAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        // The target shell. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        shell: clap_complete::Shell,
    },
}

/// `helperctl debug` subcommands: for tests only (the command is hidden).
#[derive(Debug, Subcommand)]
pub enum DebugAction {
    /// Move the daemon's clock forward, e.g. `10s`, `3d` (tokens expire without waiting).
    AdvanceClock {
        /// A span: 30s, 30m, 2h, 3d, 2w.
        span: String,
    },
}

/// `helperctl daemon` subcommands.
#[derive(Debug, Subcommand)]
pub enum DaemonAction {
    /// Start the daemon in the background (nothing to do when it already runs).
    Start,
    /// Ask the daemon to close its socket and exit.
    Stop,
    /// Stop, then start the daemon.
    Restart,
    /// Re-read config.toml now (the daemon also notices changes by itself).
    Reload,
}

/// `helperctl runtime` subcommands: they edit config.toml, keeping comments and layout.
// Parsed once per command: the size of `Add` (its GitHub App flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum RuntimeAction {
    /// Add a runtime: a named identity with its URL prefixes.
    Add {
        /// Letters, digits, '.', '_' or '-'.
        name: String,
        /// URL prefix this runtime answers (repeatable), e.g. https://github.com/acme/
        #[arg(long = "url", required = true, value_name = "URL")]
        urls: Vec<String>,
        /// github, gitlab, bitbucket (Cloud), bitbucket-server (Data Center), gitea
        /// (also Forgejo, Codeberg) or generic; guessed from the first URL's host when left out.
        #[arg(long)]
        provider: Option<String>,
        /// The username git sends (default: the provider's convention, e.g. x-access-token
        /// for GitHub, oauth2 for GitLab).
        #[arg(long)]
        username: Option<String>,
        /// The provider's API (GitHub Enterprise, self-hosted GitLab, ...).
        #[arg(long)]
        api_url: Option<String>,
        /// basic (default) or bearer (Bearer-only tokens, e.g. Bitbucket DC project tokens).
        #[arg(long, value_parser = ["basic", "bearer"])]
        auth: Option<String>,
        /// Let remote machines use this runtime over SSH (see `helperctl forward`).
        #[arg(long)]
        forward: bool,
        /// A GitHub App runtime: the app's id. git then gets installation tokens the
        /// daemon mints (give it the app's key with `helperctl token set-app`).
        #[arg(long, value_name = "ID")]
        app_id: Option<u64>,
        /// The GitHub App's client id (Iv23...), used as the JWT's issuer.
        #[arg(long, value_name = "ID", requires = "app_id")]
        client_id: Option<String>,
        /// The app's installation to mint for (default: looked up once from the URL's
        /// account or repository, then recorded).
        #[arg(long, value_name = "ID", requires = "app_id")]
        installation_id: Option<u64>,
        /// A permission the installation tokens ask for, NAME=read|write|admin
        /// (repeatable), e.g. contents=write; default: all the installation has.
        #[arg(long = "permission", value_name = "NAME=LEVEL", requires = "app_id")]
        permissions: Vec<String>,
        /// GitLab: the daemon rotates the token through the host's self-rotate endpoint
        /// when it enters its last N days (the token needs the api or self_rotate scope).
        #[arg(long, value_name = "N")]
        rotate_days: Option<u32>,
        /// GitLab: the token's kind for rotation: personal (default), project:ID or
        /// group:ID (an id or a path like acme/app).
        #[arg(long, value_name = "KIND", requires = "rotate_days")]
        rotate_via: Option<String>,
        /// Bitbucket Cloud: your Atlassian account email, with which its API checks API
        /// tokens (git uses x-bitbucket-api-token-auth or your username).
        #[arg(long)]
        email: Option<String>,
    },
    /// Change a runtime: whether remote machines may use it over SSH.
    Set {
        // The runtime's name in config.toml. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        name: String,
        /// Remote machines may use it through the forward socket (`helperctl forward`).
        #[arg(
            long,
            conflicts_with = "no_forward",
            required_unless_present = "no_forward"
        )]
        forward: bool,
        /// Remote machines may not use it (the default).
        #[arg(long)]
        no_forward: bool,
    },
    /// Remove a runtime and take its token away.
    Remove {
        // The runtime's name in config.toml. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        name: String,
    },
    /// List the runtimes of config.toml.
    List {
        /// Print stable JSON.
        ///
        /// Per runtime: name, provider, urls, username, auth, api_url, forward, app (a
        /// GitHub App's app_id, client_id, installation_id and permissions, or null),
        /// rotate_days and rotate_via (GitLab rotation, or null).
        #[arg(long)]
        json: bool,
    },
}

/// `helperctl team` subcommands (DESIGN.md §10).
// Parsed once per command: the size of `Publish` (its GitHub App flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum TeamAction {
    /// List the team runtimes under team_path: provider, URLs, expiry, KV version (never
    /// a token).
    List {
        /// Print stable JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish a runtime to the team (a new KV version: every runner serves it within
    /// refresh_secs). Its definition comes from the local runtime of that name, or from
    /// --provider/--url/--username; the token is read from the terminal (hidden), or from
    /// stdin with --from-stdin. The system policy (require_expiry, max_days,
    /// allowed_hosts, ...) is checked first.
    Publish {
        // The runtime's name. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        runtime: String,
        /// Read the token from stdin (a pipe), not the terminal.
        #[arg(long)]
        from_stdin: bool,
        /// When the token expires (a date or an RFC 3339 timestamp).
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// The token's scopes, for status (repeatable or comma-separated).
        #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',')]
        scopes: Vec<String>,
        /// A name for the token (default: its KV path and version).
        #[arg(long)]
        name: Option<String>,
        /// The provider, when no local runtime has this name.
        #[arg(long)]
        provider: Option<String>,
        /// URL prefix (repeatable), when no local runtime has this name.
        #[arg(long = "url", value_name = "URL")]
        urls: Vec<String>,
        /// The username git sends, when no local runtime has this name.
        #[arg(long)]
        username: Option<String>,
        /// The provider's API (GitHub Enterprise, ...), when not the local runtime's.
        #[arg(long, value_name = "URL")]
        api_url: Option<String>,
        /// A GitHub App entry instead of a token: the app's id. Every runner mints its own
        /// hour-long installation tokens with the key (--key-file), kept in memory.
        #[arg(long, value_name = "ID", requires = "key_file")]
        app_id: Option<u64>,
        /// The app's installation to mint for (default: each runner looks it up from the
        /// URL's account or repository).
        #[arg(long, value_name = "ID", requires = "app_id")]
        installation_id: Option<u64>,
        /// The GitHub App's client id (Iv23...), used as the JWT's issuer.
        #[arg(long, value_name = "ID", requires = "app_id")]
        client_id: Option<String>,
        /// A permission the installation tokens ask for, NAME=read|write|admin
        /// (repeatable); default: all the installation has.
        #[arg(long = "permission", value_name = "NAME=LEVEL", requires = "app_id")]
        permissions: Vec<String>,
        /// The app's private key (.pem, PKCS#1 as GitHub downloads it, or PKCS#8); `-`
        /// reads it from stdin. Checked before anything is written.
        #[arg(long, value_name = "PATH", requires = "app_id", conflicts_with_all = ["from_stdin", "expires", "scopes", "name"])]
        key_file: Option<std::path::PathBuf>,
    },
    /// Revoke a team runtime: delete its entry (every version), so no runner serves it
    /// after its next read.
    Revoke {
        // The runtime's name. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        runtime: String,
        /// Also revoke the token at the provider, where its API allows it (GitHub,
        /// GitLab); otherwise say where to do it by hand.
        #[arg(long)]
        at_host: bool,
    },
}

/// `helperctl token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Give a runtime a new token. The secret is read from the terminal (hidden), or from
    /// stdin when it is not a terminal. A token's expiry never changes: a new expiry means
    /// a new token.
    Set {
        // The runtime's name in config.toml. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        runtime: String,
        /// A name to recognise it by (e.g. its name on the host's token page).
        #[arg(long)]
        name: Option<String>,
        /// When it expires: a date (2027-03-01, read as 00:00 UTC) or an RFC 3339
        /// timestamp (2027-03-01T12:00:00Z).
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// Its scopes, comma-separated (e.g. repo,read:org), for hosts that cannot report
        /// them; what the host reports wins.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Do not ask the host whether the token works (no network; nothing is checked).
        #[arg(long)]
        offline: bool,
        /// Store it even though the host says it lacks scopes git needs (recorded).
        #[arg(long)]
        force: bool,
    },
    /// Ask the host again whether a runtime's token works, its scopes and expiry.
    Verify {
        /// The runtime; every runtime with --all.
        #[arg(required_unless_present = "all")]
        runtime: Option<String>,
        #[arg(long, conflicts_with = "runtime")]
        // Every runtime that has a token. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        all: bool,
    },
    /// Authorise the token of another runtime for this one too (stored once).
    Link {
        // The runtime that gets the token. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        runtime: String,
        #[arg(long, value_name = "OTHER")]
        // The runtime whose token it gets. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        from: String,
    },
    /// Take the token away from a runtime (deleted when no runtime uses it any more).
    Remove {
        // The runtime's name in config.toml. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        runtime: String,
        /// Also revoke it at the host, where the host's API allows it (says plainly where
        /// it does not). For a GitHub App runtime: revokes the installation token in use.
        #[arg(long)]
        revoke: bool,
    },
    /// Give a GitHub App runtime (one with --app-id) its private key: the PEM file
    /// GitHub's "Generate a private key" downloads (PKCS#1), or PKCS#8. It is stored in
    /// the store of record like a token (the file can be deleted afterwards); the daemon
    /// mints hour-long installation tokens with it and keeps them in memory only.
    SetApp {
        // The runtime's name in config.toml. No doc comment: clap would print it as help text.
        #[allow(missing_docs)]
        runtime: String,
        /// The private key file (.pem); `-` reads it from stdin.
        #[arg(long, value_name = "PATH")]
        key_file: std::path::PathBuf,
        /// Do not ask GitHub whether the key works, nor look up the installation now.
        #[arg(long)]
        offline: bool,
    },
}

/// `helperctl support` subcommands.
#[derive(Debug, Subcommand)]
pub enum SupportAction {
    /// Write a redacted diagnostics archive (versions, config, status, recent audit
    /// events, daemon log tail, environment facts; no secret) and print its path.
    Bundle {
        /// Where to write it (default: helperd-support-<time>.tar in the current folder).
        #[arg(long, value_name = "PATH")]
        output: Option<std::path::PathBuf>,
        /// How many of the latest audit events to include.
        #[arg(long, default_value_t = 200)]
        audit_events: usize,
    },
    /// Let a local user run read-only `status` and `audit` against your daemon, for a
    /// while (audited).
    Enable {
        /// The local user name of the person helping you.
        #[arg(long)]
        user: String,
        /// How long: 30m, 2h, 1d (at most 7 days).
        #[arg(long = "for", value_name = "DURATION", default_value = "1h")]
        duration: String,
    },
    /// End support access now.
    Disable,
}

/// `helperctl store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Protect the encrypted file store with a passphrase instead of the key file
    /// (argon2id); afterwards every daemon start needs `helperctl unlock`.
    SetPassphrase,
}

/// The helperd daemon: answers git's credential requests for this user over a local socket.
///
/// Normally started by git-credential-helperd on demand, by `helperctl daemon start`, or by
/// the systemd user units in contrib/. Without --foreground it detaches, prints `ok` once it
/// listens, and logs to $XDG_STATE_HOME/helperd/helperd.log. Environment: HELPERD_HOME
/// (everything under one folder), HELPERD_SOCKET (socket path), HELPERD_STORE (file |
/// secret-service | keychain | wincred | openbao; keychain is macOS's, wincred Windows'
/// Credential Manager; openbao keeps your secrets in OpenBao under [openbao] user_path of
/// config.toml), HELPERD_LOG (log filter, e.g. helperd=debug).
///
/// A secret store that does not answer (a keyring waiting for an unlock dialog, a frozen
/// disk) stalls only the writes that need it: reads and `helperctl status` are answered
/// from memory, a git `store` waits at most HELPERD_STORE_WRITE_WAIT_MS (default 3000)
/// and then tells git the credential is served from memory and written when the store
/// answers; a request that needs a secret never read yet waits at most
/// HELPERD_STORE_READ_WAIT_MS (default 20000); at most HELPERD_STORE_QUEUE (default 64)
/// writes wait, the next is refused at once; `daemon stop` and SIGTERM wait at most
/// HELPERD_STOP_WAIT_MS (default 10000) for pending writes, then drop them and say so.
#[derive(Debug, Parser)]
#[command(name = "helperd", version)]
pub struct DaemonArgs {
    /// Stay in the foreground and log to stderr (for service managers and debugging).
    #[arg(long)]
    pub foreground: bool,
}

/// The command line of `git-credential-helperd`, for its man page only: the client parses
/// its few arguments by hand to start fast (DESIGN.md §3), and a unit test keeps the two
/// in step.
pub fn client_command() -> clap::Command {
    clap::Command::new("git-credential-helperd")
        .version(env!("CARGO_PKG_VERSION"))
        .about("git credential helper that forwards git's requests to the helperd daemon")
        .long_about(
            "git runs this program; you normally do not. Set it up with \
             `git config --global credential.helper helperd` (or the absolute path, which \
             scripts/install.sh writes). It forwards git's request to the helperd daemon, \
             starting the daemon when none is listening, prints the answer for git and any \
             notice on stderr. Whatever goes wrong, it prints one line on stderr and exits 0, \
             so that git falls back to its own prompt.",
        )
        .arg(
            clap::Arg::new("timeout")
                .long("timeout")
                .value_name("SECONDS")
                .help("Plain credentials stored by this call expire after SECONDS (like git's credential-cache --timeout)"),
        )
        .arg(
            clap::Arg::new("action")
                .value_name("ACTION")
                .required(true)
                .value_parser(["get", "store", "erase"])
                .help("The git credential-helper action; unknown actions are ignored"),
        )
}
