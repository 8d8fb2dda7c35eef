//! OAuth refreshes, one at a time per token (single flight): concurrent `get`s for a
//! runtime whose token is being refreshed wait for that one refresh (bounded by the
//! provider's timeout) and then find the fresh token; every other request goes on. After a
//! failed refresh the host is not asked again for a while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::writer::TokenChange;

type Flight = Arc<tokio::sync::Mutex<()>>;

/// Single-flight OAuth refreshes per token id, the back-off after a failure, and refreshed
/// tokens not saved yet.
#[derive(Default)]
pub struct RefreshGate {
    flights: Mutex<HashMap<String, Flight>>,
    /// Per token id: no refresh is tried before this time.
    backoff: Mutex<HashMap<String, u64>>,
    /// Per token id: the tokens a host handed out that could not be saved yet. A host that
    /// rotates refresh tokens has already made the old one useless, so these are the only
    /// valid ones: kept in memory and saved at the next attempt, instead of asking again.
    unsaved: Mutex<HashMap<String, TokenChange>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RefreshGate {
    /// The lock that one refresh of token `id` holds; taken by every request that wants to
    /// refresh it.
    pub fn flight(&self, id: &str) -> Flight {
        lock(&self.flights)
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// Forgets the lock of a token that was refreshed (its id is never used again).
    pub fn done(&self, id: &str) {
        let mut flights = lock(&self.flights);
        // One reference in the map, one in the caller's hand: nobody else waits.
        if flights.get(id).is_some_and(|f| Arc::strong_count(f) <= 2) {
            flights.remove(id);
        }
    }

    /// The back-off map, for the decision.
    pub fn backoff(&self) -> HashMap<String, u64> {
        lock(&self.backoff).clone()
    }

    /// Keeps a refresh's result that could not be saved.
    pub fn keep_unsaved(&self, id: &str, change: TokenChange) {
        lock(&self.unsaved).insert(id.to_string(), change);
    }

    /// The unsaved result of a refresh of token `id`, taken out.
    pub fn take_unsaved(&self, id: &str) -> Option<TokenChange> {
        lock(&self.unsaved).remove(id)
    }

    /// No refresh of token `id` before `until`.
    pub fn back_off(&self, id: &str, until: u64) {
        lock(&self.backoff).insert(id.to_string(), until);
    }
}
