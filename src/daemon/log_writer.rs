//! Where the daemon's log lines go: stderr (the log file of a detached daemon), and never
//! a reason to stop. A line that cannot be written (a full disk) is dropped and counted;
//! `status` shows the count. Serving git needs no disk space, so it goes on.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Log lines dropped since start because they could not be written.
static LOST: AtomicU64 = AtomicU64::new(0);

/// How many log lines could not be written since start.
pub fn lines_lost() -> u64 {
    LOST.load(Ordering::Relaxed)
}

/// stderr, failures counted instead of reported.
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if io::stderr().write_all(buf).is_err() {
            LOST.fetch_add(1, Ordering::Relaxed);
        }
        // Claimed written either way: the logging layer must have nothing to report (its
        // report would go to the same full disk).
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// For `tracing_subscriber`'s `with_writer`.
pub fn make() -> LossyStderr {
    LossyStderr
}
