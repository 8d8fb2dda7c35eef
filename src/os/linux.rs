//! Linux: `SO_PEERCRED` and `/proc`.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials, MsgFlags};

/// The peer's uid and pid.
pub fn peer_credentials(stream: &UnixStream) -> io::Result<(u32, Option<i32>)> {
    let cred = getsockopt(stream, PeerCredentials).map_err(io::Error::from)?;
    Ok((cred.uid(), Some(cred.pid())))
}

/// The executable of process `pid`.
pub fn peer_exe(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Whether every runnable thread has a core right now: the kernel's count of runnable
/// threads (the fourth field of `/proc/loadavg`, "runnable/total", the caller included)
/// is at most the number of cores. One `pread` of a file kept open.
pub fn no_thread_waits_for_a_core() -> bool {
    use std::os::unix::fs::FileExt;
    static LOADAVG: OnceLock<Option<(std::fs::File, usize)>> = OnceLock::new();
    let Some((loadavg, cores)) = LOADAVG.get_or_init(|| {
        let cores = std::thread::available_parallelism().ok()?.get();
        Some((std::fs::File::open("/proc/loadavg").ok()?, cores))
    }) else {
        return false;
    };
    let mut text = [0u8; 128];
    let Ok(len) = loadavg.read_at(&mut text, 0) else {
        return false;
    };
    runnable_threads(&text[..len]).is_some_and(|runnable| runnable <= *cores)
}

/// The runnable count of a `/proc/loadavg` line ("0.50 0.40 0.30 2/345 6789").
fn runnable_threads(loadavg: &[u8]) -> Option<usize> {
    let line = std::str::from_utf8(loadavg).ok()?;
    let (runnable, _total) = line.split_whitespace().nth(3)?.split_once('/')?;
    runnable.parse().ok()
}

/// Flags for a send that never waits.
pub fn send_now_flags() -> MsgFlags {
    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL
}

/// glibc keeps freed memory in its arenas; hand it back to the OS. (musl and others
/// return it by themselves: nothing to do there.)
pub fn trim_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; any thread may call it.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runnable_count_is_read_from_loadavg_and_nonsense_is_none() {
        assert_eq!(
            super::runnable_threads(b"0.50 0.40 0.30 2/345 6789\n"),
            Some(2)
        );
        assert_eq!(
            super::runnable_threads(b"0.50 0.40 0.30 17/2000 1\n"),
            Some(17)
        );
        assert_eq!(super::runnable_threads(b"0.50 0.40"), None);
        assert_eq!(super::runnable_threads(b"a b c x/y z"), None);
        // The real file reads, and counts this test's own thread.
        let real = std::fs::read("/proc/loadavg").unwrap();
        assert!(super::runnable_threads(&real).unwrap() >= 1);
    }

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (uid, pid) = super::peer_credentials(&a).unwrap();
        assert_eq!(uid, nix::unistd::geteuid().as_raw());
        assert_eq!(pid, Some(std::process::id() as i32));
    }
}
