//! Windows named pipe listener, as Git Credential Manager and gpg-agent keep theirs:
//!
//! - the pipe's security descriptor grants the current user's SID alone (the default
//!   DACL of a pipe lets Everyone read): `D:P(A;;GA;;;<SID>)`, protected from
//!   inheritance;
//! - the first instance is created with `FILE_FLAG_FIRST_PIPE_INSTANCE`: a name someone
//!   else already created is refused with a clear error, never joined;
//! - remote clients (SMB) are rejected (`PIPE_REJECT_REMOTE_CLIENTS`);
//! - each client's user is read from its process token (client pid -> token -> SID) and
//!   compared with the daemon's, as `SO_PEERCRED` is on Linux;
//! - a lock file in the state folder makes it one daemon per pipe, as on Unix.
//!
//! The first instance is created with `CreateNamedPipeW` at bind time (before the async
//! runtime exists, so that "already running" is known at once); tokio takes it over in
//! [`BoundSocket::take_listener`] and creates each next instance as one is connected.

use std::ffi::{c_void, OsStr, OsString};
use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, IntoRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use helperd_wire::os::sid::{self, Sid};
use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use windows_sys::Win32::Foundation::{
    GetLastError, LocalFree, ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, FALSE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, PIPE_ACCESS_DUPLEX,
};
use windows_sys::Win32::System::Pipes::{
    CreateNamedPipeW, GetNamedPipeClientProcessId, PeekNamedPipe, WaitNamedPipeW,
    PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES,
    PIPE_WAIT,
};

use super::BindError;

/// Each instance's buffers: a request or an answer fits many times over.
const PIPE_BUFFER: u32 = 64 * 1024;

/// The pipe's security descriptor (granting the current user alone), kept for every
/// instance created after the first.
struct OwnerOnly {
    descriptor: *mut c_void,
}

// SAFETY: the descriptor is written once at creation and only read afterwards.
unsafe impl Send for OwnerOnly {}
// SAFETY: as above.
unsafe impl Sync for OwnerOnly {}

impl OwnerOnly {
    fn new(me: &Sid) -> io::Result<OwnerOnly> {
        let sddl = wide(OsStr::new(&format!("D:P(A;;GA;;;{me})")));
        let mut descriptor = std::ptr::null_mut();
        // SAFETY: `sddl` is NUL-terminated; the call allocates the descriptor (LocalFree).
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnerOnly { descriptor })
    }

    /// Attributes for one call; the descriptor outlives it.
    fn attributes(&self) -> SECURITY_ATTRIBUTES {
        SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.descriptor,
            bInheritHandle: FALSE,
        }
    }
}

impl Drop for OwnerOnly {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(self.descriptor) };
    }
}

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(Some(0)).collect()
}

/// A bound pipe (its first instance) plus the lock that makes it ours.
pub struct BoundSocket {
    first: Option<OwnedHandle>,
    name: PathBuf,
    security: Arc<OwnerOnly>,
    me: Sid,
    _lock: File,
}

impl std::fmt::Debug for BoundSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundSocket")
            .field("name", &self.name)
            .finish()
    }
}

