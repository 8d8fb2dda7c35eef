//! Unix domain socket listener.
//!
//! Rules (DESIGN.md §2, §7, git's `credential-cache--daemon.c`): the socket's folder is
//! 0700 from creation and refused when group/others can reach it; the socket is 0600; a
//! lock file held for the daemon's whole life makes it one daemon per socket; a socket left
//! by a killed daemon is stale exactly when nobody holds the lock, and is then reclaimed.

use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::stat::{umask, Mode};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::BindError;
use crate::fsutil;

/// A listening socket, registered with tokio's reactor: connections are accepted as
/// plain (blocking) std sockets, so that the fast path reads and answers them with two
/// system calls and never registers them (see `daemon::server`).
pub struct Listener {
    socket: AsyncFd<UnixListener>,
    me: u32,
    /// Whether the last connection was in the backlog at the first try: then the next
    /// is likely there too, and is taken without asking first.
    backlog_was_busy: AtomicBool,
    /// Accepts that found the backlog empty (for the tests).
    #[cfg(test)]
    accepts_for_nothing: std::sync::atomic::AtomicUsize,
}

/// How long an accept loop keeps looking for the next connection after taking one,
/// before it sleeps in the event loop, when no thread waits for a core. git asks in
/// bursts (a `get`, then a `store` or an `erase`; one per remote), and waking a sleeping
/// worker costs more than the rest of a request on a virtual machine, where waking an
/// idle core is a trip through the hypervisor. Measured with one client
/// (`benches/socket_load.rs`, BENCHMARKS.md): requests/s 0.64–0.80 of credential-cache's
/// when sleeping at once, 1.09–1.18 with 50 µs. 200 µs, because at 50 the worker still
/// slept before 4% of one client's requests, and those wake-ups made the tail: counted in a
/// throw-away build, the sleeps fell from 4.2% of requests to 1.7% (nearly all of those
/// now the sleeps when a thread waits for a core), and in three interleaved runs of 3 s
/// p99 went from 0.236/0.262/0.271 ms to 0.230/0.232/0.185, p98 from 0.17–0.18 ms to
/// 0.13–0.16. Each look asks `poll` whether a connection waits and accepts only then
/// (see `Listener::connection_waits`): with `accept4` as the look, the worker built four
/// sockets per request with one client, three of them for nothing, and their inodes,
/// freed after an RCU grace period, kept the kernel's softirq thread on the worker's core
/// for 100–400 µs about 80 times a second (`perf sched`); those waits were the one-client
/// p99. Each look lets the worker's other tasks run first (`yield_now`); when
/// threads wait for a core (many clients) the loop sleeps at once, since a looking loop
/// would only take a core a client needs. A burst costs at most this much more CPU.
const LOOK_AGAIN_FOR: Duration = Duration::from_micros(200);

/// Whether some thread waited for a core since the wait total was `waited` (see
/// [`crate::os::core_wait_total`]). Most often it is the client just answered: the kernel
/// wakes it onto the answering core, expecting the answerer to sleep, and queues it
/// there behind a looking loop even with the other core idle, so one client's requests
/// waited out the whole look (seen in a `perf sched` trace: 220–240 µs behind a 200 µs
/// look). The loop then sleeps, and the client runs at once.
fn someone_waited_since(waited: Option<u64>) -> bool {
    waited.is_some_and(|before| crate::os::core_wait_total().is_some_and(|now| now != before))
}

