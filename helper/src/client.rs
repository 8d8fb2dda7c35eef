//! Talking to the daemon: one request, one response per connection (DESIGN.md §4), and
//! starting the daemon when none is listening. Used by `git-credential-helperd` and by
//! `helperctl`, so both follow the same rules.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::wire::{Envelope, Response, MAX_MESSAGE_BYTES};

/// How long a client waits for the daemon's answer. Long enough for a keyring that must
/// be unlocked, short enough that git never hangs for good.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a freshly started daemon may take to print `ok`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request did not get an answer.
#[derive(Debug)]
pub enum ClientError {
    /// Nobody listens on the socket ("not found" or "connection refused"): git's own rule
    /// for when a client may start the daemon.
    NotRunning(io::Error),
    /// Anything else: permissions, a daemon that hung up, a malformed answer.
    Failed(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning(e) => write!(f, "the helperd daemon is not running ({e})"),
            ClientError::Failed(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ClientError {}

/// Sends one request and reads the response.
pub fn send(socket: &Path, envelope: &Envelope) -> Result<Response, ClientError> {
    send_to(socket, envelope, false)
}

/// Like [`send`], to a socket that someone else could have put there (the end of an SSH
/// forward in a shared folder of a remote machine): it must be a socket of our own, and
/// the process answering must run as us, else nothing is sent — a request may carry a
/// password, and the answer may ask the user for a token.
pub fn send_to_own(socket: &Path, envelope: &Envelope) -> Result<Response, ClientError> {
    send_to(socket, envelope, true)
}

fn send_to(socket: &Path, envelope: &Envelope, must_be_own: bool) -> Result<Response, ClientError> {
    let line = encode(envelope)?;
    let not_ours = |why: String| {
        ClientError::Failed(format!(
            "{} {why}; nothing was sent to it",
            socket.display()
        ))
    };
    if must_be_own {
        transport::check_own_socket(socket).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ClientError::NotRunning(e),
            _ => not_ours(e.to_string()),
        })?;
    }
    let mut stream = transport::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning(e),
        _ => ClientError::Failed(format!(
            "cannot connect to the helperd daemon at {}: {e}",
            socket.display()
        )),
    })?;
    if must_be_own {
        stream
            .check_peer_is_me()
            .map_err(|e| not_ours(e.to_string()))?;
    }
    let failed = |what: &str, e: io::Error| {
        ClientError::Failed(format!(
            "failed to {what} the helperd daemon at {}: {e}",
            socket.display()
        ))
    };

    stream
        .set_timeouts(REPLY_TIMEOUT)
        .map_err(|e| failed("configure the connection to", e))?;
    // The daemon may answer before reading everything (a refusal): a failed write is only
    // an error when no answer follows.
    let write_error = stream.write_all(&line).err();

    let mut reader = BufReader::new(stream.take(MAX_MESSAGE_BYTES as u64));
    let mut answer = Vec::new();
    let read = reader.read_until(b'\n', &mut answer);
    if answer.last() != Some(&b'\n') {
        if let Some(e) = write_error {
            if answer.is_empty()
                && matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                )
            {
                // See below: a dying daemon.
                return Err(ClientError::NotRunning(e));
            }
            return Err(failed("send a request to", e));
        }
        match read {
            // A daemon that was dying when we connected (killed, its socket not closed yet)
            // resets the connection without a word: as good as no daemon at all, so the
            // caller starts one and asks again.
            Err(e) if answer.is_empty() && e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(ClientError::NotRunning(e))
            }
            read => read.map_err(|e| failed("read the answer of", e))?,
        };
        return Err(ClientError::Failed(
            "the helperd daemon closed the connection without a complete answer (see its log)"
                .into(),
        ));
    }
    serde_json::from_slice(&answer).map_err(|e| {
        ClientError::Failed(format!(
            "the helperd daemon sent an answer this client cannot read: {e}"
        ))
    })
}

/// What [`stop_daemon`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// No daemon was running.
    NotRunning,
    /// The daemon stopped; what it said on the way (writes it dropped), if anything.
    Stopped(Option<String>),
}

