//! The store's own queue: every write to the store of record, and the reads that must come
//! after the writes before them (the plain-credential table, an unlock), run here one at a
//! time and in order, without a deadline of their own. A keyring may wait for a person (an
//! unlock dialog, a Keychain prompt) and a disk may hang: the call must be let finish, or
//! the write would be lost, but nobody else may wait behind it. So the writer task hands
//! its store calls to this queue and goes on; who asked waits for the outcome only as long
//! as it chooses ([`super::store_slot::StoreWaits`]).
//!
//! The queue is bounded: when it is full a new write is refused at once with a clear
//! error, and reads from memory go on. What is queued is described in words (never a
//! secret) for `helperctl status` and for `helperctl daemon stop`, which can only drop it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Job {
    id: u64,
    work: Work,
}

/// One queued or running store call, as `status` shows it.
struct Entry {
    id: u64,
    what: String,
    /// When it started running; `None` while it waits its turn.
    started: Option<Instant>,
}

#[derive(Default)]
struct Ledger {
    next_id: u64,
    entries: VecDeque<Entry>,
    /// `settle` gave up on the calls still here: a second stop does not wait again.
    gave_up: bool,
}

/// What waits for the store, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// Queued and running store calls, oldest first, in words.
    pub what: Vec<String>,
    /// How long the running call has been running.
    pub running_for: Option<Duration>,
}

/// The queue is full: the write was refused, nothing was changed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{waiting} writes already wait for the secret store, which has not answered for {secs} s (an unlock dialog?); this one was refused and nothing was changed. `helperctl status` shows what waits")]
pub struct QueueFull {
    /// How many calls wait.
    pub waiting: usize,
    /// How long the running call has been running, in seconds.
    pub secs: u64,
}

/// The handle the writer task queues store calls with.
#[derive(Clone)]
pub struct StoreQueue {
    tx: mpsc::Sender<Job>,
    ledger: Arc<Mutex<Ledger>>,
    /// Told each time a call finishes (how many are left): `settle` waits on it.
    count: watch::Receiver<usize>,
}

