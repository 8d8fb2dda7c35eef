//! Any other OS: what is not known is said so (an error, or `None`), never guessed.

#[cfg(unix)]
use std::io;
#[cfg(unix)]
use std::os::unix::net::UnixStream;

#[cfg(unix)]
pub fn peer_credentials(_stream: &UnixStream) -> io::Result<(u32, Option<i32>)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "peer credentials are not implemented on this OS",
    ))
}

pub fn peer_exe(_pid: i32) -> Option<String> {
    None
}

#[cfg(unix)]
pub fn send_now_flags() -> nix::sys::socket::MsgFlags {
    nix::sys::socket::MsgFlags::MSG_DONTWAIT
}
