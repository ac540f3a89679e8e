//! payout-manager's handler over the Stripe adapter and the local fake: the separate
//! charges and transfers design end to end, and Stripe's refusals reaching the workflows
//! as the stable `errorType` names their Retry/Catch match on.

mod fake;

use fake::Answer;
use marketplace_ports::fixtures;
use marketplace_ports::memory::MemoryPorts;
use marketplace_ports::PaymentRepository;
use payout_manager::PayoutManager;
use serde_json::{json, Value};
use std::sync::Arc;

fn handler(fake: &fake::Fake, attempts: u32) -> (MemoryPorts, PayoutManager) {
    let mut m = MemoryPorts::new(fixtures::t0());
    m.ports.gateway = Arc::new(fake.gateway(attempts));
    let (log, metrics, _) = m.observability("payout-manager");
    let pm = PayoutManager::new(m.ports.clone(), log, metrics);
    (m, pm)
}

fn create_pi(booking: &str, pm: &str) -> Value {
    json!({"action": "createPaymentIntent", "bookingId": booking, "customerId": "cus_1", "providerId": "prv_1",
           "amount": 120, "currency": "USD", "platformFee": 18, "stripeAccountId": "acct_1Provider",
           "confirm": true, "paymentMethodId": pm,
           "idempotencyKey": format!("booking-{booking}-payment-intent"), "correlationId": "corr-1"})
}

