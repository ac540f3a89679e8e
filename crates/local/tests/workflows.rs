//! End-to-end proof of the four marketplace workflows (issue 7): `marketplace serve` on a
//! virtual clock, driven over GraphQL, the admin API (simulated Stripe) and the CLI. Each
//! test asserts the records (execution status/output), the events in order with one
//! correlationId per business flow, the notifications and the money.

mod common;

use common::{Server, TempDir};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;

const PROVIDER: &str = "prv_e2e";
const CUSTOMER: &str = "cus_e2e";
const PRICE: &str = "120.5";

/// A server with a service, a provider (onboarded, charges enabled), a customer, an admin.
fn marketplace(name: &str) -> (TempDir, Server) {
    let dir = TempDir::new(name);
    let s = Server::start(dir.path(), &[]);
    seed(&s);
    let (arn, _) = s.start_workflow("PROVIDER_ONBOARDING", onboarding_input());
    let st = s.wait_done(&arn);
    assert_eq!(st["status"], "SUCCEEDED", "{st}");
    s.admin_post(
        "/admin/stripe/complete-onboarding",
        json!({"providerId": PROVIDER}),
    );
    s.wait_event("Provider Onboarding Completed", |_| true);
    (dir, s)
}

fn seed(s: &Server) {
    s.admin_post(
        "/admin/seed",
        json!({
        "services": [{"id": "svc_e2e", "providerId": PROVIDER, "name": "Massage",
                      "price": 120.5, "currency": "USD", "durationMinutes": 60, "active": true}],
        "users": [
            {"userId": PROVIDER, "email": "provider@example.com", "displayName": "Pat"},
            {"userId": CUSTOMER, "email": "customer@example.com", "displayName": "Casey"},
            {"userId": "cus_other", "email": "other@example.com", "displayName": "Olli"},
            {"userId": "adm_e2e", "email": "ops@example.com", "displayName": "Ops", "groups": ["admin"]}
        ]}),
    );
}

fn onboarding_input() -> Value {
    json!({"providerId": PROVIDER, "email": "provider@example.com", "country": "US",
           "businessType": "individual"})
}

fn dec(v: &Value) -> Decimal {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string()).expect("decimal"),
        Value::String(t) => Decimal::from_str(t).expect("decimal"),
        other => panic!("not an amount: {other}"),
    }
}

/// A booking `hours` from now (whole hours), one hour long.
struct Booking {
    arn: String,
    corr: String,
    id: String,
    input: Value,
}

fn book(s: &Server, hours: i64) -> Booking {
    let start = s.now() + chrono::Duration::hours(hours);
    let start = start - chrono::Duration::seconds(start.timestamp() % 3600);
    let end = start + chrono::Duration::hours(1);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    book_input(
        s,
        json!({"operation": "BOOK", "serviceId": "svc_e2e", "customerId": CUSTOMER,
               "providerId": PROVIDER, "startDateTime": fmt(start), "endDateTime": fmt(end),
               "amount": 120.5, "currency": "USD"}),
    )
}

fn book_input(s: &Server, input: Value) -> Booking {
    let (arn, corr) = s.start_workflow("BOOKING_LIFECYCLE", input.clone());
    let id = arn
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_start_matches("booking-")
        .to_string();
    assert!(id.starts_with("bk_"), "{arn}");
    assert!(!corr.is_empty());
    Booking {
        arn,
        corr,
        id,
        input,
    }
}

/// The customer pays with `pm` (retried until the PaymentIntent exists).
fn pay(s: &Server, b: &Booking, pm: &str) -> Value {
    s.wait_timed(60, || {
        let r = s
            .admin()
            .post(
                "/admin/stripe/confirm",
                &json!({"bookingId": b.id, "paymentMethod": pm}),
            )
            .expect("confirm");
        (r.status == 200).then(|| r.json())
    })
}

