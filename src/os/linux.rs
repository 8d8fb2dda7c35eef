//! Linux: `SO_PEERCRED` and `/proc`.

use std::io;
use std::os::unix::net::UnixStream;

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
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (uid, pid) = super::peer_credentials(&a).unwrap();
        assert_eq!(uid, nix::unistd::geteuid().as_raw());
        assert_eq!(pid, Some(std::process::id() as i32));
    }
}
