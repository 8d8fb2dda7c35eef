//! Where helperd keeps its files (DESIGN.md §2). The client and the daemon both resolve
//! paths here, so they always agree on the socket.
//!
//! Precedence, per item: an explicit variable (`HELPERD_SOCKET`), then `HELPERD_HOME`
//! (everything under one folder: tests, sandboxes), then the system's own places: on Unix
//! (macOS included, as git and gh do there) the XDG base directories, then their
//! documented defaults under `$HOME`; on Windows `%APPDATA%\helperd` for the config and
//! `%LOCALAPPDATA%\helperd` for state and data.
//!
//! On Windows the "socket" is a named pipe, `\\.\pipe\helperd-<user>-<hash>`: named
//! after the user and a hash of the folder the daemon's data lives in, so that two
//! sandboxes (`HELPERD_HOME`) or two users never meet on one pipe.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::os::{self, Family};

/// All the places helperd reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `config.toml` lives here (user-edited).
    pub config_dir: PathBuf,
    /// Daemon-owned state: the remembered store choice, token metadata, the audit log.
    pub state_dir: PathBuf,
    /// The encrypted file store and its key file.
    pub data_dir: PathBuf,
    /// The daemon's listening socket (a named pipe's name on Windows).
    pub socket: PathBuf,
    /// The lock file held by the running daemon: one daemon per socket.
    pub lock_file: PathBuf,
}

/// Why no paths could be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoHomeError;

impl std::fmt::Display for NoHomeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot find a home folder: set HOME, or HELPERD_HOME to keep helperd's files in one folder")
    }
}

impl std::error::Error for NoHomeError {}

impl Paths {
    /// Resolves the paths from the process environment; without `HOME`, the home folder
    /// from the password database (as git does).
    pub fn from_env() -> Result<Paths, NoHomeError> {
        Paths::resolve_for(os::FAMILY, |name| match std::env::var_os(name) {
            None if name == "HOME" => os::account_home(),
            value => value,
        })
    }

    /// Resolves the paths of this system from an environment given as a lookup function.
    pub fn resolve(env: impl Fn(&str) -> Option<OsString>) -> Result<Paths, NoHomeError> {
        Paths::resolve_for(os::FAMILY, env)
    }

