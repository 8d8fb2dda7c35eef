//! Talking to the daemon: one request, one response per connection (DESIGN.md §4), and
//! starting the daemon when none is listening. Used by `git-credential-helperd` and by
//! `helperctl`, so both follow the same rules.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::os;
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
        os::check_own_endpoint(socket).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ClientError::NotRunning(e),
            _ => not_ours(e.to_string()),
        })?;
    }
    let mut stream = os::connect(socket).map_err(|e| match e.kind() {
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
        match os::connect(socket) {
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
    let name = format!("helperd{}", std::env::consts::EXE_SUFFIX);
    if let Some(dir) = beside.and_then(Path::parent) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(name)
}

/// Starts the daemon in the background and waits until it says `ok` (it prints that once
/// it listens). A daemon that is already running counts as started, once it listens on
/// `socket`: it may be one another git process started a moment ago, which holds the lock
/// but does not listen yet (many git processes at once on a machine with no daemon).
pub fn start_daemon(executable: &Path, socket: &Path) -> Result<(), String> {
    start_command(
        os::daemon_command(executable),
        executable,
        Launcher::ExitsAfterOk,
    )?;
    wait_until_listening(socket, START_TIMEOUT)
}

/// Waits until something listens on `socket`, at most `timeout`.
fn wait_until_listening(socket: &Path, timeout: Duration) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match os::connect(socket) {
            Ok(_) => return Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => {
                return Err(format!(
                    "the helperd daemon does not listen on {}: {e}",
                    socket.display()
                ))
            }
        }
    }
}

/// What the process [`start_command`] starts does once it said `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// It exits (it started the daemon in the background): reap it.
    ExitsAfterOk,
    /// It is the daemon itself and runs on (Windows, where the launcher starts a detached
    /// copy of itself): leave it.
    IsTheDaemon,
}

/// Runs `command` (which starts the daemon `executable`) and waits for its `ok`, as
/// [`start_daemon`] does.
pub fn start_command(
    mut command: std::process::Command,
    executable: &Path,
    launcher: Launcher,
) -> Result<(), String> {
    let mut child = command
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
        if launcher == Launcher::ExitsAfterOk {
            let _ = child.wait();
        }
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
