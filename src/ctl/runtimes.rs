//! `helperctl runtime add|remove|list`: edits of `config.toml` that keep the user's
//! comments and layout, checked against every config rule before anything is written.

use std::path::Path;

use anyhow::{bail, Context};
use helperd_wire::paths::Paths;
use helperd_wire::wire::{Reply, Request};

use super::{notify_reload, send_starting};
use crate::cli::RuntimeAction;
use crate::config::edit::NewRuntime;
use crate::config::{self, config_file, AuthScheme, Config};
use crate::fsutil;
use crate::location::{host_name, HostPattern, UrlPrefix};
use crate::provider::{registry, Provider};

pub fn run(paths: &Paths, action: RuntimeAction) -> anyhow::Result<u8> {
    let path = config_file(&paths.config_dir);
    match action {
        RuntimeAction::Add {
            name,
            urls,
            provider,
            username,
            api_url,
            auth,
            forward,
            email,
            app_id,
            client_id,
            installation_id,
            permissions,
            rotate_days,
            rotate_via,
        } => {
            let rotate_via = rotate_via
                .as_deref()
                .map(config::RotateVia::parse)
                .transpose()
                .map_err(|why| anyhow::anyhow!("--rotate-via: {why}"))?;
            let app = match app_id {
                None => None,
                Some(app_id) => Some(crate::config::GitHubApp {
                    app_id,
                    client_id,
                    installation_id,
                    permissions: super::permission_args(&permissions)?,
                }),
            };
            let provider = match provider {
                Some(p) => Provider::parse(&p).with_context(|| {
                    let names: Vec<_> = Provider::ALL.iter().map(|p| p.name()).collect();
                    format!("unknown provider {p:?}; use one of {}", names.join(", "))
                })?,
                None => guess_provider(&urls[0]),
            };
            let auth = match auth.as_deref() {
                Some("bearer") => AuthScheme::Bearer,
                _ => AuthScheme::Basic,
            };
            let rt = NewRuntime {
                rotate_days,
                rotate_via,
                forward,
                email,
                app,
                name: name.clone(),
                provider,
                urls,
                username,
                api_url,
                auth,
            };
            // A file that is already broken is reported as it is, with its file and line.
            if let Ok(text) = std::fs::read_to_string(&path) {
                Config::parse(&text, &path)
                    .context("fix config.toml first; nothing was changed")?;
            }
            // The error is about the runtime being added, not a line of the file on disk.
            edit(&path, |text| config::edit::add_runtime(text, &path, &rt)).map_err(|e| {
                match e.downcast::<crate::config::ConfigError>() {
                    Ok(ce) => {
                        let own = format!("runtime {name:?}: ");
                        let msg = ce.message.strip_prefix(&own).unwrap_or(&ce.message);
                        anyhow::anyhow!("cannot add runtime {name:?}: {msg}")
                    }
                    Err(other) => other,
                }
            })?;
            println!(
                "added runtime {name} ({}) to {}",
                provider.name(),
                path.display()
            );
            let config = crate::config::file::load(&path)?;
            if let Some(rt) = config.runtime(&name) {
                if rt.needs_username() {
                    println!(
                        "note: {} tokens need your account username; add --username (or `username = \"...\"` in the file)",
                        provider.name()
                    );
                }
            }
            if !config.hosts_needing_path().is_empty() {
                println!("note: some hosts are routed by path; run `helperctl install` so git sends paths there");
            }
            notify_reload(paths)?;
            println!("next: helperctl token set {name}");
            Ok(0)
        }
        RuntimeAction::Set {
            name,
            forward,
            no_forward: _,
        } => {
            edit(&path, |text| {
                config::edit::set_forward(text, &path, &name, forward)
            })?;
            notify_reload(paths)?;
            if forward {
                println!("runtime {name} may now be used from remote machines over SSH (`helperctl forward HOST` sets one up)");
            } else {
                println!("runtime {name} is no longer forwarded to remote machines");
            }
            Ok(0)
        }
        RuntimeAction::Remove { name } => {
            edit(&path, |text| {
                config::edit::remove_runtime(text, &path, &name)
            })?;
            // The token goes too: it was authorised for this runtime only by name, and a
            // runtime added later under the same name must not inherit it. The daemon is
            // started for this if needed.
            notify_reload(paths)?;
            let response = send_starting(
                paths,
                Request::TokenRemove {
                    runtime: name.clone(),
                    revoke: false,
                },
            )
            .context("the runtime was removed, but its token could not be taken away")?;
            match response.reply {
                Reply::Done => {}
                // It had none: nothing to take away.
                Reply::Error { message, .. } if message.contains("has no token") => {}
                Reply::Error { message, .. } => {
                    bail!(
                        "the runtime was removed, but its token could not be taken away: {message}"
                    )
                }
                other => bail!("unexpected answer from the daemon: {other:?}"),
            }
            println!("removed runtime {name} from {}", path.display());
            Ok(0)
        }
        RuntimeAction::List { json } => {
            let config = crate::config::file::load(&path)?;
            if json {
                let list: Vec<_> = config
                    .runtimes
                    .iter()
                    .map(|rt| {
                        serde_json::json!({
                            "name": rt.name,
                            "provider": rt.provider.name(),
                            "urls": rt.urls.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
                            "username": rt.effective_username(),
                            "auth": match rt.auth { AuthScheme::Basic => "basic", AuthScheme::Bearer => "bearer" },
                            "api_url": rt.api_url,
                            "forward": rt.forward,
                            "app": rt.app.as_ref().map(|app| serde_json::json!({
                                "app_id": app.app_id,
                                "client_id": app.client_id,
                                "installation_id": app.installation_id,
                                "permissions": app.permissions,
                            })),
                            "rotate_days": rt.rotate_days,
                            // Only read when the runtime rotates: null otherwise.
                            "rotate_via": rt.rotate_days.map(|_| rt.rotate_via.text()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if config.runtimes.is_empty() {
                println!(
                    "no runtimes in {} (add one with `helperctl runtime add`)",
                    path.display()
                );
            } else {
                for rt in &config.runtimes {
                    let urls: Vec<_> = rt.urls.iter().map(|u| u.to_string()).collect();
                    println!(
                        "{:<16} {:<17} {:<20} {}",
                        rt.name,
                        rt.provider.name(),
                        rt.effective_username().unwrap_or("(username needed)"),
                        urls.join(" ")
                    );
                }
            }
            Ok(0)
        }
    }
}

/// The provider a host most likely is (public instances only); `generic` otherwise.
fn guess_provider(url: &str) -> Provider {
    UrlPrefix::parse(url)
        .ok()
        .and_then(|prefix| match prefix.host {
            HostPattern::Exact(host) => registry::guess_by_host(host_name(&host)),
            HostPattern::Wildcard(_) => None,
        })
        .unwrap_or(Provider::Generic)
}

/// Applies `change` to the file's text and writes it back atomically, keeping its mode.
/// Edits by concurrent `helperctl` processes are serialised by a lock file beside it
/// (`config.toml.lock`), so none is lost; a change that cannot be applied writes nothing.
fn edit(
    path: &Path,
    change: impl FnOnce(&str) -> Result<String, crate::config::ConfigError>,
) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let mut lock = path.as_os_str().to_os_string();
    lock.push(".lock");
    let lock = std::path::PathBuf::from(lock);
    fsutil::with_file_lock(&lock, || edit_locked(path, change))
        .with_context(|| format!("failed to lock {}", lock.display()))?
}

fn edit_locked(
    path: &Path,
    change: impl FnOnce(&str) -> Result<String, crate::config::ConfigError>,
) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!("failed to read {}: {e}", path.display()),
    };
    let new = change(&text).map_err(anyhow::Error::new)?;
    fsutil::write_atomic_keeping_mode(path, new.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_guessed_from_public_hosts_only() {
        assert_eq!(guess_provider("https://github.com/acme/"), Provider::GitHub);
        assert_eq!(guess_provider("https://GitLab.com"), Provider::GitLab);
        assert_eq!(
            guess_provider("https://codeberg.org:443/x"),
            Provider::Gitea
        );
        assert_eq!(
            guess_provider("https://git.example.com/"),
            Provider::Generic
        );
    }
}
