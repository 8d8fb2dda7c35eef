//! `helperctl audit` and `helperctl support bundle|enable|disable`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use helperd_wire::paths::Paths;
use helperd_wire::wire::{Reply, Request};

use super::{print_done, send_starting};
use crate::audit::{self, AuditEvent};
use crate::cli::SupportAction;
use crate::timefmt::unix_now;

/// The daemon's audit events (oldest first).
fn fetch_events(
    paths: &Paths,
    since: Option<u64>,
    runtime: Option<String>,
) -> anyhow::Result<Vec<AuditEvent>> {
    match send_starting(paths, Request::Audit { since, runtime })?.reply {
        Reply::Audit { events } => events
            .into_iter()
            .map(|v| {
                serde_json::from_value(v)
                    .context("the daemon sent an audit event this helperctl cannot read")
            })
            .collect(),
        Reply::Error { message, .. } => bail!("{message}"),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

pub fn audit_cmd(
    paths: &Paths,
    since: Option<String>,
    runtime: Option<String>,
    json: bool,
) -> anyhow::Result<u8> {
    let since = since
        .map(|s| audit::parse_since(&s, unix_now()).map_err(anyhow::Error::msg))
        .transpose()
        .context("--since")?;
    let events = fetch_events(paths, since, runtime)?;
    let mut out = std::io::stdout().lock();
    if json {
        for e in &events {
            writeln!(out, "{}", e.to_line().trim_end())?;
        }
    } else {
        write!(out, "{}", audit::render_table(&events))?;
    }
    Ok(0)
}

/// Parses "30m", "2h", "1d", "90s", "1w"; bare digits are minutes.
pub fn parse_duration(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let minutes: u64 = text
            .parse()
            .with_context(|| format!("{text:?} is not a duration like 30m, 2h or 1d"))?;
        return Ok(minutes.saturating_mul(60));
    }
    match crate::timefmt::parse_span(text) {
        Some(Some(secs)) => Ok(secs),
        _ => bail!("{text:?} is not a duration like 30m, 2h or 1d"),
    }
}

pub fn run(paths: &Paths, action: SupportAction) -> anyhow::Result<u8> {
    match action {
        SupportAction::Enable { user, duration } => {
            let secs = parse_duration(&duration)?;
            let uid = crate::os::uid_of_user(&user)
                .with_context(|| format!("cannot look up user {user:?}"))?;
            print_done(send_starting(
                paths,
                Request::SupportEnable {
                    user,
                    uid,
                    duration_secs: secs,
                },
            )?)?;
            Ok(0)
        }
        SupportAction::Disable => {
            print_done(send_starting(paths, Request::SupportDisable)?)?;
            Ok(0)
        }
        SupportAction::Bundle {
            output,
            audit_events,
        } => {
            let path = output.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "helperd-support-{}.tar",
                    crate::timefmt::format_rfc3339(unix_now()).replace(':', "")
                ))
            });
            bundle(paths, &path, audit_events)?;
            println!("{}", path.display());
            Ok(0)
        }
    }
}

/// The last `max` bytes of a file, from a line start.
fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let slice = &text[start..];
    let from = if start > 0 {
        slice.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1)
    } else {
        0
    };
    String::from_utf8_lossy(&slice[from..]).into_owned()
}

fn command_line(program: &str, args: &[&str]) -> String {
    match std::process::Command::new(program).args(args).output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Err(e) => format!("({program} not available: {e})"),
    }
}

/// Facts about the machine that explain most support questions; no values of variables
/// that could hold secrets, only whether they are set.
fn environment_facts(paths: &Paths) -> String {
    let mut out = String::new();
    let set = |name: &str| {
        if std::env::var_os(name).is_some() {
            "set"
        } else {
            "unset"
        }
    };
    out.push_str(&format!("helperctl {}\n", env!("CARGO_PKG_VERSION")));
    out.push_str(&format!("{}\n", command_line("git", &["--version"])));
    out.push_str(&format!("os: {}\n", command_line("uname", &["-srm"])));
    for var in [
        "HELPERD_HOME",
        "HELPERD_SOCKET",
        "HELPERD_STORE",
        "HELPERD_POLICY",
        "HELPERD_LOG",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
        "XDG_DATA_HOME",
        "DBUS_SESSION_BUS_ADDRESS",
        "GIT_TERMINAL_PROMPT",
        "HTTPS_PROXY",
        "https_proxy",
    ] {
        out.push_str(&format!("{var}: {}\n", set(var)));
    }
    out.push_str(&format!("socket: {}\n", paths.socket.display()));
    out.push_str(&format!(
        "git credential.helper: {}\n",
        command_line(
            "git",
            &["config", "--global", "--get-all", "credential.helper"]
        )
    ));
    let choice = std::fs::read_to_string(paths.state_dir.join("store.json"))
        .unwrap_or_else(|_| "(none yet)".into());
    out.push_str(&format!("store choice: {}\n", choice.trim()));
    out
}

