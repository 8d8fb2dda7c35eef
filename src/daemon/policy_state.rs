//! The admin policy in force, picked up without a restart (two `stat`s per request).
//!
//! `HELPERD_POLICY` (meant for tests and sandboxes) can replace the system policy with
//! another *trusted* file, but never remove it: when the variable names a file that does
//! not exist, the system policy still applies. A policy file the user could have written is
//! refused (see `crate::policy::load`), reported in `status` and the log, and the last
//! trusted version stays in force.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::policy::{self, Policy, SYSTEM_POLICY_PATH};

type Stamp = Option<(i64, i64, u64, u64, u32, u32)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.mtime(),
        m.mtime_nsec(),
        m.size(),
        m.ino(),
        m.mode(),
        m.uid(),
    ))
}

#[derive(Debug)]
pub struct PolicyState {
    override_path: Option<PathBuf>,
    system_path: PathBuf,
    seen: (Stamp, Stamp),
    current: Option<(Arc<Policy>, PathBuf)>,
    error: Option<String>,
}

impl PolicyState {
    pub fn load() -> PolicyState {
        let override_path = std::env::var_os(policy::POLICY_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let mut s = PolicyState {
            override_path,
            system_path: PathBuf::from(SYSTEM_POLICY_PATH),
            seen: (None, None),
            current: None,
            error: None,
        };
        s.reload();
        s
    }

    fn stamps(&self) -> (Stamp, Stamp) {
        (
            self.override_path.as_deref().and_then(stamp),
            stamp(&self.system_path),
        )
    }

    fn reload(&mut self) {
        self.seen = self.stamps();
        let mut candidates: Vec<&Path> = Vec::new();
        if let Some(p) = &self.override_path {
            candidates.push(p);
        }
        candidates.push(&self.system_path);
        for path in candidates {
            match crate::policy_file::load(path) {
                Ok(None) => continue,
                Ok(Some(p)) => {
                    tracing::info!(path = %path.display(), "policy in force");
                    self.current = Some((Arc::new(p), path.to_path_buf()));
                    self.error = None;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "policy file refused; the last trusted policy stays in force");
                    self.error = Some(e.to_string());
                    return;
                }
            }
        }
        if self.current.take().is_some() {
            tracing::info!("no policy file any more");
        }
        self.error = None;
    }

    /// Reloads when either file changed.
    pub fn refresh(&mut self) {
        if self.stamps() != self.seen {
            self.reload();
        }
    }

    /// The policy in force and the file it came from.
    pub fn current(&self) -> Option<(Arc<Policy>, PathBuf)> {
        self.current.clone()
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}
