//! Windows: a named pipe opened as a file (std does that; no runtime needed in the
//! client), whose server must run as this user before anything is sent; the console
//! (`CONIN$`/`CONOUT$`) for the hidden prompt; the daemon started detached, without a
//! console and without this process's handles.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::os::windows::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::time::Duration;

use windows_sys::core::BOOL;
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, SetHandleInformation, ERROR_INSUFFICIENT_BUFFER, ERROR_PIPE_BUSY,
    FALSE, HANDLE, HANDLE_FLAG_INHERIT, TRUE,
};
use windows_sys::Win32::Security::{
    GetLengthSid, GetTokenInformation, TokenUser, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::SECURITY_IDENTIFICATION;
use windows_sys::Win32::System::Console::{
    GetConsoleMode, GetStdHandle, SetConsoleCtrlHandler, SetConsoleMode, CONSOLE_MODE,
    ENABLE_ECHO_INPUT, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
};
use windows_sys::Win32::System::Pipes::{GetNamedPipeServerProcessId, WaitNamedPipeW};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, CREATE_NEW_PROCESS_GROUP, DETACHED_PROCESS,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::Family;

/// This build's family.
pub const FAMILY: Family = Family::Windows;

/// How long a client waits for a free pipe instance when every one is busy.
const BUSY_WAIT_MS: u32 = 2_000;

/// Nothing to prepare: Windows has no SIGPIPE (a closed pipe is an error already).
pub fn prepare_client_process() {}

/// A connection to the daemon's named pipe.
pub struct Stream(File);

/// Opens the daemon's pipe and checks that the process serving it runs as this user:
/// a pipe name can be taken by anyone, so nothing is sent before that check. The server
/// may identify the client, never act as it (`SECURITY_IDENTIFICATION`).
pub fn connect(path: &Path) -> io::Result<Stream> {
    let mut waited = false;
    let file = loop {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .security_qos_flags(SECURITY_IDENTIFICATION)
            .open(path)
        {
            Ok(file) => break file,
            // Every instance is serving someone: wait (once, bounded) for a free one.
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) && !waited => {
                waited = true;
                let name = wide(path.as_os_str());
                // SAFETY: `name` is a NUL-terminated UTF-16 string that lives for the call.
                unsafe { WaitNamedPipeW(name.as_ptr(), BUSY_WAIT_MS) };
            }
            Err(e) => return Err(e),
        }
    };
    let stream = Stream(file);
    stream.check_server_is_me()?;
    Ok(stream)
}

impl Stream {
    /// Nothing to set: a pipe opened as a file has no timeouts. The daemon drops any
    /// request it has not answered within its own deadline, which ends the wait here.
    pub fn set_timeouts(&self, _timeout: Duration) -> io::Result<()> {
        Ok(())
    }

    /// Already checked by [`connect`], for every connection.
    pub fn check_peer_is_me(&self) -> io::Result<()> {
        Ok(())
    }

    fn check_server_is_me(&self) -> io::Result<()> {
        let mut pid = 0u32;
        // SAFETY: the handle is an open pipe client end; `pid` is valid for the write.
        if unsafe { GetNamedPipeServerProcessId(self.0.as_raw_handle(), &mut pid) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let server = sid::of_process(pid)?;
        let me = sid::current()?;
        if server != me {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("is served by {server}, not by you ({me})"),
            ));
        }
        Ok(())
    }
}

/// A pipe name is checked on every connection (see [`connect`]); nothing more to check.
pub fn check_own_endpoint(_path: &Path) -> io::Result<()> {
    Ok(())
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            // The daemon closed its end after the answer: the end of the stream.
            Err(e) if e.raw_os_error() == Some(109 /* ERROR_BROKEN_PIPE */) => Ok(0),
            other => other,
        }
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