/// config.toml as the bundle quotes it: every word holding an `@` (in a value, a comment,
/// or a line that does not parse) goes through [`helperd_wire::url::redact_password`], so
/// a URL with a password (`urls = ["https://user:pw@host/"]`, which helperd refuses but a
/// hand edit can write) shows `user:<redacted>@host`. Words end at whitespace only: a
/// password holds no raw whitespace in a URL git or helperd would read.
fn redact_config(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') {
            out.push_str(&helperd_wire::url::redact_password(word));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Writes the support archive. Everything in it comes from places that never hold a
/// secret (status, audit, config, the daemon log) — and a test searches it for secrets.
fn bundle(paths: &Paths, out: &Path, audit_events: usize) -> anyhow::Result<()> {
    let status = match send_starting(paths, Request::Status)?.reply {
        Reply::Status { status } => serde_json::to_string_pretty(&status)?,
        Reply::Error { message, .. } => format!("status failed: {message}"),
        other => format!("unexpected answer: {other:?}"),
    };
    let events = fetch_events(paths, None, None).unwrap_or_default();
    let recent: String = events
        .iter()
        .skip(events.len().saturating_sub(audit_events))
        .map(|e| e.to_line())
        .collect();
    let config_path = crate::config::config_file(&paths.config_dir);
    let config = std::fs::read_to_string(&config_path)
        .map(|text| redact_config(&text))
        .unwrap_or_else(|_| "(no config.toml)\n".into());
    let files: Vec<(&str, String)> = vec![
        (
            "helperd-support/README.txt",
            "helperd support bundle: no secrets (tokens, passwords, keys) are included.\n".into(),
        ),
        ("helperd-support/environment.txt", environment_facts(paths)),
        ("helperd-support/status.json", status),
        ("helperd-support/config.toml", config),
        ("helperd-support/audit.jsonl", recent),
        (
            "helperd-support/daemon-log-tail.txt",
            tail(&crate::daemon::log_file(paths), 64 * 1024),
        ),
    ];
    // 0600 like the audit log it quotes: the bundle is for the user to hand over, not for
    // every local user to read.
    let file = crate::os::private_file_options()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("failed to create {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for (name, text) in &files {
        tar::append(&mut w, name, text.as_bytes())?;
    }
    tar::finish(&mut w)?;
    w.flush().context("failed to write the bundle")?;
    Ok(())
}

/// A minimal ustar writer: regular files only, which is all a bundle holds (any `tar`
/// reads it); no dependency for 40 lines.
mod tar {
    use std::io::{self, Write};

    fn octal(field: &mut [u8], value: u64) {
        let text = format!("{value:0width$o}", width = field.len() - 1);
        field[..text.len()].copy_from_slice(text.as_bytes());
    }

    pub fn append(w: &mut impl Write, name: &str, data: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], crate::timefmt::unix_now());
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        // The checksum is computed with its own field as spaces.
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
        w.write_all(&h)?;
        w.write_all(data)?;
        let pad = (512 - data.len() % 512) % 512;
        w.write_all(&vec![0u8; pad])
    }

    pub fn finish(w: &mut impl Write) -> io::Result<()> {
        w.write_all(&[0u8; 1024])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("1d").unwrap(), 86_400);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn the_bundled_config_shows_no_password_of_a_url() {
        for secret in ["Sec#ret1", "Sec?ret2", "Sec/ret3", "Sec@ret4", "Sec%40ret5"] {
            let text = format!(
                "# was: urls = [\"https://user:{secret}@old.example/\"]\n\
                 [[runtime]]\nname = \"acme\"\nprovider = \"github\"\n\
                 urls = [\"https://user:{secret}@h.example/\", \"https://h2.example/\"]\n\
                 api_url = \"https://user:{secret}@*.h.example/\"\n\
                 username = \"bob@h.example\"\n\
                 broken = user:{secret}@h.example/org/\n"
            );
            let shown = redact_config(&text);
            for needle in [secret, "Sec@ret5", "ret"] {
                assert!(!shown.contains(needle), "{needle:?} in\n{shown}");
            }
            // What support needs stays: hosts, names, layout.
            for kept in [
                "user:<redacted>@h.example/\",",
                "\"https://h2.example/\"",
                "@*.h.example/",
                "username = \"bob@h.example\"\n",
                "name = \"acme\"\n",
            ] {
                assert!(shown.contains(kept), "{kept:?} kept in\n{shown}");
            }
        }
        let plain = "[[runtime]]\nname = \"a\"\nurls = [\"https://h.example/\"]\n\n";
        assert_eq!(redact_config(plain), plain);
    }

    #[test]
    fn tar_archives_are_read_by_tar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tar");
        let mut f = std::fs::File::create(&path).unwrap();
        tar::append(&mut f, "x/a.txt", b"hello\n").unwrap();
        tar::append(&mut f, "x/b.txt", &vec![b'z'; 1000]).unwrap();
        tar::finish(&mut f).unwrap();
        drop(f);
        let out = match std::process::Command::new("tar")
            .arg("-xf")
            .arg(&path)
            .current_dir(dir.path())
            .output()
        {
            Ok(out) => out,
            // Windows 10 and later ship tar.exe; Wine does not.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("skipped: no tar program here");
                return;
            }
            Err(e) => panic!("tar: {e}"),
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(dir.path().join("x/a.txt")).unwrap(),
            b"hello\n"
        );
        assert_eq!(
            std::fs::read(dir.path().join("x/b.txt")).unwrap().len(),
            1000
        );
    }
}
