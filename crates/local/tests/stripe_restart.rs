//! End-to-end: the simulated Stripe of `marketplace serve` survives a crash. A booking's
//! PaymentIntent is created, the server is killed (kill -9) and restarted on the same data
//! directory; the customer then confirms the payment, the webhook is delivered and the
//! booking is confirmed. Then a webhook left undelivered in the data directory is delivered
//! at the next start, once, with no second side effect.

mod common;

use common::{Server, TempDir};
use marketplace_local::store::Store;
use marketplace_local::stripe_store::SqliteStripeStore;
use marketplace_ports::stripe_sim::{Kind, SimStripeStore};
use serde_json::{json, Value};
use std::sync::Arc;

/// The stored webhook record of `event_id` (its event and delivery flag).
fn webhook_record(dir: &std::path::Path, event_id: &str) -> Value {
    let store = SqliteStripeStore::open(Arc::new(Store::open_dir(dir).expect("open")))
        .expect("stripe store");
    store
        .load()
        .expect("load")
        .into_iter()
        .find(|r| r.kind == Kind::Webhook && r.id == event_id)
        .map(|r| r.body)
        .unwrap_or(Value::Null)
}

const PROVIDER: &str = "prv_rs";
const CUSTOMER: &str = "cus_rs";

fn seed(s: &Server) {
    s.admin_post(
        "/admin/seed",
        json!({
        "services": [{"id": "svc_rs", "providerId": PROVIDER, "name": "Massage",
                      "price": 80, "currency": "USD", "durationMinutes": 60, "active": true}],
        "users": [
            {"userId": PROVIDER, "email": "provider@example.com", "displayName": "Pat"},
            {"userId": CUSTOMER, "email": "customer@example.com", "displayName": "Casey"}
        ]}),
    );
}

fn calls(s: &Server, operation: &str) -> usize {
    s.admin_get("/admin/stripe/events")["calls"]
        .as_array()
        .map_or(0, |c| {
            c.iter()
                .filter(|x| x["operation"] == json!(operation))
                .count()
        })
}

#[test]
fn a_payment_intent_created_before_a_crash_is_confirmed_after_the_restart() {
    let dir = TempDir::new("stripe-restart");
    let s = Server::start(dir.path(), &[]);
    seed(&s);
    let (onboarding, _) = s.start_workflow(
        "PROVIDER_ONBOARDING",
        json!({"providerId": PROVIDER, "email": "provider@example.com", "country": "US",
               "businessType": "individual"}),
    );
    assert_eq!(s.wait_done(&onboarding)["status"], "SUCCEEDED");
    s.admin_post(
        "/admin/stripe/complete-onboarding",
        json!({"providerId": PROVIDER}),
    );
    s.wait_event("Provider Onboarding Completed", |_| true);

    let start = s.now() + chrono::Duration::hours(48);
    let start = start - chrono::Duration::seconds(start.timestamp() % 3600);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (arn, corr) = s.start_workflow(
        "BOOKING_LIFECYCLE",
        json!({"operation": "BOOK", "serviceId": "svc_rs", "customerId": CUSTOMER,
               "providerId": PROVIDER, "startDateTime": fmt(start),
               "endDateTime": fmt(start + chrono::Duration::hours(1)),
               "amount": 80, "currency": "USD"}),
    );
    let booking = arn
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_start_matches("booking-")
        .to_string();
    // The PaymentIntent exists and the booking waits for the customer's payment.
    s.wait_timed(60, || {
        (calls(&s, "create_payment_intent") >= 1).then_some(())
    });
    s.wait_token(&arn);
    let before = s.admin_get("/admin/stripe/events")["events"].clone();
    s.kill9();

    let s = Server::start(dir.path(), &[]);
    // The simulated Stripe kept its webhook events (and, below, its PaymentIntent).
    assert_eq!(s.admin_get("/admin/stripe/events")["events"], before);
    let r = s
        .admin()
        .post(
            "/admin/stripe/confirm",
            &json!({"bookingId": booking, "paymentMethod": "pm_card_visa"}),
        )
        .expect("confirm");
    assert_eq!(r.status, 200, "{}", r.body);
    let pi: Value = r.json();
    assert_eq!(pi["status"], "succeeded", "{pi}");
    let confirmed = s.wait_event("Booking Confirmed", |e| {
        e["detail"]["bookingId"] == json!(booking)
    });
    assert_eq!(confirmed["detail"]["correlationId"], json!(corr));
    let payment = s.wait_event("Payment Succeeded", |e| {
        e["detail"]["bookingId"] == json!(booking)
    });
    assert_eq!(payment["detail"]["paymentIntentId"], pi["id"], "{payment}");
    // The webhook was delivered once and is not pending any more.
    let events = s.admin_get("/admin/stripe/events")["events"].clone();
    let succeeded: Vec<&Value> = events
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| {
                    e["type"] == "payment_intent.succeeded" && e["data"]["object"]["id"] == pi["id"]
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(succeeded.len(), 1, "{events}");
    let event_id = succeeded[0]["id"].as_str().unwrap_or_default().to_string();
    let delivered = s.wait_timed(30, || {
        let r = webhook_record(dir.path(), &event_id);
        (r["delivered"] == json!(true)).then_some(r)
    });
    drop(s);

    // As if the server had died before the webhook endpoint answered: the event is
    // pending again. The next start delivers it; the handler's idempotency keeps it at
    // one payment.
    let mut pending = delivered.clone();
    pending["delivered"] = json!(false);
    SqliteStripeStore::open(Arc::new(Store::open_dir(dir.path()).expect("open")))
        .expect("stripe store")
        .save(&[marketplace_ports::stripe_sim::SimRecord {
            kind: Kind::Webhook,
            id: event_id.clone(),
            body: pending,
        }])
        .expect("mark pending");
    let s = Server::start(dir.path(), &[]);
    s.wait_timed(30, || {
        (webhook_record(dir.path(), &event_id)["delivered"] == json!(true)).then_some(())
    });
    let payments = s
        .business_events()
        .into_iter()
        .filter(|e| {
            e["detail-type"] == "Payment Succeeded" && e["detail"]["bookingId"] == json!(booking)
        })
        .count();
    assert_eq!(
        payments, 1,
        "a redelivered webhook has no second side effect"
    );
}
