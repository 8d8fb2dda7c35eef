//! macOS: `getpeereid`, `LOCAL_PEERPID` and `proc_pidpath` (compiled and linted here,
//! never run: no macOS machine, DESIGN.md §12).

use std::io;
use std::os::unix::net::UnixStream;

use nix::sys::socket::{getsockopt, sockopt::LocalPeerPid, MsgFlags};

/// The peer's uid and pid.
pub fn peer_credentials(stream: &UnixStream) -> io::Result<(u32, Option<i32>)> {
    let (uid, _gid) = nix::unistd::getpeereid(stream).map_err(io::Error::from)?;
    // The pid only names the peer for the audit log; its uid is what is checked.
    let pid = getsockopt(stream, LocalPeerPid).ok();
    Ok((uid.as_raw(), pid))
}

/// The executable of process `pid`.
pub fn peer_exe(pid: i32) -> Option<String> {
    // PROC_PIDPATHINFO_MAXSIZE (4 * MAXPATHLEN).
    let mut buf = vec![0u8; 4 * 1024];
    // SAFETY: the buffer is writable for the length given; proc_pidpath writes at most
    // that many bytes and returns how many, or <= 0 on failure.
    let n = unsafe { nix::libc::proc_pidpath(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    String::from_utf8(buf).ok()
}

/// Whether every runnable thread has a core right now. macOS has no cheap instant count
/// (its load averages are averages), so: not known, and the accept loop sleeps at once,
/// as everywhere before the look-again was measured (BENCHMARKS.md, on Linux).
pub fn no_thread_waits_for_a_core() -> bool {
    false
}

/// How long threads have waited for a core, in all: not known on macOS.
pub fn core_wait_total() -> Option<u64> {
    None
}

/// Flags for a send that never waits.
pub fn send_now_flags() -> MsgFlags {
    // No MSG_NOSIGNAL here: Rust ignores SIGPIPE from the start, so a closed peer is an
    // EPIPE error, as on Linux.
    MsgFlags::MSG_DONTWAIT
}

/// Nothing to do: measured only on Linux, whose page cache maps program text in large
/// folios (see the Linux version).
pub fn map_program_text_finely() {}

/// macOS's allocator returns freed memory by itself.
pub fn trim_memory() {}
