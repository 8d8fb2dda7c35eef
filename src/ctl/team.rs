//! `helperctl team`: the admin's side of team runtimes (DESIGN.md §10). helperctl talks to
//! OpenBao itself here, with the `[openbao]` login of this machine (an admin's token,
//! typically); the runners' daemons read what it writes by themselves. An entry is
//! checked with the same parser the runners use ([`parse_entry`]) before it is written,
//! and against the system policy.

use anyhow::{bail, Context};
use helperd_wire::paths::Paths;
use serde_json::{json, Map, Value};

use crate::cli::TeamAction;
use crate::config::openbao::OpenBaoSettings;
use crate::config::{self, Config};
use crate::openbao::{BaoClient, KvEntry};
use crate::provider::{Provider, ProviderClient, RevokeOutcome, Target};
use crate::secret::Secret;
use crate::team::{parse_entry, EntryVersion, TeamRuntime};
use crate::timefmt::{format_date, format_rfc3339, parse_expiry, unix_now};

/// Runs one `helperctl team` command.
pub fn run(paths: &Paths, action: TeamAction) -> anyhow::Result<u8> {
    let config_path = config::config_file(&paths.config_dir);
    let config = crate::config::file::load(&config_path)?;
    let settings = team_settings(&config, &config_path)?;
    let team = Team {
        bao: BaoClient::new(&settings)?,
        team_path: settings.team_path.clone().unwrap_or_default(),
        settings,
    };
    // One short-lived runtime for the OpenBao calls of this command.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    rt.block_on(async {
        match action {
            TeamAction::List { json } => team.list(json).await,
            TeamAction::Publish {
                runtime,
                from_stdin,
                expires,
                scopes,
                name,
                provider,
                urls,
                username,
                api_url,
                app_id,
                installation_id,
                client_id,
                permissions,
                key_file,
            } => {
                let app = match (app_id, key_file) {
                    (Some(app_id), Some(key_file)) => Some(AppArgs {
                        app_id,
                        installation_id,
                        client_id,
                        permissions: super::permission_args(&permissions)?,
                        key_file,
                    }),
                    _ => None,
                };
                let definition = Definition {
                    provider,
                    urls,
                    username,
                    api_url,
                    github_app: app.is_some(),
                };
                let mut entry =
                    publish_entry(&config, &runtime, definition, expires, scopes, name)?;
                let secret = match app {
                    // The key goes in private_key; each runner mints its own tokens.
                    Some(app) => {
                        app.add_to(&mut entry);
                        super::read_key_file(&app.key_file)?
                    }
                    None => read_token(&runtime, from_stdin)?,
                };
                team.publish(&runtime, entry, secret).await
            }
            TeamAction::Revoke { runtime, at_host } => team.revoke(&runtime, at_host).await,
        }
    })
}

/// `[openbao]` with a `team_path`, or what to write.
fn team_settings(config: &Config, path: &std::path::Path) -> anyhow::Result<OpenBaoSettings> {
    match &config.openbao {
        Some(s) if s.team_path.is_some() => Ok(s.clone()),
        _ => bail!(
            "no team runtimes are configured: add to {}\n\n[openbao]\naddresses = [\"https://bao.corp:8200\"]\nteam_path = \"helperd/runtimes\"\n\n(and BAO_TOKEN in the environment, or another auth; see README.md, \"Teams and fleets\")",
            path.display()
        ),
    }
}

/// A runtime's definition given on the command line.
struct Definition {
    provider: Option<String>,
    urls: Vec<String>,
    username: Option<String>,
    api_url: Option<String>,
    /// `--app-id` was given: the provider defaults to github, and the local runtime's
    /// username and auth (a token's) are not copied.
    github_app: bool,
}

/// `--app-id` and what goes with it: a GitHub App entry (DESIGN.md §10, issue 18).
struct AppArgs {
    app_id: u64,
    installation_id: Option<u64>,
    client_id: Option<String>,
    permissions: std::collections::BTreeMap<String, String>,
    key_file: std::path::PathBuf,
}

impl AppArgs {
    /// The entry's app fields but the key (`private_key`, added by `publish`).
    fn add_to(&self, entry: &mut Map<String, Value>) {
        entry.insert("app_id".into(), json!(self.app_id));
        if let Some(id) = self.installation_id {
            entry.insert("installation_id".into(), json!(id));
        }
        if let Some(c) = &self.client_id {
            entry.insert("client_id".into(), json!(c));
        }
        if !self.permissions.is_empty() {
            entry.insert("permissions".into(), json!(self.permissions));
        }
    }
}

