//! The platform layer (DESIGN.md §12): each OS difference behind one signature, one file
//! per OS, the way keyring-rs keeps one store per file. The rest of the code calls these
//! and reads the same everywhere.
//!
//! So far: who is at the other end of an accepted local-socket connection, that process's
//! executable (for the audit log), and a send that never waits. The socket itself, private
//! folders, the terminal and starting the daemon still live in `ipc/`, `fsutil`, `tty`
//! and `daemon/` (Unix only); they move here as the Windows port (issue 16) goes on.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as imp;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod other;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
use other as imp;

/// The peer of an accepted local-socket connection: its uid, and its pid where the OS
/// tells (Linux `SO_PEERCRED`, macOS `getpeereid` + `LOCAL_PEERPID`).
#[cfg(unix)]
pub fn peer_credentials(
    stream: &std::os::unix::net::UnixStream,
) -> std::io::Result<(u32, Option<i32>)> {
    imp::peer_credentials(stream)
}

/// The executable of process `pid`, for the audit log (Linux `/proc/PID/exe`, macOS
/// `proc_pidpath`); `None` where the OS does not tell, or when it cannot be read (the
/// process is gone, or belongs to another user).
pub fn peer_exe(pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    imp::peer_exe(pid)
}

/// Flags for a send on a connected socket that must never wait, nor raise SIGPIPE where
/// the OS can say so per call (Linux `MSG_NOSIGNAL`; elsewhere Rust programs ignore
/// SIGPIPE from the start, so a closed peer is an `EPIPE` error either way).
#[cfg(unix)]
pub fn send_now_flags() -> nix::sys::socket::MsgFlags {
    imp::send_now_flags()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(target_os = "linux", target_os = "macos"))]
    #[test]
    fn the_executable_of_this_process_is_known_and_bad_pids_are_not() {
        let me = std::env::current_exe().unwrap();
        assert_eq!(
            peer_exe(std::process::id() as i32).as_deref(),
            Some(me.to_string_lossy().as_ref())
        );
        assert_eq!(peer_exe(0), None);
        assert_eq!(peer_exe(-1), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (uid, pid) = peer_credentials(&a).unwrap();
        assert_eq!(uid, nix::unistd::geteuid().as_raw());
        assert_eq!(pid, Some(std::process::id() as i32));
    }
}
