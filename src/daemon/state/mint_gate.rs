//! GitHub App installation tokens (DESIGN.md §13): held in memory only (never written
//! anywhere: they are worth an hour), minted one at a time per runtime (single flight:
//! concurrent `get`s wait for that one mint, bounded by the provider's timeout, and then
//! find the token), and the back-off after a failed mint. The decision sees a snapshot
//! without secrets ([`Mints`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::decision::{MintView, MintedView, Mints};
use crate::secret::Secret;

type Flight = Arc<tokio::sync::Mutex<()>>;

/// One minted installation token.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The key (token id) it was minted with.
    pub key_id: String,
    /// The token.
    pub secret: Secret,
    /// Unix seconds.
    pub expires_at: u64,
    /// The installation it is for.
    pub installation: u64,
    /// What GitHub granted (`name=level`), for `status`.
    pub permissions: Vec<String>,
    /// When it was minted (the daemon's clock).
    pub minted_at: u64,
}

/// What `status` shows of a GitHub App runtime's tokens (no secret).
#[derive(Debug, Clone, Default)]
pub struct MintStatus {
    /// The token held now: expiry, installation, minted at, permissions.
    pub token: Option<(u64, u64, u64, Vec<String>)>,
    /// The last failure, and when the next attempt may be made.
    pub failure: Option<(String, u64)>,
    /// Mints since the daemon started.
    pub mints: u64,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, (u64, Minted)>,
    failures: HashMap<String, (String, String, u64)>,
    /// Runtimes whose token git erased: the next mint is a re-mint.
    after_erase: HashSet<String>,
    /// Runtimes whose current token was minted after an erase.
    reminted: HashSet<String>,
    serial: u64,
    counts: HashMap<String, u64>,
    view: Arc<Mints>,
}

impl Inner {
    fn publish(&mut self) {
        let mut view: Mints = HashMap::new();
        for (runtime, (serial, m)) in &self.tokens {
            view.insert(
                runtime.clone(),
                MintView {
                    key_id: m.key_id.clone(),
                    token: Some(MintedView {
                        serial: *serial,
                        expires_at: m.expires_at,
                        installation: m.installation,
                    }),
                    failure: None,
                },
            );
        }
        for (runtime, (key_id, why, until)) in &self.failures {
            let v = view.entry(runtime.clone()).or_insert_with(|| MintView {
                key_id: key_id.clone(),
                ..MintView::default()
            });
            if v.key_id == *key_id {
                v.failure = Some((why.clone(), *until));
            }
        }
        self.view = Arc::new(view);
    }
}

