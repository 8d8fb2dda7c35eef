//! The team's runtimes from OpenBao (DESIGN.md §10), kept in memory: one task re-reads
//! every entry under `team_path` each `refresh_secs` (and at once when git reports a
//! 401 for a team token), and swaps the whole snapshot. Requests only clone the
//! snapshot's `Arc`: a slow or dead OpenBao never holds a git request up.
//!
//! Secrets read stay in memory only. While no node answers they are served for
//! `cache_secs` after the first failed read, then refused with an error naming OpenBao
//! and the addresses tried.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::openbao::OpenBaoSettings;
use crate::openbao::{BaoClient, BaoError, SessionInfo};
use crate::secret::Secret;
use crate::team::{parse_entry, EntryVersion, LocalMarks, TeamRuntime};

/// Everything known of the team's runtimes at one moment.
#[derive(Debug, Default, Clone)]
pub struct TeamSnapshot {
    /// The valid entries, by name.
    pub runtimes: Vec<TeamRuntime>,
    /// Entries that could not be read as runtimes: `(path, why)`; the why never quotes
    /// the token.
    pub invalid: Vec<(String, String)>,
    /// What this machine noted about team tokens (refused by the host, warned of).
    pub marks: LocalMarks,
    /// When the entries were last read in full (Unix seconds, daemon clock).
    pub read_at: Option<u64>,
    /// Since when every read has failed, and the last failure.
    pub failing: Option<(u64, BaoError)>,
    /// `<mount>/<team_path>`, when team runtimes are configured.
    pub source: Option<String>,
    /// Addresses tried, in order.
    pub addresses: Vec<String>,
    /// `cache_secs` in force.
    pub cache_secs: u64,
    /// The login's state.
    pub session: SessionInfo,
}

impl TeamSnapshot {
    /// The secret of team token `id`, unless reading OpenBao fails: while no node
    /// answers, secrets are served until `cache_secs` after the last complete read; when
    /// OpenBao answers with a refusal (a revoked login, a policy), not at all. `Err` says
    /// why, naming OpenBao and the addresses tried.
    pub fn secret(&self, id: &str, now: u64) -> Result<Option<Secret>, String> {
        if let Some((since, error)) = &self.failing {
            let last_good = self.read_at.unwrap_or(*since);
            if !error.is_unreachable() {
                return Err(format!("team runtimes cannot be served: {error}"));
            }
            if now >= last_good.saturating_add(self.cache_secs) {
                return Err(format!(
                    "team runtimes cannot be served: {error}; secrets read earlier are kept only {} s (cache_secs) after the last read",
                    self.cache_secs
                ));
            }
        }
        Ok(self
            .runtimes
            .iter()
            .find(|t| t.token.id == id)
            .map(|t| t.secret.clone()))
    }
}

/// The snapshot in force and what wakes the reader.
#[derive(Default)]
pub struct TeamWatch {
    current: Mutex<Arc<TeamSnapshot>>,
    wake: tokio::sync::Notify,
    /// The first round has ended (read, failed, or nothing configured): until then a
    /// team runtime's URL would fall to the plain credentials, so git requests wait.
    settled: AtomicBool,
    settled_now: tokio::sync::Notify,
}

