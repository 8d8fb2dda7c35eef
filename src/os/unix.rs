//! What every Unix (Linux, macOS) does the same way: file modes and owners, the hidden
//! prompt with termios, signals, forking into the background, core dumps.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::sys::termios::{self, LocalFlags, SetArg};

/// The system policy: root-owned, like the rest of `/etc`.
pub const SYSTEM_POLICY_PATH: &str = "/etc/helperd/policy.toml";

/// What protects the file store's key file here, for `status`: its mode, nothing more.
pub const KEY_FILE_PROTECTION: &str =
    "key in a 0600 key file (weaker: anyone who can read your files can decrypt it)";

/// No OS protection for the file store's key: the key file holds the key itself, and its
/// mode (0600) closes it to others. `None`: store `key` as it is.
pub fn protect_key(_key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    Ok(None)
}

/// A key protected by Windows' DPAPI (a data folder copied from Windows) cannot be opened
/// here: DPAPI's keys belong to the Windows account that protected it.
pub fn unprotect_key(_protected: &[u8]) -> io::Result<zeroize::Zeroizing<Vec<u8>>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the key is protected by Windows DPAPI, which only that Windows account can open",
    ))
}

/// The user this process runs as.
pub fn current_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A folder builder whose folders are 0700 from creation.
pub fn private_dir_builder() -> DirBuilder {
    let mut builder = DirBuilder::new();
    builder.mode(0o700);
    builder
}

/// Options whose files are 0600 from creation.
pub fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

/// Refuses a folder that another user owns or that group/others can reach.
pub fn check_private_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::metadata(dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("failed to inspect {}: {e}", dir.display()),
        )
    })?;
    let me = current_uid();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to use {}: it belongs to uid {}, not to you (uid {me})",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to use {dir}: group or others can reach it (mode {mode:04o}); \
                 other users could reach your credentials. Fix it with: chmod 700 {dir}",
                dir = dir.display()
            ),
        ));
    }
    Ok(())
}

/// Opening never follows a symbolic link at the last step and never waits on a FIFO or a
/// device (what is not a regular file is refused by the caller, before any read).
pub fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    use nix::fcntl::OFlag;
    options.custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
}

/// What [`no_follow`]'s open says when the path was a symbolic link.
pub fn is_link_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::ELOOP)
}

/// The file (opened by this process) belongs to this user; a file of ours that others
/// can read is closed to them (0600).
pub fn claim_private_file(path: &Path, file: &File) -> io::Result<()> {
    let meta = file.metadata()?;
    let me = current_uid();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing {}: it belongs to uid {}, not to you (uid {me})",
                path.display(),
                meta.uid()
            ),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The permission bits of a file, for checks and for showing them.
pub fn mode_of(meta: &fs::Metadata) -> Option<u32> {
    Some(meta.permissions().mode() & 0o7777)
}

/// Sets a file's permission bits.
pub fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// The owner of a file.
pub fn owner_of(meta: &fs::Metadata) -> Option<u32> {
    Some(meta.uid())
}

/// Group or others, when the mode of `path` lets them in (see `crate::os`).
pub fn others_with_access(path: &Path) -> io::Result<Vec<String>> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    Ok(match mode & 0o077 {
        0 => Vec::new(),
        _ => vec![format!("group or others (mode {mode:04o})")],
    })
}

/// Nobody beyond what the owner and mode say, which the policy check reads itself.
pub fn untrusted_writers(_path: &Path) -> io::Result<Vec<String>> {
    Ok(Vec::new())
}

