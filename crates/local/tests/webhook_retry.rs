//! The runtime's webhook sender, end to end in process: while the webhook endpoint keeps
//! failing one event, a later event is still delivered, and the failing one is retried
//! until it is accepted and acknowledged in the simulated Stripe.

mod common;

use common::TempDir;
use marketplace_local::functions::{Function, InvokeError};
use marketplace_local::handlers::block_on;
use marketplace_local::runtime::{Config, Runtime};
use marketplace_ports::payments::CreateAccount;
use marketplace_ports::PaymentGateway;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A stand-in for the stripe-webhook function: records every invocation (event id, and
/// whether it was accepted) and rejects the first event it sees until it has failed twice
/// and another event has been accepted after it.
#[derive(Default)]
struct Endpoint {
    calls: Mutex<Vec<(String, bool)>>,
}

impl Endpoint {
    fn calls(&self) -> Vec<(String, bool)> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Function for Endpoint {
    fn invoke(&self, request: Value) -> Result<Value, InvokeError> {
        let signature = request["headers"]["stripe-signature"]
            .as_str()
            .unwrap_or("");
        if !signature.starts_with("t=") {
            return Err(InvokeError::new(
                "Test.Unsigned",
                "no stripe-signature header",
            ));
        }
        let body: Value = request["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .ok_or_else(|| InvokeError::new("Test.BadBody", "the body is not an event"))?;
        let id = body["id"].as_str().unwrap_or("").to_owned();
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let first = calls.first().map_or(id.as_str(), |(i, _)| i.as_str());
        let accept = id != first || {
            let failures = calls.iter().filter(|(i, ok)| *i == id && !ok).count();
            let others = calls.iter().any(|(i, ok)| *i != id && *ok);
            failures >= 2 && others
        };
        calls.push((id, accept));
        if accept {
            Ok(serde_json::json!({"statusCode": 200}))
        } else {
            Err(InvokeError::new(
                "Marketplace.TransientError",
                "endpoint down",
            ))
        }
    }
}

#[test]
fn a_failing_webhook_does_not_hold_back_later_ones_and_is_retried_until_accepted() {
    let dir = TempDir::new("webhook-retry");
    let rt = Runtime::open(&Config {
        data_dir: dir.path().to_path_buf(),
        rules_file: None,
        statemachines_dir: None,
        virtual_clock: true,
        api_key: Some("da2-webhook-retry".into()),
        workers: 1,
    })
    .expect("runtime");
    let endpoint = Arc::new(Endpoint::default());
    rt.functions.register("stripe-webhook", endpoint.clone());
    let stripe = rt.stripe.get().expect("simulated stripe").clone();

    let account = block_on(stripe.create_account(&CreateAccount {
        country: "US".into(),
        email: "provider@example.com".into(),
        business_type: "individual".into(),
        metadata: Default::default(),
        idempotency_key: "acct-webhook-retry".into(),
    }))
    .expect("executor")
    .expect("account");
    // Two `account.updated` events, one right after the other.
    stripe
        .complete_onboarding(&account.id)
        .expect("first event");
    stripe
        .set_capabilities(&account.id, true, false)
        .expect("second event");
    let emitted: Vec<String> = stripe
        .events()
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(emitted.len(), 2, "{emitted:?}");

    let deadline = Instant::now() + Duration::from_secs(20);
    while !stripe.undelivered_webhooks().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let calls = endpoint.calls();
    assert!(
        stripe.undelivered_webhooks().is_empty(),
        "still unacknowledged after 20 s; endpoint calls: {calls:?}"
    );
    let (first, second) = (&emitted[0], &emitted[1]);
    assert_eq!(calls[0], (first.clone(), false), "{calls:?}");
    let accepted = |id: &String| calls.iter().position(|(i, ok)| i == id && *ok);
    let (Some(first_ok), Some(second_ok)) = (accepted(first), accepted(second)) else {
        panic!("both events must be accepted: {calls:?}");
    };
    assert!(
        second_ok < first_ok,
        "the later event goes out while the first is failing: {calls:?}"
    );
    let failures = calls.iter().filter(|(i, ok)| i == first && !ok).count();
    assert!(failures >= 2, "{calls:?}");
    // Each event was accepted once, and the later one was never held for a retry.
    assert_eq!(calls.iter().filter(|(_, ok)| *ok).count(), 2, "{calls:?}");
    assert_eq!(
        calls.iter().filter(|(i, _)| i == second).count(),
        1,
        "{calls:?}"
    );
    rt.shutdown();
}
