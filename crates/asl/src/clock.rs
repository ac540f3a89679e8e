//! Time for executions: a trait, a virtual clock for tests and fast runs, and the system clock.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// The source of time of an execution.
pub trait Clock {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// The current time in microseconds since the Unix epoch (cheap to compare).
    fn now_micros(&self) -> i64 {
        self.now().timestamp_micros()
    }
    /// Waits until `t`. Returns `true` when `t` has been reached, `false` when the caller
    /// should pause the execution and resume it later (a host that persists executions).
    fn wait_until(&self, t: DateTime<Utc>) -> bool;
}

/// A clock that only moves when something waits: a 7-day Wait finishes instantly.
#[derive(Debug)]
pub struct VirtualClock {
    micros: AtomicI64,
}

impl VirtualClock {
    /// A virtual clock starting at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        VirtualClock {
            micros: AtomicI64::new(start.timestamp_micros()),
        }
    }
    /// A virtual clock starting at 2024-01-01T00:00:00Z.
    pub fn at_epoch_2024() -> Self {
        Self::new(
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        )
    }
    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: f64) {
        self.micros
            .fetch_add((seconds * 1_000_000.0) as i64, Ordering::Relaxed);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::Relaxed)).unwrap_or_default()
    }
    fn now_micros(&self) -> i64 {
        self.micros.load(Ordering::Relaxed)
    }
    fn wait_until(&self, t: DateTime<Utc>) -> bool {
        self.micros
            .fetch_max(t.timestamp_micros(), Ordering::Relaxed);
        true
    }
}

/// The machine's wall clock; `wait_until` sleeps the calling thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn wait_until(&self, t: DateTime<Utc>) -> bool {
        let now = Utc::now();
        if t > now {
            if let Ok(d) = (t - now).to_std() {
                std::thread::sleep(d);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_jumps() {
        let c = VirtualClock::at_epoch_2024();
        let start = c.now();
        assert!(c.wait_until(start + chrono::Duration::days(7)));
        assert_eq!(c.now() - start, chrono::Duration::days(7));
        // never goes backwards
        c.wait_until(start);
        assert_eq!(c.now() - start, chrono::Duration::days(7));
    }
}
