//! The platform layer (DESIGN.md §12): each OS difference behind one signature, one file
//! per OS family, the way keyring-rs keeps one store per file. The rest of the code calls
//! these and reads the same everywhere. The client's half (the connection to the daemon,
//! the renewal prompt's terminal, starting the daemon) is `helperd_wire::os`; the local
//! socket's server end is `crate::ipc`; the OS keyrings are `crate::store::keyring`.
//!
//! - `unix.rs` / `windows.rs`: files (private folders, modes, owners, stamps), the file
//!   store's key (Windows: DPAPI; Unix: the key file's mode), the hidden prompt of
//!   `helperctl`, the daemon's signals, starting it in the background, hardening.
//! - `linux.rs` / `macos.rs` / `windows_peer.rs`: who is at the other end of a
//!   connection and which program that is (for the audit log).
//! - `windows_acl.rs`: which other accounts a folder's DACL lets in (`status`).
//! - `fswatch.rs`: "did config.toml or the policy change?" (inotify on Linux, `notify`
//!   elsewhere).

pub mod fswatch;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as family;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as family;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as imp;

#[cfg(windows)]
mod windows_acl;
#[cfg(windows)]
mod windows_peer;
#[cfg(windows)]
use windows_peer as imp;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
compile_error!("helperd is built for Linux, macOS and Windows");

pub use family::{
    check_private_dir, claim_private_file, current_uid, detach, file_id, file_stamp, harden,
    hold_daemon_signals, is_link_refusal, leave_launcher, login_name, mode_of, no_follow, owner_of,
    private_dir_builder, private_file_options, protect_key, read_hidden, set_mode,
    start_in_background, sync_dir, uid_of_user, unprotect_key, DaemonSignals, Detached, SignalAsks,
    KEY_FILE_PROTECTION, SYSTEM_POLICY_PATH,
};

/// Who besides this user (and the system's own accounts) may reach `path`, in words: on
/// Unix group or others by its mode, on Windows the accounts its DACL allows in.
#[cfg(unix)]
pub use family::others_with_access;
#[cfg(windows)]
pub use windows_acl::others_with_access;

/// Who besides the system's own accounts may change the policy file `path` (or replace a
/// file in the folder `path`), where that is not already said by the owner and mode bits
/// the policy check reads (Unix: nobody more to name).
#[cfg(unix)]
pub use family::untrusted_writers;
#[cfg(windows)]
pub use windows_acl::untrusted_writers;

/// The peer of an accepted Unix-socket connection: its uid, and its pid where the OS
/// tells (Linux `SO_PEERCRED`, macOS `getpeereid` + `LOCAL_PEERPID`).
#[cfg(unix)]
pub use imp::peer_credentials;

/// Flags for a send on a connected socket that must never wait, nor raise SIGPIPE where
/// the OS can say so per call (Linux `MSG_NOSIGNAL`; elsewhere Rust programs ignore
/// SIGPIPE from the start, so a closed peer is an `EPIPE` error either way).
#[cfg(unix)]
pub use imp::send_now_flags;

/// Whether every runnable thread has a core right now, so that an accept loop looking
/// again for a moment takes no core a client needs (Linux: `/proc/loadavg`; macOS: not
/// known, so `false`).
#[cfg(unix)]
pub use imp::no_thread_waits_for_a_core;

/// How long threads have waited for a core since boot, in all (µs), where the OS tells
/// (Linux: PSI, `/proc/pressure/cpu`); two reads that differ mean some thread waited in
/// between: the accept loop's look-again then gives the core up.
#[cfg(unix)]
pub use imp::core_wait_total;

/// Once start-up is over, lets go of the program's start-up code and has the kernel map
/// code back a small window at a time (Linux; elsewhere nothing), so that the idle
/// daemon keeps little of its program text mapped.
pub use imp::map_program_text_finely;

/// Gives freed memory back to the OS once the daemon is idle (glibc's `malloc_trim`;
/// elsewhere the allocator does it by itself).
pub use imp::trim_memory;

/// The executable of process `pid`, for the audit log (Linux `/proc/PID/exe`, macOS
/// `proc_pidpath`, Windows `QueryFullProcessImageNameW`); `None` when it cannot be read
/// (the process is gone, or belongs to another user).
pub fn peer_exe(pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    imp::peer_exe(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