/// The entry's fields except the token: from the local runtime of that name, the command
/// line's values winning.
fn publish_entry(
    config: &Config,
    name: &str,
    given: Definition,
    expires: Option<String>,
    scopes: Vec<String>,
    token_name: Option<String>,
) -> anyhow::Result<Map<String, Value>> {
    if !config::valid_name(name) {
        bail!(
            "runtime name {name:?} is invalid: use 1 to 64 ASCII letters, digits, '.', '_' or '-'"
        );
    }
    let local = config.runtime(name).filter(|r| r.team.is_none());
    let provider = match (&given.provider, local) {
        (Some(p), _) => Provider::parse(p).map(|p| p.name()).with_context(|| {
            let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
            format!("unknown provider {p:?}; use one of {}", names.join(", "))
        })?,
        (None, Some(rt)) => rt.provider.name(),
        (None, None) if given.github_app => Provider::GitHub.name(),
        (None, None) => bail!(
            "no local runtime is named {name}: give its definition with --provider and --url \
             (and --username where the provider needs one), or add it with `helperctl runtime add` first"
        ),
    };
    let urls: Vec<String> = match (&given.urls[..], local) {
        ([], Some(rt)) => rt.urls.iter().map(|u| u.to_string()).collect(),
        ([], None) => bail!("--url is needed: no local runtime is named {name}"),
        (urls, _) => urls.to_vec(),
    };
    let mut entry = Map::new();
    entry.insert("provider".into(), json!(provider));
    entry.insert("urls".into(), json!(urls));
    // An app entry sends x-access-token with Basic auth: a token runtime's username and
    // auth are not copied into it.
    let local_token_rt = local.filter(|_| !given.github_app);
    let username = given
        .username
        .or_else(|| local_token_rt.and_then(|r| r.username.clone()));
    if let Some(u) = username {
        entry.insert("username".into(), json!(u));
    }
    if let Some(rt) = local_token_rt {
        entry.insert("auth".into(), json!(rt.auth.name()));
        if let Some(e) = &rt.email {
            entry.insert("email".into(), json!(e));
        }
    }
    if let Some(u) = given
        .api_url
        .or_else(|| local.and_then(|r| r.api_url.clone()))
    {
        entry.insert("api_url".into(), json!(u));
    }
    if let Some(e) = expires {
        let t = parse_expiry(&e)
            .map_err(anyhow::Error::msg)
            .context("--expires")?;
        entry.insert("expires".into(), json!(format_rfc3339(t)));
    }
    let scopes: Vec<String> = scopes
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect();
    if !scopes.is_empty() {
        entry.insert("scopes".into(), json!(scopes));
    }
    if let Some(n) = token_name {
        entry.insert("token_name".into(), json!(n));
    }
    Ok(entry)
}

/// The token: hidden at the terminal, or one line of stdin with `--from-stdin`.
fn read_token(runtime: &str, from_stdin: bool) -> anyhow::Result<Secret> {
    use std::io::IsTerminal;
    if from_stdin && std::io::stdin().is_terminal() {
        bail!("--from-stdin reads the token from a pipe, and stdin is a terminal; leave --from-stdin out to type it hidden");
    }
    let token = crate::tty::read_secret(&format!("token for team runtime {runtime}: "))
        .context("reading the token")?;
    if token.expose().trim().is_empty() {
        bail!("no token given; nothing was published");
    }
    Ok(Secret::new(token.expose().trim()))
}

struct Team {
    bao: BaoClient,
    settings: OpenBaoSettings,
    team_path: String,
}

impl Team {
    fn entry_path(&self, name: &str) -> String {
        format!("{}/{name}", self.team_path)
    }

    /// `<mount>/<team_path>/<name>`, as `bao kv get` takes it.
    fn full_path(&self, name: &str) -> String {
        format!("{}/{}", self.settings.mount, self.entry_path(name))
    }

    /// Writes `entry` with `secret`: the token, or for an app entry (`app_id` set) the
    /// private key.
    async fn publish(
        &self,
        name: &str,
        mut entry: Map<String, Value>,
        secret: Secret,
    ) -> anyhow::Result<u8> {
        let field = match entry.contains_key("app_id") {
            true => "private_key",
            false => "token",
        };
        entry.insert(field.into(), json!(secret.expose()));
        let now = unix_now();
        // The runners' own parser: what they would refuse is not written.
        let at = EntryVersion {
            version: 0,
            created: now,
        };
        let parsed = parse_entry(name, &self.full_path(name), &entry, at)
            .and_then(|rt| crate::provider::check_team_key(&rt).map(|()| rt))
            .map_err(|why| anyhow::anyhow!("not published: {why}"))?;
        // What every runner would refuse to serve is not written either.
        if parsed.runtime.needs_username() {
            bail!(
                "not published: {} runtimes need the account's username for git; give --username",
                parsed.runtime.provider.name()
            );
        }
        check_policy(&parsed, now)?;
        let version = self.bao.write(&self.entry_path(name), &entry, now).await?;
        println!(
            "published {} version {version}; every runner serves it within refresh_secs ({} s here)",
            self.full_path(name),
            self.settings.refresh_secs
        );
        Ok(0)
    }

