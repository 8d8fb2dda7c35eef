//! The daemon's clock. Every decision takes `now` from here (DESIGN.md §9: time is an
//! argument), so that tests can move time forward instead of waiting for an expiry.
//!
//! Moving the clock is possible only in a daemon started with `HELPERD_TEST_CLOCK=1`
//! (tests); in any other daemon the request is refused. Time never moves backwards.

use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that lets `helperctl debug advance-clock` move this daemon's
/// clock.
pub const TEST_CLOCK_ENV: &str = "HELPERD_TEST_CLOCK";

/// Unix seconds as the daemon sees them: the system clock plus a test-only offset.
#[derive(Debug, Default)]
pub struct Clock {
    /// Seconds added to the system clock.
    offset: AtomicU64,
    adjustable: bool,
}

impl Clock {
    /// The system clock; adjustable when `HELPERD_TEST_CLOCK=1`.
    pub fn from_env() -> Clock {
        Clock {
            offset: AtomicU64::new(0),
            adjustable: std::env::var(TEST_CLOCK_ENV).is_ok_and(|v| v == "1"),
        }
    }

    /// Unix seconds, as the daemon sees them.
    pub fn now(&self) -> u64 {
        crate::timefmt::unix_now().saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `secs`; `Err` in a daemon not started for tests.
    pub fn advance(&self, secs: u64) -> Result<u64, &'static str> {
        if !self.adjustable {
            return Err("this daemon's clock cannot be moved (it was not started with HELPERD_TEST_CLOCK=1)");
        }
        self.offset.fetch_add(secs, Ordering::Relaxed);
        Ok(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_test_clock_moves_and_it_moves_forward() {
        let fixed = Clock::default();
        assert!(fixed.advance(10).is_err());
        let test = Clock {
            offset: AtomicU64::new(0),
            adjustable: true,
        };
        let before = test.now();
        let after = test.advance(3600).unwrap();
        assert!(after >= before + 3600);
    }
}