fn amount_of(r: &fake::Recorded) -> i64 {
    r.field("amount").and_then(|a| a.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn charge_transfer_refund_and_reversal_go_through_the_adapter() {
    let fake = fake::start(|r, _| match r.route() {
        ("POST", "/v1/payment_intents") => {
            let mut pi = fake::payment_intent("pi_3Fake0001", amount_of(r), "succeeded");
            pi["metadata"] = fake::metadata_of(r);
            Answer::Json(200, pi)
        }
        ("POST", "/v1/transfers") => Answer::Json(
            200,
            fake::transfer("tr_1Fake0001", amount_of(r), "acct_1Provider", "bk_1"),
        ),
        ("POST", "/v1/refunds") => Answer::Json(
            200,
            fake::refund("re_3Fake0001", amount_of(r), "pi_3Fake0001"),
        ),
        ("POST", "/v1/transfers/tr_1Fake0001/reversals") => Answer::Json(
            200,
            fake::transfer_reversal("trr_1Fake0001", amount_of(r), "tr_1Fake0001"),
        ),
        _ => Answer::Json(
            404,
            fake::error("invalid_request_error", None, "Unrecognized request URL"),
        ),
    })
    .await;
    let (m, pm) = handler(&fake, 3);
    let out = pm
        .handle(create_pi("bk_1", "pm_card_visa"), None)
        .await
        .expect("charged");
    assert_eq!(out["status"], "succeeded");
    assert_eq!(out["chargeId"], "ch_3Fake0001");
    assert_eq!(out["providerEarnings"], json!(102));
    pm.handle(
        json!({"action": "releaseEarnings", "bookingId": "bk_1", "providerId": "prv_1",
               "stripeAccountId": "acct_1Provider", "currency": "USD", "amount": 102,
               "paymentIntentId": "pi_3Fake0001", "chargeId": "ch_3Fake0001",
               "idempotencyKey": "booking-bk_1-release"}),
        None,
    )
    .await
    .expect("released");
    let refund = pm
        .handle(
            json!({"action": "refundPayment", "paymentIntentId": "pi_3Fake0001", "bookingId": "bk_1",
                   "amount": 60, "currency": "USD", "reason": "BOOKING_CANCELLED",
                   "idempotencyKey": "booking-bk_1-refund", "correlationId": "corr-1"}),
            None,
        )
        .await
        .expect("refunded");
    assert_eq!(refund["refundId"], "re_3Fake0001");

    let reqs = fake.requests();
    let summary: Vec<(&str, Option<&str>, Option<&str>)> = reqs
        .iter()
        .map(|r| {
            (
                r.path.as_str(),
                r.header("idempotency-key"),
                r.field("amount"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "/v1/payment_intents",
                Some("booking-bk_1-payment-intent"),
                Some("12000")
            ),
            ("/v1/transfers", Some("booking-bk_1-release"), Some("10200")),
            ("/v1/refunds", Some("booking-bk_1-refund"), Some("6000")),
            (
                "/v1/transfers/tr_1Fake0001/reversals",
                Some("booking-bk_1-refund-reversal"),
                Some("5100")
            ),
        ],
        "half the charge refunded after the transfer reverses half the earnings"
    );
    assert_eq!(reqs[0].field("transfer_group"), Some("bk_1"));
    assert_eq!(reqs[0].field("application_fee_amount"), None);
    assert_eq!(reqs[0].field("metadata[platformFee]"), Some("18.00"));
    assert_eq!(reqs[1].field("destination"), Some("acct_1Provider"));
    assert_eq!(reqs[1].field("source_transaction"), Some("ch_3Fake0001"));
    assert_eq!(reqs[2].field("reason"), Some("requested_by_customer"));
    let record = m
        .store
        .get_payment("pi_3Fake0001")
        .await
        .expect("store")
        .expect("recorded")
        .value;
    assert_eq!(record.transfer_id.as_deref(), Some("tr_1Fake0001"));
    assert_eq!(record.refunded.to_minor(), 6_000);
}

#[tokio::test]
async fn a_declined_card_is_a_failed_payment_not_an_error() {
    let fake = fake::start(|r, _| {
        Answer::Json(
            402,
            fake::card_declined(
                "insufficient_funds",
                "Your card has insufficient funds.",
                Some(fake::payment_intent(
                    "pi_3Declined",
                    amount_of(r),
                    "requires_payment_method",
                )),
            ),
        )
    })
    .await;
    let (m, pm) = handler(&fake, 3);
    let out = pm
        .handle(
            create_pi("bk_2", "pm_card_chargeDeclinedInsufficientFunds"),
            None,
        )
        .await
        .expect("a decline is an outcome");
    assert_eq!(out["paymentIntentId"], "pi_3Declined");
    assert_eq!(out["status"], "requires_payment_method");
    let record = m
        .store
        .get_payment("pi_3Declined")
        .await
        .expect("store")
        .expect("recorded")
        .value;
    assert_eq!(record.status, "failed");
    assert_eq!(record.failure_code.as_deref(), Some("insufficient_funds"));
}

#[tokio::test]
async fn stripe_refusals_reach_the_workflows_as_stable_error_types() {
    let fake = fake::start(|r, _| match r.route() {
        ("POST", "/v1/payouts") => Answer::Json(
            400,
            fake::error(
                "invalid_request_error",
                Some("balance_insufficient"),
                "You have insufficient funds in your Stripe account for this transfer.",
            ),
        ),
        ("POST", "/v1/refunds") => Answer::Json(
            400,
            fake::error(
                "invalid_request_error",
                Some("charge_already_refunded"),
                "Charge ch_3Fake0001 has already been refunded.",
            ),
        ),
        ("POST", "/v1/accounts") => Answer::Json(
            400,
            fake::error(
                "invalid_request_error",
                Some("parameter_invalid_string"),
                "Invalid email address: not-an-email",
            ),
        ),
        _ => Answer::Json(
            503,
            fake::error("api_error", None, "Stripe is temporarily unavailable."),
        ),
    })
    .await;
    let (_, pm) = handler(&fake, 2);
    let error_type = |v: Value| {
        let pm = &pm;
        async move {
            pm.handle(v, None)
                .await
                .expect_err("refused")
                .error_type
                .as_str()
        }
    };
    assert_eq!(
        error_type(json!({"action": "createPayout", "providerId": "prv_1", "stripeAccountId": "acct_1Provider",
                          "amount": 80, "currency": "USD", "idempotencyKey": "payout-1"}))
        .await,
        "Marketplace.InsufficientBalance"
    );
    assert_eq!(
        error_type(json!({"action": "refundPayment", "paymentIntentId": "pi_3Fake0001", "bookingId": "bk_1",
                          "amount": 10, "currency": "USD", "reason": "BOOKING_CANCELLED",
                          "idempotencyKey": "booking-bk_1-refund"}))
        .await,
        "Marketplace.RefundExceedsCharge"
    );
    assert_eq!(
        error_type(json!({"action": "createConnectedAccount", "providerId": "prv_9", "email": "not-an-email",
                          "country": "US", "idempotencyKey": "provider-prv_9-account"}))
        .await,
        "Marketplace.PaymentProviderError"
    );
    assert_eq!(
        error_type(create_pi("bk_3", "pm_card_visa")).await,
        "Marketplace.TransientError"
    );
    let intents = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/payment_intents")
        .count();
    assert_eq!(
        intents, 2,
        "retried once (max_attempts 2), then reported transient"
    );
}
