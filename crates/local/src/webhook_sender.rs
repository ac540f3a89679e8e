//! The sender of the simulated Stripe's webhook events, retrying as Stripe does.
//!
//! Stripe delivers each event at once and, when the endpoint fails, retries it with
//! exponential backoff for up to three days; a failing event never holds back later
//! ones. [`run`] does the same over a channel of events:
//!
//! * events left unacknowledged before the start go first, then new events as they come;
//! * a failed event joins a [`RetrySet`] with its attempt count and next-attempt time, and
//!   is retried after 1 s, 2 s, 4 s … (at most 1 h, with jitter) while later events go
//!   out at once;
//! * after three days of attempts, measured on the runtime clock (which may be virtual),
//!   the sender gives up on the event with an ERROR log line. The event stays
//!   unacknowledged in the store, so the next start sends it again.
//!
//! The pauses between attempts are real time ([`Instant`]): the sender must not depend on
//! someone advancing a virtual clock. Only the give-up age is runtime-clock time.

use crate::functions::InvokeError;
use crate::util::{self, Level};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The pause after the first failed attempt (before jitter); it doubles per failure.
    pub first_delay: Duration,
    /// The longest pause between two attempts (before jitter).
    pub max_delay: Duration,
    /// How long (runtime-clock time since the first attempt) an event is retried.
    pub give_up_after: TimeDelta,
}

impl Default for RetryPolicy {
    /// Stripe's shape: 1 s, 2 s, 4 s … at most 1 h between attempts, for 3 days.
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
            give_up_after: TimeDelta::days(3),
        }
    }
}

impl RetryPolicy {
    /// The pause before the retry that follows `failures` failed attempts, before jitter:
    /// `first_delay × 2^(failures − 1)`, at most `max_delay`.
    pub fn base_delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        self.first_delay
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The pause before the retry that follows `failures` failed attempts: the
    /// [base delay](Self::base_delay) scaled by a jitter factor in [50 %, 100 %] taken
    /// from `random` (any value; a uniform one gives a uniform pause in that range).
    pub fn backoff(&self, failures: u32, random: u64) -> Duration {
        let base = u64::try_from(self.base_delay(failures).as_nanos()).unwrap_or(u64::MAX);
        let half = base / 2;
        let span = base - half;
        let jitter = match span.checked_add(1) {
            Some(n) => random % n,
            None => random,
        };
        Duration::from_nanos(half + jitter)
    }

    /// Does the sender give up on an event first attempted at `first_attempt` whose
    /// attempt at `attempted_at` (both runtime-clock times) failed?
    pub fn gives_up(&self, first_attempt: DateTime<Utc>, attempted_at: DateTime<Utc>) -> bool {
        attempted_at.signed_duration_since(first_attempt) >= self.give_up_after
    }
}

/// What became of an event whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It is retried after `delay`.
    Retry {
        /// Failed attempts so far.
        attempts: u32,
        /// The pause before the next attempt.
        delay: Duration,
    },
    /// It was tried for the policy's whole period: the sender gives up on it.
    GiveUp {
        /// Failed attempts in all.
        attempts: u32,
        /// Runtime-clock time from the first to the last attempt.
        age: TimeDelta,
    },
}

/// An event due for another attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The event id (`evt_...`).
    pub id: String,
    /// The event, serialized.
    pub body: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

#[derive(Debug)]
struct Entry {
    body: String,
    attempts: u32,
    first_attempt: DateTime<Utc>,
    due: Instant,
    seq: u64,
}

/// The events whose delivery failed, each with its failed attempts, the runtime-clock
/// time of its first attempt and the (real) time of its next attempt. Pure bookkeeping:
/// every method takes the times it needs.
#[derive(Debug)]
pub struct RetrySet {
    policy: RetryPolicy,
    entries: HashMap<String, Entry>,
    /// (next attempt, order of first failure, id): the schedule, earliest first.
    schedule: BTreeSet<(Instant, u64, String)>,
    seq: u64,
}

impl RetrySet {
    /// An empty set retrying under `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        RetrySet {
            policy,
            entries: HashMap::new(),
            schedule: BTreeSet::new(),
            seq: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// How many events wait for a retry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Does no event wait for a retry?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Does event `id` wait for a retry?
    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// The failed attempts of event `id`, if it waits for a retry.
    pub fn attempts(&self, id: &str) -> Option<u32> {
        self.entries.get(id).map(|e| e.attempts)
    }