/// The command that starts the daemon: detached from any console (no window flashes up,
/// Ctrl-C in git's console does not reach it), in a process group of its own, and
/// without this process's standard handles. Those are git's pipes; a daemon holding one
/// would keep git waiting for its end forever. So they stop being inheritable here,
/// which is harmless: this process only ever hands them on to the daemon.
pub fn daemon_command(executable: &Path) -> Command {
    for which in [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE] {
        // SAFETY: GetStdHandle returns this process's handle or null/invalid, which
        // SetHandleInformation refuses harmlessly.
        unsafe {
            let handle = GetStdHandle(which);
            if !handle.is_null() {
                SetHandleInformation(handle, HANDLE_FLAG_INHERIT, 0);
            }
        }
    }
    let mut command = Command::new(executable);
    command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    command
}

/// The profile folder (only asked for when `%APPDATA%` is missing).
pub fn account_home() -> Option<std::ffi::OsString> {
    std::env::var_os("USERPROFILE").filter(|h| !h.is_empty())
}

fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    s.encode_wide().chain(Some(0)).collect()
}

/// User identities (security identifiers), as both ends of the pipe compare them.
pub mod sid {
    use super::*;

    /// A user's SID, as bytes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Sid(Vec<u8>);

    /// The user this process runs as.
    pub fn current() -> io::Result<Sid> {
        // SAFETY: the pseudo-handle of the current process needs no closing.
        of_process_handle(unsafe { GetCurrentProcess() })
    }

    /// The user the process `pid` runs as.
    pub fn of_process(pid: u32) -> io::Result<Sid> {
        // SAFETY: a plain call; the handle is closed below.
        let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid) };
        if process.is_null() {
            return Err(io::Error::last_os_error());
        }
        let sid = of_process_handle(process);
        // SAFETY: opened above, closed once.
        unsafe { CloseHandle(process) };
        sid
    }

    fn of_process_handle(process: HANDLE) -> io::Result<Sid> {
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: `process` is a valid process handle; `token` receives a new handle.
        if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let sid = of_token(token);
        // SAFETY: opened above, closed once.
        unsafe { CloseHandle(token) };
        sid
    }

    fn of_token(token: HANDLE) -> io::Result<Sid> {
        let mut len = 0u32;
        // SAFETY: asks for the size only (no buffer).
        unsafe { GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut len) };
        // SAFETY: reads the thread's last error.
        if unsafe { GetLastError() } != ERROR_INSUFFICIENT_BUFFER || len == 0 {
            return Err(io::Error::last_os_error());
        }
        // u64s: TOKEN_USER holds a pointer, so the buffer must be aligned for one.
        let mut buf = vec![0u64; (len as usize).div_ceil(8)];
        // SAFETY: `buf` has room for `len` bytes.
        if unsafe { GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len) }
            == 0
        {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: filled by GetTokenInformation with a TOKEN_USER whose SID points into buf.
        let sid = unsafe { (*(buf.as_ptr() as *const TOKEN_USER)).User.Sid };
        // SAFETY: a valid SID, as returned above.
        let sid_len = unsafe { GetLengthSid(sid) } as usize;
        // SAFETY: the SID is `sid_len` bytes long, inside buf.
        let bytes = unsafe { std::slice::from_raw_parts(sid as *const u8, sid_len) };
        Ok(Sid(bytes.to_vec()))
    }

    impl Sid {
        /// A SID from its bytes (as an ACL entry or a test holds them).
        pub fn from_bytes(bytes: Vec<u8>) -> Sid {
            Sid(bytes)
        }

        /// The last sub-authority: the user's relative identifier within its domain.
        pub fn rid(&self) -> u32 {
            let b = &self.0;
            let count = usize::from(*b.get(1).unwrap_or(&0));
            let at = 8 + 4 * count.saturating_sub(1);
            match b.get(at..at + 4) {
                Some(sub) if count > 0 => u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]]),
                _ => 0,
            }
        }
    }

    impl std::fmt::Display for Sid {
        /// The usual `S-1-5-21-…` form.
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let b = &self.0;
            if b.len() < 8 {
                return f.write_str("S-?");
            }
            let authority = b[2..8]
                .iter()
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
            write!(f, "S-{}-{authority}", b[0])?;
            for sub in b[8..].chunks_exact(4).take(usize::from(b[1])) {
                write!(
                    f,
                    "-{}",
                    u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]])
                )?;
            }
            Ok(())
        }
    }
}