impl Listener {
    /// Registers `listener` with the current tokio runtime.
    fn register(listener: UnixListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        // SAFETY: the UnixListener owns its descriptor, open for as long as it lives, and
        // `as_raw_fd` always names that same descriptor.
        let socket = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Listener {
            socket,
            me: crate::os::current_uid(),
            backlog_was_busy: AtomicBool::new(false),
            #[cfg(test)]
            accepts_for_nothing: Default::default(),
        })
    }

    /// The next connection.
    pub async fn accept(&self) -> io::Result<Connection> {
        // First the backlog, looked at again for a moment when it is empty (see
        // `LOOK_AGAIN_FOR`): taken at once when the last connection was there at the first
        // try (many clients), else asked about first...
        let mut look = None;
        let mut first = true;
        loop {
            let take = if first && self.backlog_was_busy.load(Ordering::Relaxed) {
                true
            } else {
                self.connection_waits()
            };
            if take {
                match self.accept_now() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    accepted => {
                        self.backlog_was_busy.store(first, Ordering::Relaxed);
                        return accepted;
                    }
                }
            }
            first = false;
            let (until, waited) = *look.get_or_insert_with(|| {
                if crate::os::no_thread_waits_for_a_core() {
                    (
                        Instant::now() + LOOK_AGAIN_FOR,
                        crate::os::core_wait_total(),
                    )
                } else {
                    (Instant::now(), None)
                }
            });
            if Instant::now() >= until || someone_waited_since(waited) {
                break;
            }
            tokio::task::yield_now().await;
        }
        self.backlog_was_busy.store(false, Ordering::Relaxed);
        // ...then asleep in the event loop until a connection comes. The readiness may be
        // left from a connection taken before: asked about too, then forgotten.
        loop {
            let mut ready = self.socket.readable().await?;
            if !self.connection_waits() {
                ready.clear_ready();
                continue;
            }
            match self.accept_now() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                accepted => return accepted,
            }
        }
    }

    /// Whether a connection waits in the backlog (`poll`, not taking it). Asked instead of
    /// trying `accept4` on an empty backlog, which builds a whole socket (inode, dentry,
    /// file) before it finds nothing and frees it again; the inode is freed after an RCU
    /// grace period, in the kernel's softirq on this core. When `poll` itself fails (a
    /// signal), the answer is yes: the accept then tries and says what is wrong.
    fn connection_waits(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut listener = [PollFd::new(
            self.socket.get_ref().as_fd(),
            PollFlags::POLLIN,
        )];
        poll(&mut listener, PollTimeout::ZERO).map_or(true, |ready| ready > 0)
    }

    /// A connection waiting in the backlog, without waiting for one (`WouldBlock`).
    fn accept_now(&self) -> io::Result<Connection> {
        let accepted = self.socket.get_ref().accept();
        #[cfg(test)]
        if accepted
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)
        {
            self.accepts_for_nothing.fetch_add(1, Ordering::Relaxed);
        }
        let (stream, _) = accepted?;
        Ok(Connection {
            stream,
            me: self.me,
        })
    }
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerCreds {
    /// Its uid.
    pub uid: u32,
    /// Its pid, where the OS tells.
    pub pid: Option<i32>,
    /// Whether it runs as the daemon's own user.
    pub same_user: bool,
}

/// An accepted connection (a blocking std socket; see [`Listener`]).
pub struct Connection {
    stream: UnixStream,
    me: u32,
}

/// A connection registered with tokio, for requests that wait.
pub type AsyncConnection = tokio::net::UnixStream;

impl Connection {
    /// The peer's credentials (`SO_PEERCRED`, `getpeereid`).
    pub fn peer(&self) -> io::Result<PeerCreds> {
        let (uid, pid) = crate::os::peer_credentials(&self.stream)?;
        Ok(PeerCreds {
            uid,
            pid,
            same_user: uid == self.me,
        })
    }

