//! The idempotency helper: wraps a handler so that a redelivered event or retried task
//! with the same key returns the stored response instead of running again.
//!
//! 1. hash the payload (SHA-256 of its canonical JSON: object keys sorted);
//! 2. conditionally put an IN_PROGRESS record (expiring with the invocation's deadline);
//! 3. if a COMPLETED record exists: same payload hash → its stored response; another
//!    hash → `ValidationError` (the key was reused for a different request);
//!    an IN_PROGRESS one → the call waits a little for it ([`Idempotency::with_pause`]:
//!    about 130 ms in steps): completed meanwhile → its response; gone (it failed) → this
//!    call runs the handler; still running → `TransientError` (retry later);
//! 4. run the handler; store its response as COMPLETED, or delete the record on error so
//!    a retry runs again.

use crate::clock::{Clock, NoPause, Pause};
use crate::error::{ErrorType, HandlerError, HasErrorType};
use crate::idempotency_store::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;

/// Canonical JSON text: objects with sorted keys, no whitespace.
pub fn canonical_json(v: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_canonical(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

fn write_canonical(out: &mut Vec<u8>, v: &Value) {
    // (Writing into a Vec cannot fail; strings and scalars are written as serde_json
    // writes them.)
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                write_canonical(out, &o[k]);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

/// SHA-256 (hex) of the canonical JSON of `v`.
pub fn payload_hash(v: &Value) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(canonical_json(v).as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// Whether a call ran the handler or answered from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler ran.
    Executed,
    /// The stored response was returned.
    Replayed,
}

/// Idempotent execution over an [`IdempotencyStore`].
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
    function: String,
    expires_after_seconds: i64,
    in_progress_seconds: i64,
    pause: Arc<dyn Pause>,
}

/// How long a call waits, step after step, for a concurrent one holding its key.
const IN_PROGRESS_WAITS_MS: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];

impl Idempotency {
    /// Records of `function` kept `expires_after_seconds` (Powertools' default is 3600);
    /// an IN_PROGRESS record is abandoned after `in_progress_seconds` (the function timeout).
    pub fn new(
        store: Arc<dyn IdempotencyStore>,
        clock: Arc<dyn Clock>,
        function: &str,
        expires_after_seconds: i64,
        in_progress_seconds: i64,
    ) -> Self {
        Self {
            store,
            clock,
            function: function.to_owned(),
            expires_after_seconds,
            in_progress_seconds,
            pause: Arc::new(NoPause),
        }
    }

    /// Waits with `pause` when another invocation holds the key (see the module
    /// documentation); without it the store is only looked at again at once.
    pub fn with_pause(mut self, pause: Arc<dyn Pause>) -> Self {
        self.pause = pause;
        self
    }

    /// Runs `handler` once per `key` (scoped to the function); `payload` is what must not
    /// change under the same key.
    pub async fn run<F, Fut>(
        &self,
        key: &str,
        payload: &Value,
        handler: F,
    ) -> Result<(Value, Outcome), HandlerError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, HandlerError>>,
    {
        if key.is_empty() {
            return Err(HandlerError::validation(
                "idempotencyKey",
                "must not be empty",
            ));
        }
        let id = format!("{}#{key}", self.function);
        let hash = payload_hash(payload);
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let record = IdempotencyRecord {
            id: id.clone(),
            status: IdempotencyStatus::InProgress,
            expiration: now.timestamp() + self.expires_after_seconds,
            in_progress_expiration: Some(now_ms + self.in_progress_seconds * 1000),
            response: None,
            payload_hash: Some(hash.clone()),
        };
        let mut waits = IN_PROGRESS_WAITS_MS.iter();
        loop {
            let existing = match self.store.put_in_progress(&record, now_ms).await {
                Ok(()) => break,
                Err(IdempotencyPutError::AlreadyExists(existing)) => *existing,
                Err(IdempotencyPutError::Store(e)) => return Err(e.into()),
            };
            if existing.payload_hash.as_deref().is_some_and(|h| h != hash) {
                return Err(HandlerError::validation(
                    "idempotencyKey",
                    format!("{key} was already used with a different payload"),
                ));
            }
            if let (IdempotencyStatus::Completed, Some(response)) =
                (existing.status, existing.response)
            {
                return Ok((response, Outcome::Replayed));
            }
            // Another invocation (a redelivery, or the other of two paths sending the same
            // notification) is running it: wait for it a little.
            let Some(ms) = waits.next() else {
                return Err(HandlerError::transient(format!(
                    "a request with idempotency key {key} is already in progress"
                )));
            };
            // Then the put again: it takes a key that was let go or expired, and otherwise
            // answers with the record as it is now.
            self.pause
                .pause(std::time::Duration::from_millis(*ms))
                .await;
        }
        match handler().await {
            Ok(response) => {
                let expiration = self.clock.now().timestamp() + self.expires_after_seconds;
                self.store.complete(&id, &response, expiration).await?;
                Ok((response, Outcome::Executed))
            }
            Err(e) => {
                // the work did not happen (or is safe to redo): let a retry run again;
                // a failed delete only delays the retry until the in-progress deadline
                let _ = self.store.delete(&id).await;
                Err(e)
            }
        }
    }
}

impl HasErrorType for IdempotencyPutError {
    fn error_type(&self) -> ErrorType {
        match self {
            IdempotencyPutError::AlreadyExists(_) => ErrorType::TransientError,
            IdempotencyPutError::Store(e) => e.error_type(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::memory::MemoryIdempotencyStore;
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn setup() -> (Idempotency, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(crate::fixtures::t0()));
        (
            Idempotency::new(
                Arc::new(MemoryIdempotencyStore::new()),
                clock.clone(),
                "payout-manager",
                3600,
                60,
            ),
            clock,
        )
    }

    #[test]
    fn canonical_hash_ignores_key_order() {
        assert_eq!(
            payload_hash(&json!({"a": 1, "b": {"y": [1, 2], "x": null}})),
            payload_hash(&json!({"b": {"x": null, "y": [1, 2]}, "a": 1}))
        );
        assert_ne!(
            payload_hash(&json!({"a": 1})),
            payload_hash(&json!({"a": 2}))
        );
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": "x"})),
            r#"{"a":"x","b":1}"#
        );
        // Pinned: records stored by earlier versions hold hashes of this exact text.
        let v = json!({"b": [1, 2.5, null, {"c": true}], "a": "x\"y\u{e9}"});
        assert_eq!(
            canonical_json(&v),
            "{\"a\":\"x\\\"y\u{e9}\",\"b\":[1,2.5,null,{\"c\":true}]}"
        );
        assert_eq!(
            payload_hash(&v),
            "cbfe18b82ce116418af6c81f8717b4486b0d1a6b5a87acb84097a18ff5db5acc"
        );
    }

    #[tokio::test]
    async fn same_key_runs_once_and_replays() {
        let (idem, _) = setup();
        let runs = AtomicU32::new(0);
        let payload = json!({"amount": 120, "bookingId": "bk_1"});
        for expected in [Outcome::Executed, Outcome::Replayed, Outcome::Replayed] {
            let (resp, outcome) = idem
                .run("booking-bk_1-payment-intent", &payload, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(json!({"paymentIntentId": "pi_1"}))
                })
                .await
                .unwrap();
            assert_eq!(outcome, expected);
            assert_eq!(resp, json!({"paymentIntentId": "pi_1"}));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // a different payload under the same key is refused
        let err = idem
            .run(
                "booking-bk_1-payment-intent",
                &json!({"amount": 1}),
                || async { Ok(json!(1)) },
            )
            .await
            .unwrap_err();
        assert_eq!(err.error_type, ErrorType::ValidationError);
        assert!(err.message.contains("idempotencyKey"));
    }

    #[tokio::test]
    async fn failures_are_not_stored_and_expiry_reruns() {
        let (idem, clock) = setup();
        let p = json!({});
        let err = idem
            .run("k", &p, || async {
                Err(HandlerError::transient("stripe 503"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.error_type, ErrorType::TransientError);
        let (_, o) = idem.run("k", &p, || async { Ok(json!(1)) }).await.unwrap();
        assert_eq!(o, Outcome::Executed, "a failed attempt leaves no record");
        clock.advance(chrono::Duration::seconds(3601));
        let (v, o) = idem.run("k", &p, || async { Ok(json!(2)) }).await.unwrap();
        assert_eq!(
            (v, o),
            (json!(2), Outcome::Executed),
            "an expired record runs again"
        );
    }

    #[tokio::test]
    async fn concurrent_in_progress_is_transient_until_abandoned() {
        let clock = Arc::new(ManualClock::new(crate::fixtures::t0()));
        let store = Arc::new(MemoryIdempotencyStore::new());
        let idem = Idempotency::new(store.clone(), clock.clone(), "f", 3600, 60);
        // a first invocation put IN_PROGRESS and died
        store
            .put_in_progress(
                &IdempotencyRecord {
                    id: "f#k".into(),
                    status: IdempotencyStatus::InProgress,
                    expiration: clock.now().timestamp() + 3600,
                    in_progress_expiration: Some(clock.now().timestamp_millis() + 60_000),
                    response: None,
                    payload_hash: Some(payload_hash(&json!({}))),
                },
                clock.now().timestamp_millis(),
            )
            .await
            .unwrap();
        let err = idem
            .run("k", &json!({}), || async { Ok(json!(1)) })
            .await
            .unwrap_err();
        assert_eq!(err.error_type, ErrorType::TransientError);
        clock.advance(chrono::Duration::seconds(61));
        let (v, o) = idem
            .run("k", &json!({}), || async { Ok(json!(1)) })
            .await
            .unwrap();
        assert_eq!((v, o), (json!(1), Outcome::Executed));
    }

    /// A pause that lets "the other invocation" act at the `at`-th wait.
    struct Meanwhile {
        at: u32,
        waits: AtomicU32,
        act: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
    }

    impl Pause for Meanwhile {
        fn pause(
            &self,
            _d: std::time::Duration,
        ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            if self.waits.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
                if let Some(f) = self.act.lock().unwrap().take() {
                    f();
                }
            }
            Box::pin(std::future::ready(()))
        }
    }

    fn in_progress(clock: &ManualClock, payload: &Value) -> IdempotencyRecord {
        IdempotencyRecord {
            id: "f#k".into(),
            status: IdempotencyStatus::InProgress,
            expiration: clock.now().timestamp() + 3600,
            in_progress_expiration: Some(clock.now().timestamp_millis() + 60_000),
            response: None,
            payload_hash: Some(payload_hash(payload)),
        }
    }

    #[tokio::test]
    async fn a_call_waits_for_a_concurrent_one_holding_its_key() {
        let clock = Arc::new(ManualClock::new(crate::fixtures::t0()));
        let store = Arc::new(MemoryIdempotencyStore::new());
        let now = clock.now().timestamp_millis();
        store
            .put_in_progress(&in_progress(&clock, &json!({})), now)
            .await
            .unwrap();
        // The holder completes while the second call waits (at its third look).
        let holder = store.clone();
        let pause = Arc::new(Meanwhile {
            at: 3,
            waits: AtomicU32::new(0),
            act: std::sync::Mutex::new(Some(Box::new(move || {
                futures_lite(holder.complete("f#k", &json!("theirs"), i64::MAX / 4000))
                    .expect("completed");
            }))),
        });
        let idem =
            Idempotency::new(store.clone(), clock.clone(), "f", 3600, 60).with_pause(pause.clone());
        let ran = AtomicU32::new(0);
        let (v, o) = idem
            .run("k", &json!({}), || async {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(json!("mine"))
            })
            .await
            .unwrap();
        assert_eq!((v, o), (json!("theirs"), Outcome::Replayed));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(pause.waits.load(Ordering::SeqCst), 3);

        // The holder fails and lets go while the call waits: the call runs the handler.
        let store = Arc::new(MemoryIdempotencyStore::new());
        store
            .put_in_progress(&in_progress(&clock, &json!({})), now)
            .await
            .unwrap();
        let holder = store.clone();
        let idem = Idempotency::new(store.clone(), clock.clone(), "f", 3600, 60).with_pause(
            Arc::new(Meanwhile {
                at: 1,
                waits: AtomicU32::new(0),
                act: std::sync::Mutex::new(Some(Box::new(move || {
                    futures_lite(holder.delete("f#k")).expect("deleted");
                }))),
            }),
        );
        let (v, o) = idem
            .run("k", &json!({}), || async { Ok(json!("mine")) })
            .await
            .unwrap();
        assert_eq!((v, o), (json!("mine"), Outcome::Executed));

        // A holder that stays: after the last wait the call is refused as transient, and
        // a holder with another payload is a validation error at once.
        let store = Arc::new(MemoryIdempotencyStore::new());
        store
            .put_in_progress(&in_progress(&clock, &json!({"other": 1})), now)
            .await
            .unwrap();
        let idem = Idempotency::new(store.clone(), clock.clone(), "f", 3600, 60);
        let err = idem
            .run("k", &json!({}), || async { Ok(json!(1)) })
            .await
            .unwrap_err();
        assert_eq!(err.error_type, ErrorType::ValidationError);
    }

    /// Runs a store future that completes without waiting (the memory store's).
    fn futures_lite<F: Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