    /// Records that the attempt of event `id` (serialized as `body`) started at
    /// runtime-clock time `attempted_at` failed, at real time `now`. The event is
    /// scheduled again after a [backoff](RetryPolicy::backoff) drawn with `random`, or
    /// dropped from the set when it has been tried for the policy's whole period.
    pub fn failed(
        &mut self,
        id: &str,
        body: &str,
        attempted_at: DateTime<Utc>,
        now: Instant,
        random: u64,
    ) -> Failure {
        let (attempts, first_attempt, seq) = match self.entries.remove(id) {
            Some(e) => {
                self.schedule.remove(&(e.due, e.seq, id.to_owned()));
                (e.attempts.saturating_add(1), e.first_attempt, e.seq)
            }
            None => {
                self.seq += 1;
                (1, attempted_at, self.seq)
            }
        };
        if self.policy.gives_up(first_attempt, attempted_at) {
            return Failure::GiveUp {
                attempts,
                age: attempted_at.signed_duration_since(first_attempt),
            };
        }
        let delay = self.policy.backoff(attempts, random);
        // An Instant this far ahead cannot overflow in practice; if it did, retry at once.
        let due = now.checked_add(delay).unwrap_or(now);
        self.schedule.insert((due, seq, id.to_owned()));
        self.entries.insert(
            id.to_owned(),
            Entry {
                body: body.to_owned(),
                attempts,
                first_attempt,
                due,
                seq,
            },
        );
        Failure::Retry { attempts, delay }
    }

    /// Records that event `id` was delivered; its failed attempts before, if it was in
    /// the set.
    pub fn delivered(&mut self, id: &str) -> Option<u32> {
        let e = self.entries.remove(id)?;
        self.schedule.remove(&(e.due, e.seq, id.to_owned()));
        Some(e.attempts)
    }

    /// The events due at `now`, earliest due first (equal times: in the order they first
    /// failed). They stay in the set until [`delivered`](Self::delivered) or
    /// [`failed`](Self::failed) is recorded.
    pub fn due(&self, now: Instant) -> Vec<Due> {
        self.schedule
            .iter()
            .take_while(|(due, _, _)| *due <= now)
            .filter_map(|(_, _, id)| {
                self.entries.get(id).map(|e| Due {
                    id: id.clone(),
                    body: e.body.clone(),
                    attempts: e.attempts,
                })
            })
            .collect()
    }

    /// How long from `now` until the earliest retry is due (zero when one is overdue);
    /// `None` when no event waits.
    pub fn next_wake(&self, now: Instant) -> Option<Duration> {
        self.schedule
            .first()
            .map(|(due, _, _)| due.saturating_duration_since(now))
    }
}

/// How many new events the sender takes from the channel before it looks at due retries
/// again (so a flood of new events cannot starve them).
const BATCH: usize = 256;

/// The event id of a webhook event.
fn event_id(event: &Value) -> Option<&str> {
    event.get("id").and_then(Value::as_str)
}

