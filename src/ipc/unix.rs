//! Unix domain socket listener.
//!
//! Rules (DESIGN.md §2, §7, git's `credential-cache--daemon.c`): the socket's folder is
//! 0700 from creation and refused when group/others can reach it; the socket is 0600; a
//! lock file held for the daemon's whole life makes it one daemon per socket; a socket left
//! by a killed daemon is stale exactly when nobody holds the lock, and is then reclaimed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};

use crate::fsutil;

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

/// A bound, listening socket plus the lock that makes it ours.
#[derive(Debug)]
pub struct BoundSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
    /// Held (flock) until the daemon exits; dropping the file releases it.
    _lock: Option<File>,
    /// Whether we created the socket file and must remove it on exit (not under systemd).
    remove_on_drop: bool,
    reclaimed_stale: bool,
}

impl BoundSocket {
    /// Takes the listener out (to hand it to tokio); the socket file stays managed here.
    pub fn take_listener(&mut self) -> UnixListener {
        self.listener
            .take()
            .expect("take_listener is called once, right after binding")
    }

    /// The socket file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a stale socket was removed to bind this one (logged once logging is up).
    pub fn reclaimed_stale(&self) -> bool {
        self.reclaimed_stale
    }

    /// Writes the serving process's pid into the lock file, for "already running (pid N)"
    /// and for tools. Written before `ok` is printed, so whoever saw `ok` can read it.
    pub fn record_pid(&mut self, pid: u32) -> io::Result<()> {
        match &mut self._lock {
            Some(lock) => {
                lock.set_len(0)?;
                lock.rewind()?;
                write!(lock, "{pid}")?;
                lock.flush()
            }
            None => Ok(()),
        }
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> BindError {
    move |e| BindError::Io(format!("{what}: {e}"))
}

/// Binds `socket`, holding `lock_path` for as long as the returned value lives.
pub fn bind(socket: &Path, lock_path: &Path) -> Result<BoundSocket, BindError> {
    let dir = socket.parent().unwrap_or_else(|| Path::new("/"));
    fsutil::create_private_dir(dir).map_err(|e| BindError::Io(e.to_string()))?;

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
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = lock.read_to_string(&mut pid);
            return Err(BindError::AlreadyRunning {
                socket: socket.display().to_string(),
                pid: pid.trim().parse().ok(),
            });
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(io_err(format!("failed to lock {}", lock_path.display()))(e))
        }
    }

    // We hold the lock, so whatever sits at the socket path was left by a dead daemon.
    let mut reclaimed_stale = false;
    match fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            reclaimed_stale = true;
            fs::remove_file(socket).map_err(io_err(format!(
                "failed to remove the stale socket {}",
                socket.display()
            )))?;
        }
        Ok(_) => {
            return Err(BindError::Io(format!(
                "{} exists and is not a socket; move it away",
                socket.display()
            )))
        }
        Err(_) => {}
    }

    // The umask makes the socket 0600 from its first instant; chmod makes sure of it.
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(socket);
    umask(old);
    let listener = bound.map_err(io_err(format!("failed to listen on {}", socket.display())))?;
    fs::set_permissions(socket, fs::Permissions::from_mode(0o600))
        .map_err(io_err(format!("failed to chmod {}", socket.display())))?;

    Ok(BoundSocket {
        listener: Some(listener),
        path: socket.to_path_buf(),
        _lock: Some(lock),
        remove_on_drop: true,
        reclaimed_stale,
    })
}

/// The socket systemd passed us (socket activation: `LISTEN_PID`, `LISTEN_FDS`, fd 3).
pub fn from_systemd(socket: &Path) -> Option<BoundSocket> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: systemd's protocol hands us fd 3 (SD_LISTEN_FDS_START) open and listening,
    // and nothing else in this process owns it.
    let listener = unsafe { UnixListener::from_raw_fd(3) };
    Some(BoundSocket {
        listener: Some(listener),
        path: socket.to_path_buf(),
        _lock: None,
        // systemd owns the socket file.
        remove_on_drop: false,
        reclaimed_stale: false,
    })
}

/// The uid and pid of the process at the other end of `stream`.
pub fn peer(stream: &tokio::net::UnixStream) -> io::Result<(u32, Option<i32>)> {
    let cred = stream.peer_cred()?;
    Ok((cred.uid(), cred.pid()))
}

/// The uid and pid of the process at the other end of an accepted connection.
pub fn peer_of(stream: &UnixStream) -> io::Result<(u32, Option<i32>)> {
    crate::os::peer_credentials(stream)
}

/// Reads what has arrived, without waiting (`MSG_DONTWAIT`): `Ok(0)` is the end of the
/// stream, `WouldBlock` that nothing more is there yet. The stream stays blocking.
pub fn recv_now(stream: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    nix::sys::socket::recv(
        stream.as_raw_fd(),
        buf,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)
}

/// Writes what the socket takes now, without waiting; returns how much that was.
pub fn send_now(stream: &UnixStream, buf: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    nix::sys::socket::send(stream.as_raw_fd(), buf, crate::os::send_now_flags())
        .map_err(io::Error::from)
}