/// Creates the pipe `name` (its first instance), holding `lock_path` for as long as the
/// returned value lives.
pub fn bind(name: &Path, lock_path: &Path) -> Result<BoundSocket, BindError> {
    let lock = super::take_lock(lock_path, name)?;
    let me = sid::current().map_err(|e| BindError::Io(format!("cannot read your user: {e}")))?;
    let security = OwnerOnly::new(&me)
        .map_err(|e| BindError::Io(format!("cannot build the pipe's security descriptor: {e}")))?;
    let attributes = security.attributes();
    let wide_name = wide(name.as_os_str());
    // Wine 8 ignores FILE_FLAG_FIRST_PIPE_INSTANCE (Windows honours it atomically below):
    // a name that answers a wait is someone else's pipe already. (Windows' own answer,
    // ERROR_ACCESS_DENIED from the create, stays the one that matters.)
    // SAFETY: the name is NUL-terminated; a 1 ms wait only asks whether the pipe exists.
    if unsafe { WaitNamedPipeW(wide_name.as_ptr(), 1) } != 0
        // SAFETY: reads the thread's last error.
        || unsafe { GetLastError() } != ERROR_FILE_NOT_FOUND
    {
        return Err(squatted(name));
    }
    // SAFETY: the name is NUL-terminated and the attributes (and their descriptor) live
    // for the call; the returned handle is owned below.
    let handle = unsafe {
        CreateNamedPipeW(
            wide_name.as_ptr(),
            PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            PIPE_UNLIMITED_INSTANCES,
            PIPE_BUFFER,
            PIPE_BUFFER,
            0,
            &attributes,
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        // SAFETY: reads the thread's last error.
        let code = unsafe { GetLastError() };
        if code == ERROR_ACCESS_DENIED {
            return Err(squatted(name));
        }
        let e = io::Error::from_raw_os_error(code as i32);
        return Err(BindError::Io(format!(
            "failed to create the pipe {}: {e}",
            name.display()
        )));
    }
    Ok(BoundSocket {
        // SAFETY: a fresh handle that nothing else owns.
        first: Some(unsafe { OwnedHandle::from_raw_handle(handle) }),
        name: name.to_path_buf(),
        security: Arc::new(security),
        me,
        _lock: lock,
    })
}

/// A pipe of our name that this daemon did not create.
fn squatted(name: &Path) -> BindError {
    BindError::Io(format!(
        "the pipe {} already exists and was not created by this daemon (we hold its lock); \
         refusing to join it. Another program may be squatting the name",
        name.display()
    ))
}

impl BoundSocket {
    /// Hands the first instance to the current tokio runtime.
    pub fn take_listener(&mut self) -> io::Result<Listener> {
        let first = self
            .first
            .take()
            .expect("take_listener is called once, right after binding");
        // SAFETY: an overlapped pipe server handle that we own and give away here.
        let first = unsafe { NamedPipeServer::from_raw_handle(first.into_raw_handle()) }?;
        Ok(Listener {
            current: tokio::sync::Mutex::new(first),
            name: self.name.as_os_str().to_os_string(),
            security: self.security.clone(),
            me: self.me.clone(),
        })
    }

    /// The pipe's name.
    pub fn path(&self) -> &Path {
        &self.name
    }

    /// Never: a pipe disappears with its last handle, so there is nothing stale.
    pub fn reclaimed_stale(&self) -> bool {
        false
    }

    /// Writes the serving process's pid into the lock file (see the Unix twin).
    pub fn record_pid(&mut self, pid: u32) -> io::Result<()> {
        self._lock.set_len(0)?;
        self._lock.rewind()?;
        write!(self._lock, "{pid}")?;
        self._lock.flush()
    }
}

/// No socket activation on Windows.
pub fn from_systemd(_socket: &Path) -> Option<BoundSocket> {
    None
}

/// The pipe's listening instance; each accepted client gets it, and a new one listens.
pub struct Listener {
    current: tokio::sync::Mutex<NamedPipeServer>,
    name: OsString,
    security: Arc<OwnerOnly>,
    me: Sid,
}

impl Listener {
    fn next_instance(&self) -> io::Result<NamedPipeServer> {
        let mut attributes = self.security.attributes();
        // SAFETY: the attributes and their descriptor live for the call.
        unsafe {
            ServerOptions::new()
                .reject_remote_clients(true)
                // The instance limit stays as the first instance set it: unlimited.
                .in_buffer_size(PIPE_BUFFER)
                .out_buffer_size(PIPE_BUFFER)
                .create_with_security_attributes_raw(
                    &self.name,
                    (&mut attributes as *mut SECURITY_ATTRIBUTES).cast(),
                )
        }
    }

    /// The next connection.
    pub async fn accept(&self) -> io::Result<Connection> {
        let mut current = self.current.lock().await;
        let connected = current.connect().await;
        // Whatever happened to this instance, a fresh one listens next.
        let served = std::mem::replace(&mut *current, self.next_instance()?);
        connected?;
        Ok(Connection {
            pipe: served,
            me: self.me.clone(),
        })
    }
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerCreds {
    /// The last part of its user's SID (for the log and the audit trail only).
    pub uid: u32,
    /// Its process id.
    pub pid: Option<i32>,
    /// Whether it runs as the daemon's own user (whole SIDs compared).
    pub same_user: bool,
}

/// An accepted connection.
pub struct Connection {
    pipe: NamedPipeServer,
    me: Sid,
}

/// A connection for requests that wait: the pipe is async already.
pub type AsyncConnection = NamedPipeServer;

impl Connection {
    /// The client's process and user. A client whose process cannot be opened (another
    /// user's) counts as another user.
    pub fn peer(&self) -> io::Result<PeerCreds> {
        let mut pid = 0u32;
        // SAFETY: the handle is a connected pipe server instance; `pid` is writable.
        if unsafe { GetNamedPipeClientProcessId(self.pipe.as_raw_handle(), &mut pid) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let user = sid::of_process(pid).ok();
        Ok(PeerCreds {
            uid: user.as_ref().map(Sid::rid).unwrap_or(0),
            pid: i32::try_from(pid).ok(),
            same_user: user.as_ref() == Some(&self.me),
        })
    }

    /// Copies what has arrived into `buf` without waiting and without taking it out of
    /// the pipe (`PeekNamedPipe`): `Ok(0)` is the end of the stream, `WouldBlock` that
    /// nothing is there yet. The same contract as on Unix, where it spares the client a
    /// wake-up; see [`Connection::discard`].
    pub fn peek_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut read = 0u32;
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        // SAFETY: the handle is a connected pipe server instance; `buf` is writable for
        // `len` bytes and `read` is writable; the other out-pointers may be null.
        let ok = unsafe {
            PeekNamedPipe(
                self.pipe.as_raw_handle(),
                buf.as_mut_ptr().cast(),
                len,
                &mut read,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            let e = io::Error::last_os_error();
            // The client closed its end: the end of the stream.
            return match e.raw_os_error() {
                Some(109 /* ERROR_BROKEN_PIPE */) => Ok(0),
                _ => Err(e),
            };
        }
        match read {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n as usize),
        }
    }

    /// Takes the `len` bytes [`Connection::peek_now`] saw out of the pipe, without waiting.
    pub fn discard(&self, len: usize) {
        let mut scratch = crate::secret::ReadBuffer::<512>::new();
        let mut left = len;
        while left > 0 {
            match scratch.read_with(left, |buf| self.pipe.try_read(buf)) {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n,
            }
        }
    }

    /// Writes what the pipe takes now, without waiting.
    pub fn send_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.pipe.try_write(buf)
    }

    /// The connection for the waits ahead.
    pub fn into_async(self) -> io::Result<AsyncConnection> {
        Ok(self.pipe)
    }
}

fn unix_only(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is available on Linux and macOS only"),
    )
}

/// SSH forwarding needs a Unix socket at the far end of `ssh -R`.
pub fn listen_forward(_path: &Path) -> io::Result<Listener> {
    Err(unix_only("SSH forwarding"))
}

/// Support access for another local user.
pub fn listen_support(_dir: &Path) -> io::Result<Listener> {
    Err(unix_only("support access for another local user"))
}
