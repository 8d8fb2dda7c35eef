//! GitLab self-rotation's shared state (issue 18): the wake-up of the one rotator task
//! (`daemon::rotator`), and what it knows per token that is not on disk: failures and
//! their back-off, a rotation under way, a rotated token whose save failed. Only the
//! rotator task rotates, one token at a time: that is the single flight.

use std::collections::HashMap;
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

    /// Changes the note of token `id`.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut RotationNote)) {
        f(self.lock().entry(id.to_string()).or_default());
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
