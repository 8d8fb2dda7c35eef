//! Giving memory back after a burst. glibc's allocator keeps freed memory for reuse, so a
//! daemon that just answered thousands of requests stays as large as at the burst's peak.
//! Once requests have stopped for a moment, `malloc_trim` returns the free pages to the
//! system, and the idle daemon is small again. Elsewhere this does nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long without a new connection counts as idle.
const QUIET: Duration = Duration::from_secs(2);

/// Counts connections, so that [`trim_when_idle`] can tell a quiet daemon.
#[derive(Default)]
pub struct Activity(AtomicU64);

impl Activity {
    /// Counts one connection; called for each accepted one.
    pub fn seen(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs forever: after each burst of connections, once they have stopped for [`QUIET`],
/// gives the allocator's free memory back.
pub async fn trim_when_idle(activity: Arc<Activity>) {
    let mut trimmed_at = activity.count();
    let mut last = trimmed_at;
    loop {
        tokio::time::sleep(QUIET).await;
        let now = activity.count();
        if now == last && now != trimmed_at {
            crate::os::trim_memory();
            trimmed_at = now;
        }
        last = now;
    }
}