/// Asks the daemon on `socket` to stop (every version honours `shutdown`) and waits until
/// nothing answers there any more. The daemon first waits (bounded) for writes its secret
/// store has not taken yet, and says which it dropped.
pub fn stop_daemon(socket: &Path, timeout: Duration) -> Result<Stopped, ClientError> {
    let notice = match send(socket, &Envelope::new(crate::wire::Request::Shutdown)) {
        Err(ClientError::NotRunning(_)) => return Ok(Stopped::NotRunning),
        Err(e) => return Err(e),
        Ok(response) => response.notice,
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match transport::connect(socket) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(Stopped::Stopped(notice))
            }
            _ if std::time::Instant::now() >= deadline => {
                return Err(ClientError::Failed(format!(
                    "the daemon on {} did not stop within {timeout:?}",
                    socket.display()
                )))
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One request line, refused when larger than the daemon accepts.
fn encode(envelope: &Envelope) -> Result<Vec<u8>, ClientError> {
    let mut line = serde_json::to_vec(envelope).expect("wire types always serialize");
    line.push(b'\n');
    if line.len() > MAX_MESSAGE_BYTES {
        // JSON escaping can grow odd input six-fold: refuse here, clearly, not mid-write.
        return Err(ClientError::Failed(format!(
            "the request is larger than {} KiB once encoded; refusing it",
            MAX_MESSAGE_BYTES / 1024
        )));
    }
    Ok(line)
}

/// Finds the `helperd` executable: beside `beside` (normally the client's own executable,
/// so an installation is self-consistent), else on `PATH`.
pub fn daemon_executable(beside: Option<&Path>) -> PathBuf {
    let name = if cfg!(windows) {
        "helperd.exe"
    } else {
        "helperd"
    };
    if let Some(dir) = beside.and_then(Path::parent) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(name)
}

/// Starts the daemon in the background and waits until it says `ok` (it prints that once
/// it listens). A daemon that is already running counts as started.
pub fn start_daemon(executable: &Path) -> Result<(), String> {
    let mut child = Command::new(executable)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", executable.display()))?;

    let stdout = child.stdout.take().expect("stdout was piped above");
    let (tx, rx) = std::sync::mpsc::channel();
    // A reader thread, because std has no read timeout on a pipe.
    std::thread::spawn(move || {
        let mut first_line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first_line);
        let _ = tx.send(first_line);
    });
    let first_line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
    if first_line.trim_end() == "ok" {
        // The launcher exits right after `ok`; reap it.
        let _ = child.wait();
        return Ok(());
    }
    // Not ok: the launcher exited with an explanation on stderr, or hung.
    let _ = child.kill();
    let mut err = String::new();
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(4096).read_to_string(&mut err);
    }
    let _ = child.wait();
    // The daemon prefixes its own name; the caller adds the prefix once.
    let err = err.trim().trim_start_matches("helperd: ");
    if err.contains("already running") {
        return Ok(());
    }
    Err(if err.is_empty() {
        format!(
            "{} did not start within {START_TIMEOUT:?}",
            executable.display()
        )
    } else {
        format!("{} failed to start: {err}", executable.display())
    })
}

#[cfg(unix)]
mod transport {
    //! Unix domain sockets straight from std: the fastest path, nothing to set up.
    use std::io;
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::time::Duration;

    pub struct Stream(UnixStream);

    pub fn connect(path: &Path) -> io::Result<Stream> {
        UnixStream::connect(path).map(Stream)
    }

    impl Stream {
        pub fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
            self.0.set_read_timeout(Some(timeout))?;
            self.0.set_write_timeout(Some(timeout))
        }

        /// The process at the other end runs as this process's user (SO_PEERCRED).
        #[cfg(target_os = "linux")]
        pub fn check_peer_is_me(&self) -> io::Result<()> {
            use std::os::fd::AsRawFd;
            let mut cred = libc::ucred {
                pid: 0,
                uid: 0,
                gid: 0,
            };
            let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
            // SAFETY: `cred` and `len` are valid for writes of a ucred, as SO_PEERCRED needs.
            let rc = unsafe {
                libc::getsockopt(
                    self.0.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_PEERCRED,
                    (&mut cred as *mut libc::ucred).cast(),
                    &mut len,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            if cred.uid != me {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("is answered by uid {}, not by you (uid {me})", cred.uid),
                ));
            }
            Ok(())
        }

        /// Elsewhere the owner check of [`check_own_socket`] stands alone.
        #[cfg(not(target_os = "linux"))]
        pub fn check_peer_is_me(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// `path` is a socket (not a link to one) owned by this process's user.
    pub fn check_own_socket(path: &Path) -> io::Result<()> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::symlink_metadata(path)?;
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if !meta.file_type().is_socket() {
            return Err(io::Error::other("is not a socket"));
        }
        if meta.uid() != me {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("belongs to uid {}, not to you (uid {me})", meta.uid()),
            ));
        }
        Ok(())
    }

    impl io::Read for Stream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl io::Write for Stream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }
}

#[cfg(not(unix))]
mod transport {
    //! Error fallback: the Windows named-pipe transport is not written yet (DESIGN.md §3:
    //! one signature per OS, an error fallback). git then falls back to its own prompt.
    use std::io;
    use std::path::Path;
    use std::time::Duration;

    pub struct Stream;

    pub fn connect(_path: &Path) -> io::Result<Stream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "helperd has no socket transport for this operating system yet",
        ))
    }

    pub fn check_own_socket(_path: &Path) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "helperd has no socket transport for this operating system yet",
        ))
    }

    impl Stream {
        pub fn set_timeouts(&self, _timeout: Duration) -> io::Result<()> {
            Ok(())
        }

        pub fn check_peer_is_me(&self) -> io::Result<()> {
            Ok(())
        }
    }

    impl io::Read for Stream {
        fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    impl io::Write for Stream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    /// A daemon killed while we connect: it accepted (or the kernel queued us), then its
    /// socket closes with our request unread, which resets the connection. That is "no
    /// daemon", so that the caller starts one, not a failure shown to git.
    #[test]
    fn a_connection_reset_without_an_answer_means_no_daemon() {
        let dir = std::env::temp_dir().join(format!("hd-client-reset-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("socket");
        let listener = UnixListener::bind(&socket).unwrap();
        let dying = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // Read one byte and close with the rest unread: the kernel resets the peer.
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        });
        let result = send(&socket, &Envelope::new(crate::wire::Request::Status));
        dying.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            matches!(result, Err(ClientError::NotRunning(_))),
            "expected NotRunning, got {result:?}"
        );
    }
}
