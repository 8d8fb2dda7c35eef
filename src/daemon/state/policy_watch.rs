//! The admin policy in force, as an immutable snapshot, picked up without a restart (two
//! `stat`s per request, outside any lock).
//!
//! `HELPERD_POLICY` (meant for tests and sandboxes) can replace the system policy with
//! another *trusted* file, but never remove it: when the variable names a file that does
//! not exist, the system policy still applies. A policy file the user could have written is
//! refused (see `crate::policy::file::load`), reported in `status` and the log, and the last
//! trusted version stays in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::decision::PolicyInForce;
use crate::os::SYSTEM_POLICY_PATH;
use crate::policy::{self, Policy};

/// What identifies one version of a file on disk (its modification time, size,
/// identity, mode and owner: a chmod or chown changes whether it is trusted).
type Stamp = Option<[i128; 5]>;

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| crate::os::file_stamp(&m))
}

/// A policy in force and the file it came from.
#[derive(Debug)]
pub struct LoadedPolicy {
    /// The policy's rules.
    pub policy: Policy,
    /// The file it was read from (the `HELPERD_POLICY` override, or the system policy).
    pub path: PathBuf,
}

impl LoadedPolicy {
    /// The form the decision takes.
    pub fn in_force(&self) -> PolicyInForce<'_> {
        PolicyInForce {
            policy: &self.policy,
            source: &self.path,
        }
    }
}

#[derive(Debug, Default)]
struct Loaded {
    seen: (Stamp, Stamp),
    current: Option<Arc<LoadedPolicy>>,
    error: Option<String>,
}

/// The admin policy in force, reloaded when its file changes; see the module docs.
pub struct PolicyWatch {
    override_path: Option<PathBuf>,
    system_path: PathBuf,
    /// Held for a field copy, or for a reload of a file whose stamp changed; never across
    /// an `.await`.
    loaded: Mutex<Loaded>,
}

impl PolicyWatch {
    /// Reads the policy now (the `HELPERD_POLICY` file if it exists, else the system one).
    pub fn load() -> PolicyWatch {
        let override_path = std::env::var_os(policy::POLICY_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let watch = PolicyWatch {
            override_path,
            system_path: PathBuf::from(SYSTEM_POLICY_PATH),
            loaded: Mutex::default(),
        };
        let stamps = watch.stamps();
        watch.reload(&mut watch.lock(), stamps);
        watch
    }

    fn lock(&self) -> MutexGuard<'_, Loaded> {
        // Every field is replaced whole: a poisoned lock still guards a consistent value.
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stamps(&self) -> (Stamp, Stamp) {
        (
            self.override_path.as_deref().and_then(stamp),
            stamp(&self.system_path),
        )
    }

    fn reload(&self, loaded: &mut Loaded, stamps: (Stamp, Stamp)) {
        loaded.seen = stamps;
        let mut candidates: Vec<&Path> = Vec::new();
        if let Some(p) = &self.override_path {
            candidates.push(p);
        }
        candidates.push(&self.system_path);
        for path in candidates {
            match crate::policy::file::load(path) {
                Ok(None) => continue,
                Ok(Some(p)) => {
                    tracing::info!(path = %path.display(), "policy in force");
                    loaded.current = Some(Arc::new(LoadedPolicy {
                        policy: p,
                        path: path.to_path_buf(),
                    }));
                    loaded.error = None;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "policy file refused; the last trusted policy stays in force");
                    loaded.error = Some(e.to_string());
                    return;
                }
            }
        }
        if loaded.current.take().is_some() {
            tracing::info!("no policy file any more");
        }
        loaded.error = None;
    }

    /// The files a policy may come from, as the environment names them.
    pub fn files_of_env() -> Vec<PathBuf> {
        std::env::var_os(policy::POLICY_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .into_iter()
            .chain(std::iter::once(PathBuf::from(SYSTEM_POLICY_PATH)))
            .collect()
    }

    /// Reads the files again, whatever their stamps (SIGHUP, `helperctl daemon reload`).
    pub fn reload_now(&self) {
        let stamps = self.stamps();
        self.reload(&mut self.lock(), stamps);
    }

    /// Reloads when either file changed (two `stat`s).
    pub fn refresh(&self) {
        let stamps = self.stamps();
        let mut loaded = self.lock();
        if stamps != loaded.seen {
            self.reload(&mut loaded, stamps);
        }
    }

    /// The policy in force. Each request looks at the files once first
    /// (`State::look_at_files`), so this costs no system call.
    pub fn current(&self) -> Option<Arc<LoadedPolicy>> {
        self.lock().current.clone()
    }

    /// Why a policy file was refused (after [`PolicyWatch::current`] looked at the files).
    pub fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }
}
