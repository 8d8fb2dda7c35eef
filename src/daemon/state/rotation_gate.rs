//! GitLab self-rotation's shared state (issue 18): the wake-up of the one rotator task
//! (`daemon::rotator`), and what it knows per token that is not on disk: failures and
//! their back-off, a rotation under way, a rotated token whose save failed. Every
//! rotation of a token (the rotator's, `renew --rotate`) holds its [`Flight`]: one at a
//! time per token, whoever asks.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::writer::TokenChange;

/// What the rotator knows about one token (by token id), in memory.
#[derive(Clone, Default)]
pub struct RotationNote {
    /// Failed attempts in a row.
    pub failures: u32,
    /// Why the last attempt failed (never a secret: provider errors carry none).
    pub error: Option<String>,
    /// No attempt before this time (Unix seconds, the daemon's clock).
    pub retry_at: Option<u64>,
    /// The host is being asked right now.
    pub in_flight: bool,
    /// The host rotated the token and answered, but the new token could not be saved
    /// yet: saved at the next attempt, the host is not asked again.
    pub unsaved: Option<TokenChange>,
}

/// The rotator's wake-up and notes.
#[derive(Default)]
pub struct RotationGate {
    wake: tokio::sync::Notify,
    notes: Mutex<HashMap<String, RotationNote>>,
    /// Rotations done since the daemon started.
    rotations: std::sync::atomic::AtomicU64,
}

impl RotationGate {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, RotationNote>> {
        self.notes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the rotator to look now (a `get` served a token of a rotating runtime). Many
    /// calls before it looks are one look.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits for [`RotationGate::wake`].
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The note of token `id` (a default one when there is none).
    pub fn note(&self, id: &str) -> RotationNote {
        self.lock().get(id).cloned().unwrap_or_default()
    }

    /// The ids of the tokens whose last rotation attempt failed: git's requests read this
    /// (their expiry warning comes back), so it is cheap when none failed.
    pub fn failed(&self) -> HashSet<String> {
        self.lock()
            .iter()
            .filter(|(_, n)| n.failures > 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Changes the note of token `id`.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut RotationNote)) {
        f(self.lock().entry(id.to_string()).or_default());
    }

    /// The right to rotate (or check) token `id` now; `None` while another rotation of it
    /// is under way. Released when dropped.
    pub fn begin(&self, id: &str) -> Option<Flight<'_>> {
        let mut notes = self.lock();
        let note = notes.entry(id.to_string()).or_default();
        if note.in_flight {
            return None;
        }
        note.in_flight = true;
        Some(Flight {
            gate: self,
            id: id.to_string(),
        })
    }

    /// Forgets token `id` (rotated: it is never used again).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Counts one rotation.
    pub fn rotated(&self) {
        self.rotations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Rotations since the daemon started.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One rotation of one token under way (see [`RotationGate::begin`]).
pub struct Flight<'a> {
    gate: &'a RotationGate,
    id: String,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        if let Some(note) = self.gate.lock().get_mut(&self.id) {
            note.in_flight = false;
        }
    }
}

/// Sets (`Some(now)`) or clears `rotation_started` on `runtime`'s token `id` and saves
/// `tokens.json` before returning: the durable half of the single flight (see
/// `daemon::rotator`). No secret is involved.
pub async fn save_mark(
    writer: &super::writer::Writer,
    runtime: &str,
    id: &str,
    started: Option<u64>,
) -> Result<(), String> {
    let (runtime, id) = (runtime.to_string(), id.to_string());
    let edit: super::writer::Edit =
        Box::new(
            move |book| match book.for_runtime_mut(&runtime).filter(|t| t.id == id) {
                Some(t) => {
                    t.rotation_started = started;
                    Ok(Vec::new())
                }
                None => Err("the runtime's token changed meanwhile".into()),
            },
        );
    writer
        .edit_tokens(edit, super::writer::Save::Now)
        .await
        .map_err(|e| format!("could not save the rotation mark ({e})"))
}

/// Whether a failed rotation certainly did not rotate: the host answered and refused.
/// Anything else (no answer, a timeout, an answer not understood) may have rotated.
pub fn host_refused(e: &crate::provider::ProviderError) -> bool {
    use crate::provider::ProviderError;
    matches!(
        e,
        ProviderError::Rejected { .. }
            | ProviderError::MissingScopes { .. }
            | ProviderError::Unsupported { .. }
    )
}
