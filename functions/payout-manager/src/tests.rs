use super::*;
use marketplace_domain::WorkflowType;
use marketplace_ports::fixtures;
use marketplace_ports::memory::{MemoryPorts, TaskOutcome};
use marketplace_ports::{
    LedgerBalance, LedgerRepository, PaymentRepository, ProviderRepository, WorkflowClient,
};

struct Env {
    m: MemoryPorts,
    pm: PayoutManager,
}

fn env() -> Env {
    let m = MemoryPorts::new(fixtures::t0());
    let (log, metrics, _) = m.observability("payout-manager");
    let pm = PayoutManager::new(m.ports.clone(), log, metrics);
    Env { m, pm }
}

fn create_pi(booking: &str, confirm: bool, pm: Option<&str>) -> Value {
    json!({"action": "createPaymentIntent", "bookingId": booking, "customerId": "cus_1", "providerId": "prv_1",
           "amount": 120, "currency": "USD", "platformFee": 18, "stripeAccountId": "acct_1", "confirm": confirm,
           "paymentMethodId": pm, "idempotencyKey": format!("booking-{booking}-payment-intent"), "correlationId": "corr-1"})
}

async fn waiting_token(e: &Env, token: &str) {
    let x =
        e.m.workflows
            .start_execution(WorkflowType::BookingLifecycle, &format!("b-{token}"), "{}")
            .await
            .unwrap();
    e.m.workflows.register_task(token, &x.execution_arn);
}

async fn ok(e: &Env, v: Value) -> Value {
    e.pm.handle(v, None).await.unwrap()
}

async fn err(e: &Env, v: Value) -> HandlerError {
    e.pm.handle(v, None).await.unwrap_err()
}

