//! "Did any of these files change?" without a `stat` per file on every request (an edge:
//! the only file-watching code).
//!
//! Each file's folder is watched, or, while that folder does not exist, its nearest
//! existing ancestor (so that the folder's creation is seen too). Any event in a watched
//! folder counts as a change (the caller then compares the files' stamps); the watches are
//! set again after each event, since folders come and go. Whenever it cannot be sure, it
//! says "changed": no watcher, a file that is a symbolic link or a folder under one (it can
//! be re-pointed with no event in the folder watched), a full event queue, an error. The
//! caller then looks at the files, which is always correct, only slower.
//!
//! **Linux**: inotify, by hand. Inside the daemon the inotify descriptor is registered with
//! tokio's reactor, which learns of events in the same `epoll_wait` that hands it the
//! clients' connections: a request then costs no system call at all while nothing changed
//! (the reactor's readiness, read from memory), and one `read` of the descriptor when
//! something did. Ordering holds: an edit made before a client connected is in an
//! `epoll_wait` no later than the one that reported the connection, so that client's
//! request sees it. Outside a runtime (unit tests, `helperctl`) each look is one
//! non-blocking `read`. This is why Linux does not use the `notify` crate: its watcher
//! reads inotify on a thread of its own, which would lose that ordering.
//!
//! **macOS and Windows**: the `notify` crate (FSEvents; ReadDirectoryChangesW) on its own
//! thread, whose callback bumps a counter; a look is one atomic load, no system call.
//! Ordering is *not* guaranteed there: an edit reaches the counter when that thread has
//! been told of it, usually within milliseconds, and a request that arrives in between is
//! answered with the configuration before the edit. The daemon's safety net bounds that:
//! `State::look_at_files` compares the files' stamps at the first request of every second
//! whatever the watch says, so an edit is in force for every request that starts at most
//! about one second after it (and for `helperctl daemon reload` at once).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Watches a few files; see the module docs.
pub struct FileWatch {
    /// Bumped on every change seen (or when unsure).
    generation: AtomicU64,
    inner: imp::Watcher,
}

impl FileWatch {
    /// Starts watching the folders of `files`; without a watcher, every call says "changed".
    pub fn new(files: &[PathBuf]) -> FileWatch {
        FileWatch {
            generation: AtomicU64::new(1),
            inner: imp::Watcher::new(files),
        }
    }

    /// A number that changes whenever one of the files may have changed since the last
    /// call; compare it with the one seen before.
    pub fn generation(&self) -> u64 {
        if self.inner.changed() {
            self.generation.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.generation.load(Ordering::Relaxed)
        }
    }
}

/// The folder to watch for `file`: its own, or the nearest ancestor that exists (so that
/// the folder's creation is seen too). Both watchers below use it.
fn folder_to_watch(file: &Path) -> Option<&Path> {
    let mut folder = file.parent()?;
    loop {
        if folder.is_dir() {
            return Some(folder);
        }
        folder = folder.parent()?;
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, PoisonError};

    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::task::{Context, Poll, Waker};

    use super::folder_to_watch;
    use nix::errno::Errno;
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use tokio::io::unix::AsyncFd;

    /// The inotify descriptor, as the reactor knows it (the `Inotify` below owns it).
    struct Registered(RawFd);

    impl AsRawFd for Registered {
        fn as_raw_fd(&self) -> RawFd {
            self.0
        }
    }

    pub struct Watcher {
        /// Declared before `inotify`, so it leaves the reactor before the descriptor closes.
        ready: Option<AsyncFd<Registered>>,
        files: Vec<PathBuf>,
        /// `None`: inotify is not available, every call says "changed".
        inotify: Option<Mutex<Inotify>>,
        /// Some file could not be watched reliably (a symbolic link, no folder): every call
        /// says "changed". Set again at each arming.
        unreliable: AtomicBool,
    }

    /// Everything that changes what a folder holds or what its entries are.
    fn flags() -> AddWatchFlags {
        AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
    }

    impl Watcher {
        pub fn new(files: &[PathBuf]) -> Watcher {
            let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok();
            let ready = inotify.as_ref().and_then(|i| {
                tokio::runtime::Handle::try_current().ok()?;
                let fd = Registered(i.as_fd().as_raw_fd());
                // SAFETY: the `Inotify` beside it owns the descriptor and outlives this
                // registration (`ready` is dropped first, see the field order), and
                // `as_raw_fd` always names that same descriptor.
                unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
            });
            let w = Watcher {
                ready,
                files: files.to_vec(),
                inotify: inotify.map(Mutex::new),
                unreliable: AtomicBool::new(true),
            };
            w.arm();
            w
        }

        /// (Re)sets the watches, and records whether every file is watched reliably.
        fn arm(&self) {
            let Some(inotify) = &self.inotify else {
                return;
            };
            let inotify = inotify.lock().unwrap_or_else(PoisonError::into_inner);
            let mut reliable = true;
            for file in &self.files {
                if std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) {
                    reliable = false;
                }
                match folder_to_watch(file) {
                    Some(folder) => {
                        reliable &= inotify.add_watch(folder, flags()).is_ok();
                        // A link above the folder can be re-pointed with no event in it.
                        reliable &= std::fs::canonicalize(folder).is_ok_and(|real| real == folder);
                    }
                    None => reliable = false,
                }
            }
            self.unreliable.store(!reliable, Ordering::Relaxed);
        }

        /// Whether the reactor watches the descriptor (inside a runtime).
        #[cfg(test)]
        pub fn is_registered(&self) -> bool {
            self.ready.is_some()
        }

        pub fn changed(&self) -> bool {
            let Some(inotify) = &self.inotify else {
                return true;
            };
            if let Some(ready) = &self.ready {
                match ready.poll_read_ready(&mut Context::from_waker(Waker::noop())) {
                    // The reactor saw no event since the last look: nothing to read.
                    Poll::Pending => return self.unreliable.load(Ordering::Relaxed),
                    // Cleared before the read, so an event after it is reported anew.
                    Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                    Poll::Ready(Err(_)) => {}
                }
            }
            let events = inotify
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .read_events();
            match events {
                // Nothing happened in the watched folders (a file that is a symbolic link
                // still needs a look each time).
                Err(Errno::EAGAIN) => self.unreliable.load(Ordering::Relaxed),
                // Something happened (or the queue overflowed, or reading failed): the
                // caller looks; the watches follow folders that appeared or went.
                _ => {
                    self.arm();
                    true
                }
            }
        }
    }
}

