//! The configuration in force, as an immutable snapshot, reloaded when `config.toml`
//! changes (checked with one `stat` per request, outside any lock), on SIGHUP and on
//! `helperctl daemon reload`. A broken edit never takes effect: the last good
//! configuration keeps serving, `status` shows the error, and the next git request prints
//! it once on stderr.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::config::Config;

/// What identifies one version of a file on disk (its modification time, size, identity).
type FileStamp = [i128; 5];

fn stamp(path: &Path) -> Option<FileStamp> {
    std::fs::metadata(path)
        .ok()
        .map(|m| crate::os::file_stamp(&m))
}

#[derive(Debug)]
struct Loaded {
    current: Arc<Config>,
    seen: Option<FileStamp>,
    error: Option<String>,
    /// The broken version whose error was already printed to a git request.
    reported: Option<FileStamp>,
    /// A good configuration has been read since start (else `current` is only a stand-in).
    ever_loaded: bool,
}

/// The configuration file and the snapshot read from it.
pub struct ConfigWatch {
    path: PathBuf,
    /// Held for a field copy, or for a reload of a file whose stamp changed; never across
    /// an `.await`.
    loaded: Mutex<Loaded>,
}

impl ConfigWatch {
    /// Loads the file; a broken file at start-up means an empty configuration plus the error.
    pub fn load(path: &Path) -> ConfigWatch {
        let watch = ConfigWatch {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded {
                current: Arc::new(Config::default()),
                seen: None,
                error: None,
                reported: None,
                ever_loaded: false,
            }),
        };
        // A broken file is recorded in `error`; an empty configuration serves meanwhile.
        let _ = watch.reload();
        watch
    }

    fn lock(&self) -> MutexGuard<'_, Loaded> {
        // A panic elsewhere cannot leave `Loaded` half-written: every field is replaced
        // whole, so a poisoned lock still guards a consistent value.
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `config.toml` this watch reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force (the last good one). Each request looks at the files
    /// once first (`State::look_at_files`), so this costs no system call.
    pub fn current(&self) -> Arc<Config> {
        self.lock().current.clone()
    }

    /// Why no configuration at all is in force: the file was broken when the daemon
    /// started and has not been fixed since (a broken edit later keeps the last good one).
    pub fn never_loaded(&self) -> Option<String> {
        let loaded = self.lock();
        match loaded.ever_loaded {
            true => None,
            false => loaded.error.clone(),
        }
    }

    /// Why the file on disk is not in force.
    pub fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// Reads the file again, whatever its stamp. Returns the error of a broken file.
    pub fn reload(&self) -> Result<Arc<Config>, String> {
        let seen = stamp(&self.path);
        let mut loaded = self.lock();
        Self::reload_locked(&self.path, &mut loaded, seen)
    }

    fn reload_locked(
        path: &Path,
        loaded: &mut Loaded,
        seen: Option<FileStamp>,
    ) -> Result<Arc<Config>, String> {
        loaded.seen = seen;
        match crate::config::file::load(path) {
            Ok(config) => {
                tracing::info!(path = %path.display(), runtimes = config.runtimes.len(), "configuration loaded");
                loaded.current = Arc::new(config);
                loaded.error = None;
                loaded.reported = None;
                loaded.ever_loaded = true;
                Ok(loaded.current.clone())
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(error = %msg, "configuration not loaded; the last good one stays in force");
                loaded.error = Some(msg.clone());
                Err(msg)
            }
        }
    }

    /// Reloads when the file changed since the last look (one `stat`, made before the lock
    /// is taken).
    pub fn refresh(&self) {
        let now = stamp(&self.path);
        let mut loaded = self.lock();
        if now != loaded.seen {
            let _ = Self::reload_locked(&self.path, &mut loaded, now);
        }
    }

    /// The notice for git's stderr about a broken file, once per broken version of the
    /// file. Only git requests take it: `status` shows the error anyway.
    pub fn notice_for_git(&self) -> Option<String> {
        let mut loaded = self.lock();
        let error = loaded.error.clone()?;
        if loaded.reported == loaded.seen {
            return None;
        }
        loaded.reported = loaded.seen;
        Some(format!(
            "helperd: {error}\nhelperd: the last good configuration stays in force until the file is fixed (helperctl status shows this too)"
        ))
    }
}