/// Makes a rename inside `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Which file this is (device and inode): tells a file replaced at the same path.
pub fn file_id(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Changes whenever the file's content, owner or mode may have changed.
pub fn file_stamp(meta: &fs::Metadata) -> [i128; 5] {
    [
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        i128::from(meta.size()),
        i128::from(meta.ino()),
        i128::from(meta.mode()),
        i128::from(meta.uid()),
    ]
}

/// This user's login name, from the password database.
pub fn login_name() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The uid of the local user `name`, for support access.
pub fn uid_of_user(name: &str) -> io::Result<u32> {
    nix::unistd::User::from_name(name)
        .map_err(io::Error::from)?
        .map(|u| u.uid.as_raw())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("there is no local user named {name:?}"),
            )
        })
}

/// No core dumps and no ptrace by other processes of the same user, so secrets in memory
/// cannot be read from a dump (DESIGN.md §7). Failures are logged, not fatal (e.g. in
/// containers).
pub fn harden() {
    if let Err(e) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0) {
        eprintln!("helperd: warning: cannot disable core dumps: {e}");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("helperd: warning: cannot set PR_SET_DUMPABLE=0: {e}");
    }
}

/// Reads a line on the terminal with echo off. Signals and line editing go off too, so
/// that Ctrl-C arrives here as a byte: the terminal is restored first, then the
/// interrupt is raised as the user meant it. The bytes typed go into `line`.
pub fn read_hidden(prompt: &str, line: &mut Vec<u8>) -> io::Result<()> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let mut out = tty.try_clone()?;
    // Echo goes off before the prompt appears: nothing typed after it may show.
    let saved = termios::tcgetattr(tty.as_fd()).map_err(io::Error::from)?;
    let mut raw = saved.clone();
    raw.local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
    raw.control_chars[termios::SpecialCharacterIndices::VMIN as usize] = 1;
    raw.control_chars[termios::SpecialCharacterIndices::VTIME as usize] = 0;
    termios::tcsetattr(tty.as_fd(), SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
    let read = write!(out, "{prompt}")
        .and_then(|()| out.flush())
        .and_then(|()| read_until_enter(&tty, line));
    // Restore the terminal whatever happened.
    let _ = termios::tcsetattr(tty.as_fd(), SetArg::TCSANOW, &saved);
    let _ = writeln!(out);
    if read? == Typed::Interrupted {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
        return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
    }
    Ok(())
}

#[derive(PartialEq)]
enum Typed {
    Line,
    Interrupted,
}

/// Reads bytes up to Enter, with Backspace and Ctrl-U; Ctrl-C or Ctrl-D interrupt.
fn read_until_enter(tty: &File, line: &mut Vec<u8>) -> io::Result<Typed> {
    let mut byte = [0u8; 1];
    loop {
        if (&*tty).read(&mut byte)? == 0 {
            return Ok(Typed::Line);
        }
        match byte[0] {
            b'\n' | b'\r' => return Ok(Typed::Line),
            0x03 => return Ok(Typed::Interrupted),
            0x04 if line.is_empty() => return Ok(Typed::Interrupted),
            0x7f | 0x08 => {
                line.pop();
            }
            0x15 => line.clear(),
            b => line.push(b),
        }
    }
}

/// The signals that stop (or, SIGHUP, reload) the daemon.
fn daemon_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set
}

/// Until the async signal handlers exist, a SIGTERM would kill the daemon with its socket
/// left behind: these signals are held pending until [`DaemonSignals::listen`].
pub fn hold_daemon_signals() -> io::Result<()> {
    daemon_signals().thread_block().map_err(io::Error::from)
}

/// What a signal asks of the daemon.
pub enum SignalAsks {
    /// Stop (SIGTERM, SIGINT); the name for the log.
    Stop(&'static str),
    /// Reload the configuration and the policy (SIGHUP: a closed terminal sends it, and
    /// it must not kill the daemon).
    Reload,
}

/// The daemon's signal handlers.
pub struct DaemonSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl DaemonSignals {
    /// Installs the handlers, then lets the signals held since start-up through.
    pub fn listen() -> io::Result<DaemonSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        let signals = DaemonSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        };
        daemon_signals().thread_unblock().map_err(io::Error::from)?;
        Ok(signals)
    }

    /// The next signal.
    pub async fn next(&mut self) -> SignalAsks {
        tokio::select! {
            _ = self.term.recv() => SignalAsks::Stop("SIGTERM"),
            _ = self.int.recv() => SignalAsks::Stop("SIGINT"),
            _ = self.hup.recv() => SignalAsks::Reload,
        }
    }
}