impl TeamWatch {
    /// The snapshot in force.
    pub fn current(&self) -> Arc<TeamSnapshot> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn swap(&self, change: impl FnOnce(&TeamSnapshot) -> TeamSnapshot) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(change(&current));
    }

    /// git reported a 401 for team token `id`: it is not served again, and the entries are
    /// re-read at once (the admin may have rotated it already).
    pub fn reject(&self, id: &str, now: u64) {
        self.swap(|s| {
            let mut marks = s.marks.clone();
            marks.rejected.insert(id.to_string(), now);
            TeamSnapshot { marks, ..s.clone() }
        });
        self.wake.notify_one();
    }

    /// The expiry warning for team token `id` was shown on `day` (Unix days).
    pub fn warned(&self, id: &str, day: u64) {
        if self.current().marks.warned_on.get(id) == Some(&day) {
            return;
        }
        self.swap(|s| {
            let mut marks = s.marks.clone();
            marks.warned_on.insert(id.to_string(), day);
            TeamSnapshot { marks, ..s.clone() }
        });
    }

    /// Re-read now rather than at the next `refresh_secs`.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits (at most `max`) until the first round has ended. A daemon that git itself
    /// just started gets its first request at once: answering it before the team
    /// runtimes are known would send a team URL to the plain credentials.
    pub async fn first_round(&self, max: Duration) {
        let settled = async {
            loop {
                let notified = self.settled_now.notified();
                if self.settled.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(max, settled).await;
    }

    /// Whether the first round has ended.
    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    fn settle(&self) {
        if !self.settled.swap(true, Ordering::AcqRel) {
            self.settled_now.notify_waiters();
        }
    }

    /// Reads the team entries for as long as the daemon runs. `round` gives, at each
    /// round, the `[openbao]` in force (config.toml may change) and the daemon's clock;
    /// `None` once the daemon stops, which ends the task (it must not keep the state, and
    /// so the writer's last save, alive). `after` is given each round's snapshot (to drop
    /// what was derived from entries that changed, such as tokens minted with an old key).
    pub async fn run(
        self: Arc<Self>,
        round: impl Fn() -> Option<(Option<OpenBaoSettings>, u64)>,
        after: impl Fn(&TeamSnapshot),
    ) {
        let mut client: Option<(OpenBaoSettings, Arc<BaoClient>)> = None;
        while let Some((settings, now)) = round() {
            let wanted = settings.filter(|s| s.team_path.is_some());
            let pause = match wanted {
                None => {
                    client = None;
                    if self.current().source.is_some() {
                        self.swap(|_| TeamSnapshot::default());
                    }
                    Duration::from_secs(crate::config::openbao::DEFAULT_REFRESH_SECS)
                }
                Some(settings) => {
                    let bao = match &client {
                        Some((s, c)) if *s == settings => Ok(c.clone()),
                        _ => BaoClient::new(&settings).map(Arc::new),
                    };
                    let pause = Duration::from_secs(settings.refresh_secs);
                    match bao {
                        Ok(bao) => {
                            self.read_round(&bao, &settings, now).await;
                            client = Some((settings, bao));
                        }
                        Err(e) => {
                            client = None;
                            self.record_failure(&settings, Vec::new(), e, now);
                        }
                    }
                    pause
                }
            };
            after(&self.current());
            self.settle();
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// One read of every entry; a failure keeps what was read before.
    async fn read_round(&self, bao: &BaoClient, settings: &OpenBaoSettings, now: u64) {
        let team_path = settings.team_path.as_deref().unwrap_or_default();
        let source = format!("{}/{team_path}", settings.mount);
        match read_all(bao, &source, team_path, now).await {
            Ok((runtimes, invalid)) => {
                if invalid != self.current().invalid {
                    for (path, why) in &invalid {
                        tracing::warn!(%path, %why, "OpenBao entry is not a team runtime");
                    }
                }
                let session = bao.session_info();
                let addresses = bao.addresses().to_vec();
                self.swap(|s| {
                    // A mark is kept while its version is still the one read.
                    let live = |id: &str| runtimes.iter().any(|t| t.token.id == id);
                    let marks = s.marks.only_for(live);
                    TeamSnapshot {
                        runtimes,
                        invalid,
                        marks,
                        read_at: Some(now),
                        failing: None,
                        source: Some(source),
                        addresses,
                        cache_secs: settings.cache_secs,
                        session,
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the team runtimes from OpenBao failed");
                self.record_failure(settings, bao.addresses().to_vec(), e, now);
            }
        }
    }

    fn record_failure(
        &self,
        settings: &OpenBaoSettings,
        addresses: Vec<String>,
        e: BaoError,
        now: u64,
    ) {
        let source = settings
            .team_path
            .as_ref()
            .map(|p| format!("{}/{p}", settings.mount));
        self.swap(|s| TeamSnapshot {
            failing: Some((s.failing.as_ref().map_or(now, |(since, _)| *since), e)),
            source,
            addresses,
            cache_secs: settings.cache_secs,
            ..s.clone()
        });
    }
}

/// Every entry below `team_path`: the runtimes, and the entries that are not.
async fn read_all(
    bao: &BaoClient,
    source: &str,
    team_path: &str,
    now: u64,
) -> Result<(Vec<TeamRuntime>, Vec<(String, String)>), BaoError> {
    let mut runtimes = Vec::new();
    let mut invalid = Vec::new();
    let mut names = bao.list(team_path, now).await?;
    names.sort();
    for name in names {
        let path = format!("{source}/{name}");
        // A deleted or destroyed newest version is a revoked runtime: absent.
        let entry = match bao.read(&format!("{team_path}/{name}"), now).await {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            // A node that stops answering mid-round fails the round (what was read
            // before stays); a refusal of one entry (its own policy) spoils only it.
            Err(e) if e.is_unreachable() => return Err(e),
            Err(e) => {
                invalid.push((path, e.to_string()));
                continue;
            }
        };
        let at = EntryVersion {
            version: entry.version,
            created: if entry.created > 0 {
                entry.created
            } else {
                now
            },
        };
        // An app entry's key is checked at every read, not at the first mint: status and
        // the log name the entry and the field at once.
        match parse_entry(&name, &path, &entry.data, at)
            .and_then(|rt| crate::provider::check_team_key(&rt).map(|()| rt))
        {
            Ok(rt) => runtimes.push(rt),
            Err(why) => invalid.push((path, why)),
        }
    }
    Ok((runtimes, invalid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team::parse_entry;

    fn snapshot(failing_since: Option<u64>, cache_secs: u64) -> TeamSnapshot {
        let data = serde_json::json!({"provider": "github", "urls": ["https://github.com/acme/"], "token": "ghp_x"});
        let rt = parse_entry(
            "ci",
            "secret/t/ci",
            data.as_object().unwrap(),
            EntryVersion {
                version: 1,
                created: 0,
            },
        )
        .unwrap();
        TeamSnapshot {
            runtimes: vec![rt],
            failing: failing_since.map(|t| {
                (
                    t,
                    BaoError::Unreachable {
                        tried: vec![("http://127.0.0.1:1".into(), "Connection refused".into())],
                    },
                )
            }),
            cache_secs,
            ..TeamSnapshot::default()
        }
    }

    #[test]
    fn secrets_outlive_an_outage_by_cache_secs_only() {
        assert_eq!(
            snapshot(None, 600)
                .secret("openbao:ci@1.0", 5)
                .unwrap()
                .unwrap()
                .expose(),
            "ghp_x"
        );
        let s = snapshot(Some(1000), 600);
        assert!(s.secret("openbao:ci@1.0", 1599).unwrap().is_some());
        let e = s.secret("openbao:ci@1.0", 1600).unwrap_err();
        assert!(
            e.contains("OpenBao is unreachable: tried http://127.0.0.1:1 (Connection refused)"),
            "{e}"
        );
        // Counted from the last complete read, not from the first failure.
        let mut s = snapshot(Some(1000), 600);
        s.read_at = Some(900);
        assert!(s.secret("openbao:ci@1.0", 1499).unwrap().is_some());
        assert!(s.secret("openbao:ci@1.0", 1500).is_err());
        // OpenBao answered "no" (a revoked login): nothing is served from memory.
        s.failing = Some((
            1000,
            BaoError::Login {
                method: "approle",
                why: "OpenBao refused it (HTTP 400: invalid secret id)".into(),
            },
        ));
        let e = s.secret("openbao:ci@1.0", 1001).unwrap_err();
        assert!(e.contains("OpenBao login (approle) failed"), "{e}");
        // cache_secs = 0: not even one request after the first failure.
        assert!(snapshot(Some(1000), 0)
            .secret("openbao:ci@1.0", 1000)
            .is_err());
        assert_eq!(
            snapshot(None, 600).secret("openbao:ops@1.0", 5).unwrap(),
            None
        );
    }
}