/// Business events of one flow (by correlationId), in archive order.
fn flow(s: &Server, corr: &str) -> Vec<Value> {
    s.business_events()
        .into_iter()
        .filter(|e| e["detail"]["correlationId"] == json!(corr))
        .collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every business event mentioning the booking carries the flow's correlationId.
fn assert_one_correlation(s: &Server, booking: &str, corr: &str) {
    for e in s.business_events() {
        if e["detail"]["bookingId"] == json!(booking) && e["source"] != "marketplace.dispute" {
            assert_eq!(
                e["detail"]["correlationId"],
                json!(corr),
                "event of booking {booking} with another correlationId: {e}"
            );
        }
    }
}

/// Waits until exactly `n` notifications to `to` mention `subject_part` (sent asynchronously).
fn wait_mails(s: &Server, to: &str, subject_part: &str, n: usize) {
    s.wait_timed(10, || (mails(s, to, subject_part) == n).then_some(()));
}

fn mails(s: &Server, to: &str, subject_part: &str) -> usize {
    s.outbox()
        .iter()
        .filter(|m| {
            m["to"][0] == json!(to)
                && m["subject"]
                    .as_str()
                    .is_some_and(|t| t.contains(subject_part))
        })
        .count()
}

fn wait_status(s: &Server, arn: &str, want: &str) -> Value {
    let st = s.wait_done(arn);
    assert_eq!(st["status"], want, "{st}");
    st
}

/// Waits until the flow has published `detail_type`.
fn wait_flow(s: &Server, corr: &str, detail_type: &str) -> Vec<Value> {
    s.wait_timed(60, || {
        let f = flow(s, corr);
        types(&f).iter().any(|t| t == detail_type).then_some(f)
    })
}

fn position(t: &[String], name: &str) -> usize {
    t.iter()
        .position(|x| x == name)
        .unwrap_or_else(|| panic!("{name} not in {t:?}"))
}

fn confirmed_booking(s: &Server, hours: i64) -> Booking {
    let b = book(s, hours);
    pay(s, &b, "pm_card_visa");
    wait_flow(s, &b.corr, "Booking Confirmed");
    b
}

fn refunds(s: &Server, corr: &str) -> Vec<Value> {
    flow(s, corr)
        .into_iter()
        .filter(|e| e["detail-type"] == "Refund Issued")
        .collect()
}

fn refunded_by_stripe(s: &Server, payment_intent: &str) -> i64 {
    s.admin_get(&format!(
        "/admin/stripe/events?paymentIntentId={payment_intent}"
    ))["refunded"]
        .as_i64()
        .unwrap_or(-1)
}

fn payment_intent_of(s: &Server, corr: &str) -> String {
    flow(s, corr)
        .iter()
        .find(|e| e["detail-type"] == "Payment Intent Created")
        .and_then(|e| e["detail"]["paymentIntentId"].as_str().map(str::to_string))
        .expect("Payment Intent Created with paymentIntentId")
}

#[test]
fn booking_happy_path_confirms_completes_and_releases_earnings() {
    let (_d, s) = marketplace("happy");
    let b = confirmed_booking(&s, 48);
    let f = flow(&s, &b.corr);
    let t = types(&f);
    assert_eq!(
        t[..4],
        [
            "Booking Created",
            "Payment Intent Created",
            "Payment Succeeded",
            "Booking Confirmed"
        ],
        "{t:?}"
    );
    let confirmed = &f[3]["detail"];
    let code = confirmed["confirmationCode"].as_str().unwrap_or_default();
    assert_eq!(code.len(), 8, "{confirmed}");
    assert_eq!(s.status(&b.arn)["status"], "RUNNING");
    wait_mails(&s, "customer@example.com", "is confirmed", 1);
    wait_mails(&s, "provider@example.com", "confirmed", 1);

    // The service ends: completion and the provider's earnings released.
    s.advance("3d");
    let st = wait_status(&s, &b.arn, "SUCCEEDED");
    let f = wait_flow(&s, &b.corr, "Booking Completed");
    let t = types(&f);
    assert!(position(&t, "Booking Confirmed") < position(&t, "Booking Completed"));
    let paid = &f[position(&t, "Payment Succeeded")]["detail"];
    let amount = Decimal::from_str(PRICE).expect("price");
    assert_eq!(dec(&paid["amount"]), amount, "{paid}");
    let (fee, earnings) = (dec(&paid["platformFee"]), dec(&paid["providerEarnings"]));
    assert_eq!(fee + earnings, amount, "{paid}");
    assert!(fee > Decimal::ZERO && earnings > Decimal::ZERO, "{paid}");
    // Earnings released: the transfer to the provider's account was made once.
    let calls = s.admin_get("/admin/stripe/events")["calls"].clone();
    let transfers = calls.as_array().map_or(0, |c| {
        c.iter()
            .filter(|x| x["operation"] == "create_transfer")
            .count()
    });
    assert_eq!(transfers, 1, "{calls}");
    assert_eq!(st["status"], "SUCCEEDED");
    wait_mails(&s, "customer@example.com", "completed", 1);
    assert_eq!(refunds(&s, &b.corr).len(), 0);
    assert_one_correlation(&s, &b.id, &b.corr);
}

#[test]
fn payment_declined_cancels_the_booking_without_charge() {
    let (_d, s) = marketplace("declined");
    let b = book(&s, 48);
    pay(&s, &b, "pm_card_chargeDeclined");
    let st = wait_status(&s, &b.arn, "FAILED");
    assert_eq!(st["errorType"], "Marketplace.PaymentDeclined", "{st}");
    let t = types(&wait_flow(&s, &b.corr, "Booking Cancelled"));
    assert!(
        position(&t, "Payment Intent Created") < position(&t, "Payment Failed")
            && position(&t, "Payment Failed") < position(&t, "Booking Cancelled"),
        "{t:?}"
    );
    assert!(!t
        .iter()
        .any(|x| x == "Payment Succeeded" || x == "Booking Confirmed"));
    assert_eq!(refunds(&s, &b.corr).len(), 0);
    assert_eq!(mails(&s, "customer@example.com", "is confirmed"), 0);
    assert_one_correlation(&s, &b.id, &b.corr);
}

#[test]
fn payment_timeout_expires_the_booking_and_releases_the_slot() {
    let (_d, s) = marketplace("timeout");
    let b = book(&s, 48);
    s.wait_token(&b.arn);
    s.advance("16m");
    wait_status(&s, &b.arn, "SUCCEEDED");
    let f = wait_flow(&s, &b.corr, "Booking Expired");
    let t = types(&f);
    assert!(!t.iter().any(|x| x == "Booking Confirmed"), "{t:?}");
    let expired = &f[position(&t, "Booking Expired")]["detail"];
    assert_eq!(expired["bookingId"], json!(b.id));
    // The slot is free again: a second booking of the same hour is confirmed.
    let mut other = b.input.clone();
    other["customerId"] = json!("cus_other");
    let b2 = book_input(&s, other);
    assert_ne!(b2.id, b.id);
    pay(&s, &b2, "pm_card_visa");
    wait_flow(&s, &b2.corr, "Booking Confirmed");
    assert_eq!(s.status(&b2.arn)["status"], "RUNNING");
    assert_ne!(b2.corr, b.corr, "two bookings are two flows");
    assert_eq!(mails(&s, "customer@example.com", "is confirmed"), 0);
    wait_mails(&s, "other@example.com", "is confirmed", 1);
    assert_one_correlation(&s, &b.id, &b.corr);
}

fn cancel(s: &Server, b: &Booking, by: &str, requested_by: &str) -> String {
    let (arn, corr) = s.start_workflow(
        "BOOKING_LIFECYCLE",
        json!({"operation": "CANCEL", "bookingId": b.id, "cancelledBy": by,
               "reason": "e2e", "requestedBy": requested_by}),
    );
    assert_eq!(corr, b.corr, "a cancellation continues the booking's flow");
    arn
}

fn assert_refund(s: &Server, b: &Booking, percent: i64) {
    let f = wait_flow(s, &b.corr, "Refund Issued");
    let t = types(&f);
    assert!(
        position(&t, "Booking Confirmed") < position(&t, "Booking Cancelled"),
        "{t:?}"
    );
    let r = refunds(s, &b.corr);
    assert_eq!(r.len(), 1, "{r:?}");
    let amount = Decimal::from_str(PRICE).expect("price");
    let want = amount * Decimal::from(percent) / Decimal::from(100);
    assert_eq!(dec(&r[0]["detail"]["amount"]), want, "{}", r[0]);
    assert!(dec(&r[0]["detail"]["amount"]) <= amount);
    let pi = payment_intent_of(s, &b.corr);
    let minor = (want * Decimal::from(100)).trunc().to_string();
    assert_eq!(refunded_by_stripe(s, &pi).to_string(), minor);
    assert_one_correlation(s, &b.id, &b.corr);
}

#[test]
fn provider_cancel_refunds_in_full() {
    let (_d, s) = marketplace("prvcancel");
    let b = confirmed_booking(&s, 72);
    let arn = cancel(&s, &b, "PROVIDER", PROVIDER);
    wait_status(&s, &arn, "SUCCEEDED");
    assert_refund(&s, &b, 100);
    // The booking's own execution ends when the service would have: no earnings released.
    s.advance("4d");
    wait_status(&s, &b.arn, "SUCCEEDED");
    let t = types(&flow(&s, &b.corr));
    assert!(!t.iter().any(|x| x == "Booking Completed"), "{t:?}");
    s.wait_timed(10, || {
        (mails(&s, "customer@example.com", "Refund of 120.50 USD") == 1).then_some(())
    });
}

#[test]
fn late_customer_cancel_refunds_half() {
    let (_d, s) = marketplace("latecancel");
    let b = confirmed_booking(&s, 30);
    s.advance("10h");
    let arn = cancel(&s, &b, "CUSTOMER", CUSTOMER);
    wait_status(&s, &arn, "SUCCEEDED");
    assert_refund(&s, &b, 50);
}

#[test]
fn duplicate_event_and_webhook_charge_and_mail_once() {
    let (_d, s) = marketplace("duplicate");
    let b = confirmed_booking(&s, 48);
    wait_mails(&s, "customer@example.com", "is confirmed", 1);
    wait_mails(&s, "provider@example.com", "confirmed", 1);
    let before_mails = s.outbox().len();
    // Stripe delivers payment_intent.succeeded again.
    let ev = s.admin_get("/admin/stripe/events")["events"].clone();
    let succeeded: Vec<String> = ev
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["type"] == "payment_intent.succeeded")
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(succeeded.len(), 1, "{ev}");
    s.admin_post("/admin/stripe/redeliver", json!({"eventId": succeeded[0]}));
    // The bus delivers every archived event again (at least once).
    let o = s.cli(&["events", "replay"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Let the redeliveries run, then check nothing happened twice.
    s.advance("1m");
    std::thread::sleep(std::time::Duration::from_millis(800));
    let calls = s.admin_get("/admin/stripe/events")["calls"].clone();
    let creates: Vec<&Value> = calls
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|x| x["operation"] == "create_payment_intent")
                .collect()
        })
        .unwrap_or_default();
    let keys: std::collections::HashSet<String> = creates
        .iter()
        .map(|c| c["idempotencyKey"].to_string())
        .collect();
    assert_eq!(keys.len(), 1, "{calls}");
    let f = flow(&s, &b.corr);
    let t = types(&f);
    let n = |x: &str| {
        f.iter()
            .filter(|e| e["detail-type"] == x && e.get("replay-name").is_none())
            .count()
    };
    assert_eq!(n("Payment Succeeded"), 1, "{t:?}");
    assert_eq!(n("Booking Confirmed"), 1, "{t:?}");
    assert_eq!(mails(&s, "customer@example.com", "is confirmed"), 1);
    assert_eq!(s.outbox().len(), before_mails);
    assert_eq!(refunded_by_stripe(&s, &payment_intent_of(&s, &b.corr)), 0);
}