/// See the module docs.
#[derive(Default)]
pub struct MintGate {
    flights: Mutex<HashMap<String, Flight>>,
    inner: Mutex<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Seconds before a failed mint is tried again (the decision refuses meanwhile, unless a
/// token minted earlier is still valid).
pub const MINT_RETRY_SECS: u64 = 60;

impl MintGate {
    /// The snapshot the decision reads (one `Arc` clone).
    pub fn view(&self) -> Arc<Mints> {
        lock(&self.inner).view.clone()
    }

    /// The lock one mint for `runtime` holds.
    pub fn flight(&self, runtime: &str) -> Flight {
        lock(&self.flights)
            .entry(runtime.to_string())
            .or_default()
            .clone()
    }

    /// Forgets the lock when nobody else waits on it.
    pub fn done(&self, runtime: &str) {
        let mut flights = lock(&self.flights);
        if flights
            .get(runtime)
            .is_some_and(|f| Arc::strong_count(f) <= 2)
        {
            flights.remove(runtime);
        }
    }

    /// The token held for `runtime`, if minted with `key_id`.
    pub fn current(&self, runtime: &str, key_id: &str) -> Option<Minted> {
        lock(&self.inner)
            .tokens
            .get(runtime)
            .filter(|(_, m)| m.key_id == key_id)
            .map(|(_, m)| m.clone())
    }

    /// The failure recorded for `runtime`'s key `key_id` that still holds at `now`.
    pub fn backing_off(&self, runtime: &str, key_id: &str, now: u64) -> bool {
        lock(&self.inner)
            .failures
            .get(runtime)
            .is_some_and(|(k, _, until)| k == key_id && now < *until)
    }

    /// Keeps a new token; returns whether it is a re-mint after git's erase.
    pub fn put(&self, runtime: &str, minted: Minted) -> bool {
        let mut inner = lock(&self.inner);
        inner.serial += 1;
        let serial = inner.serial;
        inner.tokens.insert(runtime.to_string(), (serial, minted));
        inner.failures.remove(runtime);
        *inner.counts.entry(runtime.to_string()).or_default() += 1;
        let remint = inner.after_erase.remove(runtime);
        if remint {
            inner.reminted.insert(runtime.to_string());
        } else {
            inner.reminted.remove(runtime);
        }
        inner.publish();
        remint
    }

    /// Records a failed mint: no new attempt before `until`.
    pub fn fail(&self, runtime: &str, key_id: &str, why: String, until: u64) {
        let mut inner = lock(&self.inner);
        inner
            .failures
            .insert(runtime.to_string(), (key_id.to_string(), why, until));
        inner.publish();
    }

    /// The secret of token `serial` of `runtime`, while it is held.
    pub fn secret(&self, runtime: &str, serial: u64) -> Option<Secret> {
        lock(&self.inner)
            .tokens
            .get(runtime)
            .filter(|(s, _)| *s == serial)
            .map(|(_, m)| m.secret.clone())
    }

    /// git erased token `serial` after a 401: dropped when `given` (the password git
    /// names) is that token or git named none. `None`: not ours, nothing changed. A token
    /// that was itself minted after an erase is not minted a third time at once: the
    /// failure `refused` is recorded until `until`.
    pub fn erase(
        &self,
        runtime: &str,
        serial: u64,
        given: Option<&Secret>,
        refused: impl FnOnce() -> String,
        until: u64,
    ) -> Option<()> {
        let mut inner = lock(&self.inner);
        let (s, m) = inner.tokens.get(runtime)?;
        if *s != serial || given.is_some_and(|g| *g != m.secret) {
            return None;
        }
        let key_id = m.key_id.clone();
        inner.tokens.remove(runtime);
        if inner.reminted.remove(runtime) {
            inner
                .failures
                .insert(runtime.to_string(), (key_id, refused(), until));
        } else {
            inner.after_erase.insert(runtime.to_string());
        }
        inner.publish();
        Some(())
    }

    /// Forgets everything about `runtime` (its key was removed); returns the token held.
    pub fn forget(&self, runtime: &str) -> Option<Minted> {
        let mut inner = lock(&self.inner);
        let token = inner.tokens.remove(runtime).map(|(_, m)| m);
        inner.failures.remove(runtime);
        inner.after_erase.remove(runtime);
        inner.reminted.remove(runtime);
        inner.publish();
        token
    }

    /// Forgets every token and failure made with a team key (`openbao:` id) that `live`
    /// no longer names: the entry's key or app id changed in OpenBao, or it was revoked.
    /// Local keys are left alone (their removal goes through [`MintGate::forget`]).
    pub fn keep_team_keys(&self, live: impl Fn(&str) -> bool) {
        let stale = |key_id: &str| crate::team::is_team_token(key_id) && !live(key_id);
        let mut inner = lock(&self.inner);
        let dropped: Vec<String> = inner
            .tokens
            .iter()
            .filter(|(_, (_, m))| stale(&m.key_id))
            .map(|(runtime, _)| runtime.clone())
            .collect();
        let failures = inner.failures.len();
        inner.tokens.retain(|_, (_, m)| !stale(&m.key_id));
        inner.failures.retain(|_, (k, _, _)| !stale(k));
        if dropped.is_empty() && failures == inner.failures.len() {
            return;
        }
        for runtime in &dropped {
            inner.after_erase.remove(runtime);
            inner.reminted.remove(runtime);
        }
        inner.publish();
    }

    /// What `status` shows for `runtime` with key `key_id`.
    pub fn status(&self, runtime: &str, key_id: &str) -> MintStatus {
        let inner = lock(&self.inner);
        MintStatus {
            token: inner
                .tokens
                .get(runtime)
                .filter(|(_, m)| m.key_id == key_id)
                .map(|(_, m)| {
                    (
                        m.expires_at,
                        m.installation,
                        m.minted_at,
                        m.permissions.clone(),
                    )
                }),
            failure: inner
                .failures
                .get(runtime)
                .filter(|(k, _, _)| k == key_id)
                .map(|(_, why, until)| (why.clone(), *until)),
            mints: inner.counts.get(runtime).copied().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minted(secret: &str) -> Minted {
        Minted {
            key_id: "k".into(),
            secret: Secret::new(secret),
            expires_at: 3600,
            installation: 7,
            permissions: vec![],
            minted_at: 0,
        }
    }

    #[test]
    fn team_tokens_of_a_replaced_key_are_dropped_and_local_ones_kept() {
        let gate = MintGate::default();
        let with_key = |key: &str| Minted {
            key_id: key.into(),
            ..minted("t")
        };
        gate.put("local", minted("t0"));
        gate.put("team", with_key("openbao:team@1.5"));
        gate.fail("other", "openbao:other@1.5", "no".into(), 60);
        gate.keep_team_keys(|id| id == "openbao:team@1.5");
        assert!(gate.current("team", "openbao:team@1.5").is_some());
        assert!(
            gate.view().get("other").is_none(),
            "its failure is forgotten"
        );
        // The entry's key changed (version 2): the old key's token goes.
        gate.keep_team_keys(|id| id == "openbao:team@2.9");
        assert!(gate.current("team", "openbao:team@1.5").is_none());
        assert!(gate.view().get("team").is_none());
        assert!(
            gate.current("local", "k").is_some(),
            "local keys are not the team's"
        );
    }

    #[test]
    fn an_erase_drops_the_token_once_then_backs_off() {
        let gate = MintGate::default();
        assert!(!gate.put("a", minted("t1")));
        let view = gate.view();
        let serial = view["a"].token.unwrap().serial;
        // Not ours: kept.
        assert!(gate
            .erase("a", serial, Some(&Secret::new("other")), String::new, 60)
            .is_none());
        assert!(gate
            .erase("a", serial, Some(&Secret::new("t1")), String::new, 60)
            .is_some());
        assert!(gate.view().get("a").is_none_or(|v| v.token.is_none()));
        assert!(gate.put("a", minted("t2")), "the next mint is a re-mint");
        let serial = gate.view()["a"].token.unwrap().serial;
        gate.erase("a", serial, None, || "twice".into(), 60);
        assert_eq!(gate.view()["a"].failure, Some(("twice".into(), 60)));
        assert!(gate.backing_off("a", "k", 59));
        assert!(!gate.backing_off("a", "k", 60));
        assert!(gate.forget("a").is_none());
        assert!(gate.view().is_empty());
    }
}
