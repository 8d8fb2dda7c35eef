//! The audit log (DESIGN.md §1, §3): one JSON line per decision the daemon makes, in
//! `audit.log` in the state folder, read back by `helperctl audit`.
//!
//! What it must never hold is a secret: events carry a token's *name* (or id), a URL with
//! its userinfo and query stripped (enforced again when the event is serialised, so a URL
//! assigned directly to the field cannot leak a password either), and peer facts.
//!
//! Crash safety: the file is opened with `O_APPEND` and each event is written with one
//! `write(2)` of one complete line, so a killed daemon leaves whole lines only, and several
//! writers never interleave inside a line. Lines are not fsynced one by one (that would put
//! a disk flush on every git operation); a power cut can therefore tear the last line,
//! which the reader skips. Rotation is by size: `audit.log` -> `audit.log.1` -> ... ->
//! `audit.log.<keep>`, the oldest dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use crate::audit_event::{kind, redact_url, AuditEvent};
use crate::timefmt::{format_rfc3339, parse_expiry, unix_now};

impl AuditEvent {
    /// An event happening now (the system clock).
    pub fn now(event: impl Into<String>) -> Self {
        Self::new(event, unix_now())
    }

    /// The peer process, its executable looked up now ([`peer_exe`]), while the peer is
    /// still connected and its pid cannot have been reused.
    pub fn peer(self, pid: i32, uid: u32) -> Self {
        self.peer_process(pid, uid, peer_exe(pid))
    }
}

/// The log's file name in the state folder; rotated files add `.1`, `.2`, ...
pub const AUDIT_FILE: &str = "audit.log";

/// The writer of `audit.log`. One per state folder: the daemon keeps one and shares it
/// behind a lock, since two writers rotating at once could drop a file.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Device and inode of `file`, to tell whether `path` still names it.
    held: (u64, u64),
    /// The file's size as of the last look plus what was written since.
    size: u64,
    /// When the path was last looked at, and how often it is ([`AuditLog::recheck_every`]).
    checked_at: Option<std::time::Instant>,
    recheck: std::time::Duration,
    max_bytes: u64,
    keep: usize,
    /// The last write was short: the next line starts with `\n`, which ends the torn
    /// fragment so that it cannot swallow the next event.
    torn: bool,
}

impl AuditLog {
    /// Opens (or creates, mode 0600) `state_dir/audit.log` for appending. The log rotates
    /// when an event would take it past `max_bytes` (0: never), keeping `keep` rotated
    /// files besides `audit.log` (0: none). `state_dir` must exist.
    pub fn open(state_dir: &Path, max_bytes: u64, keep: usize) -> io::Result<AuditLog> {
        let path = state_dir.join(AUDIT_FILE);
        let file = open_append(&path)?;
        let m = file.metadata()?;
        Ok(AuditLog {
            dir: state_dir.to_path_buf(),
            path,
            file,
            held: crate::os::file_id(&m),
            size: m.len(),
            checked_at: None,
            recheck: std::time::Duration::ZERO,
            max_bytes,
            keep,
            torn: false,
        })
    }

    /// Looks at the path (another writer's rotation, an administrator's logrotate) at most
    /// this often instead of before every event: the daemon is the only writer of its
    /// log, and the look is a `stat` on every git request otherwise. Zero: every event.
    pub fn recheck_every(mut self, every: std::time::Duration) -> AuditLog {
        self.recheck = every;
        self
    }

    /// `state_dir/audit.log`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as one `write(2)` of one complete line, rotating first when the
    /// line would take the file past `max_bytes`.
    pub fn append(&mut self, event: &AuditEvent) -> io::Result<()> {
        self.append_all(std::slice::from_ref(event))
    }

