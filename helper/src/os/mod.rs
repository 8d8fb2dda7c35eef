//! Everything the client does differently per operating system, one file per family
//! (DESIGN.md §3): the connection to the daemon, the terminal for the renewal prompt, the
//! account's home folder and starting the daemon in the background. Each family has the
//! same signatures; nothing outside this folder names an OS.
//!
//! The daemon's own platform layer (`helperd::os`, `helperd::ipc`) builds on this one for
//! what both ends share.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

#[cfg(not(any(unix, windows)))]
compile_error!("helperd runs on Unix (Linux, macOS) and Windows");

mod terminal;

pub use imp::{
    account_home, check_own_endpoint, connect, daemon_command, prepare_client_process, Stream,
    FAMILY,
};
pub use terminal::Terminal;

/// User identities on Windows, which the daemon compares with its clients'.
#[cfg(windows)]
pub use imp::sid;

/// Which kind of system this is, for what the paths look like there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Linux and the BSDs: a socket file, XDG folders.
    Unix,
    /// macOS: as Unix, with the socket in the per-user `$TMPDIR` when there is no
    /// `XDG_RUNTIME_DIR` (launchd sets no such thing there).
    MacOs,
    /// Windows: a named pipe, `%APPDATA%` and `%LOCALAPPDATA%`.
    Windows,
}
