//! `helperctl install`: point git at helperd, idempotently.
//!
//! - `credential.helper` = the client's absolute path (git runs it directly, no PATH
//!   search, no shell: the fastest form), replacing whatever helpers were configured; on
//!   Windows written with `/` (Git for Windows hands the value to its shell, which reads
//!   `\` as an escape), the way Git Credential Manager's installer writes its own;
//! - `credential.<url>.useHttpPath true` for every host whose runtimes differ by path,
//!   since git sends no path to helpers otherwise;
//! - with `--systemd`, the user units from `contrib/systemd`, socket-activated.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use helperd_wire::paths::Paths;

use crate::config::{config_file, Config};

const SOCKET_UNIT: &str = include_str!("../../contrib/systemd/helperd.socket");
const SERVICE_UNIT: &str = include_str!("../../contrib/systemd/helperd.service");

/// A program beside helperctl's own executable (`name.exe` on Windows).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find helperctl's own path")?;
    let path = me.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "{} is missing; install all three programs together (scripts/install.sh)",
            path.display()
        );
    }
    Ok(path)
}

/// The `git config` commands that set helperd up for `config`.
pub fn git_commands(client: &Path, config: &Config) -> Vec<Vec<String>> {
    let mut cmds = vec![vec![
        "config".into(),
        "--global".into(),
        "--replace-all".into(),
        "credential.helper".into(),
        helper_value(client),
    ]];
    for host in config.hosts_needing_path() {
        cmds.push(vec![
            "config".into(),
            "--global".into(),
            format!("credential.{host}.useHttpPath"),
            "true".into(),
        ]);
    }
    cmds
}

/// `credential.helper`'s value for the client at `client`. git runs a value holding a
/// space through its shell, so spaces are escaped; Windows' `\` separators become `/`.
fn helper_value(client: &Path) -> String {
    let text = client.to_string_lossy();
    let text = match std::path::MAIN_SEPARATOR {
        '\\' => text.replace('\\', "/"),
        _ => text.into_owned(),
    };
    text.replace(' ', "\\ ")
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-:=@".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn install(paths: &Paths, dry_run: bool, systemd: bool) -> anyhow::Result<u8> {
    let client = sibling("git-credential-helperd")?;
    let config = crate::config::file::load(&config_file(&paths.config_dir))?;
    for args in git_commands(&client, &config) {
        println!(
            "{}git {}",
            if dry_run { "would run: " } else { "" },
            shell_words(&args)
        );
        if !dry_run {
            let status = Command::new("git")
                .args(&args)
                .status()
                .context("failed to run git")?;
            if !status.success() {
                bail!("git {} failed ({status})", shell_words(&args));
            }
        }
    }
    if systemd {
        if std::env::consts::OS != "linux" {
            bail!("--systemd installs systemd user units, which exist on Linux only");
        }
        install_units(dry_run)?;
    }
    Ok(0)
}

fn install_units(dry_run: bool) -> anyhow::Result<()> {
    let daemon = sibling("helperd")?;
    let dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    }
    .join("systemd/user");
    let service = SERVICE_UNIT.replace("%h/.local/bin/helperd", &daemon.display().to_string());
    for (name, text) in [
        ("helperd.socket", SOCKET_UNIT),
        ("helperd.service", service.as_str()),
    ] {
        let path = dir.join(name);
        if dry_run {
            println!("would write: {}", path.display());
        } else {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
            std::fs::write(&path, text)
                .with_context(|| format!("failed to write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    for args in [
        vec!["--user", "daemon-reload"],
        vec!["--user", "enable", "--now", "helperd.socket"],
    ] {
        println!(
            "{}systemctl {}",
            if dry_run { "would run: " } else { "" },
            args.join(" ")
        );
        if !dry_run {
            let status = Command::new("systemctl")
                .args(&args)
                .status()
                .context("failed to run systemctl (is systemd running for your user?)")?;
            if !status.success() {
                bail!("systemctl {} failed ({status})", args.join(" "));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// git runs a helper value with a space through its shell: the space must stay part
    /// of the path. On Windows the separators become `/` as well.
    #[test]
    fn the_helper_value_survives_git_shell() {
        let client = Path::new("/opt/my tools").join("git-credential-helperd");
        let value = helper_value(&client);
        assert!(
            value.ends_with("my\\ tools/git-credential-helperd"),
            "{value}"
        );
        let plain = Path::new("/usr/local/bin").join("git-credential-helperd");
        assert_eq!(
            helper_value(&plain),
            "/usr/local/bin/git-credential-helperd"
        );
    }
}