/// The console (`CONIN$`, `CONOUT$`), for reading and for writing: git owns stdin and
/// stdout. Fails when there is none (a service, a detached process).
pub fn open_terminal() -> io::Result<(File, File)> {
    let input = OpenOptions::new().read(true).write(true).open("CONIN$")?;
    let output = OpenOptions::new().write(true).open("CONOUT$")?;
    Ok((input, output))
}

/// Echo off hides the Enter typed too: the prompt ends the line itself.
pub const ECHOES_ENTER: bool = false;

/// The console input handle and its mode before echo went off, for the Ctrl-C handler.
static CONSOLE: AtomicPtr<std::ffi::c_void> = AtomicPtr::new(std::ptr::null_mut());
static SAVED_MODE: AtomicU32 = AtomicU32::new(0);

/// Puts the console mode back, then lets the default handler end the process: a console
/// mode outlives the process that set it, so a Ctrl-C must not leave echo off.
unsafe extern "system" fn restore_console(_event: u32) -> BOOL {
    let console = CONSOLE.load(Ordering::SeqCst);
    if !console.is_null() {
        // SAFETY: the handle stays open while the handler is installed (EchoOff lives).
        unsafe { SetConsoleMode(console, SAVED_MODE.load(Ordering::SeqCst)) };
    }
    FALSE
}

/// Echo off on the console until dropped, with Ctrl-C restoring it too.
pub struct EchoOff {
    console: HANDLE,
    saved: CONSOLE_MODE,
}

impl EchoOff {
    /// Switches echo off on the console `input`.
    pub fn new(input: &File) -> io::Result<EchoOff> {
        let console = input.as_raw_handle();
        let mut saved: CONSOLE_MODE = 0;
        // SAFETY: `console` is an open console input handle.
        if unsafe { GetConsoleMode(console, &mut saved) } == 0 {
            return Err(io::Error::last_os_error());
        }
        SAVED_MODE.store(saved, Ordering::SeqCst);
        CONSOLE.store(console, Ordering::SeqCst);
        // SAFETY: installs a handler that only restores the mode.
        unsafe { SetConsoleCtrlHandler(Some(restore_console), TRUE) };
        // SAFETY: as above.
        if unsafe { SetConsoleMode(console, saved & !ENABLE_ECHO_INPUT) } == 0 {
            let e = io::Error::last_os_error();
            drop(EchoOff { console, saved });
            return Err(e);
        }
        Ok(EchoOff { console, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the saved mode and removes the handler installed in `new`.
        unsafe {
            SetConsoleMode(self.console, self.saved);
            SetConsoleCtrlHandler(Some(restore_console), FALSE);
        }
        CONSOLE.store(std::ptr::null_mut(), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::sid::{self, Sid};

    /// S-1-5-18, LocalSystem: a user no test process runs as.
    fn local_system() -> Sid {
        Sid::from_bytes(vec![1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0])
    }

    #[test]
    fn a_sid_reads_as_windows_writes_it() {
        let system = local_system();
        assert_eq!(system.to_string(), "S-1-5-18");
        assert_eq!(system.rid(), 18);
    }

    /// The comparison both ends of the pipe make: this process against itself is the same
    /// user; against another user's SID it is not (Wine runs one user, so the other side
    /// of this check is only testable here).
    #[test]
    fn this_process_is_its_own_user_and_not_another() {
        let me = sid::current().unwrap();
        assert!(me.to_string().starts_with("S-1-"), "{me}");
        assert_eq!(sid::of_process(std::process::id()).unwrap(), me);
        assert_ne!(me, local_system());
        assert!(sid::of_process(u32::MAX - 3).is_err(), "no such process");
    }
}