/// How long the sender waits at most before it looks at `stop` again.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Delivers webhook events until `stop` is set, or the channel is closed and no retry is
/// left (events not delivered by then stay unacknowledged in the simulator and go out
/// again at the next start): first
/// `pending` (unacknowledged before the start), then each event received on `events`, at
/// once. `deliver(id, body)` makes one attempt (and records the acknowledgement when it
/// succeeds); `clock` is the runtime clock, used only for the give-up age. Failures are
/// retried under `policy`; every failure is logged with the event id and attempt, and
/// giving up is logged as an ERROR.
pub fn run(
    pending: Vec<Value>,
    events: Receiver<Value>,
    stop: &AtomicBool,
    policy: RetryPolicy,
    clock: impl Fn() -> DateTime<Utc>,
    deliver: impl FnMut(&str, &str) -> Result<(), InvokeError>,
) {
    let mut sender = Sender {
        set: RetrySet::new(policy),
        started_with: HashSet::new(),
        clock,
        deliver,
    };
    for event in &pending {
        if stop.load(Ordering::Acquire) {
            return;
        }
        match event_id(event) {
            Some(id) => {
                sender.started_with.insert(id.to_owned());
                sender.attempt(id, &event.to_string());
            }
            None => log_without_id(event),
        }
    }
    drop(pending);
    let mut open = true;
    loop {
        if stop.load(Ordering::Acquire) {
            return;
        }
        if open {
            for _ in 0..BATCH {
                match events.try_recv() {
                    Ok(event) => sender.new_event(event),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
        }
        for d in sender.set.due(Instant::now()) {
            sender.attempt(&d.id, &d.body);
        }
        let wake = sender.set.next_wake(Instant::now());
        if open {
            let w = wake.map_or(STOP_CHECK, |w| w.min(STOP_CHECK));
            match events.recv_timeout(w) {
                Ok(event) => sender.new_event(event),
                Err(e) => open = e != RecvTimeoutError::Disconnected,
            }
        } else {
            match wake {
                Some(w) => std::thread::sleep(w.min(STOP_CHECK)),
                None => return,
            }
        }
    }
}

/// The state of [`run`].
struct Sender<C, D> {
    set: RetrySet,
    /// Ids of the events pending at the start: one emitted while the pending list was
    /// read arrives on the channel too, and is not sent twice.
    started_with: HashSet<String>,
    clock: C,
    deliver: D,
}

impl<C, D> Sender<C, D>
where
    C: Fn() -> DateTime<Utc>,
    D: FnMut(&str, &str) -> Result<(), InvokeError>,
{
    /// One attempt of event `id`, recorded in the retry set.
    fn attempt(&mut self, id: &str, body: &str) {
        let at = (self.clock)();
        match (self.deliver)(id, body) {
            Ok(()) => {
                if let Some(failures) = self.set.delivered(id) {
                    util::log(
                        Level::Info,
                        &format!(
                            "webhook {id} delivered at attempt {} after {failures} failed attempt(s)",
                            failures.saturating_add(1)
                        ),
                        None,
                        &[("stripeEvent", json!(id))],
                    );
                }
            }
            Err(e) => {
                let outcome = self
                    .set
                    .failed(id, body, at, Instant::now(), util::fast_u64());
                log_failure(id, &e, outcome);
            }
        }
    }

    /// An event from the channel: sent at once, unless it is already on its way.
    fn new_event(&mut self, event: Value) {
        match event_id(&event) {
            Some(id) if self.started_with.remove(id) || self.set.contains(id) => {}
            Some(id) => self.attempt(id, &event.to_string()),
            None => log_without_id(&event),
        }
    }
}

fn log_failure(id: &str, e: &InvokeError, outcome: Failure) {
    match outcome {
        Failure::Retry { attempts, delay } => util::log(
            Level::Warn,
            &format!(
                "webhook {id} delivery failed (attempt {attempts}): {e}; retrying in {} ms",
                delay.as_millis()
            ),
            None,
            &[
                ("stripeEvent", json!(id)),
                ("attempt", json!(attempts)),
                ("retryInMs", json!(delay.as_millis() as u64)),
            ],
        ),
        Failure::GiveUp { attempts, age } => util::log(
            Level::Error,
            &format!(
                "webhook {id} delivery failed (attempt {attempts}): {e}; giving up after \
                 {attempts} attempts over {} s of runtime-clock time. The event stays \
                 unacknowledged in the store and is sent again at the next start",
                age.num_seconds()
            ),
            None,
            &[
                ("stripeEvent", json!(id)),
                ("attempt", json!(attempts)),
                ("ageSeconds", json!(age.num_seconds())),
            ],
        ),
    }
}

fn log_without_id(event: &Value) {
    util::log(
        Level::Error,
        "webhook event without an id (string field `id`) cannot be delivered or acknowledged; dropped",
        None,
        &[("stripeEvent", event.clone())],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::mpsc::channel;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn fast(first_ms: u64) -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_millis(first_ms),
            max_delay: Duration::from_millis(first_ms * 4),
            give_up_after: TimeDelta::days(3),
        }
    }

    /// The `random` that draws the longest pause for `base`.
    fn longest(base: Duration) -> u64 {
        let n = base.as_nanos() as u64;
        n - n / 2
    }

    #[test]
    fn backoff_doubles_from_one_second_and_is_capped_at_one_hour() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=14).map(|n| p.base_delay(n).as_secs()).collect();
        assert_eq!(
            secs,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
        );
        assert_eq!(p.base_delay(0), Duration::from_secs(1));
        assert_eq!(p.base_delay(u32::MAX), Duration::from_secs(3600));
        for n in 1..60 {
            assert!(p.backoff(n + 1, 0) >= p.backoff(n, 0), "grows at {n}");
            let b = p.base_delay(n);
            assert!(p.backoff(n + 1, longest(p.base_delay(n + 1))) >= p.backoff(n, longest(b)));
            assert!(p.backoff(n, u64::MAX) <= Duration::from_secs(3600));
        }
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_base_delay() {
        let p = RetryPolicy::default();
        for n in [1, 2, 5, 12, 13, 40] {
            let base = p.base_delay(n);
            assert_eq!(p.backoff(n, 0), base / 2, "shortest at {n}");
            assert_eq!(p.backoff(n, longest(base)), base, "longest at {n}");
            for _ in 0..1000 {
                let d = p.backoff(n, util::fast_u64());
                assert!(
                    d >= base / 2 && d <= base,
                    "{d:?} outside [{:?}, {base:?}]",
                    base / 2
                );
            }
        }
        // A policy whose pauses do not fit in u64 nanoseconds still stays in bounds.
        let huge = RetryPolicy {
            first_delay: Duration::from_secs(u64::MAX / 4),
            max_delay: Duration::from_secs(u64::MAX),
            give_up_after: TimeDelta::days(3),
        };
        let d = huge.backoff(3, u64::MAX);
        assert!(d >= Duration::from_nanos(u64::MAX / 2));
    }

    #[test]
    fn due_events_come_earliest_first_and_wake_up_is_the_earliest_retry() {
        let mut s = RetrySet::new(RetryPolicy::default());
        let now = Instant::now();
        assert_eq!(s.next_wake(now), None);
        let one = Duration::from_secs(1);
        // a: 1 s (longest jitter), b: 0.5 s (shortest), c: 1 s, failed after a.
        assert!(matches!(
            s.failed("a", "A", t0(), now, longest(one)),
            Failure::Retry { attempts: 1, delay } if delay == one
        ));
        s.failed("b", "B", t0(), now, 0);
        s.failed("c", "C", t0(), now, longest(one));
        assert_eq!(s.len(), 3);
        assert_eq!(s.next_wake(now), Some(Duration::from_millis(500)));
        assert!(s.due(now + Duration::from_millis(499)).is_empty());
        let ids = |d: Vec<Due>| d.into_iter().map(|d| d.id).collect::<Vec<_>>();
        assert_eq!(ids(s.due(now + Duration::from_millis(500))), ["b"]);
        assert_eq!(ids(s.due(now + one)), ["b", "a", "c"]);
        assert_eq!(
            s.next_wake(now + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        // b fails again: 1-2 s later, after a and c.
        let later = now + one;
        assert!(matches!(
            s.failed("b", "B", t0(), later, 0),
            Failure::Retry { attempts: 2, delay } if delay == one
        ));
        assert_eq!(s.attempts("b"), Some(2));
        assert_eq!(ids(s.due(later)), ["a", "c"]);
        assert_eq!(s.due(later)[0].body, "A");
        assert_eq!(s.delivered("a"), Some(1));
        assert_eq!(s.delivered("a"), None);
        assert_eq!(ids(s.due(later + one)), ["c", "b"]);
        assert_eq!(s.next_wake(later), Some(Duration::ZERO));
        assert_eq!(s.delivered("c"), Some(1));
        assert_eq!(s.next_wake(later), Some(one));
    }

    #[test]
    fn gives_up_after_three_days_of_runtime_clock_time() {
        let p = RetryPolicy::default();
        let mut s = RetrySet::new(p);
        let now = Instant::now();
        // Hourly failures (the clock may be virtual: any gap counts, not real time).
        for h in 0..72 {
            let at = t0() + TimeDelta::hours(h) - TimeDelta::seconds(i64::from(h == 71));
            match s.failed("evt", "{}", at, now, 0) {
                Failure::Retry { attempts, .. } => assert_eq!(i64::from(attempts), h + 1),
                other => panic!("gave up too early at hour {h}: {other:?}"),
            }
        }
        assert_eq!(
            s.failed("evt", "{}", t0() + TimeDelta::days(3), now, 0),
            Failure::GiveUp {
                attempts: 73,
                age: TimeDelta::days(3)
            }
        );
        assert!(!s.contains("evt") && s.is_empty());
        assert_eq!(s.next_wake(now), None);
        // A virtual clock moved four days ahead: the next failure gives up at once.
        s.failed("v", "{}", t0(), now, 0);
        assert!(matches!(
            s.failed("v", "{}", t0() + TimeDelta::days(4), now, 0),
            Failure::GiveUp { attempts: 2, .. }
        ));
        assert!(p.gives_up(t0(), t0() + TimeDelta::days(3)));
        assert!(!p.gives_up(t0(), t0() + TimeDelta::days(3) - TimeDelta::seconds(1)));
    }

    #[test]
    fn a_failing_event_does_not_delay_a_later_one_in_the_set() {
        let mut s = RetrySet::new(RetryPolicy::default());
        let now = Instant::now();
        s.failed("evt_a", "A", t0(), now, 0);
        // A later event that fails is scheduled from its own first failure, and one that
        // never failed is not in the set at all: nothing is due before a's retry.
        assert!(!s.contains("evt_b"));
        assert!(s.due(now).is_empty());
        let later = now + Duration::from_millis(100);
        s.failed("evt_c", "C", t0(), later, 0);
        assert_eq!(s.next_wake(now), Some(Duration::from_millis(500)));
        let due = s.due(later + Duration::from_millis(500));
        assert_eq!(
            due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["evt_a", "evt_c"]
        );
    }

    fn ev(id: &str) -> Value {
        json!({"id": id, "type": "account.updated"})
    }

    #[test]
    fn the_sender_delivers_later_events_while_one_is_failing() {
        let (tx, rx) = channel();
        for id in ["evt_a", "evt_b", "evt_c"] {
            tx.send(ev(id)).expect("send");
        }
        drop(tx);
        let mut log: Vec<(String, bool)> = Vec::new();
        let mut a_failures = 0;
        run(
            Vec::new(),
            rx,
            &AtomicBool::new(false),
            fast(1),
            t0,
            |id, body| {
                let v: Value = serde_json::from_str(body).expect("body is the event");
                assert_eq!(v["id"], json!(id));
                let ok = id != "evt_a" || a_failures == 3;
                if !ok {
                    a_failures += 1;
                }
                log.push((id.to_owned(), ok));
                if ok {
                    Ok(())
                } else {
                    Err(InvokeError::new("Marketplace.TransientError", "down"))
                }
            },
        );
        let expected: Vec<(String, bool)> = [
            ("evt_a", false),
            ("evt_b", true),
            ("evt_c", true),
            ("evt_a", false),
            ("evt_a", false),
            ("evt_a", true),
        ]
        .iter()
        .map(|(i, ok)| (i.to_string(), *ok))
        .collect();
        assert_eq!(log, expected);
    }

    #[test]
    fn the_sender_sends_pending_events_first_and_gives_up_after_three_days() {
        let (tx, rx) = channel();
        // evt_p2 was pending at the start and also emitted on the channel: sent once.
        for id in ["evt_n", "evt_p2"] {
            tx.send(ev(id)).expect("send");
        }
        drop(tx);
        let day = AtomicI64::new(0);
        let mut log: Vec<String> = Vec::new();
        run(
            vec![ev("evt_p1"), ev("evt_p2")],
            rx,
            &AtomicBool::new(false),
            fast(1),
            || t0() + TimeDelta::days(day.load(Ordering::SeqCst)),
            |id, _| {
                log.push(id.to_owned());
                if id == "evt_n" {
                    // Each attempt of the failing event happens a virtual day later.
                    day.fetch_add(1, Ordering::SeqCst);
                    return Err(InvokeError::new("Lambda.Unknown", "endpoint down"));
                }
                Ok(())
            },
        );
        // evt_n: attempts on days 0, 1, 2, 3; the fourth is three days after the first.
        assert_eq!(
            log,
            ["evt_p1", "evt_p2", "evt_n", "evt_n", "evt_n", "evt_n"]
        );
    }

    #[test]
    fn the_sender_stops_when_told_even_with_retries_left_and_the_channel_open() {
        let (tx, rx) = channel();
        tx.send(ev("evt_down")).expect("send");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s2, a2) = (stop.clone(), attempts.clone());
        let h = std::thread::spawn(move || {
            // A retry an hour away and an open channel: only `stop` ends it.
            run(Vec::new(), rx, &s2, RetryPolicy::default(), t0, |_, _| {
                a2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(InvokeError::new("Lambda.Unknown", "endpoint down"))
            });
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while attempts.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "first attempt never made");
            std::thread::sleep(Duration::from_millis(5));
        }
        let asked = Instant::now();
        stop.store(true, std::sync::atomic::Ordering::Release);
        h.join().expect("the sender returns");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "stopped within its check interval"
        );
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(tx);
    }
}