#[tokio::test]
async fn payment_intents_are_created_once_with_the_fee_split() {
    let e = env();
    let out = ok(&e, create_pi("bk_1", false, None)).await;
    assert_eq!(out["status"], "requires_payment_method");
    assert_eq!(out["chargeId"], Value::Null);
    assert_eq!(
        (
            out["amount"].clone(),
            out["platformFee"].clone(),
            out["providerEarnings"].clone()
        ),
        (json!(120), json!(18), json!(102))
    );
    let again = ok(&e, create_pi("bk_1", false, None)).await;
    assert_eq!(
        again["paymentIntentId"], out["paymentIntentId"],
        "the idempotency key returns the same intent"
    );
    let calls = e.m.stripe.calls();
    assert_eq!(
        calls[0],
        (
            "create_payment_intent".to_owned(),
            Some("booking-bk_1-payment-intent".to_owned())
        )
    );
    let rec =
        e.m.store
            .get_payment(out["paymentIntentId"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap()
            .value;
    assert_eq!(
        rec.platform_fee
            .unwrap()
            .checked_add(&rec.provider_earnings.unwrap())
            .unwrap(),
        rec.amount,
        "fee + earnings = amount"
    );
    let paid = ok(&e, create_pi("bk_2", true, Some("pm_card_visa"))).await;
    assert_eq!(paid["status"], "succeeded");
    assert!(paid["chargeId"].as_str().unwrap().starts_with("ch_"));
    let declined = ok(&e, create_pi("bk_3", true, Some("pm_card_chargeDeclined"))).await;
    assert_eq!(declined["status"], "requires_payment_method");
    let rec =
        e.m.store
            .get_payment(declined["paymentIntentId"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap()
            .value;
    assert_eq!(
        (rec.status.as_str(), rec.failure_code.as_deref()),
        ("failed", Some("generic_decline"))
    );
    // errors
    let mut bad = create_pi("bk_4", false, None);
    bad["platformFee"] = json!(121);
    assert_eq!(
        err(&e, bad).await.message,
        "platformFee: must not exceed amount"
    );
    let e2 = err(&e, create_pi("bk_5", true, None)).await;
    assert_eq!(
        e2.message,
        "paymentMethodId: is required when confirm is true"
    );
    e.m.stripe.fail_next(
        "create_payment_intent",
        GatewayError::Transient {
            status: 503,
            message: "down".into(),
        },
    );
    assert_eq!(
        err(&e, create_pi("bk_6", false, None)).await.error_type,
        ErrorType::TransientError
    );
    e.m.stripe.fail_next(
        "create_payment_intent",
        GatewayError::permanent(400, "parameter_invalid_integer", "bad"),
    );
    assert_eq!(
        err(&e, create_pi("bk_6", false, None)).await.error_type,
        ErrorType::PaymentProviderError
    );
}

#[tokio::test]
async fn await_delivers_an_outcome_already_known_and_cancel_reports_races() {
    let e = env();
    let paid = ok(&e, create_pi("bk_1", true, Some("pm_card_visa"))).await;
    let pi = paid["paymentIntentId"].as_str().unwrap();
    waiting_token(&e, "tok-1").await;
    let w = ok(&e, json!({"action": "awaitPaymentConfirmation", "paymentIntentId": pi, "bookingId": "bk_1", "taskToken": "tok-1"})).await;
    assert_eq!(w["waiting"], json!(false));
    match e.m.workflows.task_outcome("tok-1") {
        Some(TaskOutcome::Success(v)) => assert_eq!(
            (v["status"].clone(), v["amount"].clone()),
            (json!("succeeded"), json!(120))
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err(
            &e,
            json!({"action": "awaitPaymentConfirmation", "paymentIntentId": pi})
        )
        .await
        .message,
        "taskToken: is required for this action"
    );
    // 3-D Secure pending: the task waits; cancelling it after the timeout cancels it
    let pending = ok(
        &e,
        create_pi("bk_2", true, Some("pm_card_authenticationRequired")),
    )
    .await;
    let pi2 = pending["paymentIntentId"].as_str().unwrap();
    waiting_token(&e, "tok-2").await;
    let w = ok(&e, json!({"action": "awaitPaymentConfirmation", "paymentIntentId": pi2, "bookingId": "bk_2", "taskToken": "tok-2"})).await;
    assert_eq!(w["waiting"], json!(true));
    assert_eq!(e.m.workflows.task_outcome("tok-2"), None);
    let c = ok(
        &e,
        json!({"action": "cancelPaymentIntent", "paymentIntentId": pi2, "reason": "abandoned"}),
    )
    .await;
    assert_eq!(c["status"], "canceled");
    // cancelling one that succeeded at the last moment reports succeeded
    let c = ok(
        &e,
        json!({"action": "cancelPaymentIntent", "paymentIntentId": pi, "reason": "abandoned"}),
    )
    .await;
    assert_eq!(
        (c["status"].clone(), c["amount"].clone()),
        (json!("succeeded"), json!(120))
    );
    let c = ok(
        &e,
        json!({"action": "cancelPaymentIntent", "paymentIntentId": null, "reason": "abandoned"}),
    )
    .await;
    assert_eq!(
        c,
        json!({"paymentIntentId": null, "status": "none", "chargeId": null, "amount": null, "currency": null})
    );
}

fn refund(pi: &str, amount: Value, key: &str) -> Value {
    json!({"action": "refundPayment", "paymentIntentId": pi, "bookingId": "bk_1", "amount": amount, "currency": "USD",
           "reason": "BOOKING_CANCELLED", "idempotencyKey": key, "correlationId": "corr-1"})
}

#[tokio::test]
async fn refunds_are_once_per_key_and_never_exceed_the_charge() {
    let e = env();
    let paid = ok(&e, create_pi("bk_1", true, Some("pm_card_visa"))).await;
    let pi = paid["paymentIntentId"].as_str().unwrap();
    let r1 = ok(
        &e,
        refund(pi, json!(60), "booking-bk_1-cancellation-refund"),
    )
    .await;
    assert_eq!(
        (r1["amount"].clone(), r1["status"].clone()),
        (json!(60), json!("succeeded"))
    );
    // the same task retried (redelivery): same refund, charged back once
    let again = ok(
        &e,
        refund(pi, json!(60), "booking-bk_1-cancellation-refund"),
    )
    .await;
    assert_eq!(again, r1);
    assert_eq!(e.m.stripe.refunded(pi), 6_000);
    let over = err(&e, refund(pi, json!(60.01), "dispute-d1-refund")).await;
    assert_eq!(over.error_type, ErrorType::RefundExceedsCharge);
    ok(&e, refund(pi, json!(60), "dispute-d1-refund")).await;
    assert_eq!(
        e.m.stripe.refunded(pi),
        12_000,
        "refunds add up to the charge, never more"
    );
    let rec = e.m.store.get_payment(pi).await.unwrap().unwrap().value;
    assert_eq!(rec.refunded, rec.amount);
    let more = err(&e, refund(pi, json!(1), "k3")).await;
    assert_eq!(more.error_type, ErrorType::RefundExceedsCharge);
    // the same key with another amount is refused
    let reuse = err(&e, refund(pi, json!(1), "dispute-d1-refund")).await;
    assert_eq!(reuse.error_type, ErrorType::ValidationError);
    // an unpaid intent has nothing to refund
    let unpaid = ok(&e, create_pi("bk_9", false, None)).await;
    let e9 = err(
        &e,
        refund(unpaid["paymentIntentId"].as_str().unwrap(), json!(1), "k9"),
    )
    .await;
    assert_eq!(e9.error_type, ErrorType::RefundExceedsCharge);
}

async fn onboard(e: &Env) -> String {
    let out = ok(e, json!({"action": "createConnectedAccount", "providerId": "prv_1", "email": "p@example.com", "country": "US",
                            "businessType": "individual", "idempotencyKey": "provider-prv_1-connect-account", "correlationId": "corr-p"})).await;
    out["stripeAccountId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn onboarding_creates_one_account_and_activates_the_provider() {
    let e = env();
    e.m.store
        .put_provider(&fixtures::provider_record("prv_1"), None)
        .await
        .unwrap();
    let acct = onboard(&e).await;
    let again = ok(&e, json!({"action": "createConnectedAccount", "providerId": "prv_1", "email": "p@example.com", "country": "US",
                              "businessType": "individual", "idempotencyKey": "provider-prv_1-connect-account"})).await;
    assert_eq!(
        (again["stripeAccountId"].as_str(), again["created"].clone()),
        (Some(acct.as_str()), json!(false))
    );
    let link = ok(
        &e,
        json!({"action": "createAccountLink", "providerId": "prv_1", "stripeAccountId": acct,
                             "refreshUrl": "https://x.test/r", "returnUrl": "https://x.test/d"}),
    )
    .await;
    assert!(link["url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(link["expiresAt"], "2026-03-01T09:05:00Z");
    let update = |charges: bool| {
        json!({"action": "updateProviderProfile", "providerId": "prv_1", "stripeAccountId": acct,
        "onboardingUrl": link["url"], "onboardingUrlExpiresAt": link["expiresAt"], "chargesEnabled": charges, "payoutsEnabled": charges, "correlationId": "corr-p"})
    };
    assert_eq!(
        ok(&e, update(false)).await,
        json!({"onboardingStatus": "PENDING_VERIFICATION"})
    );
    assert_eq!(
        ok(&e, update(true)).await,
        json!({"onboardingStatus": "ACTIVE"})
    );
    let p =
        e.m.store
            .get_provider("prv_1")
            .await
            .unwrap()
            .unwrap()
            .value;
    assert!(p.provider.can_accept_bookings());
    assert_eq!(p.onboarding_url.as_deref(), link["url"].as_str());
    let bad = err(&e, json!({"action": "createConnectedAccount", "providerId": "prv_2", "email": "q@example.com", "country": "usa",
                             "businessType": "individual", "idempotencyKey": "k"})).await;
    assert_eq!(bad.error_type, ErrorType::PaymentProviderError);
    let missing = err(&e, json!({"action": "updateProviderProfile", "providerId": "prv_x", "stripeAccountId": acct, "chargesEnabled": true, "payoutsEnabled": true})).await;
    assert_eq!(missing.error_type, ErrorType::NotFound);
}

#[tokio::test]
async fn earnings_transfer_payouts_and_the_ledger() {
    let e = env();
    e.m.store
        .put_provider(&fixtures::provider_record("prv_1"), None)
        .await
        .unwrap();
    let acct = onboard(&e).await;
    let mut req = create_pi("bk_1", true, Some("pm_card_visa"));
    req["stripeAccountId"] = json!(acct);
    let paid = ok(&e, req).await;
    let pi = paid["paymentIntentId"].as_str().unwrap().to_owned();
    let ledger_event = |id: &str, dt: &str, detail: Value| {
        json!({"action": "handleEvent", "rule": "payment-events-to-payout-manager",
        "eventId": id, "source": "marketplace.payment", "detailType": dt, "time": "2026-03-01T09:00:00Z", "detail": detail})
    };
    let succeeded = ledger_event(
        "ev-1",
        "Payment Succeeded",
        json!({"paymentIntentId": pi, "amount": 120, "platformFee": 18, "providerEarnings": 102, "currency": "USD", "bookingId": "bk_1"}),
    );
    assert_eq!(ok(&e, succeeded.clone()).await["appended"], json!(true));
    assert_eq!(
        ok(&e, succeeded).await["appended"],
        json!(false),
        "a redelivered event changes nothing"
    );
    let bal = || async { e.m.store.balance("prv_1", Currency::Usd).await.unwrap() };
    assert_eq!(
        bal().await,
        LedgerBalance {
            pending: 10_200,
            available: 0,
            paid_out: 0
        }
    );
    let release = json!({"action": "releaseEarnings", "bookingId": "bk_1", "providerId": "prv_1", "stripeAccountId": acct,
        "paymentIntentId": pi, "chargeId": paid["chargeId"], "amount": 102, "currency": "USD", "idempotencyKey": "booking-bk_1-earnings"});
    let t = ok(&e, release.clone()).await;
    assert_eq!(
        ok(&e, release).await["transferId"],
        t["transferId"],
        "one transfer per key"
    );
    assert_eq!(e.m.stripe.balance(&acct, "usd"), 10_200);
    assert_eq!(
        bal().await,
        LedgerBalance {
            pending: 0,
            available: 10_200,
            paid_out: 0
        }
    );
    // a refund after the transfer reverses the provider's share (50 % of 102 = 51)
    let r = ok(&e, refund(&pi, json!(60), "dispute-d1-refund")).await;
    assert_eq!(r["amount"], json!(60));
    assert_eq!(e.m.stripe.balance(&acct, "usd"), 5_100);
    ok(&e, ledger_event("ev-2", "Refund Issued", json!({"refundId": r["refundId"], "paymentIntentId": pi, "bookingId": "bk_1", "amount": 60, "currency": "USD", "reason": "DISPUTE_RESOLVED", "disputeId": "d1"}))).await;
    assert_eq!(
        bal().await,
        LedgerBalance {
            pending: 0,
            available: 5_100,
            paid_out: 0
        }
    );
    // payouts: more than the balance is refused; a payout reserves, completes or restores
    let payout = |amount: Value, key: &str| json!({"action": "createPayout", "providerId": "prv_1", "stripeAccountId": acct, "amount": amount, "currency": "USD", "idempotencyKey": key});
    assert_eq!(
        err(&e, payout(json!(52), "payout-1")).await.error_type,
        ErrorType::InsufficientBalance
    );
    let p = ok(&e, payout(json!(51), "payout-2")).await;
    assert_eq!(p["status"], "pending");
    assert_eq!(p["arrivalDate"], "2026-03-03T09:00:00Z");
    assert_eq!(bal().await.available, 0);
    waiting_token(&e, "tok-p").await;
    let w = ok(&e, json!({"action": "awaitPayoutSettlement", "payoutId": p["payoutId"], "providerId": "prv_1", "taskToken": "tok-p"})).await;
    assert_eq!(w["waiting"], json!(true));
    ok(&e, ledger_event("ev-3", "Payout Completed", json!({"payoutId": p["payoutId"], "providerId": "prv_1", "amount": 51, "currency": "USD"}))).await;
    assert_eq!(
        bal().await,
        LedgerBalance {
            pending: 0,
            available: 0,
            paid_out: 5_100
        }
    );
    assert_eq!(e.m.store.list_entries("prv_1").await.unwrap().len(), 5);
}

#[test]
fn pro_rata_rounds_half_up() {
    assert_eq!(pro_rata(6_000, 10_200, 12_000), 5_100);
    assert_eq!(pro_rata(1, 1, 2), 1);
    assert_eq!(pro_rata(1, 1, 3), 0);
    assert_eq!(pro_rata(5, 0, 0), 0);
    assert_eq!(stripe_refund_reason(RefundReason::Fraudulent), "fraudulent");
}

#[tokio::test]
async fn ledger_batches_report_failed_records_only() {
    let e = env();
    let paid = ok(&e, create_pi("bk_1", true, Some("pm_card_visa"))).await;
    let pi = paid["paymentIntentId"].as_str().unwrap();
    let ev = |id: &str, pi: &str| {
        json!({"id": id, "source": "marketplace.payment", "detail-type": "Payment Succeeded",
        "detail": {"paymentIntentId": pi, "amount": 120, "platformFee": 18, "providerEarnings": 102, "currency": "USD", "bookingId": "bk_1"}})
    };
    let batch = json!({"Records": [
        {"messageId": "m1", "body": ev("e1", pi).to_string()},
        {"messageId": "m2", "body": ev("e2", "pi_unknown").to_string()},
        {"messageId": "m3", "body": ev("e1", pi).to_string()},
    ]});
    let resp = ok(&e, batch).await;
    assert_eq!(
        resp,
        json!({"batchItemFailures": [{"itemIdentifier": "m2"}]})
    );
    assert_eq!(
        e.m.store
            .balance("prv_1", Currency::Usd)
            .await
            .unwrap()
            .pending,
        10_200,
        "e1 counted once"
    );
}

#[tokio::test]
async fn a_wait_for_a_booking_already_cancelled_fails_at_once() {
    use marketplace_domain::ids::CorrelationId;
    use marketplace_ports::BookingRepository;
    let e = env();
    let mut b = fixtures::booking_record(
        "bk_1",
        &fixtures::service("svc_1", "prv_1"),
        "cus_1",
        fixtures::t0() + chrono::Duration::days(1),
    );
    b.booking
        .cancel(
            marketplace_domain::events::CancelledBy::Customer,
            "changed mind",
            Money::zero(Currency::Usd),
            fixtures::t0(),
            CorrelationId::new("c").unwrap(),
        )
        .unwrap();
    e.m.store.reserve_booking(&b).await.unwrap();
    let pi = ok(&e, create_pi("bk_1", false, None)).await;
    waiting_token(&e, "tok-c").await;
    let w = ok(&e, json!({"action": "awaitPaymentConfirmation", "paymentIntentId": pi["paymentIntentId"], "bookingId": "bk_1", "taskToken": "tok-c"})).await;
    assert_eq!(w["waiting"], json!(false));
    match e.m.workflows.task_outcome("tok-c") {
        Some(TaskOutcome::Failure { error, .. }) => {
            assert_eq!(error, "Marketplace.BookingCancelled")
        }
        other => panic!("{other:?}"),
    }
}
