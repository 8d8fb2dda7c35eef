//! The configuration in force, and reloading it: when `config.toml` changes (checked with
//! one `stat` per request), on SIGHUP and on `helperctl daemon reload`. A broken edit never
//! takes effect: the last good configuration keeps serving, `status` shows the error, and
//! the next git request prints it once on stderr.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    mtime_ns: i128,
    size: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        size: m.size(),
        inode: m.ino(),
    })
}

#[derive(Debug)]
pub struct ConfigState {
    path: PathBuf,
    current: Arc<Config>,
    seen: Option<FileStamp>,
    error: Option<String>,
    /// The broken version whose error was already printed to a git request.
    reported: Option<FileStamp>,
}

impl ConfigState {
    /// Loads the file; a broken file at start-up means an empty configuration plus the error.
    pub fn load(path: &Path) -> ConfigState {
        let mut s = ConfigState {
            path: path.to_path_buf(),
            current: Arc::new(Config::default()),
            seen: None,
            error: None,
            reported: None,
        };
        // A broken file is recorded in `error`; an empty configuration serves meanwhile.
        let _ = s.reload();
        s
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force (the last good one).
    pub fn current(&self) -> Arc<Config> {
        self.current.clone()
    }

    /// Why the file on disk is not in force.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Reads the file again, whatever its stamp. Returns the error of a broken file.
    pub fn reload(&mut self) -> Result<(), String> {
        self.seen = stamp(&self.path);
        match Config::load(&self.path) {
            Ok(config) => {
                tracing::info!(path = %self.path.display(), runtimes = config.runtimes.len(), "configuration loaded");
                self.current = Arc::new(config);
                self.error = None;
                self.reported = None;
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(error = %msg, "configuration not loaded; the last good one stays in force");
                self.error = Some(msg.clone());
                Err(msg)
            }
        }
    }

    /// Reloads when the file changed since the last look (one `stat`).
    pub fn refresh(&mut self) {
        if stamp(&self.path) != self.seen {
            let _ = self.reload();
        }
    }

    /// Reloads when needed and returns the notice for git's stderr, once per broken
    /// version of the file. Only git requests take it: `status` shows the error anyway.
    pub fn refresh_for_git(&mut self) -> Option<String> {
        self.refresh();
        let error = self.error.as_ref()?;
        if self.reported == self.seen {
            return None;
        }
        self.reported = self.seen;
        Some(format!(
            "helperd: {error}\nhelperd: the last good configuration stays in force until the file is fixed (helperctl status shows this too)"
        ))
    }
}
