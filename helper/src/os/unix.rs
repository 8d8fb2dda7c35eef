//! Unix: a Unix domain socket straight from std (the fastest path, nothing to set up),
//! `/dev/tty` with termios for the hidden prompt, the password database for the home
//! folder.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::Family;

/// This build's family.
pub const FAMILY: Family = match cfg!(target_os = "macos") {
    true => Family::MacOs,
    false => Family::Unix,
};

/// What the Rust runtime would have done at start-up and the client (which skips it, see
/// its `main`) needs: a closed pipe is an error to handle (EPIPE), not a signal that
/// kills the process.
pub fn prepare_client_process() {
    // SAFETY: sets a signal disposition before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// A connection to the daemon.
pub struct Stream(UnixStream);

/// Connects to the daemon's socket.
pub fn connect(path: &Path) -> io::Result<Stream> {
    UnixStream::connect(path).map(Stream)
}

impl Stream {
    /// No read or write waits longer than `timeout`.
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
        same_user(cred.uid)
    }

    /// The process at the other end runs as this process's user (getpeereid).
    #[cfg(not(target_os = "linux"))]
    pub fn check_peer_is_me(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: both out-pointers are valid for the call.
        if unsafe { libc::getpeereid(self.0.as_raw_fd(), &mut uid, &mut gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
        same_user(uid)
    }
}

fn same_user(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if uid != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("is answered by uid {uid}, not by you (uid {me})"),
        ));
    }
    Ok(())
}

/// `path` is a socket (not a link to one) owned by this process's user.
pub fn check_own_endpoint(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_socket() {
        return Err(io::Error::other("is not a socket"));
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
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

/// The command that starts the daemon: on Unix the daemon forks and leaves the session
/// itself once it listens, so nothing is needed here.
pub fn daemon_command(executable: &Path) -> Command {
    Command::new(executable)
}

/// This user's home folder from the password database.
pub fn account_home() -> Option<std::ffi::OsString> {
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

/// The controlling terminal (`/dev/tty`), for reading and for writing: git owns stdin
/// and stdout. Fails when there is none (a cron job, CI).
pub fn open_terminal() -> io::Result<(File, File)> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let output = tty.try_clone()?;
    Ok((tty, output))
}

/// Echo off keeps the Enter typed (`ECHONL`): the line ends on the terminal by itself.
pub const ECHOES_ENTER: bool = true;

/// The terminal's settings before echo went off, for the signal handler to put back.
/// Written once before the handlers are installed, read only by them.
static mut SAVED: std::mem::MaybeUninit<libc::termios> = std::mem::MaybeUninit::uninit();
static TTY_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// The signals that end a prompt: the terminal is restored, then the signal does what it
/// always does (git and this client stop), so the terminal is never left silent.
const ENDING_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

extern "C" fn restore_and_reraise(sig: libc::c_int) {
    let fd = TTY_FD.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: tcsetattr, signal and raise are async-signal-safe; SAVED was fully written
    // before this handler was installed (TTY_FD >= 0 says so) and is never written again.
    unsafe {
        if fd >= 0 {
            libc::tcsetattr(fd, libc::TCSANOW, std::ptr::addr_of!(SAVED).cast());
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Echo off on the terminal until dropped, with the ending signals restoring it too.
pub struct EchoOff {
    fd: libc::c_int,
    saved: libc::termios,
}

impl EchoOff {
    /// Switches echo off on `tty`.
    pub fn new(tty: &File) -> io::Result<EchoOff> {
        use std::os::fd::AsRawFd;
        let fd = tty.as_raw_fd();
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: fd is an open terminal; tcgetattr fills `saved` when it returns 0.
        if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { saved.assume_init() };
        // SAFETY: single-threaded at this point (the client starts no threads before the
        // prompt), and no handler reads SAVED until TTY_FD is set below.
        unsafe {
            std::ptr::addr_of_mut!(SAVED).write(std::mem::MaybeUninit::new(saved));
        }
        TTY_FD.store(fd, std::sync::atomic::Ordering::SeqCst);
        for sig in ENDING_SIGNALS {
            // SAFETY: installs a handler that only calls async-signal-safe functions.
            unsafe {
                libc::signal(sig, restore_and_reraise as *const () as libc::sighandler_t);
            }
        }
        let mut hidden = saved;
        hidden.c_lflag &= !libc::ECHO;
        hidden.c_lflag |= libc::ECHONL;
        // SAFETY: fd is an open terminal and `hidden` a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &hidden) } != 0 {
            let e = io::Error::last_os_error();
            drop(EchoOff { fd, saved });
            return Err(e);
        }
        Ok(EchoOff { fd, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: as in `new`; restoring the saved settings and the default handlers.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
            for sig in ENDING_SIGNALS {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        TTY_FD.store(-1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use crate::client::{send, ClientError};
    use crate::wire::Envelope;
    use std::io::Read;
    use std::os::unix::net::UnixListener;
    use std::time::Duration;

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
