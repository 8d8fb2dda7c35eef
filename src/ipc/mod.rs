//! The daemon's end of the local socket: binding it safely, one daemon per socket, peer
//! checks. The only place with OS-specific socket code (DESIGN.md §3).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(not(unix))]
compile_error!("helperd's daemon socket is only written for Unix so far (see DESIGN.md §3)");
