//! "Did any of these files change?" without a `stat` per file on every request (an edge:
//! the only file-watching code, with one fallback for every other OS).
//!
//! On Linux an inotify instance watches the folder of each file, or, while that folder
//! does not exist, its nearest existing ancestor (so that the folder's creation is seen
//! too). Inside the daemon the inotify descriptor is registered with tokio's reactor,
//! which learns of events in the same `epoll_wait` that hands it the clients' connections:
//! a request then costs no system call at all while nothing changed (the reactor's
//! readiness, read from memory), and one `read` of the descriptor when something did.
//! Ordering holds: an edit made before a client connected is in an `epoll_wait` no later
//! than the one that reported the connection. Outside a runtime (unit tests, `helperctl`)
//! each look is one non-blocking `read`. Any event in a watched folder
//! counts as a change (the caller then compares the files' stamps, as before); the watches
//! are set again after each event, since folders come and go.
//!
//! Whenever it cannot be sure, it says "changed": no inotify, a file that is a symbolic
//! link (its target may live in an unwatched folder), a full event queue. The caller then
//! looks at the files, which is always correct, only slower.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Watches a few files; see the module docs.
pub struct FileWatch {
    /// Bumped on every change seen (or when unsure).
    generation: AtomicU64,
    inner: imp::Watcher,
}

impl FileWatch {
    /// Starts watching the folders of `files`; without inotify, every call says "changed".
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

#[cfg(target_os = "linux")]
mod imp {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, PoisonError};

    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::task::{Context, Poll, Waker};

    use nix::errno::Errno;
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use tokio::io::unix::AsyncFd;

    /// The folder to watch for `file`: its own, or the nearest ancestor that exists.
    fn folder_to_watch(file: &Path) -> Option<&Path> {
        let mut folder = file.parent()?;
        loop {
            if folder.is_dir() {
                return Some(folder);
            }
            folder = folder.parent()?;
        }
    }

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

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::path::PathBuf;

    /// No watching here: every call says "changed", so the caller always looks.
    pub struct Watcher;

    impl Watcher {
        pub fn new(_files: &[PathBuf]) -> Watcher {
            Watcher
        }

        pub fn changed(&self) -> bool {
            true
        }
    }
}

/// inotify's promises (elsewhere every look says "changed", the safe answer).
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
