//! The daemon's end of the local socket: binding it safely, one daemon per socket, peer
//! checks, one file per OS (DESIGN.md §3): a Unix domain socket on Linux and macOS, a
//! named pipe on Windows. Both offer the same `bind`, `Acceptor` (accept loops handing
//! each connection to the daemon), `Connection` (peer credentials, a read and a write
//! that never wait, then an async stream), so the daemon's server reads the same on every
//! OS. How the loops wait differs: plain threads in `accept(2)` on Unix (see its
//! `Listener`), tokio tasks on the named pipe's overlapped I/O on Windows.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// Why the daemon could not take the socket.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another daemon holds the socket's lock file.
    #[error("a helperd daemon is already running on {socket}{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning {
        /// The socket path.
        socket: String,
        /// The running daemon's pid, from the lock file, when it wrote one.
        pid: Option<u32>,
    },
    /// Any other failure (folder permissions, bind, lock), as a finished message.
    #[error("{0}")]
    Io(String),
}

/// Takes the lock file that makes one daemon per socket, held for as long as the file
/// lives; a daemon already holding it is [`BindError::AlreadyRunning`].
fn take_lock(lock_path: &Path, socket: &Path) -> Result<File, BindError> {
    if let Some(dir) = lock_path.parent() {
        crate::fsutil::create_private_dir(dir).map_err(|e| BindError::Io(e.to_string()))?;
    }
    let mut lock = crate::fsutil::open_private(
        lock_path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .map_err(|e| BindError::Io(e.to_string()))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = lock.read_to_string(&mut pid);
            Err(BindError::AlreadyRunning {
                socket: socket.display().to_string(),
                pid: pid.trim().parse().ok(),
            })
        }
        Err(fs::TryLockError::Error(e)) => Err(BindError::Io(format!(
            "failed to lock {}: {e}",
            lock_path.display()
        ))),
    }
}

/// What the daemon does with each connection an [`Acceptor`] takes. It runs on the accept
/// loop, inside the tokio runtime: it answers at once or hands the connection to a task.
pub type Serve = Arc<dyn Fn(Connection) + Send + Sync>;

/// How long an accept loop waits after a failed accept (EMFILE and friends) before the
/// next, instead of spinning.
const ACCEPT_BACK_OFF: Duration = Duration::from_millis(50);

/// One accept loop's step, the same on every OS: the connection to `serve`, or how long
/// to wait after a failure.
fn take(accepted: std::io::Result<Connection>, serve: &Serve) -> Option<Duration> {
    match accepted {
        Ok(connection) => {
            serve(connection);
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            Some(ACCEPT_BACK_OFF)
        }
    }
}