    async fn list(&self, as_json: bool) -> anyhow::Result<u8> {
        let now = unix_now();
        let mut names = self.bao.list(&self.team_path, now).await?;
        names.sort();
        let mut rows = Vec::new();
        for name in names {
            let Some(entry) = self.bao.read(&self.entry_path(&name), now).await? else {
                continue;
            };
            rows.push(describe(&name, &self.full_path(&name), &entry));
        }
        if as_json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(0);
        }
        if rows.is_empty() {
            println!(
                "no team runtimes under {}/{}",
                self.settings.mount, self.team_path
            );
            return Ok(0);
        }
        println!(
            "{:<20} {:<8} {:<17} {:<12} {:<10} URL PREFIXES",
            "RUNTIME", "VERSION", "PROVIDER", "EXPIRES", "APP"
        );
        for r in &rows {
            let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
            let urls: Vec<String> = r["urls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str().map(String::from))
                .collect();
            // An app entry holds a key, which has no expiry: its runners mint hour-long
            // tokens, so "never" would mislead.
            let app = r["app_id"].as_u64();
            let expires = match (r["expires"].as_u64(), app) {
                (Some(at), _) => format_date(at),
                (None, Some(_)) => "minted".into(),
                (None, None) => "never".into(),
            };
            println!(
                "{:<20} {:<8} {:<17} {:<12} {:<10} {}",
                text("name"),
                r["version"],
                text("provider"),
                expires,
                app.map_or_else(|| "-".to_string(), |id| id.to_string()),
                urls.join(" ")
            );
            if let Some(p) = r["problem"].as_str() {
                println!("{:<20} ! {p}", "");
            }
        }
        Ok(0)
    }

    async fn revoke(&self, name: &str, at_host: bool) -> anyhow::Result<u8> {
        let now = unix_now();
        let path = self.full_path(name);
        let Some(entry) = self.bao.read(&self.entry_path(name), now).await? else {
            bail!(
                "no team runtime {name}: {path} does not exist (or its newest version is deleted)"
            );
        };
        if at_host {
            let at = EntryVersion {
                version: entry.version,
                created: entry.created,
            };
            let rt = parse_entry(name, &path, &entry.data, at).map_err(|why| {
                anyhow::anyhow!("{path} cannot be read as a runtime ({why}); nothing was revoked")
            })?;
            match &rt.runtime.app {
                // Its secret is a key, not a token: there is nothing to revoke with it, and
                // the runners' minted tokens expire within the hour.
                Some(app) => println!(
                    "{path} is GitHub App {}: nothing to revoke at the host (the runners' installation tokens expire within an hour); to stop the key itself, delete it in the app's settings on GitHub",
                    app.app_id
                ),
                None => revoke_at_host(&rt).await?,
            }
        }
        self.bao.delete(&self.entry_path(name), now).await?;
        println!("revoked {path}: deleted with every version; runners stop serving it at their next read (within {} s)", self.settings.refresh_secs);
        Ok(0)
    }
}

/// One entry for `team list`: everything but the token.
fn describe(name: &str, path: &str, entry: &KvEntry) -> Value {
    let at = EntryVersion {
        version: entry.version,
        created: entry.created,
    };
    match parse_entry(name, path, &entry.data, at)
        .and_then(|t| crate::provider::check_team_key(&t).map(|()| t))
    {
        Ok(t) => json!({
            "name": name,
            "path": path,
            "version": entry.version,
            "provider": t.runtime.provider.name(),
            "urls": t.runtime.urls.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
            "username": t.runtime.effective_username(),
            "expires": t.token.expires,
            "scopes": t.token.scopes,
            "app_id": t.runtime.app.as_ref().map(|a| a.app_id),
            "token_name": entry.data.get("token_name").and_then(Value::as_str),
            "published": entry.created,
        }),
        Err(why) => json!({"name": name, "path": path, "version": entry.version, "problem": why}),
    }
}

/// The system policy, as the admin's own machine has it: the runners check it again.
fn check_policy(entry: &TeamRuntime, now: u64) -> anyhow::Result<()> {
    let path = crate::policy::file::policy_path();
    let Some(policy) = crate::policy::file::load(&path).map_err(|e| anyhow::anyhow!("{e}"))? else {
        return Ok(());
    };
    // A GitHub App key has no expiry; the tokens minted with it last an hour (as for
    // local app keys).
    let refused =
        policy
            .check_runtime(&entry.runtime, &path)
            .and_then(|()| match entry.runtime.app {
                Some(_) => Ok(()),
                None => policy.check_token(entry.token.expires, now, &path),
            });
    match refused {
        Ok(()) => Ok(()),
        Err(v) => bail!("not published: {}", v.message),
    }
}

async fn revoke_at_host(rt: &TeamRuntime) -> anyhow::Result<()> {
    let target = Target::for_runtime(&rt.runtime);
    let outcome = ProviderClient::new()?
        .revoke(&target, &rt.secret)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "revoking the token at {} failed ({e}); nothing was deleted",
                target.web_host()
            )
        })?;
    match outcome {
        RevokeOutcome::Revoked => println!("the token was revoked at {}", target.web_host()),
        RevokeOutcome::NotSupported { reason, token_page } => println!(
            "the token could not be revoked at the host: {reason}{}",
            token_page
                .map(|p| format!("; revoke it at {p}"))
                .unwrap_or_default()
        ),
    }
    Ok(())
}