    /// Appends events as one `write(2)` of complete lines (the writer's batch under load),
    /// rotating first when they would take the file past `max_bytes`.
    pub fn append_all(&mut self, events: &[AuditEvent]) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        // A line is 150–250 bytes: one allocation for the batch, nearly always.
        let mut lines = Vec::with_capacity(256 * events.len() + 1);
        if self.torn {
            lines.push(b'\n');
        }
        for event in events {
            event.write_line(&mut lines);
        }
        if self
            .checked_at
            .is_none_or(|at| at.elapsed() >= self.recheck)
        {
            self.size = self.follow_rotation()?;
            self.checked_at = Some(std::time::Instant::now());
        }
        let size = self.size;
        if self.max_bytes > 0 && size > 0 && size + lines.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let written = write_once(&self.file, &lines)?;
        self.size += written as u64;
        self.torn = written < lines.len();
        if self.torn {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "short write to {} ({written} of {} bytes; is the disk full?)",
                    self.path.display(),
                    lines.len()
                ),
            ));
        }
        Ok(())
    }

    /// Reopens `audit.log` when the file we hold is no longer the one at the path (another
    /// writer, or an administrator's logrotate, moved it away). Returns the size of the
    /// file at the path: its size, not a counter, since another writer may have appended
    /// too. One `stat` of the path, compared with the file we opened: the only system call
    /// besides the write on the daemon's every request.
    fn follow_rotation(&mut self) -> io::Result<u64> {
        match fs::metadata(&self.path) {
            Ok(m) if crate::os::file_id(&m) == self.held => Ok(m.len()),
            Ok(_) => self.reopen(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.reopen(),
            Err(e) => Err(e),
        }
    }

    /// Opens the file at the path (again); returns its size.
    fn reopen(&mut self) -> io::Result<u64> {
        self.file = open_append(&self.path)?;
        let m = self.file.metadata()?;
        self.held = crate::os::file_id(&m);
        self.size = m.len();
        Ok(m.len())
    }

    /// `audit.log.N` -> `audit.log.N+1` (the oldest first, so nothing is overwritten; those
    /// at `keep` or beyond are deleted), `audit.log` -> `audit.log.1`, and a fresh
    /// `audit.log`. A crash part-way leaves a gap in the numbers at worst, which the reader
    /// does not mind.
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.keep as u64;
        for (n, file) in rotated_files(&self.dir)? {
            if n >= keep {
                remove_if_present(&file)?;
            } else {
                fs::rename(&file, rotated_name(&self.dir, n + 1))?;
            }
        }
        if keep == 0 {
            // Renamed away first, removed once our handle is closed: Windows keeps the
            // name of an open file that is deleted until its last handle goes.
            let dropped = self.dir.join(format!("{AUDIT_FILE}.dropped"));
            fs::rename(&self.path, &dropped)?;
            self.reopen()?;
            remove_if_present(&dropped)?;
        } else {
            fs::rename(&self.path, rotated_name(&self.dir, 1))?;
            self.reopen()?;
        }
        // The renames are metadata of the folder: make them durable together.
        crate::os::sync_dir(&self.dir)
    }
}

/// One `write(2)`, retried only when interrupted before writing anything; a short write is
/// returned as is, never completed by a second write that another writer could precede.
fn write_once(mut file: &File, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match file.write(bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Opens for appending, creating with 0600; an existing file with a looser mode (made by
/// hand, or restored from a backup) is tightened, since the log says who used what where.
fn open_append(path: &Path) -> io::Result<File> {
    crate::fsutil::open_private(path, OpenOptions::new().append(true).create(true))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rotated_name(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{AUDIT_FILE}.{n}"))
}

/// `audit.log.N` files in `dir` with their N, oldest (largest N) first; none when the
/// folder does not exist.
fn rotated_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let prefix = format!("{AUDIT_FILE}.");
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = number {
            files.push((n, entry.path()));
        }
    }
    files.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    Ok(files)
}

/// Reads the events across the rotated files, oldest first, keeping those at or after
/// `since` and, with `runtime`, those of that runtime. Lines that do not parse (a line torn
/// by a power cut, or damaged by hand) are skipped. A rotation during the read may leave
/// out or repeat the events of one file.
pub fn read_events(
    state_dir: &Path,
    since: Option<u64>,
    runtime: Option<&str>,
) -> io::Result<Vec<AuditEvent>> {
    let mut paths: Vec<PathBuf> = rotated_files(state_dir)?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    paths.push(state_dir.join(AUDIT_FILE));
    let mut events = Vec::new();
    for path in paths {
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            // Rotated away between listing and reading, or no log yet.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("failed to read {}: {e}", path.display()),
                ))
            }
        };
        events.extend(
            parse_lines(&bytes)
                .filter(|e| since.is_none_or(|s| e.ts >= s))
                .filter(|e| runtime.is_none_or(|r| e.runtime.as_deref() == Some(r))),
        );
    }
    Ok(events)
}

/// The events of one file's bytes, skipping lines that are not whole events.
fn parse_lines(bytes: &[u8]) -> impl Iterator<Item = AuditEvent> + '_ {
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| serde_json::from_slice(line).ok())
}

/// The peer's executable (see [`crate::os::peer_exe`]).
pub fn peer_exe(pid: i32) -> Option<String> {
    crate::os::peer_exe(pid)
}

