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

/// The executable of process `pid`. On every request's path: the link is read relative to
/// `/proc`, kept open (the walk to `/proc` was a tenth of the call), its name and target
/// on the stack, and only the answer is allocated.
pub fn peer_exe(pid: i32) -> Option<String> {
    use std::io::Write as _;
    use std::os::fd::AsRawFd;
    static PROC: OnceLock<Option<std::fs::File>> = OnceLock::new();
    let proc = PROC.get_or_init(|| std::fs::File::open("/proc").ok());
    let mut link = [0u8; 32];
    let mut cursor = &mut link[..];
    match proc {
        Some(_) => write!(cursor, "{pid}/exe\0").ok()?,
        None => write!(cursor, "/proc/{pid}/exe\0").ok()?,
    }
    let dir = proc
        .as_ref()
        .map_or(nix::libc::AT_FDCWD, |fd| fd.as_raw_fd());
    // Most paths are short; a longer one is read again below.
    let mut target = [0u8; 256];
    // SAFETY: `link` holds a NUL-terminated path (written above, within the buffer), `dir`
    // is open (or AT_FDCWD with an absolute path), and `target` is writable for the
    // length given.
    let read = unsafe {
        nix::libc::readlinkat(
            dir,
            link.as_ptr().cast(),
            target.as_mut_ptr().cast(),
            target.len(),
        )
    };
    match usize::try_from(read) {
        // Filled up: the path may have been cut short; std reads a link of any length.
        Ok(n) if n == target.len() => std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
        Ok(n) => Some(String::from_utf8_lossy(&target[..n]).into_owned()),
        Err(_) => None,
    }
}

/// Whether every runnable thread has a core right now: the kernel's count of runnable
/// threads (the fourth field of `/proc/loadavg`, "runnable/total", the caller included)
/// is at most the number of cores. One `pread` of a file kept open.
pub fn no_thread_waits_for_a_core() -> bool {
    static LOADAVG: OnceLock<Option<std::fs::File>> = OnceLock::new();
    static CORES: OnceLock<Option<usize>> = OnceLock::new();
    let Some(cores) = *CORES.get_or_init(|| Some(std::thread::available_parallelism().ok()?.get()))
    else {
        return false;
    };
    let mut text = [0u8; 128];
    read_kept_open(&LOADAVG, "/proc/loadavg", &mut text)
        .and_then(runnable_threads)
        .is_some_and(|runnable| runnable <= cores)
}

/// The text of a kernel file read on every request's path, with one `pread` of the file
/// opened on the first call and kept open; `None` when it cannot be opened or read.
fn read_kept_open<'t>(
    file: &'static OnceLock<Option<std::fs::File>>,
    path: &str,
    text: &'t mut [u8],
) -> Option<&'t [u8]> {
    use std::os::unix::fs::FileExt;
    let file = file
        .get_or_init(|| std::fs::File::open(path).ok())
        .as_ref()?;
    let len = file.read_at(text, 0).ok()?;
    Some(&text[..len])
}

/// How long threads have waited for a core since boot, in all (µs): the "some" total of
/// `/proc/pressure/cpu` (PSI). Two reads that differ mean some thread waited in between,
/// on whichever core, which the instant count of `/proc/loadavg` cannot tell when the
/// waiting thread is queued behind the reader on the reader's own core. `None` where the
/// kernel keeps no PSI. One `pread` of a file kept open.
pub fn core_wait_total() -> Option<u64> {
    static PRESSURE: OnceLock<Option<std::fs::File>> = OnceLock::new();
    let mut text = [0u8; 256];
    some_total(read_kept_open(&PRESSURE, "/proc/pressure/cpu", &mut text)?)
}

