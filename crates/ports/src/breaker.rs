//! A circuit breaker on an injected clock: CLOSED counts consecutive failures and opens
//! at the threshold; OPEN refuses calls until `open_seconds` passed; then HALF_OPEN lets
//! one trial call through — success closes, failure opens again. Every state change is
//! reported to an observer (the handler logs it and counts it as a metric).

use crate::clock::Clock;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused.
    Open,
    /// One trial call is allowed.
    HalfOpen,
}

impl BreakerState {
    /// `CLOSED`, `OPEN`, `HALF_OPEN`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "CLOSED",
            BreakerState::Open => "OPEN",
            BreakerState::HalfOpen => "HALF_OPEN",
        }
    }
}

/// A state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The breaker's name.
    pub name: String,
    /// Before.
    pub from: BreakerState,
    /// After.
    pub to: BreakerState,
    /// When.
    pub at: DateTime<Utc>,
}

/// What the breaker returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BreakerError<E> {
    /// The breaker is open: the call was not made.
    #[error("circuit {name} is open until {until}")]
    Open {
        /// The breaker.
        name: String,
        /// When a trial call will be allowed.
        until: DateTime<Utc>,
    },
    /// The call was made and failed.
    #[error(transparent)]
    Inner(E),
}

/// Receives state changes.
pub type Observer = Arc<dyn Fn(&Transition) + Send + Sync>;

struct Inner {
    state: BreakerState,
    failures: u32,
    opened_at: Option<DateTime<Utc>>,
    trial_in_flight: bool,
}

/// A circuit breaker (see the module docs).
#[derive(Clone)]
pub struct CircuitBreaker {
    name: String,
    failure_threshold: u32,
    open_seconds: i64,
    clock: Arc<dyn Clock>,
    inner: Arc<Mutex<Inner>>,
    observer: Option<Observer>,
}

impl CircuitBreaker {
    /// Opens after `failure_threshold` consecutive failures, for `open_seconds`.
    pub fn new(
        name: &str,
        failure_threshold: u32,
        open_seconds: i64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            failure_threshold: failure_threshold.max(1),
            open_seconds,
            clock,
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                opened_at: None,
                trial_in_flight: false,
            })),
            observer: None,
        }
    }

    /// Reports state changes to `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn change(&self, inner: &mut Inner, to: BreakerState, out: &mut Vec<Transition>) {
        if inner.state != to {
            out.push(Transition {
                name: self.name.clone(),
                from: inner.state,
                to,
                at: self.clock.now(),
            });
            inner.state = to;
        }
    }

    fn notify(&self, transitions: Vec<Transition>) {
        if let Some(o) = &self.observer {
            for t in &transitions {
                o(t);
            }
        }
    }

    /// The state now (an OPEN breaker whose time is up reads HALF_OPEN).
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        match (inner.state, inner.opened_at) {
            (BreakerState::Open, Some(at))
                if self.clock.now() >= at + chrono::Duration::seconds(self.open_seconds) =>
            {
                BreakerState::HalfOpen
            }
            (s, _) => s,
        }
    }

    fn admit(&self) -> Result<(), DateTime<Utc>> {
        let mut transitions = Vec::new();
        let result = {
            let mut inner = self.lock();
            match inner.state {
                BreakerState::Closed => Ok(()),
                BreakerState::Open => {
                    let until = inner.opened_at.unwrap_or_else(|| self.clock.now())
                        + chrono::Duration::seconds(self.open_seconds);
                    if self.clock.now() >= until {
                        self.change(&mut inner, BreakerState::HalfOpen, &mut transitions);
                        inner.trial_in_flight = true;
                        Ok(())
                    } else {
                        Err(until)
                    }
                }
                BreakerState::HalfOpen => {
                    if inner.trial_in_flight {
                        Err(self.clock.now())
                    } else {
                        inner.trial_in_flight = true;
                        Ok(())
                    }
                }
            }
        };
        self.notify(transitions);
        result
    }

    fn record(&self, success: bool) {
        let mut transitions = Vec::new();
        {
            let mut inner = self.lock();
            inner.trial_in_flight = false;
            if success {
                inner.failures = 0;
                self.change(&mut inner, BreakerState::Closed, &mut transitions);
            } else {
                inner.failures += 1;
                if inner.state == BreakerState::HalfOpen || inner.failures >= self.failure_threshold
                {
                    inner.opened_at = Some(self.clock.now());
                    self.change(&mut inner, BreakerState::Open, &mut transitions);
                }
            }
        }
        self.notify(transitions);
    }

    /// Runs `call` unless the breaker is open. `counts_as_failure` says which errors trip
    /// it (e.g. only transient ones: a validation error says nothing about the service).
    pub async fn call<T, E, Fut>(
        &self,
        call: impl FnOnce() -> Fut,
        counts_as_failure: impl Fn(&E) -> bool,
    ) -> Result<T, BreakerError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        if let Err(until) = self.admit() {
            return Err(BreakerError::Open {
                name: self.name.clone(),
                until,
            });
        }
        match call().await {
            Ok(v) => {
                self.record(true);
                Ok(v)
            }
            Err(e) => {
                // an error that says nothing about the service's health closes a trial
                self.record(!counts_as_failure(&e));
                Err(BreakerError::Inner(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn opens_half_opens_and_closes() {
        let clock = Arc::new(ManualClock::new(crate::fixtures::t0()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let b = CircuitBreaker::new("stepfunctions", 3, 30, clock.clone()).with_observer(Arc::new(
            move |t: &Transition| s2.lock().unwrap().push((t.from, t.to)),
        ));
        let fail = || async { Err::<(), &str>("503") };
        let ok = || async { Ok::<(), &str>(()) };
        for _ in 0..3 {
            assert!(matches!(
                b.call(fail, |_| true).await,
                Err(BreakerError::Inner(_))
            ));
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(
            matches!(b.call(ok, |_| true).await, Err(BreakerError::Open { .. })),
            "open refuses"
        );
        clock.advance(chrono::Duration::seconds(30));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // the trial fails: open again
        assert!(matches!(
            b.call(fail, |_| true).await,
            Err(BreakerError::Inner(_))
        ));
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(chrono::Duration::seconds(30));
        assert!(b.call(ok, |_| true).await.is_ok());
        assert_eq!(b.state(), BreakerState::Closed);
        use BreakerState::*;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (Closed, Open),
                (Open, HalfOpen),
                (HalfOpen, Open),
                (Open, HalfOpen),
                (HalfOpen, Closed)
            ]
        );
    }

    #[tokio::test]
    async fn non_counting_errors_do_not_trip() {
        let clock = Arc::new(ManualClock::new(crate::fixtures::t0()));
        let b = CircuitBreaker::new("x", 2, 30, clock);
        for _ in 0..5 {
            let _ = b
                .call(
                    || async { Err::<(), &str>("ExecutionDoesNotExist") },
                    |_| false,
                )
                .await;
        }
        assert_eq!(b.state(), BreakerState::Closed);
        // a success resets the count
        let _ = b.call(|| async { Err::<(), &str>("503") }, |_| true).await;
        let _ = b.call(|| async { Ok::<(), &str>(()) }, |_| true).await;
        let _ = b.call(|| async { Err::<(), &str>("503") }, |_| true).await;
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