/// Parses `--since`: a date (`2026-11-01`, 00:00 UTC), an RFC 3339 time, or a span back
/// from `now`: `30s`, `30m`, `2h`, `3d`, `2w`. Unix seconds.
pub fn parse_since(text: &str, now: u64) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("--since needs a value, like 2h, 3d or 2026-11-01".to_string());
    }
    match crate::timefmt::parse_span(text) {
        Some(Some(secs)) => return Ok(now.saturating_sub(secs)),
        Some(None) => return Err(format!("--since {text:?} is too far back")),
        None => {}
    }
    parse_expiry(text).map_err(|why| {
        format!(
            "--since {text:?}: {why}; use a date (2026-11-01), an RFC 3339 time \
             (2026-11-01T09:00:00Z) or a span back from now (30m, 2h, 3d, 2w)"
        )
    })
}

const TABLE_HEADER: [&str; 7] = [
    "TIME (UTC)",
    "EVENT",
    "RUNTIME",
    "TOKEN",
    "URL",
    "PEER",
    "REASON",
];

/// The human form of `helperctl audit`: one row per event, oldest first, columns aligned,
/// `-` for what an event does not have. Control characters are shown escaped, so a crafted
/// URL cannot drive the terminal.
pub fn render_table(events: &[AuditEvent]) -> String {
    if events.is_empty() {
        return "no audit events\n".to_string();
    }
    let rows: Vec<[String; 7]> = events.iter().map(table_row).collect();
    let mut widths = TABLE_HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = TABLE_HEADER.map(String::from);
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn table_row(e: &AuditEvent) -> [String; 7] {
    let cell = |value: Option<&str>| value.map_or_else(|| "-".to_string(), printable);
    // `2026-11-01T09:00:05Z` -> `2026-11-01 09:00:05`; the header says UTC.
    let time = format_rfc3339(e.ts).replace('T', " ").replace('Z', "");
    [
        time,
        printable(&e.event),
        cell(e.runtime.as_deref()),
        cell(e.token.as_deref()),
        cell(e.url.as_deref().map(redact_url).as_deref()),
        peer_cell(e),
        cell(e.reason.as_deref()),
    ]
}

/// `/usr/bin/git pid 4242 uid 1000`, with what is known.
fn peer_cell(e: &AuditEvent) -> String {
    let parts: Vec<String> = [
        e.peer_exe.as_deref().map(printable),
        e.peer_pid.map(|p| format!("pid {p}")),
        e.peer_uid.map(|u| format!("uid {u}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(" ")
    }
}

/// `s` with control characters escaped (`\u{1b}`).
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-01 00:00 UTC.
    const T0: u64 = 1_793_491_200;

    fn event(event: &str, ts: u64, runtime: Option<&str>) -> AuditEvent {
        let e = AuditEvent::new(event, ts);
        match runtime {
            Some(r) => e.runtime(r),
            None => e,
        }
    }

    fn state_dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temp folder can be made")
    }

    fn raw_log(dir: &Path) -> String {
        fs::read_to_string(dir.join(AUDIT_FILE)).expect("the log exists")
    }

    #[test]
    fn events_round_trip_with_filters() {
        let dir = state_dir();
        let mut log = AuditLog::open(dir.path(), 0, 3).unwrap();
        let served = AuditEvent::new(kind::SERVED, T0)
            .runtime("acme")
            .token("laptop")
            .url("https://github.com/acme/app")
            .peer(std::process::id() as i32, 1000);
        let refused = AuditEvent::new(kind::REFUSED, T0 + 3600)
            .runtime("infra")
            .token("ci")
            .reason("expired");
        let stored = AuditEvent::new(kind::STORED, T0 + 7200).url("https://example.org/");
        for e in [&served, &refused, &stored] {
            log.append(e).unwrap();
        }
        let all = read_events(dir.path(), None, None).unwrap();
        assert_eq!(all, [served.clone(), refused.clone(), stored.clone()]);
        assert_eq!(
            read_events(dir.path(), Some(T0 + 3600), None).unwrap(),
            [refused.clone(), stored]
        );
        assert_eq!(
            read_events(dir.path(), None, Some("acme")).unwrap(),
            [served]
        );
        assert!(read_events(dir.path(), Some(T0 + 3601), Some("infra"))
            .unwrap()
            .is_empty());
        // Absent fields are left out of the line entirely.
        let first_line = raw_log(dir.path()).lines().next().unwrap().to_string();
        assert!(first_line.starts_with(&format!(
            r#"{{"ts":{T0},"event":"served","runtime":"acme","token":"laptop","url":"https://github.com/acme/app","peer_pid":"#
        )), "{first_line}");
        assert!(!first_line.contains("reason"), "{first_line}");
        assert_eq!(
            AuditEvent::new(kind::ERASED, 5).to_line(),
            "{\"ts\":5,\"event\":\"erased\"}\n"
        );
    }

    #[test]
    fn the_log_is_private_and_a_missing_log_reads_empty() {
        let dir = state_dir();
        assert!(read_events(dir.path(), None, None).unwrap().is_empty());
        assert!(read_events(&dir.path().join("absent"), None, None)
            .unwrap()
            .is_empty());
        let path = dir.path().join(AUDIT_FILE);
        let file = fs::File::create(&path).unwrap();
        crate::os::set_mode(&file, 0o644).unwrap();
        drop(file);
        let log = AuditLog::open(dir.path(), 0, 1).unwrap();
        assert_eq!(log.path(), path);
        // Closed to others where files have modes (Windows: the folder's ACL, see os).
        let mode = crate::os::mode_of(&fs::metadata(&path).unwrap());
        assert!(mode.is_none_or(|mode| mode & 0o777 == 0o600), "{mode:?}");
    }

    #[test]
    fn rotation_keeps_n_files_and_reading_spans_them_in_order() {
        let dir = state_dir();
        let line_len = event(kind::SERVED, T0, Some("acme")).to_line().len() as u64;
        // Room for exactly three lines per file.
        let mut log = AuditLog::open(dir.path(), 3 * line_len, 2).unwrap();
        for i in 0..20 {
            log.append(&event(kind::SERVED, T0 + i, Some("acme")))
                .unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["audit.log", "audit.log.1", "audit.log.2"]);
        for name in &names {
            let size = fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(size <= 3 * line_len, "{name}: {size}");
        }
        // 20 events, 3 per file: the last 2 in audit.log, 3 in each rotated file.
        let times: Vec<u64> = read_events(dir.path(), None, None)
            .unwrap()
            .iter()
            .map(|e| e.ts - T0)
            .collect();
        assert_eq!(times, [12, 13, 14, 15, 16, 17, 18, 19]);

        // Lowering `keep` drops the files beyond it at the next rotation.
        let mut log = AuditLog::open(dir.path(), 3 * line_len, 1).unwrap();
        for i in 20..22 {
            log.append(&event(kind::SERVED, T0 + i, None)).unwrap();
        }
        assert!(!dir.path().join("audit.log.2").exists());
        let times: Vec<u64> = read_events(dir.path(), None, None)
            .unwrap()
            .iter()
            .map(|e| e.ts - T0)
            .collect();
        assert_eq!(times, [18, 19, 20, 21]);
    }

    #[test]
    fn keep_zero_starts_afresh_and_a_gap_in_numbers_is_read_anyway() {
        let dir = state_dir();
        let line_len = event(kind::SERVED, T0, None).to_line().len() as u64;
        let mut log = AuditLog::open(dir.path(), line_len, 0).unwrap();
        for i in 0..3 {
            log.append(&event(kind::SERVED, T0 + i, None)).unwrap();
        }
        let events = read_events(dir.path(), None, None).unwrap();
        assert_eq!(events, [event(kind::SERVED, T0 + 2, None)]);

        // A crash during rotation can leave audit.log.3 without audit.log.2.
        let dir = state_dir();
        fs::write(
            dir.path().join("audit.log.3"),
            event("a", 1, None).to_line(),
        )
        .unwrap();
        fs::write(
            dir.path().join("audit.log.1"),
            event("b", 2, None).to_line(),
        )
        .unwrap();
        fs::write(
            dir.path().join("audit.log.x"),
            event("junk", 0, None).to_line(),
        )
        .unwrap();
        fs::write(dir.path().join(AUDIT_FILE), event("c", 3, None).to_line()).unwrap();
        let kinds: Vec<String> = read_events(dir.path(), None, None)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(kinds, ["a", "b", "c"]);
    }

    #[test]
    fn a_torn_last_line_and_malformed_lines_are_skipped() {
        let dir = state_dir();
        let mut log = AuditLog::open(dir.path(), 0, 1).unwrap();
        log.append(&event(kind::SERVED, T0, Some("acme"))).unwrap();
        let path = dir.path().join(AUDIT_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"not json\n{\"ts\":1}\n").unwrap();
        log.append(&event(kind::STORED, T0 + 1, None)).unwrap();
        // A power cut tore the last line.
        let torn = event(kind::ERASED, T0 + 2, None).to_line();
        file.write_all(&torn.as_bytes()[..torn.len() / 2]).unwrap();
        let kinds: Vec<String> = read_events(dir.path(), None, None)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(kinds, ["served", "stored"]);
        // After a restart the next line is whole, though the torn fragment precedes it.
        log.torn = true;
        log.append(&event(kind::RENEWED, T0 + 3, None)).unwrap();
        let kinds: Vec<String> = read_events(dir.path(), None, None)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(kinds, ["served", "stored", "renewed"]);
    }

    /// `O_APPEND`'s promise that one write lands whole, with several writers. Windows
    /// gives the same for `FILE_APPEND_DATA` writes on NTFS, but Wine 8 interleaves them,
    /// so this is checked on Unix only.
    #[cfg(unix)]
    mod several_writers {
        use super::*;
        use std::sync::{Arc, Mutex};

        /// A reason long enough that two writers' lines would visibly interleave if a line
        /// took more than one write.
        fn long_event(thread: usize, i: usize) -> AuditEvent {
            AuditEvent::new(kind::SERVED, i as u64)
                .runtime(format!("t{thread}"))
                .reason(format!("{thread}-{i}-").repeat(800))
        }

        fn assert_whole_lines(dir: &Path, threads: usize, per_thread: usize) {
            let mut text = String::new();
            for (_, path) in rotated_files(dir).unwrap() {
                text.push_str(&fs::read_to_string(path).unwrap());
            }
            text.push_str(&raw_log(dir));
            assert!(text.ends_with('\n'));
            let mut count = 0;
            for line in text.lines() {
                let e: AuditEvent = serde_json::from_str(line).expect("every line is whole");
                let thread: usize = e.runtime.as_deref().unwrap()[1..].parse().unwrap();
                assert_eq!(e, long_event(thread, e.ts as usize));
                count += 1;
            }
            assert_eq!(count, threads * per_thread);
        }

        #[test]
        fn lines_stay_whole_with_several_writers() {
            const THREADS: usize = 8;
            const EACH: usize = 200;
            // One log per thread: O_APPEND keeps each write(2) whole.
            let dir = state_dir();
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let dir = dir.path().to_path_buf();
                    std::thread::spawn(move || {
                        let mut log = AuditLog::open(&dir, 0, 0).unwrap();
                        for i in 0..EACH {
                            log.append(&long_event(t, i)).unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("a writer thread panicked");
            }
            assert_whole_lines(dir.path(), THREADS, EACH);

            // One shared log, rotating as it goes, as in the daemon.
            let dir = state_dir();
            let log = Arc::new(Mutex::new(
                AuditLog::open(dir.path(), 64 * 1024, 1000).unwrap(),
            ));
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let log = Arc::clone(&log);
                    std::thread::spawn(move || {
                        for i in 0..EACH {
                            let mut log = log.lock().expect("no writer panics holding the lock");
                            log.append(&long_event(t, i)).unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("a writer thread panicked");
            }
            assert!(dir.path().join("audit.log.1").exists(), "it rotated");
            assert_whole_lines(dir.path(), THREADS, EACH);
        }
    }

    #[test]
    fn a_second_writer_follows_a_rotation() {
        let dir = state_dir();
        let mut a = AuditLog::open(dir.path(), 0, 5).unwrap();
        a.append(&event("one", 1, None)).unwrap();
        let mut b = AuditLog::open(dir.path(), 1, 5).unwrap();
        b.append(&event("two", 2, None)).unwrap(); // rotates: "one" moves to audit.log.1
        a.append(&event("three", 3, None)).unwrap(); // follows into the new audit.log
        assert_eq!(
            raw_log(dir.path()),
            event("two", 2, None).to_line() + &event("three", 3, None).to_line()
        );
    }

    #[test]
    fn redact_url_strips_credentials_and_queries() {
        #[rustfmt::skip]
        let cases = [
            ("https://user:pass@host/path", "https://host/path"),
            ("https://user@github.com/acme/app.git", "https://github.com/acme/app.git"),
            ("https://x-access-token:ghp_secret@github.com/acme", "https://github.com/acme"),
            ("https://u:p%40ss@host:8443/a", "https://host:8443/a"),
            ("https://u:p@ss@host/a", "https://host/a"),
            ("https://u:pa?ss@host/a", "https://host/a"),
            ("https://u:pa#ss@host/a", "https://host/a"),
            ("https://u:pa/ss@host/a", "https://host/a"),
            ("https://gitlab.example.com/g/p.git?private_token=glpat-secret", "https://gitlab.example.com/g/p.git"),
            ("https://host/p?a=1&token=abc#frag", "https://host/p"),
            ("https://host?token=abc", "https://host"),
            ("https://[::1]:8080/x", "https://[::1]:8080/x"),
            ("https://host/a@b/c", "https://host/a@b/c"),
            ("git@github.com:acme/app.git", "github.com:acme/app.git"),
            ("https://github.com/acme/", "https://github.com/acme/"),
            ("", ""),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }

    #[test]
    fn a_password_in_a_url_never_reaches_the_log() {
        let url = "https://octocat:hunter2-secret@github.com/acme/app?access_token=qwerty-secret";
        let built = AuditEvent::new(kind::SERVED, T0).url(url);
        // Even a URL put in the field directly is redacted on the way out.
        let mut direct = AuditEvent::new(kind::STORED, T0);
        direct.url = Some(url.to_string());
        for e in [&built, &direct] {
            let line = e.to_line();
            assert!(!line.contains("secret"), "{line}");
            assert!(!line.contains("octocat"), "{line}");
            assert!(
                line.contains(r#""url":"https://github.com/acme/app""#),
                "{line}"
            );
        }
        let dir = state_dir();
        let mut log = AuditLog::open(dir.path(), 0, 1).unwrap();
        log.append(&direct).unwrap();
        assert!(!raw_log(dir.path()).contains("secret"));
        let table = render_table(&[direct]);
        assert!(!table.contains("secret"), "{table}");
    }

    #[test]
    fn parse_since_forms() {
        let now = T0 + 86_400;
        assert_eq!(parse_since("2026-11-01", now), Ok(T0));
        assert_eq!(
            parse_since(" 2026-11-01T09:00:00Z ", now),
            Ok(T0 + 9 * 3600)
        );
        assert_eq!(
            parse_since("2026-11-01T11:00:00+02:00", now),
            Ok(T0 + 9 * 3600)
        );
        assert_eq!(parse_since("30s", now), Ok(now - 30));
        assert_eq!(parse_since("30m", now), Ok(now - 1800));
        assert_eq!(parse_since("2h", now), Ok(now - 7200));
        assert_eq!(parse_since("3d", now), Ok(now - 3 * 86_400));
        assert_eq!(parse_since("2w", now), Ok(now - 14 * 86_400));
        assert_eq!(parse_since("0h", now), Ok(now));
        assert_eq!(parse_since("99999d", 10), Ok(0), "clamped at the epoch");
        for (bad, needle) in [
            ("", "--since needs a value"),
            ("yesterday", "use a date (2026-11-01)"),
            ("2x", "use a date"),
            ("h", "use a date"),
            ("-2h", "use a date"),
            ("2026-13-01", "month 13 does not exist"),
            ("99999999999999999999d", "too far back"),
            ("3é", "use a date"),
        ] {
            let e = parse_since(bad, now).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_table_is_aligned_and_safe_for_terminals() {
        let events = [
            AuditEvent::new(kind::SERVED, T0 + 9 * 3600 + 5)
                .runtime("acme")
                .token("laptop")
                .url("https://github.com/acme/app")
                .reason("ok"),
            AuditEvent {
                peer_pid: Some(4242),
                peer_exe: Some("/usr/bin/git".into()),
                peer_uid: Some(1000),
                ..AuditEvent::new(kind::REFUSED, T0 + 10 * 3600).reason("expired\x1b[31m")
            },
        ];
        let expected = "\
TIME (UTC)           EVENT    RUNTIME  TOKEN   URL                          PEER                            REASON
2026-11-01 09:00:05  served   acme     laptop  https://github.com/acme/app  -                               ok
2026-11-01 10:00:00  refused  -        -       -                            /usr/bin/git pid 4242 uid 1000  expired\\u{1b}[31m
";
        assert_eq!(render_table(&events), expected);
        assert_eq!(render_table(&[]), "no audit events\n");
    }

    /// The lookup itself is tested in `os`; here, that an event carries its result.
    #[test]
    fn an_event_carries_the_peers_executable() {
        let e = AuditEvent::new(kind::SERVED, 0).peer(std::process::id() as i32, 7);
        assert_eq!((e.peer_uid, e.peer_exe.is_some()), (Some(7), true));
    }
}