/// macOS and Windows: the `notify` crate (FSEvents; ReadDirectoryChangesW) watches the same
/// folders from a thread of its own, and its callback bumps a counter: a look is one atomic
/// load. See the module docs for what that thread costs the ordering.
#[cfg(not(target_os = "linux"))]
mod imp {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    use super::folder_to_watch;
    use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

    /// Whether `folder` or a folder above it is a link (a symbolic link, a junction): it
    /// can be re-pointed with no event in the folder watched.
    fn under_a_link(folder: &Path) -> bool {
        folder
            .ancestors()
            .any(|a| std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()))
    }

    pub struct Watcher {
        files: Vec<PathBuf>,
        /// Bumped by notify's thread for every event in a watched folder, and every error.
        events: Arc<AtomicU64>,
        /// `events` at the last look.
        seen: AtomicU64,
        /// `None`: notify could not start, every call says "changed". The folders watched.
        watcher: Option<Mutex<(RecommendedWatcher, Vec<PathBuf>)>>,
        /// Some file could not be watched reliably (a link, no folder): every call says
        /// "changed". Set again at each arming.
        unreliable: AtomicBool,
    }

    impl Watcher {
        pub fn new(files: &[PathBuf]) -> Watcher {
            let events = Arc::new(AtomicU64::new(0));
            let counter = events.clone();
            let watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    // Reads change nothing; anything else (or an error: events may be lost)
                    // makes the next look say "changed".
                    if !event.is_ok_and(|e| e.kind.is_access()) {
                        counter.fetch_add(1, Ordering::Release);
                    }
                });
            let w = Watcher {
                files: files.to_vec(),
                events,
                seen: AtomicU64::new(0),
                watcher: watcher.ok().map(|w| Mutex::new((w, Vec::new()))),
                unreliable: AtomicBool::new(true),
            };
            w.arm();
            w
        }

        /// (Re)sets the watches, and records whether every file is watched reliably.
        fn arm(&self) {
            let Some(watcher) = &self.watcher else {
                return;
            };
            let mut guard = watcher.lock().unwrap_or_else(PoisonError::into_inner);
            let (watcher, watched) = &mut *guard;
            // Afresh: a folder may have been replaced since, and a handle open on the old
            // one would hear nothing of the new.
            for folder in watched.drain(..) {
                let _ = watcher.unwatch(&folder);
            }
            let mut reliable = true;
            for file in &self.files {
                if std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) {
                    reliable = false;
                }
                let Some(folder) = folder_to_watch(file) else {
                    reliable = false;
                    continue;
                };
                reliable &= !under_a_link(folder);
                if watched.iter().any(|w| w == folder) {
                    continue;
                }
                match watcher.watch(folder, RecursiveMode::NonRecursive) {
                    Ok(()) => watched.push(folder.to_path_buf()),
                    Err(_) => reliable = false,
                }
            }
            self.unreliable.store(!reliable, Ordering::Relaxed);
        }

        pub fn changed(&self) -> bool {
            if self.watcher.is_none() {
                return true;
            }
            let events = self.events.load(Ordering::Acquire);
            if self.seen.swap(events, Ordering::Relaxed) != events {
                // The watches follow folders that appeared or went.
                self.arm();
                return true;
            }
            self.unreliable.load(Ordering::Relaxed)
        }
    }
}