    /// Resolves the paths of a `family` system (testable for every family anywhere).
    pub fn resolve_for(
        family: Family,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Paths, NoHomeError> {
        // An empty variable counts as unset, as the XDG spec says for its own variables.
        let var = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        match family {
            Family::Unix => Paths::unix(var, false),
            Family::MacOs => Paths::unix(var, true),
            Family::Windows => Paths::windows(var),
        }
    }

    fn unix(var: impl Fn(&str) -> Option<PathBuf>, macos: bool) -> Result<Paths, NoHomeError> {
        let explicit_socket = var("HELPERD_SOCKET");
        if let Some(home) = var("HELPERD_HOME") {
            let socket = explicit_socket.unwrap_or_else(|| home.join("run").join("socket"));
            return Ok(Paths {
                config_dir: home.join("config"),
                state_dir: home.join("state"),
                data_dir: home.join("data"),
                lock_file: lock_beside(&socket),
                socket,
            });
        }

        let home = var("HOME");
        let xdg = |name: &str, default_under_home: &str| -> Result<PathBuf, NoHomeError> {
            match var(name) {
                Some(dir) if starts_at_root(&dir) => Ok(dir.join("helperd")),
                // The XDG spec says relative paths are invalid and must be ignored.
                _ => home
                    .as_ref()
                    .map(|h| h.join(default_under_home).join("helperd"))
                    .ok_or(NoHomeError),
            }
        };

        let socket = match explicit_socket {
            Some(path) => path,
            None => match (var("XDG_RUNTIME_DIR"), var("TMPDIR")) {
                (Some(dir), _) if starts_at_root(&dir) => dir.join("helperd").join("socket"),
                // macOS's $TMPDIR is per user (/var/folders/…/T/) and short enough for
                // sun_path's 104 bytes, which a deep home folder may not be.
                (_, Some(dir))
                    if macos
                        && starts_at_root(&dir)
                        && dir.join("helperd/socket").as_os_str().len() < SUN_PATH_MAX =>
                {
                    dir.join("helperd").join("socket")
                }
                _ => xdg("XDG_CACHE_HOME", ".cache")?.join("socket"),
            },
        };

        Ok(Paths {
            config_dir: xdg("XDG_CONFIG_HOME", ".config")?,
            state_dir: xdg("XDG_STATE_HOME", ".local/state")?,
            data_dir: xdg("XDG_DATA_HOME", ".local/share")?,
            lock_file: lock_beside(&socket),
            socket,
        })
    }

    fn windows(var: impl Fn(&str) -> Option<PathBuf>) -> Result<Paths, NoHomeError> {
        let user = var("USERNAME")
            .map(|u| u.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (config_dir, local) = match var("HELPERD_HOME") {
            Some(home) => (home.join("config"), home),
            None => {
                let profile = var("USERPROFILE");
                let roaming = var("APPDATA")
                    .or_else(|| profile.as_ref().map(|p| p.join("AppData").join("Roaming")))
                    .ok_or(NoHomeError)?;
                let local = var("LOCALAPPDATA")
                    .or_else(|| profile.as_ref().map(|p| p.join("AppData").join("Local")))
                    .ok_or(NoHomeError)?;
                (roaming.join("helperd"), local.join("helperd"))
            }
        };
        let state_dir = local.join("state");
        Ok(Paths {
            config_dir,
            socket: var("HELPERD_SOCKET").unwrap_or_else(|| pipe_name(&user, &local)),
            lock_file: state_dir.join("daemon.lock"),
            data_dir: local.join("data"),
            state_dir,
        })
    }
}

/// The longest socket path macOS takes (`sun_path` is 104 bytes with its NUL).
const SUN_PATH_MAX: usize = 104;

/// An absolute path by the Unix rule (the XDG spec's word), whatever system evaluates it.
fn starts_at_root(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().first() == Some(&b'/')
}

/// `<socket>.lock`, next to the socket in its private folder.
fn lock_beside(socket: &Path) -> PathBuf {
    let mut name = socket
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| OsString::from("socket"));
    name.push(".lock");
    socket.with_file_name(name)
}

/// `\\.\pipe\helperd-<user>-<hash of the data folder>`. The user part is for people
/// reading a pipe list; the hash keeps sandboxes apart. Neither is a secret nor a
/// defence: the pipe's ACL, its first-instance flag and the SID checks are.
fn pipe_name(user: &str, data_home: &Path) -> PathBuf {
    let user: String = user
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    // FNV-1a, 64 bits: stable across versions and builds, unlike std's hasher.
    let hash = data_home
        .to_string_lossy()
        .to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    PathBuf::from(format!(r"\\.\pipe\helperd-{user}-{hash:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)]) -> Result<Paths, NoHomeError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Paths::resolve_for(Family::Unix, |name| map.get(name).cloned())
    }

    #[test]
    fn macos_puts_the_socket_in_its_per_user_tmpdir() {
        let vars = |extra: &[(&'static str, &'static str)]| {
            let map: HashMap<String, OsString> = [("HOME", "/Users/ann")]
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect();
            move |name: &str| map.get(name).cloned()
        };
        let tmp = "/var/folders/x1/abc123/T/";
        let p = Paths::resolve_for(Family::MacOs, vars(&[("TMPDIR", tmp)])).unwrap();
        assert_eq!(p.socket, Path::new(tmp).join("helperd").join("socket"));
        assert_eq!(p.config_dir, Path::new("/Users/ann/.config/helperd"));
        // XDG_RUNTIME_DIR still wins; Linux ignores TMPDIR.
        let p = Paths::resolve_for(
            Family::MacOs,
            vars(&[("TMPDIR", tmp), ("XDG_RUNTIME_DIR", "/run/u")]),
        )
        .unwrap();
        assert_eq!(p.socket, Path::new("/run/u/helperd/socket"));
        let p = Paths::resolve_for(Family::Unix, vars(&[("TMPDIR", tmp)])).unwrap();
        assert_eq!(p.socket, Path::new("/Users/ann/.cache/helperd/socket"));
        // A TMPDIR too long for sun_path falls back to the cache folder.
        let long: &'static str = Box::leak(format!("/{}", "d".repeat(100)).into_boxed_str());
        let p = Paths::resolve_for(Family::MacOs, vars(&[("TMPDIR", long)])).unwrap();
        assert_eq!(p.socket, Path::new("/Users/ann/.cache/helperd/socket"));
    }

    fn resolve_windows(vars: &[(&str, &str)]) -> Result<Paths, NoHomeError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Paths::resolve_for(Family::Windows, |name| map.get(name).cloned())
    }

    #[test]
    fn windows_keeps_the_config_roaming_and_the_rest_local() {
        let p = resolve_windows(&[
            ("USERNAME", "ada lovelace"),
            ("APPDATA", r"C:\Users\ada\AppData\Roaming"),
            ("LOCALAPPDATA", r"C:\Users\ada\AppData\Local"),
        ])
        .unwrap();
        assert_eq!(
            p.config_dir,
            Path::new(r"C:\Users\ada\AppData\Roaming").join("helperd")
        );
        let local = Path::new(r"C:\Users\ada\AppData\Local").join("helperd");
        assert_eq!(p.state_dir, local.join("state"));
        assert_eq!(p.data_dir, local.join("data"));
        assert_eq!(p.lock_file, local.join("state").join("daemon.lock"));
        let pipe = p.socket.to_string_lossy().into_owned();
        assert!(
            pipe.starts_with(r"\\.\pipe\helperd-ada_lovelace-"),
            "{pipe}"
        );
    }

    #[test]
    fn windows_pipes_of_two_sandboxes_never_meet() {
        let a = resolve_windows(&[("USERNAME", "u"), ("HELPERD_HOME", r"C:\t\a")]).unwrap();
        let b = resolve_windows(&[("USERNAME", "u"), ("HELPERD_HOME", r"C:\t\b")]).unwrap();
        assert_ne!(a.socket, b.socket);
        assert_eq!(a.config_dir, Path::new(r"C:\t\a").join("config"));
        // The same folder, spelled in another case (Windows paths ignore case): one pipe.
        let a2 = resolve_windows(&[("USERNAME", "u"), ("HELPERD_HOME", r"C:\T\A")]).unwrap();
        assert_eq!(a.socket, a2.socket);
        let explicit = resolve_windows(&[
            ("USERNAME", "u"),
            ("HELPERD_HOME", r"C:\t\a"),
            ("HELPERD_SOCKET", r"\\.\pipe\mine"),
        ])
        .unwrap();
        assert_eq!(explicit.socket, PathBuf::from(r"\\.\pipe\mine"));
    }

    #[test]
    fn windows_without_appdata_or_a_profile_names_the_way_out() {
        let err = resolve_windows(&[("USERNAME", "u")]).unwrap_err();
        assert!(err.to_string().contains("HELPERD_HOME"));
    }

    #[test]
    fn helperd_home_puts_everything_under_one_folder() {
        let p = resolve(&[("HELPERD_HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/user/1")]).unwrap();
        assert_eq!(p.config_dir, PathBuf::from("/h/config"));
        assert_eq!(p.state_dir, PathBuf::from("/h/state"));
        assert_eq!(p.data_dir, PathBuf::from("/h/data"));
        assert_eq!(p.socket, PathBuf::from("/h/run/socket"));
        assert_eq!(p.lock_file, PathBuf::from("/h/run/socket.lock"));
    }

    #[test]
    fn explicit_socket_wins() {
        let p = resolve(&[("HELPERD_HOME", "/h"), ("HELPERD_SOCKET", "/s/sock")]).unwrap();
        assert_eq!(p.socket, PathBuf::from("/s/sock"));
        assert_eq!(p.lock_file, PathBuf::from("/s/sock.lock"));
    }

    #[test]
    fn xdg_runtime_dir_then_cache() {
        let p = resolve(&[("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1000")]).unwrap();
        assert_eq!(p.socket, PathBuf::from("/run/user/1000/helperd/socket"));
        assert_eq!(p.config_dir, PathBuf::from("/home/u/.config/helperd"));
        assert_eq!(p.state_dir, PathBuf::from("/home/u/.local/state/helperd"));
        assert_eq!(p.data_dir, PathBuf::from("/home/u/.local/share/helperd"));

        let p = resolve(&[("HOME", "/home/u")]).unwrap();
        assert_eq!(p.socket, PathBuf::from("/home/u/.cache/helperd/socket"));

        let p = resolve(&[
            ("HOME", "/home/u"),
            ("XDG_CACHE_HOME", "/c"),
            ("XDG_RUNTIME_DIR", ""),
        ])
        .unwrap();
        assert_eq!(p.socket, PathBuf::from("/c/helperd/socket"));
    }

    #[test]
    fn relative_xdg_values_are_ignored() {
        let p = resolve(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "rel")]).unwrap();
        assert_eq!(p.config_dir, PathBuf::from("/home/u/.config/helperd"));
    }

    #[test]
    fn no_home_is_an_error_that_names_the_way_out() {
        let err = resolve(&[]).unwrap_err();
        assert!(err.to_string().contains("HELPERD_HOME"));
    }
}