/// The `total=` of the `some` line of a PSI file ("some avg10=0.00 ... total=1234").
fn some_total(pressure: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(pressure).ok()?.lines().next()?;
    let total = line.strip_prefix("some ")?.split_whitespace().last()?;
    total.strip_prefix("total=")?.parse().ok()
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

/// How finely the program's code is mapped (see [`map_program_text_finely`]).
const TEXT_WINDOW: usize = 16 * 1024;

/// Unmaps the daemon's code once start-up is over, and has the kernel map it back at most
/// [`TEXT_WINDOW`] at a time. Why: the kernel keeps a program's file in large page-cache
/// folios (ext4 and others, Linux 6.x) and maps a whole folio, up to 2 MiB, on the first
/// touch of any byte in it, never past the edge of a mapping. A `get` touches a few
/// hundred KiB of code spread over the 8 MiB of program text, and so came to map 4–5 MiB
/// of it (`RssFile`), on top of all the start-up code. Splitting the executable mapping
/// into windows (every other one marked `MADV_DONTDUMP`: nothing else changes, and core
/// dumps are off anyway) keeps each fault to its window; dropping the pages once
/// (`MADV_DONTNEED`; clean file pages, read again from the page cache on their next use)
/// lets go of the start-up code. Measured: idle VmRSS after a load run 8.5 → 5.8 MiB.
/// The page cache itself is unchanged: this is about what the daemon holds mapped.
pub fn map_program_text_finely() {
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return;
    };
    for (start, end) in executable_mappings(&maps, &exe.to_string_lossy()) {
        // SAFETY: [start, end) is this program's executable file mapping, page-aligned
        // and never written (code); dropping its pages only makes the next use read them
        // from the page cache again, and DONTDUMP only leaves them out of a core dump.
        unsafe {
            use nix::libc::{madvise, MADV_DONTDUMP, MADV_DONTNEED};
            madvise(start as *mut _, end - start, MADV_DONTNEED);
            for window in (start..end).step_by(2 * TEXT_WINDOW) {
                let len = TEXT_WINDOW.min(end - window);
                madvise(window as *mut _, len, MADV_DONTDUMP);
            }
        }
    }
}

/// The executable mappings of `path` in a `/proc/PID/maps` text, as address ranges.
fn executable_mappings(maps: &str, path: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let perms = fields.next()?;
            let mapped = fields.nth(3)?.trim_start();
            if !perms.contains('x') || mapped != path {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// A program whose path is longer than the first read's buffer (256 bytes) is named
    /// whole, and so is one whose path just fits.
    #[test]
    fn a_long_executable_path_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
        for length in [255, 300] {
            let base = dir.path().join("d".repeat(100)).join("e".repeat(100));
            std::fs::create_dir_all(&base).unwrap();
            let room = length - base.as_os_str().len() - 1;
            let exe = base.join("s".repeat(room));
            std::fs::copy(&sleep, &exe).unwrap();
            // Another test's fork may hold the copy open for writing a moment longer
            // (ETXTBSY): tried again then.
            let mut child = (0..50)
                .find_map(
                    |_| match std::process::Command::new(&exe).arg("5").spawn() {
                        Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) => {
                            std::thread::sleep(std::time::Duration::from_millis(10));
                            None
                        }
                        started => Some(started.unwrap()),
                    },
                )
                .expect("the copied program never stopped being busy");
            let named = super::peer_exe(child.id() as i32);
            child.kill().unwrap();
            child.wait().unwrap();
            assert_eq!(named.as_deref(), exe.to_str(), "{length}");
            assert_eq!(exe.as_os_str().len(), length);
        }
    }

    #[test]
    fn the_wait_total_is_read_from_the_some_line_and_nonsense_is_none() {
        let psi = b"some avg10=1.40 avg60=3.37 avg300=3.09 total=302922806\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(super::some_total(psi), Some(302922806));
        assert_eq!(super::some_total(b"full avg10=0.00 total=5\n"), None);
        assert_eq!(super::some_total(b"some avg10=1.40 total=x\n"), None);
        assert_eq!(super::some_total(b"some avg10=1.40\n"), None);
        assert_eq!(super::some_total(b""), None);
        // This machine's own, where it has PSI: a number that never goes back.
        if let Some(first) = super::core_wait_total() {
            assert!(super::core_wait_total().unwrap() >= first);
        }
    }

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
    fn only_the_programs_executable_mappings_are_taken_from_maps() {
        let maps = "\
5600000000-5600001000 r--p 00000000 fe:00 12 /usr/bin/helperd
5600001000-5600803000 r-xp 00001000 fe:00 12 /usr/bin/helperd
5600803000-5600900000 r--p 00803000 fe:00 12 /usr/bin/helperd
7f0000000000-7f0000100000 r-xp 00000000 fe:00 99 /usr/lib/libc.so.6
7f0000200000-7f0000201000 r-xp 00000000 fe:00 13 /usr/bin/helperd-other
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(
            super::executable_mappings(maps, "/usr/bin/helperd"),
            [(0x5600001000, 0x5600803000)]
        );
    }

    /// The test program's own code, split and dropped, goes on running, and its
    /// executable mapping is now many.
    #[test]
    fn the_program_runs_on_after_its_text_is_mapped_finely() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let count = || {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            super::executable_mappings(&maps, &exe.to_string_lossy()).len()
        };
        let before = count();
        assert!(before >= 1);
        super::map_program_text_finely();
        assert!(count() > before, "split into windows");
        let text: String = ["still", "running"].join(" ");
        assert_eq!(text, "still running");
    }

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (uid, pid) = super::peer_credentials(&a).unwrap();
        assert_eq!(uid, nix::unistd::geteuid().as_raw());
        assert_eq!(pid, Some(std::process::id() as i32));
    }
}