fn dispute(s: &Server, b: &Booking, id: &str, kind: &str, requested: Value) -> (String, String) {
    let (arn, corr) = s.start_workflow(
        "DISPUTE_RESOLUTION",
        json!({"disputeId": id, "bookingId": b.id, "disputeType": kind,
               "customerId": CUSTOMER, "description": "The provider did not show up",
               "requestedRefundAmount": requested}),
    );
    assert_ne!(corr, b.corr, "a dispute is a flow of its own");
    wait_flow(s, &corr, "Dispute Created");
    // The 24-hour review period starts when the workflow waits for the provider.
    s.wait_token(&arn);
    (arn, corr)
}

#[test]
fn small_unanswered_refund_request_is_refunded_automatically() {
    let (_d, s) = marketplace("autorefund");
    let b = confirmed_booking(&s, 24 * 3);
    s.advance("4d");
    wait_status(&s, &b.arn, "SUCCEEDED");
    let (arn, corr) = dispute(&s, &b, "dsp_small", "REFUND_REQUEST", json!(60));
    s.wait_timed(60, || {
        (mails(&s, "provider@example.com", "dsp_small") >= 1).then_some(())
    });
    s.advance("25h");
    wait_status(&s, &arn, "SUCCEEDED");
    let f = wait_flow(&s, &corr, "Dispute Resolved");
    let t = types(&f);
    assert!(
        position(&t, "Dispute Created") < position(&t, "Refund Issued"),
        "{t:?}"
    );
    assert!(
        position(&t, "Refund Issued") < position(&t, "Dispute Resolved"),
        "{t:?}"
    );
    assert!(!t.iter().any(|x| x == "Dispute Escalated"), "{t:?}");
    let r = &f[position(&t, "Refund Issued")]["detail"];
    assert_eq!(dec(&r["amount"]), Decimal::from(60), "{r}");
    assert_eq!(
        refunded_by_stripe(&s, &payment_intent_of(&s, &b.corr)),
        6000
    );
    s.wait_timed(10, || {
        (mails(&s, "customer@example.com", "dsp_small resolved") == 1).then_some(())
    });
    assert_dispute_correlation(&s, "dsp_small", &corr);
}

