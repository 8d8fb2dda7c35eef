//! Where helperd keeps its files (DESIGN.md §2). The client and the daemon both resolve
//! paths here, so they always agree on the socket.
//!
//! Precedence, per item: an explicit variable (`HELPERD_SOCKET`), then `HELPERD_HOME`
//! (everything under one folder: tests, sandboxes), then the XDG base directories,
//! then their documented defaults under `$HOME`.

use std::ffi::OsString;
use std::path::PathBuf;

/// All the places helperd reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `config.toml` lives here (user-edited).
    pub config_dir: PathBuf,
    /// Daemon-owned state: the remembered store choice, token metadata, the audit log.
    pub state_dir: PathBuf,
    /// The encrypted file store and its key file.
    pub data_dir: PathBuf,
    /// The daemon's listening socket.
    pub socket: PathBuf,
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

/// This user's home folder from the password database.
#[cfg(unix)]
fn account_home() -> Option<OsString> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: zeroed is a valid initial state for this plain C struct, filled in by
    // getpwuid_r below.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer points to memory that lives for the call; buf.len() is its size.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_dir is a NUL-terminated string inside buf.
    let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
    let dir = std::ffi::OsStr::from_bytes(dir.to_bytes());
    (!dir.is_empty()).then(|| dir.to_os_string())
}

#[cfg(not(unix))]
fn account_home() -> Option<OsString> {
    None
}

impl Paths {
    /// Resolves the paths from the process environment; without `HOME`, the home folder
    /// from the password database (as git does).
    pub fn from_env() -> Result<Paths, NoHomeError> {
        Paths::resolve(|name| match std::env::var_os(name) {
            None if name == "HOME" => account_home(),
            value => value,
        })
    }

    /// Resolves the paths from an environment given as a lookup function (testable).
    pub fn resolve(env: impl Fn(&str) -> Option<OsString>) -> Result<Paths, NoHomeError> {
        // An empty variable counts as unset, as the XDG spec says for its own variables.
        let var = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let explicit_socket = var("HELPERD_SOCKET");

        if let Some(home) = var("HELPERD_HOME") {
            return Ok(Paths {
                config_dir: home.join("config"),
                state_dir: home.join("state"),
                data_dir: home.join("data"),
                socket: explicit_socket.unwrap_or_else(|| home.join("run").join("socket")),
            });
        }

        let home = var("HOME");
        let xdg = |name: &str, default_under_home: &str| -> Result<PathBuf, NoHomeError> {
            match var(name) {
                Some(dir) if dir.is_absolute() => Ok(dir.join("helperd")),
                // The XDG spec says relative paths are invalid and must be ignored.
                _ => home
                    .as_ref()
                    .map(|h| h.join(default_under_home).join("helperd"))
                    .ok_or(NoHomeError),
            }
        };

        let socket = match explicit_socket {
            Some(path) => path,
            None => match var("XDG_RUNTIME_DIR") {
                Some(dir) if dir.is_absolute() => dir.join("helperd").join("socket"),
                _ => xdg("XDG_CACHE_HOME", ".cache")?.join("socket"),
            },
        };

        Ok(Paths {
            config_dir: xdg("XDG_CONFIG_HOME", ".config")?,
            state_dir: xdg("XDG_STATE_HOME", ".local/state")?,
            data_dir: xdg("XDG_DATA_HOME", ".local/share")?,
            socket,
        })
    }

    /// The lock file held by the running daemon: one daemon per socket.
    pub fn lock_file(&self) -> PathBuf {
        let mut name = self
            .socket
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| OsString::from("socket"));
        name.push(".lock");
        self.socket.with_file_name(name)
    }
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
        Paths::resolve(|name| map.get(name).cloned())
    }

    #[test]
    fn helperd_home_puts_everything_under_one_folder() {
        let p = resolve(&[("HELPERD_HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/user/1")]).unwrap();
        assert_eq!(p.config_dir, PathBuf::from("/h/config"));
        assert_eq!(p.state_dir, PathBuf::from("/h/state"));
        assert_eq!(p.data_dir, PathBuf::from("/h/data"));
        assert_eq!(p.socket, PathBuf::from("/h/run/socket"));
        assert_eq!(p.lock_file(), PathBuf::from("/h/run/socket.lock"));
    }

    #[test]
    fn explicit_socket_wins() {
        let p = resolve(&[("HELPERD_HOME", "/h"), ("HELPERD_SOCKET", "/s/sock")]).unwrap();
        assert_eq!(p.socket, PathBuf::from("/s/sock"));
        assert_eq!(p.lock_file(), PathBuf::from("/s/sock.lock"));
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
