//! The daemon's end of the local socket: binding it safely, one daemon per socket, peer
//! checks, one file per OS (DESIGN.md §3): a Unix domain socket on Linux and macOS, a
//! named pipe on Windows. Both offer the same `bind`, `Listener::accept`, `Connection`
//! (peer credentials, a read and a write that never wait, then an async stream), and
//! [`Acceptor`] runs the accept loops on either, so the daemon's server reads the same on
//! every OS.

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
/// loop: it answers at once or hands the connection to a task.
pub type Serve = Arc<dyn Fn(Connection) + Send + Sync>;

/// How long an accept loop waits after a failed accept (EMFILE and friends) before the
/// next, instead of spinning.
const ACCEPT_BACK_OFF: Duration = Duration::from_millis(50);

/// Accept loops as tokio tasks, each handing every connection to `serve`.
pub struct Acceptor {
    listener: Arc<Listener>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Acceptor {
    /// Starts `loops` accept loops on `listener` (inside the tokio runtime).
    pub fn start(listener: Listener, loops: usize, serve: Serve) -> Acceptor {
        let listener = Arc::new(listener);
        let loops = (0..loops.max(1))
            .map(|_| {
                let (listener, serve) = (listener.clone(), serve.clone());
                tokio::spawn(async move {
                    loop {
                        match listener.accept().await {
                            Ok(connection) => {
                                serve(connection);
                                // While connections keep coming, the loop would never
                                // give the worker back: other tasks (the writer) get it
                                // every so many connections (tokio's task budget).
                                tokio::task::consume_budget().await;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "accept failed");
                                tokio::time::sleep(ACCEPT_BACK_OFF).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Acceptor { listener, loops }
    }

    /// Stops accepting; returns the listener, still bound (a client that connects
    /// meanwhile waits in its backlog rather than being refused).
    pub async fn stop(mut self) -> std::io::Result<Listener> {
        for task in std::mem::take(&mut self.loops) {
            task.abort();
            let _ = task.await;
        }
        let listener = self.listener.clone();
        drop(self);
        Arc::try_unwrap(listener)
            .map_err(|_| std::io::Error::other("an accept loop still holds the listener"))
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        for task in &self.loops {
            task.abort();
        }
    }
}
