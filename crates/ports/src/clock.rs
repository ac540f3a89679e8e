//! Time and ids, injected: handlers never read the wall clock for business decisions.

use chrono::{DateTime, Duration, Utc};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// A short wait of real time in an async handler, given by the host's runtime (a tokio
/// timer in Lambda and in the local runtime). Used where a handler waits for a concurrent
/// invocation to finish (see `Idempotency::run`); never for business time, which comes
/// from the [`Clock`].
pub trait Pause: Send + Sync {
    /// Waits about `d`.
    fn pause(
        &self,
        d: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// A [`Pause`] that does not wait (hosts without a timer, tests): whoever waits for a
/// concurrent invocation then only looks again a few times at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPause;

impl Pause for NoPause {
    fn pause(
        &self,
        _d: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// The system clock (the only place that reads it).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told (tests, `--clock virtual`).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A source of new unique ids.
pub trait IdGenerator: Send + Sync {
    /// A new id, `prefix` followed by characters valid in every id of the domain
    /// (`A-Z a-z 0-9`), e.g. `evt_` + 24 characters.
    fn new_id(&self, prefix: &str) -> String;
}

/// Random ids (128 bits from the process's random hasher keys and a counter).
#[derive(Debug)]
pub struct RandomIds {
    state: RandomState,
    counter: AtomicU64,
}

impl Default for RandomIds {
    fn default() -> Self {
        Self {
            state: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }
}

impl IdGenerator for RandomIds {
    fn new_id(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut a = self.state.build_hasher();
        a.write_u64(n);
        a.write_u8(1);
        let mut b = self.state.build_hasher();
        b.write_u64(n);
        b.write_u8(2);
        format!("{prefix}{:016x}{:016x}", a.finish(), b.finish())
    }
}

/// Deterministic ids `prefix` + zero-padded counter (tests).
#[derive(Debug, Default)]
pub struct SequentialIds {
    counter: AtomicU64,
}

impl IdGenerator for SequentialIds {
    fn new_id(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{prefix}{n:08}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(Duration::hours(24));
        assert_eq!(c.now(), t0 + Duration::days(1));
        c.set(t0);
        assert_eq!(c.now(), t0);
    }

    #[test]
    fn ids_are_unique_and_prefixed() {
        let r = RandomIds::default();
        let a = r.new_id("evt_");
        let b = r.new_id("evt_");
        assert_ne!(a, b);
        assert!(a.starts_with("evt_") && a.len() == 36);
        let s = SequentialIds::default();
        assert_eq!(s.new_id("pi_"), "pi_00000001");
        assert_eq!(s.new_id("pi_"), "pi_00000002");
    }
}