/// What [`detach`] made of this process.
pub enum Detached {
    /// The launching process: the daemon runs as `pid`; say `ok` and exit.
    Launcher {
        /// The daemon's pid.
        pid: u32,
    },
    /// The daemon, in a session of its own, its output going to the log.
    Daemon,
    /// Never on Unix (the launcher says `ok` for the child it forked).
    DaemonMustSayOk,
}

/// Nothing happens before the socket listens on Unix: the daemon binds first, then forks
/// (so that "already running" is said by the process that was asked). Always `Ok(false)`.
pub fn start_in_background() -> io::Result<bool> {
    Ok(false)
}

/// Never needed on Unix; see [`Detached::DaemonMustSayOk`].
pub fn leave_launcher(_log: &File) -> io::Result<()> {
    Ok(())
}

/// Forks into the background (the socket already listens): the parent goes on as the
/// launcher, the child starts a new session with stdin/stdout on /dev/null and stderr on
/// `log`. Called before any thread is started.
pub fn detach(log: &File) -> io::Result<Detached> {
    // SAFETY: called before any thread is started (no runtime, no logging yet), so the
    // child is a plain copy of a single-threaded process.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Detached::Launcher {
            pid: u32::try_from(child.as_raw()).expect("fork returns a positive pid"),
        }),
        nix::unistd::ForkResult::Child => {
            nix::unistd::setsid().map_err(io::Error::from)?;
            let null = File::options().read(true).write(true).open("/dev/null")?;
            for (from, to) in [
                (null.as_raw_fd(), 0),
                (null.as_raw_fd(), 1),
                (log.as_raw_fd(), 2),
            ] {
                nix::unistd::dup2(from, to).map_err(io::Error::from)?;
            }
            Ok(Detached::Daemon)
        }
    }
}

/// The private-file rules of `crate::fsutil` as they hold on Unix.
#[cfg(test)]
mod fsutil_tests {
    use crate::fsutil::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn open_private_refuses_links_fifos_and_files_of_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs.txt");
        fs::write(&theirs, "not yours\n").unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("audit.log");
        std::os::unix::fs::symlink(&theirs, &link).unwrap();
        let e = open_private(&link, fs::OpenOptions::new().append(true).create(true)).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&theirs).unwrap(), "not yours\n");
        assert_eq!(
            fs::metadata(&theirs).unwrap().permissions().mode() & 0o777,
            0o644,
            "not chmodded"
        );

        let fifo = dir.path().join("helperd.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = open_private(&fifo, fs::OpenOptions::new().read(true)).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");

        if nix::unistd::geteuid().is_root() {
            let foreign = dir.path().join("socket.lock");
            fs::write(&foreign, "").unwrap();
            nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let e = open_private(&foreign, fs::OpenOptions::new().read(true)).unwrap_err();
            assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        }

        let mine = dir.path().join("mine.log");
        fs::write(&mine, "").unwrap();
        fs::set_permissions(&mine, fs::Permissions::from_mode(0o644)).unwrap();
        open_private(&mine, fs::OpenOptions::new().append(true)).unwrap();
        assert_eq!(
            fs::metadata(&mine).unwrap().permissions().mode() & 0o777,
            0o600,
            "closed to others"
        );
    }

    #[test]
    fn creates_0700_and_refuses_loose_folders() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        let err = create_private_dir(&dir).unwrap_err();
        assert!(err.to_string().contains("chmod 700"), "{err}");
    }

    #[test]
    fn atomic_write_replaces_with_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
