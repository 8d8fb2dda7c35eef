//! Audit events on their way to the writer task. Every git request adds one, from
//! whichever thread answered it; a list behind a lock, rather than the writer's command
//! channel, lets it do so without waking the writer each time: the writer is woken when
//! the list goes from empty to not empty, and takes everything at once when the lines
//! are due (`writer::AUDIT_EVERY`). Under load that is one wake-up per batch instead of
//! one per request, and a wake-up from another thread is the dearest part of a request
//! (BENCHMARKS.md). A list half full tells the writer to take it at once: under heavy load
//! the writer's timer may be late (the worker is busy answering), and a full list would
//! make requests wait.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::audit::AuditEvent;

/// How many events may wait for the writer. A full inbox makes requests wait until the
/// writer has taken them (back-pressure), so that a flood of requests cannot pile up
/// audit lines in memory while the log's disk is slow.
pub const ROOM: usize = 256;

/// The list and its signals, shared by the requests and the writer.
#[derive(Default)]
pub struct AuditInbox {
    events: Mutex<Vec<AuditEvent>>,
    /// Told when the list goes from empty to not empty.
    arrived: Notify,
    /// Told when the list is half full: take it now.
    crowded: Notify,
    /// Told when the writer took the list, for requests that found it full.
    taken: Notify,
}

impl AuditInbox {
    fn events(&self) -> MutexGuard<'_, Vec<AuditEvent>> {
        // A panic while holding the lock leaves a list of whole events: still usable.
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `event`; waits only while the inbox is full.
    pub async fn push(&self, event: AuditEvent) {
        let mut event = Some(event);
        while !self.try_push(&mut event) {
            let taken = self.taken.notified();
            tokio::pin!(taken);
            // Listening before looking again, so that a take in between is not missed.
            taken.as_mut().enable();
            if self.try_push(&mut event) {
                return;
            }
            taken.await;
        }
    }

    /// Moves the event into the inbox when there is room (true), else leaves it.
    fn try_push(&self, event: &mut Option<AuditEvent>) -> bool {
        let mut events = self.events();
        if events.len() >= ROOM {
            drop(events);
            self.crowded.notify_one();
            return false;
        }
        let first = events.is_empty();
        events.extend(event.take());
        let crowded = events.len() == ROOM / 2;
        drop(events);
        if first {
            self.arrived.notify_one();
        }
        if crowded {
            self.crowded.notify_one();
        }
        true
    }

    /// Returns once something arrived since the last take (at once if it did meanwhile).
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// Returns once the list is half full (at once if it became so meanwhile).
    pub async fn crowded(&self) {
        self.crowded.notified().await;
    }

    /// Moves every waiting event to the end of `into`.
    pub fn take_into(&self, into: &mut Vec<AuditEvent>) {
        let mut events = self.events();
        if events.is_empty() {
            return;
        }
        into.append(&mut events);
        drop(events);
        self.taken.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    use super::*;

    fn ready(future: impl Future) -> bool {
        pin!(future)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }

    /// Many events between two takes wake the writer once, not once each.
    #[test]
    fn the_writer_is_woken_once_per_batch() {
        let inbox = AuditInbox::default();
        assert!(!ready(inbox.arrived()), "nothing arrived yet");
        for name in ["first", "second", "third"] {
            assert!(ready(inbox.push(AuditEvent::now(name))));
        }
        assert!(ready(inbox.arrived()), "the first event wakes the writer");
        assert!(!ready(inbox.arrived()), "the ones after it do not");

        let mut taken = Vec::new();
        inbox.take_into(&mut taken);
        let kinds: Vec<_> = taken.iter().map(|e| e.event.clone()).collect();
        assert_eq!(kinds, ["first", "second", "third"], "all of them, in order");
        assert!(ready(inbox.push(AuditEvent::now("fourth"))));
        assert!(ready(inbox.arrived()), "the next batch wakes it again");
    }

    /// Half full, the inbox asks to be taken at once, not at the lines' moment.
    #[test]
    fn a_half_full_inbox_asks_to_be_taken_now() {
        let inbox = AuditInbox::default();
        for _ in 0..ROOM / 2 - 1 {
            assert!(ready(inbox.push(AuditEvent::now("get"))));
        }
        assert!(!ready(inbox.crowded()), "not yet");
        assert!(ready(inbox.push(AuditEvent::now("get"))));
        assert!(ready(inbox.crowded()), "half full");
    }

    /// A full inbox holds the next request until the writer has taken the events; none
    /// is dropped.
    #[test]
    fn a_full_inbox_waits_for_the_writer_and_loses_nothing() {
        let inbox = AuditInbox::default();
        for _ in 0..ROOM {
            assert!(ready(inbox.push(AuditEvent::now("get"))));
        }
        let mut late = Box::pin(inbox.push(AuditEvent::now("late")));
        let mut poll = || {
            late.as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_ready()
        };
        assert!(!poll(), "no room: the request waits");
        let mut taken = Vec::new();
        inbox.take_into(&mut taken);
        assert!(poll(), "room again once the writer took them");
        inbox.take_into(&mut taken);
        assert_eq!(taken.len(), ROOM + 1);
        assert_eq!(taken.last().map(|e| e.event.as_str()), Some("late"));
    }
}