#[test]
fn escalated_dispute_is_resolved_by_an_admin() {
    let (_d, s) = marketplace("escalated");
    let b = confirmed_booking(&s, 24 * 3);
    s.advance("4d");
    wait_status(&s, &b.arn, "SUCCEEDED");
    let (arn, corr) = dispute(&s, &b, "dsp_big", "REFUND_REQUEST", json!(120.5));
    s.advance("25h");
    wait_flow(&s, &corr, "Dispute Escalated");
    s.wait_timed(10, || {
        (mails(&s, "ops@example.com", "dsp_big") >= 1).then_some(())
    });
    assert_eq!(s.status(&arn)["status"], "RUNNING");
    let token = s.admin_post(
        "/admin/token/mint",
        json!({"sub": "adm_e2e", "groups": ["admin"]}),
    )["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Here the decision completes the armed wait's token directly; a decision given before
    // the wait is armed is covered by answers_given_before_the_workflow_waits_are_taken_once.
    s.wait_token(&arn);
    let q = "mutation { resolveDispute(disputeId: \"dsp_big\", resolution: PARTIALLY_REFUNDED, refundAmount: 40.25, notes: \"half an hour late\") { success error errorType refundAmount currency } }";
    let r = s
        .with_token(&token)
        .graphql(q, json!({}))
        .expect("resolve")
        .json();
    assert_eq!(r["data"]["resolveDispute"]["success"], true, "{r}");
    wait_status(&s, &arn, "SUCCEEDED");
    let f = wait_flow(&s, &corr, "Dispute Resolved");
    let t = types(&f);
    assert!(
        position(&t, "Dispute Escalated") < position(&t, "Refund Issued"),
        "{t:?}"
    );
    assert!(
        position(&t, "Refund Issued") < position(&t, "Dispute Resolved"),
        "{t:?}"
    );
    assert_eq!(
        dec(&f[position(&t, "Refund Issued")]["detail"]["amount"]),
        Decimal::from_str("40.25").expect("d")
    );
    assert_eq!(
        refunded_by_stripe(&s, &payment_intent_of(&s, &b.corr)),
        4025
    );
    // A second decision is refused: the dispute is resolved, the refund not repeated.
    let r = s
        .with_token(&token)
        .graphql(q, json!({}))
        .expect("resolve")
        .json();
    assert_ne!(r["data"]["resolveDispute"]["success"], true, "{r}");
    assert_eq!(
        refunded_by_stripe(&s, &payment_intent_of(&s, &b.corr)),
        4025
    );
}

#[test]
fn unresolved_dispute_escalates_finally_after_seven_days() {
    let (_d, s) = marketplace("sevendays");
    let b = confirmed_booking(&s, 24 * 3);
    s.advance("4d");
    wait_status(&s, &b.arn, "SUCCEEDED");
    let (arn, corr) = dispute(&s, &b, "dsp_slow", "REFUND_REQUEST", json!(120.5));
    // Time passes as it does: days without a decision, then half-hours around the deadline.
    // The clock only jumps while the execution rests in a wait (as on a real clock, where
    // its steps take milliseconds, not days).
    let resting = |s: &Server| {
        let d = s.describe(&arn);
        if d["status"] != "RUNNING" {
            return true;
        }
        let queued = s.admin_get("/admin/stats")["workflowQueue"].as_u64();
        let h = s.admin_get(&format!(
            "/admin/workflows/history?executionArn={}",
            arn.replace(':', "%3A")
        ));
        let last = h["events"]
            .as_array()
            .and_then(|e| e.last())
            .map(|e| e["type"].clone());
        queued == Some(0) && !d["waitingForToken"].is_null() && last == Some(json!("TaskSubmitted"))
    };
    // A task retried with backoff (a notification racing the event rule for its
    // idempotency key) rests on a timer, not a token: let a little virtual time pass.
    let settle = |s: &Server| {
        s.wait_timed(60, || {
            let stable = (0..3).all(|_| {
                std::thread::sleep(std::time::Duration::from_millis(40));
                resting(s)
            });
            stable.then_some(())
        })
    };
    for _ in 0..3 {
        settle(&s);
        s.advance("2d");
    }
    for _ in 0..64 {
        settle(&s);
        if s.status(&arn)["status"] != "RUNNING" {
            break;
        }
        s.advance("30m");
    }
    let st = wait_status(&s, &arn, "FAILED");
    assert_eq!(st["errorType"], "Marketplace.DisputeEscalated", "{st}");
    let f = flow(&s, &corr);
    let t = types(&f);
    assert!(
        !t.iter()
            .any(|x| x == "Dispute Resolved" || x == "Refund Issued"),
        "{t:?}"
    );
    let last = f
        .iter()
        .rev()
        .find(|e| e["detail-type"] == "Dispute Escalated")
        .expect("escalated");
    assert_eq!(
        last["detail"]["escalationReason"]
            .as_str()
            .or(last["detail"]["reason"].as_str()),
        Some("MANUAL"),
        "{last}"
    );
    s.wait_timed(10, || {
        (mails(&s, "ops@example.com", "dsp_slow") >= 2).then_some(())
    });
    assert_eq!(refunded_by_stripe(&s, &payment_intent_of(&s, &b.corr)), 0);
    assert_dispute_correlation(&s, "dsp_slow", &corr);
}

#[test]
fn onboarding_stripe_failure_retries_then_publishes_onboarding_failed() {
    let dir = TempDir::new("onbfail");
    let s = Server::start(dir.path(), &[]);
    seed(&s);
    // Two transient failures are retried; then a permanent one ends the onboarding.
    s.admin_post(
        "/admin/stripe/fail-next",
        json!({"operation": "create_account", "kind": "transient", "count": 2}),
    );
    s.admin_post(
        "/admin/stripe/fail-next",
        json!({"operation": "create_account", "kind": "permanent"}),
    );
    let (arn, corr) = s.start_workflow("PROVIDER_ONBOARDING", onboarding_input());
    for _ in 0..10 {
        if s.status(&arn)["status"] != "RUNNING" {
            break;
        }
        s.advance("1m");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let st = wait_status(&s, &arn, "FAILED");
    assert_eq!(
        st["errorType"], "Marketplace.ProviderOnboardingFailed",
        "{st}"
    );
    let f = wait_flow(&s, &corr, "Provider Onboarding Failed");
    assert!(!types(&f)
        .iter()
        .any(|x| x == "Provider Onboarding Completed"));
    let calls = s.admin_get("/admin/stripe/events")["calls"].clone();
    let attempts = calls.as_array().map_or(0, |c| {
        c.iter()
            .filter(|x| x["operation"] == "create_account")
            .count()
    });
    assert_eq!(
        attempts, 3,
        "two retries then the permanent failure: {calls}"
    );
    s.wait_timed(10, || {
        (mails(&s, "provider@example.com", "") >= 1).then_some(())
    });
}

fn token(s: &Server, sub: &str, groups: &[&str]) -> String {
    s.admin_post("/admin/token/mint", json!({"sub": sub, "groups": groups}))["token"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn complaint_accepted_by_the_provider_is_half_refunded_automatically() {
    let (_d, s) = marketplace("accept");
    let b = confirmed_booking(&s, 24 * 3);
    s.advance("4d");
    wait_status(&s, &b.arn, "SUCCEEDED");
    let (arn, corr) = dispute(&s, &b, "dsp_acc", "SERVICE_COMPLAINT", Value::Null);
    s.wait_token(&arn);
    let q = "mutation { respondToDispute(disputeId: \"dsp_acc\", response: ACCEPT, message: \"sorry\") { success error errorType } }";
    // Only the booking's provider answers.
    let r = s
        .with_token(&token(&s, CUSTOMER, &[]))
        .graphql(q, json!({}))
        .expect("respond")
        .json();
    assert_ne!(r["data"]["respondToDispute"]["success"], true, "{r}");
    let r = s
        .with_token(&token(&s, PROVIDER, &[]))
        .graphql(q, json!({}))
        .expect("respond")
        .json();
    assert_eq!(r["data"]["respondToDispute"]["success"], true, "{r}");
    wait_status(&s, &arn, "SUCCEEDED");
    let f = wait_flow(&s, &corr, "Dispute Resolved");
    let t = types(&f);
    assert!(
        position(&t, "Refund Issued") < position(&t, "Dispute Resolved"),
        "{t:?}"
    );
    assert!(!t.iter().any(|x| x == "Dispute Escalated"), "{t:?}");
    let refund = dec(&f[position(&t, "Refund Issued")]["detail"]["amount"]);
    assert_eq!(refund, Decimal::from_str("60.25").expect("d"));
    assert_eq!(
        refunded_by_stripe(&s, &payment_intent_of(&s, &b.corr)),
        6025
    );
    assert_dispute_correlation(&s, "dsp_acc", &corr);
}

/// Every event of the dispute carries the dispute flow's correlationId.
fn assert_dispute_correlation(s: &Server, dispute: &str, corr: &str) {
    let mut n = 0;
    for e in s.business_events() {
        if e["detail"]["disputeId"] == json!(dispute) {
            assert_eq!(e["detail"]["correlationId"], json!(corr), "{e}");
            n += 1;
        }
    }
    assert!(n >= 2, "dispute {dispute}: {n} events");
}

#[test]
fn the_same_customer_can_book_a_slot_again_after_expiry() {
    let (_d, s) = marketplace("rebook");
    let b = book(&s, 48);
    s.wait_token(&b.arn);
    s.advance("16m");
    wait_status(&s, &b.arn, "SUCCEEDED");
    wait_flow(&s, &b.corr, "Booking Expired");
    let b2 = book_input(&s, b.input.clone());
    assert_ne!(b2.arn, b.arn, "a new booking, not the expired one");
    pay(&s, &b2, "pm_card_visa");
    wait_flow(&s, &b2.corr, "Booking Confirmed");
    // Repeating the request is idempotent again: the live booking, not a third one.
    let b3 = book_input(&s, b.input.clone());
    assert_eq!(b3.arn, b2.arn);
}

/// Sends the mutation `q` as soon as the dispute allows it: repeats (2 ms apart, at most
/// 30 s; every half second the virtual clock moves 2 s, as in [`Server::wait_timed`], so a
/// task retried with backoff runs) while the answer is refused for `early` (the dispute is
/// not there yet, not escalated yet); any other refusal fails the test. Returns the
/// successful result.
fn answer_at_once(s: &Server, bearer: &str, q: &str, field: &str, early: &str) -> Value {
    let start = std::time::Instant::now();
    let mut nudged = start;
    loop {
        let r = s
            .with_token(bearer)
            .graphql(q, json!({}))
            .expect(field)
            .json();
        let out = &r["data"][field];
        if out["success"] == true {
            return out.clone();
        }
        let error = out["error"].as_str().unwrap_or_default();
        assert!(error.contains(early), "{field} refused: {r}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{field} still refused after 30 s: {r}"
        );
        if nudged.elapsed() >= std::time::Duration::from_millis(500) {
            let r = s
                .admin()
                .post("/admin/clock/advance", &json!({"duration": "2s"}))
                .expect("advance");
            assert_eq!(r.status, 200, "{}", r.body);
            nudged = std::time::Instant::now();
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The provider is notified, and the escalation published, just before the workflow arms
/// its wait: an answer given in that window is recorded and applied by the waiting task
/// instead of being refused. Both answers here are given the moment the dispute allows
/// them; whichever side of the window they land on, they are taken once.
#[test]
fn answers_given_before_the_workflow_waits_are_taken_once() {
    let (_d, s) = marketplace("early");
    let b = confirmed_booking(&s, 24 * 3);
    s.advance("4d");
    wait_status(&s, &b.arn, "SUCCEEDED");
    let (arn, corr) = s.start_workflow(
        "DISPUTE_RESOLUTION",
        json!({"disputeId": "dsp_early", "bookingId": b.id, "disputeType": "REFUND_REQUEST",
               "customerId": CUSTOMER, "description": "The provider did not show up",
               "requestedRefundAmount": 120.5}),
    );
    let respond = "mutation { respondToDispute(disputeId: \"dsp_early\", response: REJECT, message: \"I was there\") { success error errorType } }";
    answer_at_once(
        &s,
        &token(&s, PROVIDER, &[]),
        respond,
        "respondToDispute",
        "does not exist",
    );
    // REJECT escalates (R4); the admin decides the moment the dispute is escalated
    let admin = token(&s, "adm_e2e", &["admin"]);
    let resolve = "mutation { resolveDispute(disputeId: \"dsp_early\", resolution: PARTIALLY_REFUNDED, refundAmount: 40.25, notes: \"late\") { success error errorType refundAmount currency } }";
    let r = answer_at_once(&s, &admin, resolve, "resolveDispute", ", not escalated");
    assert_eq!(
        dec(&r["refundAmount"]),
        Decimal::from_str("40.25").expect("d")
    );
    wait_status(&s, &arn, "SUCCEEDED");
    let f = wait_flow(&s, &corr, "Dispute Resolved");
    let t = types(&f);
    assert!(
        position(&t, "Dispute Escalated") < position(&t, "Refund Issued"),
        "{t:?}"
    );
    assert!(
        position(&t, "Refund Issued") < position(&t, "Dispute Resolved"),
        "{t:?}"
    );
    assert_eq!(
        f[position(&t, "Dispute Escalated")]["detail"]["reason"],
        "NO_AGREEMENT",
        "the provider's REJECT was evaluated"
    );
    assert_eq!(
        refunded_by_stripe(&s, &payment_intent_of(&s, &b.corr)),
        4025
    );
    // answers are taken once
    let r = s
        .with_token(&admin)
        .graphql(resolve, json!({}))
        .expect("resolve")
        .json();
    assert_eq!(r["data"]["resolveDispute"]["success"], false, "{r}");
    let r = s
        .with_token(&token(&s, PROVIDER, &[]))
        .graphql(respond, json!({}))
        .expect("respond")
        .json();
    assert_eq!(r["data"]["respondToDispute"]["success"], false, "{r}");
    assert_dispute_correlation(&s, "dsp_early", &corr);
}