/// inotify's promises (the notify path: `notify_tests` below).
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn settled(w: &FileWatch) -> u64 {
        // The first look may report the watches' own set-up.
        w.generation();
        w.generation()
    }

    #[test]
    fn changes_to_a_file_or_its_missing_folder_are_seen_and_quiet_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("config.toml");
        let later = dir.path().join("not-yet").join("policy.toml");
        let w = FileWatch::new(&[existing.clone(), later.clone()]);
        let quiet = settled(&w);
        assert_eq!(w.generation(), quiet, "nothing happened");

        std::fs::write(&existing, "a = 1\n").unwrap();
        let after_create = w.generation();
        assert_ne!(after_create, quiet, "the file's creation is seen");
        assert_eq!(w.generation(), after_create, "and counted once");

        std::fs::create_dir(later.parent().unwrap()).unwrap();
        let after_folder = w.generation();
        assert_ne!(
            after_folder, after_create,
            "the missing folder's creation is seen"
        );
        std::fs::write(&later, "max_days = 1\n").unwrap();
        assert_ne!(
            w.generation(),
            after_folder,
            "a file in the new folder is seen"
        );

        let before = settled(&w);
        let tmp = dir.path().join("config.toml.tmp");
        std::fs::write(&tmp, "a = 2\n").unwrap();
        std::fs::rename(&tmp, &existing).unwrap();
        assert_ne!(w.generation(), before, "an atomic replace is seen");
    }

    /// Inside a runtime the reactor tells of changes: none is missed, and a quiet watch
    /// stays quiet.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn inside_a_runtime_the_reactor_tells_of_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let w = FileWatch::new(std::slice::from_ref(&file));
        assert!(w.inner.is_registered(), "registered with the reactor");
        let mut quiet = settled(&w);
        for _ in 0..3 {
            tokio::task::yield_now().await;
            assert_eq!(w.generation(), quiet, "nothing happened");
        }
        for round in 0..3 {
            std::fs::write(&file, format!("a = {round}\n")).unwrap();
            // The reactor runs between tasks: let it.
            let mut seen = false;
            for _ in 0..1000 {
                tokio::task::yield_now().await;
                if w.generation() != quiet {
                    seen = true;
                    break;
                }
            }
            assert!(seen, "write {round} was not seen");
            quiet = settled(&w);
        }
    }

    #[test]
    fn a_symbolic_link_is_always_looked_at() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.toml");
        std::fs::write(&target, "").unwrap();
        let link = dir.path().join("policy.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let w = FileWatch::new(&[link]);
        let a = w.generation();
        assert_ne!(
            w.generation(),
            a,
            "a link's target may change unseen: always look"
        );
    }
}

/// The `notify` path (Windows: under Wine, which implements ReadDirectoryChangesW). Events
/// come from notify's thread, so each check waits for them, within a bound.
#[cfg(all(test, not(target_os = "linux")))]
mod notify_tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The generation once no event has come for a while (a write may bring several).
    fn settled(w: &FileWatch) -> u64 {
        let mut last = w.generation();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = w.generation();
            if now == last {
                return now;
            }
            last = now;
        }
    }

    /// Whether the generation moves away from `from` within a few seconds.
    fn seen(w: &FileWatch, from: u64) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if w.generation() != from {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn changes_to_a_watched_file_are_seen_and_quiet_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        // The temporary folder may lie under a link (macOS: /var -> /private/var).
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        let existing = dir.join("config.toml");
        let later = dir.join("not-yet").join("policy.toml");
        std::fs::write(&existing, "a = 0\n").unwrap();
        let w = FileWatch::new(&[existing.clone(), later.clone()]);
        let quiet = settled(&w);
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(25));
            assert_eq!(w.generation(), quiet, "nothing happened");
        }

        std::fs::write(&existing, "a = 1\n").unwrap();
        assert!(seen(&w, quiet), "a write is seen");
        let after_write = settled(&w);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(w.generation(), after_write, "and counted once");

        std::fs::create_dir(later.parent().unwrap()).unwrap();
        assert!(
            seen(&w, after_write),
            "the missing folder's creation is seen"
        );
        let after_folder = settled(&w);
        std::fs::write(&later, "max_days = 1\n").unwrap();
        assert!(seen(&w, after_folder), "a file in the new folder is seen");

        let before = settled(&w);
        let tmp = dir.join("config.toml.tmp");
        std::fs::write(&tmp, "a = 2\n").unwrap();
        std::fs::rename(&tmp, &existing).unwrap();
        assert!(seen(&w, before), "an atomic replace is seen");
        let before = settled(&w);
        std::fs::remove_file(&existing).unwrap();
        assert!(seen(&w, before), "a removal is seen");
    }
}