impl StoreQueue {
    /// Starts the queue's task (inside a tokio runtime): `capacity` calls may wait while
    /// one runs. The task ends when every handle is gone, after the calls already queued.
    pub fn start(capacity: usize) -> StoreQueue {
        let (tx, mut rx) = mpsc::channel::<Job>(capacity.max(1));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let (count_tx, count) = watch::channel(0usize);
        let queue = StoreQueue {
            tx,
            ledger: ledger.clone(),
            count,
        };
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                if let Some(e) = lock(&ledger).entries.iter_mut().find(|e| e.id == job.id) {
                    e.started = Some(Instant::now());
                }
                // A task of its own, so that a panic in a call is that call's failure only.
                if let Err(e) = tokio::spawn(job.work).await {
                    tracing::error!(error = %e, "a store call failed");
                }
                let left = {
                    let mut ledger = lock(&ledger);
                    ledger.entries.retain(|e| e.id != job.id);
                    ledger.entries.len()
                };
                let _ = count_tx.send(left);
            }
        });
        queue
    }

    /// Queues `work` (a store call and what follows from its outcome), described by
    /// `what` (no secret); refused at once when the queue is full.
    pub fn push(
        &self,
        what: impl Into<String>,
        work: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), QueueFull> {
        let mut ledger = lock(&self.ledger);
        let id = ledger.next_id;
        ledger.next_id += 1;
        let job = Job {
            id,
            work: Box::pin(work),
        };
        match self.tx.try_send(job) {
            Ok(()) => {
                ledger.entries.push_back(Entry {
                    id,
                    what: what.into(),
                    started: None,
                });
                ledger.gave_up = false;
                Ok(())
            }
            Err(_) => Err(QueueFull {
                waiting: ledger.entries.len(),
                secs: running_for(&ledger).map_or(0, |d| d.as_secs()),
            }),
        }
    }

    /// Whether one more call fits now; when it does not, the error a refused write gets.
    pub fn room(&self) -> Result<(), QueueFull> {
        if self.tx.capacity() > 0 {
            return Ok(());
        }
        let ledger = lock(&self.ledger);
        Err(QueueFull {
            waiting: ledger.entries.len(),
            secs: running_for(&ledger).map_or(0, |d| d.as_secs()),
        })
    }

    /// What waits for the store now.
    pub fn pending(&self) -> Pending {
        let ledger = lock(&self.ledger);
        Pending {
            what: ledger.entries.iter().map(|e| e.what.clone()).collect(),
            running_for: running_for(&ledger),
        }
    }

    /// Waits at most `limit` for every queued call to finish; returns what is still
    /// queued then (the daemon stops without it). A second call after one gave up returns
    /// at once.
    pub async fn settle(&self, limit: Duration) -> Vec<String> {
        if lock(&self.ledger).gave_up {
            return self.pending().what;
        }
        let mut count = self.count.clone();
        let idle = async {
            while !lock(&self.ledger).entries.is_empty() {
                if count.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(limit, idle).await;
        let mut ledger = lock(&self.ledger);
        if !ledger.entries.is_empty() {
            ledger.gave_up = true;
        }
        ledger.entries.iter().map(|e| e.what.clone()).collect()
    }
}

fn running_for(ledger: &Ledger) -> Option<Duration> {
    ledger
        .entries
        .iter()
        .find_map(|e| e.started)
        .map(|t| t.elapsed())
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    /// A call that runs until the test lets it go, like a keyring waiting for a person.
    fn held() -> (
        oneshot::Sender<()>,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let (go, wait) = oneshot::channel::<()>();
        (go, async move {
            let _ = wait.await;
        })
    }

    #[tokio::test]
    async fn calls_run_in_order_and_the_queue_empties() {
        let queue = StoreQueue::start(8);
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..5 {
            let order = order.clone();
            queue
                .push(format!("call {i}"), async move {
                    order.lock().unwrap().push(i);
                })
                .unwrap();
        }
        assert!(queue.settle(Duration::from_secs(5)).await.is_empty());
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(queue.pending(), Pending::default());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_frees_up_when_the_store_answers() {
        let queue = StoreQueue::start(2);
        let (go, stuck) = held();
        queue.push("stuck write", stuck).unwrap();
        // The worker takes the stuck call out of the channel: two more fit behind it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.push("second", async {}).unwrap();
        queue.push("third", async {}).unwrap();
        let full = queue.push("fourth", async {}).unwrap_err();
        assert_eq!(full.waiting, 3);
        assert!(full.to_string().contains("refused and nothing was changed"));
        let pending = queue.pending();
        assert_eq!(pending.what, vec!["stuck write", "second", "third"]);
        assert!(pending.running_for.is_some());
        go.send(()).unwrap();
        assert!(queue.settle(Duration::from_secs(5)).await.is_empty());
        queue.push("after", async {}).unwrap();
    }

    #[tokio::test]
    async fn settle_gives_up_after_its_limit_and_says_what_it_drops() {
        let queue = StoreQueue::start(4);
        let (_go, stuck) = held();
        queue.push("plain credentials (git store)", stuck).unwrap();
        let dropped = queue.settle(Duration::from_millis(50)).await;
        assert_eq!(dropped, vec!["plain credentials (git store)"]);
        // A second stop does not wait again.
        let again = tokio::time::timeout(
            Duration::from_millis(20),
            queue.settle(Duration::from_secs(60)),
        )
        .await
        .expect("returns at once");
        assert_eq!(again, dropped);
    }

    #[tokio::test]
    async fn a_call_that_panics_fails_alone() {
        let queue = StoreQueue::start(4);
        queue.push("panics", async { panic!("boom") }).unwrap();
        let (tx, rx) = oneshot::channel();
        queue
            .push("next", async move {
                let _ = tx.send(());
            })
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("the next call runs")
            .unwrap();
    }
}
