use super::*;
use marketplace_domain::WorkflowType;
use marketplace_ports::fixtures;
use marketplace_ports::memory::{MemoryPorts, TaskOutcome};
use marketplace_ports::payments::*;
use marketplace_ports::stripe_signature::sign_header;
use marketplace_ports::{
    BookingRepository, Clock, PaymentGateway, PaymentRecord, PaymentRepository, ProviderRepository,
    WorkflowClient,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const SECRET: &str = "whsec_current";

struct Env {
    m: MemoryPorts,
    w: StripeWebhook,
    hooks: Arc<Mutex<Vec<Value>>>,
}

fn env() -> Env {
    let m = MemoryPorts::new(fixtures::t0());
    let hooks = Arc::new(Mutex::new(Vec::new()));
    let h2 = hooks.clone();
    m.stripe
        .set_webhook_sink(Arc::new(move |e| h2.lock().unwrap().push(e)));
    let (log, metrics, _) = m.observability("stripe-webhook");
    let w = StripeWebhook::new(
        m.ports.clone(),
        WebhookConfig::new(vec![SECRET.into(), "whsec_old".into()]),
        log,
        metrics,
    );
    Env { m, w, hooks }
}

fn request(body: &str, sig: &str) -> Value {
    json!({"headers": {"Stripe-Signature": sig, "content-type": "application/json"}, "body": body, "isBase64Encoded": false})
}

async fn deliver(e: &Env, event: &Value) -> Value {
    let body = event.to_string();
    let sig = sign_header(&[SECRET], e.m.clock.now().timestamp(), body.as_bytes());
    e.w.handle(request(&body, &sig), Some("req-1")).await
}

fn take_hooks(e: &Env) -> Vec<Value> {
    std::mem::take(&mut *e.hooks.lock().unwrap())
}

async fn record_for(e: &Env, pi: &PaymentIntent, booking: &str, token: Option<&str>) {
    let usd = |c| Money::from_minor(c, Currency::Usd).unwrap();
    e.m.store
        .put_payment(
            &PaymentRecord {
                id: pi.id.clone(),
                kind: PaymentKind::PaymentIntent,
                booking_id: Some(booking.into()),
                customer_id: Some("cus_1".into()),
                provider_id: Some("prv_1".into()),
                stripe_account_id: Some("acct_1".into()),
                payment_intent_id: None,
                amount: usd(pi.amount),
                platform_fee: Some(usd(1_800)),
                provider_earnings: Some(usd(10_200)),
                refunded: usd(0),
                status: pi.status.as_str().into(),
                charge_id: None,
                transfer_id: None,
                failure_code: None,
                failure_message: None,
                arrival_date: None,
                task_token: token.map(str::to_owned),
                outcome_delivered: false,
                correlation_id: "corr-b".into(),
                created_at: fixtures::t0(),
                updated_at: fixtures::t0(),
            },
            None,
        )
        .await
        .unwrap();
}

async fn intent(e: &Env, pm: &str, key: &str) -> PaymentIntent {
    e.m.stripe
        .create_payment_intent(&CreatePaymentIntent {
            amount: 12_000,
            currency: "usd".into(),
            customer: None,
            payment_method: Some(pm.into()),
            confirm: false,
            transfer_group: Some("bk_1".into()),
            application_fee_amount: None,
            transfer_destination: None,
            metadata: BTreeMap::new(),
            idempotency_key: key.into(),
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn signatures_are_verified_before_anything_happens() {
    let e = env();
    let body =
        json!({"id": "evt_1", "type": "customer.created", "data": {"object": {}}}).to_string();
    let now = e.m.clock.now().timestamp();
    let ok =
        e.w.handle(
            request(&body, &sign_header(&[SECRET], now, body.as_bytes())),
            None,
        )
        .await;
    assert_eq!(ok["statusCode"], 200);
    // rotation: Stripe signs with the old and the new secret; either matching is enough
    let rotated = sign_header(&["whsec_retired", "whsec_old"], now, body.as_bytes());
    assert_eq!(
        e.w.handle(request(&body, &rotated), None).await["statusCode"],
        200
    );
    let tampered = body.replace("customer.created", "payout.paid");
    let r =
        e.w.handle(
            request(&tampered, &sign_header(&[SECRET], now, body.as_bytes())),
            None,
        )
        .await;
    assert_eq!(r["statusCode"], 400);
    assert!(r["body"]
        .as_str()
        .unwrap()
        .contains("no v1 signature matches"));
    let old = sign_header(&[SECRET], now - 301, body.as_bytes());
    let r = e.w.handle(request(&body, &old), None).await;
    assert_eq!(r["statusCode"], 400);
    assert!(r["body"].as_str().unwrap().contains("tolerance is 300 s"));
    let r = e.w.handle(json!({"headers": {}, "body": body}), None).await;
    assert!(r["body"]
        .as_str()
        .unwrap()
        .contains("Stripe-Signature header is missing"));
    // a base64 body (function URLs encode binary bodies)
    let b64 = encode_base64(body.as_bytes());
    let sig = sign_header(&[SECRET], now, body.as_bytes());
    let r =
        e.w.handle(
            json!({"headers": {"stripe-signature": sig}, "body": b64, "isBase64Encoded": true}),
            None,
        )
        .await;
    assert_eq!(r["statusCode"], 200);
}

fn encode_base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[tokio::test]
async fn payment_webhooks_complete_the_waiting_workflow_once() {
    let e = env();
    let pi = intent(&e, "pm_card_authenticationRequired", "k1").await;
    let exec =
        e.m.workflows
            .start_execution(WorkflowType::BookingLifecycle, "booking-bk_1", "{}")
            .await
            .unwrap();
    e.m.workflows.register_task("tok-1", &exec.execution_arn);
    e.m.store
        .reserve_booking(&fixtures::booking_record(
            "bk_1",
            &fixtures::service("svc_1", "prv_1"),
            "cus_1",
            fixtures::t0() + chrono::Duration::days(1),
        ))
        .await
        .unwrap();
    record_for(&e, &pi, "bk_1", Some("tok-1")).await;
    e.m.stripe
        .confirm_payment_intent(&pi.id, None, "confirm-1")
        .await
        .unwrap();
    e.m.stripe.authenticate(&pi.id, true).unwrap();
    let hooks = take_hooks(&e);
    assert_eq!(hooks.len(), 1);
    let r = deliver(&e, &hooks[0]).await;
    assert_eq!(r["statusCode"], 200, "{r}");
    match e.m.workflows.task_outcome("tok-1") {
        Some(TaskOutcome::Success(v)) => assert_eq!(
            (v["status"].clone(), v["amount"].clone()),
            (json!("succeeded"), json!(120))
        ),
        other => panic!("{other:?}"),
    }
    // Stripe redelivers: 200, nothing happens twice
    let again = deliver(&e, &hooks[0]).await;
    assert_eq!(again["statusCode"], 200);
    assert!(
        e.m.bus.published().is_empty(),
        "the booking still waits: the workflow publishes, not the webhook"
    );
}

#[tokio::test]
async fn a_late_payment_for_an_expired_booking_is_published_for_refund() {
    let e = env();
    let mut b = fixtures::booking_record(
        "bk_1",
        &fixtures::service("svc_1", "prv_1"),
        "cus_1",
        fixtures::t0() + chrono::Duration::days(1),
    );
    b.booking
        .expire(
            marketplace_domain::events::ExpiryReason::PaymentNotReceived,
            fixtures::t0(),
            CorrelationId::new("corr-b").unwrap(),
        )
        .unwrap();
    e.m.store.reserve_booking(&b).await.unwrap();
    let pi = intent(&e, "pm_card_visa", "k1").await;
    record_for(&e, &pi, "bk_1", None).await;
    e.m.stripe
        .confirm_payment_intent(&pi.id, None, "c1")
        .await
        .unwrap();
    let hooks = take_hooks(&e);
    deliver(&e, &hooks[0]).await;
    deliver(&e, &hooks[0]).await;
    let published = e.m.bus.of_type("Payment Succeeded");
    assert_eq!(published.len(), 1);
    let d = published[0].detail();
    assert_eq!(
        (
            d["bookingId"].clone(),
            d["providerEarnings"].clone(),
            d["correlationId"].clone()
        ),
        (json!("bk_1"), json!(102), json!("corr-b"))
    );
}

#[tokio::test]
async fn declines_fail_the_token_with_the_failure_code() {
    let e = env();
    let pi = intent(&e, "pm_card_chargeDeclinedInsufficientFunds", "k1").await;
    let exec =
        e.m.workflows
            .start_execution(WorkflowType::PaymentProcessing, "payment-bk_1", "{}")
            .await
            .unwrap();
    e.m.workflows.register_task("tok-d", &exec.execution_arn);
    record_for(&e, &pi, "bk_1", Some("tok-d")).await;
    e.m.stripe
        .confirm_payment_intent(&pi.id, None, "c1")
        .await
        .unwrap();
    let hooks = take_hooks(&e);
    assert_eq!(hooks[0]["type"], "payment_intent.payment_failed");
    deliver(&e, &hooks[0]).await;
    match e.m.workflows.task_outcome("tok-d") {
        Some(TaskOutcome::Failure { error, cause }) => {
            assert_eq!(error, "Marketplace.PaymentDeclined");
            assert_eq!(
                serde_json::from_str::<Value>(&cause).unwrap()["failureCode"],
                "insufficient_funds"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn account_updated_completes_onboarding_and_late_payouts_are_published() {
    let e = env();
    let acct =
        e.m.stripe
            .create_account(&CreateAccount {
                country: "US".into(),
                email: "p@example.com".into(),
                business_type: "individual".into(),
                metadata: BTreeMap::new(),
                idempotency_key: "a1".into(),
            })
            .await
            .unwrap();
    let mut p = fixtures::provider_record("prv_1");
    p.provider
        .start_onboarding(acct.id.parse().unwrap(), fixtures::t0())
        .unwrap();
    e.m.store.put_provider(&p, None).await.unwrap();
    e.m.stripe.complete_onboarding(&acct.id).unwrap();
    let hooks = take_hooks(&e);
    let r = deliver(&e, &hooks[0]).await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(
        e.m.bus.detail_types(),
        ["Provider Account Updated", "Provider Onboarding Completed"]
    );
    let stored =
        e.m.store
            .get_provider("prv_1")
            .await
            .unwrap()
            .unwrap()
            .value;
    assert!(stored.provider.can_accept_bookings() && stored.charges_enabled);
    deliver(&e, &hooks[0]).await;
    assert_eq!(
        e.m.bus.published().len(),
        2,
        "a redelivered account.updated publishes nothing again"
    );

    // a payout whose workflow gave up waiting (expired token): the webhook publishes
    e.m.stripe.credit(&acct.id, "usd", 5_000);
    let po =
        e.m.stripe
            .create_payout(&CreatePayout {
                amount: 5_000,
                currency: "usd".into(),
                stripe_account: acct.id.clone(),
                metadata: BTreeMap::new(),
                idempotency_key: "p1".into(),
            })
            .await
            .unwrap();
    let usd = |c| Money::from_minor(c, Currency::Usd).unwrap();
    e.m.store
        .put_payment(
            &PaymentRecord {
                id: po.id.clone(),
                kind: PaymentKind::Payout,
                booking_id: None,
                customer_id: None,
                provider_id: Some("prv_1".into()),
                stripe_account_id: Some(acct.id.clone()),
                payment_intent_id: None,
                amount: usd(5_000),
                platform_fee: None,
                provider_earnings: None,
                refunded: usd(0),
                status: "pending".into(),
                charge_id: None,
                transfer_id: None,
                failure_code: None,
                failure_message: None,
                arrival_date: None,
                task_token: Some("expired-token".into()),
                outcome_delivered: false,
                correlation_id: "corr-po".into(),
                created_at: fixtures::t0(),
                updated_at: fixtures::t0(),
            },
            None,
        )
        .await
        .unwrap();
    e.m.stripe.settle_payout(&po.id, false).unwrap();
    let hooks = take_hooks(&e);
    let r = deliver(&e, &hooks[0]).await;
    assert_eq!(r["statusCode"], 200, "{r}");
    let failed = e.m.bus.of_type("Payout Failed");
    assert_eq!(failed.len(), 1, "{r}");
    assert_eq!(failed[0].detail()["failureCode"], "account_closed");
}

#[test]
fn base64() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
    assert!(base64_decode("a$b").is_none());
    assert_eq!(
        base64_decode(&encode_base64(b"any bytes \x00\xff")).unwrap(),
        b"any bytes \x00\xff"
    );
}

#[tokio::test]
async fn a_refund_settling_after_its_workflow_gave_up_is_published() {
    let e = env();
    let usd = |c| Money::from_minor(c, Currency::Usd).unwrap();
    let mut r = PaymentRecord {
        id: "re_late".into(),
        kind: PaymentKind::Refund,
        booking_id: Some("bk_1".into()),
        customer_id: None,
        provider_id: Some("prv_1".into()),
        stripe_account_id: None,
        payment_intent_id: Some("pi_1".into()),
        amount: usd(6_000),
        platform_fee: None,
        provider_earnings: None,
        refunded: usd(0),
        status: "pending".into(),
        charge_id: None,
        transfer_id: None,
        failure_code: None,
        failure_message: None,
        arrival_date: None,
        task_token: Some("expired".into()),
        outcome_delivered: false,
        correlation_id: "corr-r".into(),
        created_at: fixtures::t0(),
        updated_at: fixtures::t0(),
    };
    e.m.store.put_payment(&r, None).await.unwrap();
    let event = json!({"id": "evt_r1", "type": "charge.refunded", "data": {"object": {"id": "ch_1", "object": "charge",
        "refunds": {"data": [{"id": "re_late", "status": "succeeded", "amount": 6000, "currency": "usd",
                               "metadata": {"reason": "DISPUTE_RESOLVED", "disputeId": "dsp_1", "bookingId": "bk_1"}}]}}}});
    let resp = deliver(&e, &event).await;
    assert_eq!(resp["statusCode"], 200, "{resp}");
    deliver(&e, &event).await;
    let issued = e.m.bus.of_type("Refund Issued");
    assert_eq!(issued.len(), 1, "published once");
    let d = issued[0].detail();
    assert_eq!(
        (
            d["reason"].clone(),
            d["disputeId"].clone(),
            d["amount"].clone()
        ),
        (json!("DISPUTE_RESOLVED"), json!("dsp_1"), json!(60))
    );
    // an immediate refund nobody waited for is the workflow's to publish
    r.id = "re_now".into();
    r.task_token = None;
    e.m.store.put_payment(&r, None).await.unwrap();
    let event = json!({"id": "evt_r2", "type": "refund.updated", "data": {"object": {"id": "re_now", "status": "succeeded", "metadata": {}}}});
    deliver(&e, &event).await;
    assert_eq!(e.m.bus.of_type("Refund Issued").len(), 1);
}