    /// Copies what has arrived into `buf` without waiting and without taking it off the
    /// socket (`MSG_PEEK | MSG_DONTWAIT`): `Ok(0)` is the end of the stream, `WouldBlock`
    /// that nothing is there yet. Taking the request off only after the answer is sent
    /// ([`Connection::discard`]) spares the client a wake-up: freeing its bytes wakes
    /// whoever waits on its socket, and before the answer that is the client itself,
    /// asleep in its read, for nothing.
    pub fn peek_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::sys::socket::MsgFlags;
        use std::os::fd::AsRawFd;
        nix::sys::socket::recv(
            self.stream.as_raw_fd(),
            buf,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)
    }

    /// Takes the `len` bytes [`Connection::peek_now`] saw off the socket, without waiting.
    /// Needed before closing: a socket closed with unread bytes tells its peer
    /// `ECONNRESET` instead of the end of the stream.
    pub fn discard(&self, len: usize) {
        use std::os::fd::AsRawFd;
        let mut scratch = crate::secret::ReadBuffer::<512>::new();
        let mut left = len;
        while left > 0 {
            let fd = self.stream.as_raw_fd();
            match scratch.read_with(left, |buf| {
                nix::sys::socket::recv(fd, buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT)
            }) {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n,
            }
        }
    }

    /// Writes what the socket takes now, without waiting; returns how much that was.
    pub fn send_now(&self, buf: &[u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        nix::sys::socket::send(self.stream.as_raw_fd(), buf, crate::os::send_now_flags())
            .map_err(io::Error::from)
    }

    /// The connection, registered with the event loop for the waits ahead.
    pub fn into_async(self) -> io::Result<AsyncConnection> {
        self.stream.set_nonblocking(true)?;
        tokio::net::UnixStream::from_std(self.stream)
    }
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
    /// Takes the listener out, registered with the current tokio runtime; the socket
    /// file stays managed here.
    pub fn take_listener(&mut self) -> io::Result<Listener> {
        Listener::register(
            self.listener
                .take()
                .expect("take_listener is called once, right after binding"),
        )
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

    let lock = super::take_lock(lock_path, socket)?;

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

/// Listens on the forward socket `path` (0600, in the main socket's 0700 folder),
/// replacing a stale one: the daemon holds the lock of that folder, so no other daemon
/// owns it.
pub fn listen_forward(path: &Path) -> io::Result<Listener> {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Listener::register(listener)
}

/// Listens on `dir/socket` for support access by another local user: the folder is
/// 0711 (others may pass, not list), the socket 0666: the peer-credential check is what
/// admits only the granted uid.
pub fn listen_support(dir: &Path) -> io::Result<Listener> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match fs::DirBuilder::new().mode(0o711).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(dir)?;
            if !meta.is_dir() || meta.uid() != crate::os::current_uid() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{} exists and is not our folder", dir.display()),
                ));
            }
        }
        Err(e) => return Err(e),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o711))?;
    let socket = dir.join("socket");
    let _ = fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666))?;
    Listener::register(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Arc;

    use crate::ipc::{Acceptor, Serve};

    fn pair() -> (Connection, UnixStream) {
        let (daemon_end, client) = UnixStream::pair().unwrap();
        let me = crate::os::current_uid();
        (
            Connection {
                stream: daemon_end,
                me,
            },
            client,
        )
    }

    /// A look leaves the request in the socket; taking it off before the close gives the
    /// client the end of the stream after its answer, where unread bytes would reset it.
    #[test]
    fn a_peeked_request_is_discarded_so_the_client_sees_the_end_not_a_reset() {
        let (conn, mut client) = pair();
        let mut look = [0u8; 64];
        assert_eq!(
            conn.peek_now(&mut look).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        client.write_all(b"{\"request\":1}\n").unwrap();
        let n = conn.peek_now(&mut look).unwrap();
        assert_eq!(&look[..n], b"{\"request\":1}\n");
        assert_eq!(conn.peek_now(&mut look).unwrap(), n, "a look takes nothing");
        conn.send_now(b"answer\n").unwrap();
        conn.discard(n);
        drop(conn);
        let mut answer = Vec::new();
        client
            .read_to_end(&mut answer)
            .expect("the end of the stream, no reset");
        assert_eq!(answer, b"answer\n");
    }

    /// Without the discard, the same close resets the client: the reason for it (Linux's
    /// rule; other Unixes may differ, the discard is harmless there).
    #[cfg(target_os = "linux")]
    #[test]
    fn closing_with_the_request_unread_resets_the_client() {
        let (conn, mut client) = pair();
        client.write_all(b"request\n").unwrap();
        let mut look = [0u8; 64];
        conn.peek_now(&mut look).unwrap();
        conn.send_now(b"answer\n").unwrap();
        drop(conn);
        let mut answer = [0u8; 7];
        client.read_exact(&mut answer).unwrap();
        let mut rest = Vec::new();
        let end = client.read_to_end(&mut rest);
        assert_eq!(
            end.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionReset)
        );
    }

    /// `loops` accept loops on a new socket, answering every connection "served".
    fn acceptor_answering_served(loops: usize) -> (tempfile::TempDir, PathBuf, Acceptor) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let listener = Listener::register(UnixListener::bind(&path).unwrap()).unwrap();
        let serve: Serve = Arc::new(|connection: Connection| {
            let _ = connection.send_now(b"served\n");
        });
        (dir, path, Acceptor::start(listener, loops, serve))
    }

    /// Connects to `path` and reads until the daemon closes.
    async fn ask(path: &Path) -> String {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut client = UnixStream::connect(path).unwrap();
            let mut answer = String::new();
            client.read_to_string(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap()
    }

    /// Asking whether a connection waits (what the look-again loop does instead of
    /// `accept4` on an empty backlog) takes nothing: the connection stays for the accept.
    #[tokio::test]
    async fn asking_whether_a_connection_waits_leaves_it_in_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let listener = Listener::register(UnixListener::bind(&path).unwrap()).unwrap();
        assert!(!listener.connection_waits(), "nobody connected yet");
        let _client = UnixStream::connect(&path).unwrap();
        assert!(listener.connection_waits());
        assert!(listener.connection_waits(), "asking took nothing");
        listener
            .accept_now()
            .expect("the connection, still waiting");
        assert!(!listener.connection_waits(), "taken by the accept");
        assert_eq!(
            listener.accept_now().err().map(|e| e.kind()),
            Some(io::ErrorKind::WouldBlock)
        );
    }

    /// An accept loop that finds the backlog empty asks `poll`, in its look-again and
    /// asleep, and never tries an accept for nothing (each builds and frees a socket): at
    /// most once, right after a connection it found at its first try (then it tries the
    /// next at once, as under load). Trying `accept4` as the look did so dozens of times
    /// in each 200 µs look.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_accept_loop_asks_about_an_empty_backlog_and_never_accepts_from_it() {
        let (_dir, path, acceptor) = acceptor_answering_served(1);
        for round in 0..3 {
            assert_eq!(ask(&path).await, "served\n", "round {round}");
            // Past the look-again: the loop asks, looks, then sleeps with nothing there.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let listener = acceptor.stop().await.expect("the listener back");
        assert!(
            listener.accepts_for_nothing.load(Ordering::Relaxed) <= 1,
            "accepts on an empty backlog: {}",
            listener.accepts_for_nothing.load(Ordering::Relaxed)
        );
    }

    /// The accept loops serve every connection, one that comes while a loop still looks
    /// again and one that comes after it went to sleep; once stopped, the listener comes
    /// back still bound, and a client that connects then waits in its backlog instead of
    /// being refused, so it does not conclude the daemon is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn accept_loops_serve_then_stop_with_the_socket_still_bound() {
        let (_dir, path, acceptor) = acceptor_answering_served(2);
        for round in 0..4 {
            if round == 2 {
                // Past any look-again: the loops sleep in the event loop now.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(ask(&path).await, "served\n");
        }

        let listener = acceptor.stop().await.expect("the listener back");
        let mut late = UnixStream::connect(&path).expect("still bound: the client waits");
        late.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(
            late.read(&mut byte).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "nobody accepts once stopped"
        );
        drop(listener);
    }
}
