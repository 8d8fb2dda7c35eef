//! `helperctl forward HOST [--install]`: the SSH set-up that lets git on HOST use this
//! machine's forwarded runtimes (DESIGN.md §11), like `ssh -A` for SSH keys but narrower:
//! only runtimes marked `forward = true` answer there.
//!
//! The remote end of the forward must be an absolute path (OpenSSH expands neither `~`
//! nor relative paths there, checked with OpenSSH 9): by default
//! `/tmp/helperd-forward-%r.sock`, where ssh puts the remote user name for `%r`; sshd
//! creates it 0600 (its `StreamLocalBindMask`), and in the sticky `/tmp` nobody else can
//! replace it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use helperd_wire::paths::Paths;

use crate::config::config_file;
use crate::fsutil;

/// Where the forward ends on the remote machine, unless `--remote-socket` says otherwise.
pub const DEFAULT_REMOTE_SOCKET: &str = "/tmp/helperd-forward-%r.sock";

pub fn run(
    paths: &Paths,
    host: &str,
    install: bool,
    remote_socket: Option<String>,
) -> anyhow::Result<u8> {
    check_host(host)?;
    let remote = remote_socket.unwrap_or_else(|| DEFAULT_REMOTE_SOCKET.to_string());
    if !remote.starts_with('/') || remote.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("--remote-socket must be an absolute path without spaces (ssh expands neither ~ nor relative paths there), not {remote:?}");
    }
    let local = paths.socket.with_file_name("forward.socket");
    let block = ssh_block(host, &remote, &local);
    let client = std::env::current_exe()
        .ok()
        .map(|me| me.with_file_name("git-credential-helperd"))
        .filter(|p| p.is_file());
    if install {
        let ssh_config = ssh_config_path()?;
        append_block(&ssh_config, host, &block)?;
        println!("added to {}:\n\n{block}", ssh_config.display());
    } else {
        println!(
            "add this to ~/.ssh/config (or run `helperctl forward {host} --install`):\n\n{block}"
        );
    }
    println!(
        "then, on {host}, with git-credential-helperd installed there (one static file{}):\n",
        match &client {
            Some(c) => format!(": scp {} {host}:.local/bin/", c.display()),
            None => String::new(),
        }
    );
    println!("  {}\n", remote_git_command(&remote));
    println!(
        "git there uses the runtimes marked forward = true here, while you are connected with `ssh {host}`."
    );
    let config = crate::config::file::load(&config_file(&paths.config_dir))?;
    if !config.runtimes.iter().any(|rt| rt.forward) {
        println!("note: no runtime is marked forward = true yet: run `helperctl runtime set NAME --forward`");
    }
    println!(
        "note: after a dropped connection, sshd on {host} must remove the stale socket: that needs `StreamLocalBindUnlink yes` in its sshd_config; without it, run `ssh {host} rm -f {}` before reconnecting.",
        remote.replace("%r", "$USER")
    );
    Ok(0)
}

/// A host name or alias as ssh_config takes it after `Host`: one word.
fn check_host(host: &str) -> anyhow::Result<()> {
    if host.is_empty()
        || host.starts_with('-')
        || host.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '#' | '"' | '*' | '?' | '!')
        })
    {
        bail!("{host:?} is not a host name or ssh alias (one word, no patterns)");
    }
    Ok(())
}

/// The `~/.ssh/config` block for `host`.
pub fn ssh_block(host: &str, remote: &str, local: &Path) -> String {
    format!(
        "# helperd: git on {host} uses this machine's forwarded runtimes (helperctl forward)\n\
         Host {host}\n    RemoteForward {remote} {}\n    StreamLocalBindUnlink yes\n    ExitOnForwardFailure yes\n",
        local.display()
    )
}

/// What to run on the remote machine: git's credential helper pointed at the forward
/// (git runs a helper with arguments through the shell, which expands `$USER`).
pub fn remote_git_command(remote: &str) -> String {
    format!(
        "git config --global credential.helper '~/.local/bin/git-credential-helperd --socket {}'",
        remote.replace("%r", "$USER")
    )
}

fn ssh_config_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("HOME is not set: cannot find ~/.ssh/config")?;
    Ok(PathBuf::from(home).join(".ssh").join("config"))
}

/// Whether `text` already has a `Host` line naming `host` (among its patterns).
pub fn has_host_block(text: &str, host: &str) -> bool {
    text.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next().is_some_and(|w| w.eq_ignore_ascii_case("host")) && words.any(|w| w == host)
    })
}

/// Appends `block` to the ssh config, keeping every other byte; refuses when a block for
/// `host` exists (the user's own settings for it must not be overridden behind their back).
pub fn append_block(path: &Path, host: &str, block: &str) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!("failed to read {}: {e}", path.display()),
    };
    if has_host_block(&text, host) {
        bail!(
            "{} already has a `Host {host}` block; nothing was changed. Add these lines to it yourself:\n\n{block}",
            path.display()
        );
    }
    let mut out = text.clone();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(block);
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        fsutil::create_private_dir(dir)?;
    }
    fsutil::write_atomic_keeping_mode(path, out.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))?;
    std::io::stdout().flush().ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_names_both_ends_and_the_remote_command_expands_the_user() {
        let block = ssh_block(
            "devbox",
            DEFAULT_REMOTE_SOCKET,
            Path::new("/run/user/1000/helperd/forward.socket"),
        );
        assert!(block.contains("Host devbox\n"));
        assert!(block.contains(
            "RemoteForward /tmp/helperd-forward-%r.sock /run/user/1000/helperd/forward.socket\n"
        ));
        assert!(block.contains("StreamLocalBindUnlink yes"));
        assert!(remote_git_command(DEFAULT_REMOTE_SOCKET)
            .contains("--socket /tmp/helperd-forward-$USER.sock'"));
    }

    #[test]
    fn install_keeps_the_file_and_refuses_an_existing_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let mine = "Host work\n    User me\n# no newline at the end";
        std::fs::write(&path, mine).unwrap();
        let block = ssh_block("devbox", "/tmp/x.sock", Path::new("/l.sock"));
        append_block(&path, "devbox", &block).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(
            after.starts_with(mine),
            "the user's lines stay byte for byte:\n{after}"
        );
        assert!(after.ends_with(&block));
        let e = append_block(&path, "devbox", &block)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already has a `Host devbox` block"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            after,
            "nothing changed"
        );
        assert!(has_host_block("host a devbox b\n", "devbox"));
        assert!(!has_host_block("Host devbox2\n", "devbox"));
    }

    #[test]
    fn bad_hosts_are_refused() {
        for bad in ["", "-oProxyCommand=x", "a b", "a*", "a\nb"] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
        assert!(check_host("dev-box.example").is_ok());
    }
}
