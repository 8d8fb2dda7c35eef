//! Process hardening: no core dumps and no ptrace by other processes of the same user, so
//! secrets in memory cannot be read from a dump (DESIGN.md §7).

/// Applies what this OS supports; failures are logged, not fatal (e.g. in containers).
pub fn harden() {
    if let Err(e) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0) {
        eprintln!("helperd: warning: cannot disable core dumps: {e}");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("helperd: warning: cannot set PR_SET_DUMPABLE=0: {e}");
    }
}
