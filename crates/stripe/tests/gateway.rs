//! The Stripe adapter against a local fake of the Stripe API: the requests it sends
//! (method, path, form fields, `Idempotency-Key`, `Stripe-Account`, bearer key) and how it
//! reads Stripe's answers, declines, errors and outages.

mod fake;

use fake::{Answer, Recorded};
use marketplace_ports::payments::*;
use marketplace_ports::{ErrorType, GatewayError, HandlerError, HasErrorType};
use serde_json::json;
use std::collections::BTreeMap;

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What every request carries.
fn assert_common(r: &Recorded) {
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", fake::KEY).as_str())
    );
    assert!(
        r.header("stripe-version").is_some_and(|v| !v.is_empty()),
        "the API version is pinned"
    );
    assert!(r
        .header("user-agent")
        .is_some_and(|ua| ua.contains("ecosystem-marketplace")));
    if r.method == "POST" {
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }
}

fn pi_request(key: &str) -> CreatePaymentIntent {
    CreatePaymentIntent {
        amount: 12_050,
        currency: "usd".into(),
        customer: None,
        payment_method: Some("pm_card_visa".into()),
        confirm: true,
        transfer_group: Some("bk_1".into()),
        application_fee_amount: None,
        transfer_destination: None,
        metadata: meta(&[("bookingId", "bk_1"), ("providerId", "prv_1")]),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn creates_a_confirmed_payment_intent_for_separate_charges_and_transfers() {
    let fake = fake::start(|r, _| {
        let mut pi = fake::payment_intent("pi_3Fake0001", 12_050, "succeeded");
        pi["metadata"] = fake::metadata_of(r);
        pi["transfer_group"] = json!(r.field("transfer_group"));
        Answer::Json(200, pi)
    })
    .await;
    let pi = fake
        .gateway(3)
        .create_payment_intent(&pi_request("booking-bk_1-payment-intent"))
        .await
        .expect("created");
    assert_eq!(pi.id, "pi_3Fake0001");
    assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
    assert_eq!((pi.amount, pi.amount_received), (12_050, 12_050));
    assert_eq!(pi.currency, "usd");
    assert_eq!(pi.latest_charge.as_deref(), Some("ch_3Fake0001"));
    assert_eq!(pi.client_secret, "pi_3Fake0001_secret_Fake0001");
    assert_eq!(pi.transfer_group.as_deref(), Some("bk_1"));
    assert_eq!(
        pi.metadata,
        meta(&[("bookingId", "bk_1"), ("providerId", "prv_1")])
    );
    assert_eq!(pi.last_payment_error, None);

    let r = fake.single();
    assert_common(&r);
    assert_eq!(r.route(), ("POST", "/v1/payment_intents"));
    assert_eq!(
        r.header("idempotency-key"),
        Some("booking-bk_1-payment-intent")
    );
    assert_eq!(r.header("stripe-account"), None, "charged on the platform");
    let expected: BTreeMap<String, String> = [
        ("amount", "12050"),
        ("currency", "usd"),
        ("confirm", "true"),
        ("payment_method", "pm_card_visa"),
        ("automatic_payment_methods[enabled]", "true"),
        ("automatic_payment_methods[allow_redirects]", "never"),
        ("transfer_group", "bk_1"),
        ("metadata[bookingId]", "bk_1"),
        ("metadata[providerId]", "prv_1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        r.form, expected,
        "exactly these fields, no fee and no destination"
    );
}

#[tokio::test]
async fn sends_destination_charge_fields_when_asked() {
    let fake = fake::start(|_, _| {
        Answer::Json(
            200,
            fake::payment_intent("pi_3Fake0002", 5_000, "requires_payment_method"),
        )
    })
    .await;
    let mut req = pi_request("k-dest");
    req.confirm = false;
    req.payment_method = None;
    req.customer = Some("cus_Fake0001".into());
    req.application_fee_amount = Some(750);
    req.transfer_destination = Some("acct_1Provider".into());
    req.amount = 5_000;
    let pi = fake
        .gateway(3)
        .create_payment_intent(&req)
        .await
        .expect("created");
    assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!(pi.latest_charge, None);
    let r = fake.single();
    assert_eq!(r.field("amount"), Some("5000"));
    assert_eq!(r.field("application_fee_amount"), Some("750"));
    assert_eq!(
        r.field("transfer_data[destination]"),
        Some("acct_1Provider")
    );
    assert_eq!(r.field("customer"), Some("cus_Fake0001"));
    assert_eq!(r.field("confirm"), None, "not confirmed by the server");
    assert_eq!(r.field("automatic_payment_methods[enabled]"), None);
}

#[tokio::test]
async fn a_declined_confirmation_is_the_intent_with_its_last_payment_error() {
    let fake = fake::start(|_, _| {
        Answer::Json(
            402,
            fake::card_declined(
                "insufficient_funds",
                "Your card has insufficient funds.",
                Some(fake::payment_intent(
                    "pi_3Declined",
                    12_050,
                    "requires_payment_method",
                )),
            ),
        )
    })
    .await;
    let pi = fake
        .gateway(3)
        .create_payment_intent(&pi_request("booking-bk_2-payment-intent"))
        .await
        .expect("a decline with the intent attached is not an error of the port");
    assert_eq!(pi.id, "pi_3Declined");
    assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!(
        pi.last_payment_error,
        Some(PaymentError {
            code: "card_declined".into(),
            decline_code: Some("insufficient_funds".into()),
            message: "Your card has insufficient funds.".into(),
        })
    );
    assert_eq!(fake.requests().len(), 1, "a decline is never retried");
}

#[tokio::test]
async fn a_decline_without_an_intent_is_the_typed_decline_error() {
    let fake = fake::start(|_, _| {
        Answer::Json(
            402,
            fake::card_declined("generic_decline", "Your card was declined.", None),
        )
    })
    .await;
    let err = fake
        .gateway(3)
        .confirm_payment_intent(
            "pi_3Fake0003",
            Some("pm_card_chargeDeclined"),
            "confirm-pi_3Fake0003",
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        GatewayError::Declined {
            code: "card_declined".into(),
            decline_code: Some("generic_decline".into()),
            message: "Your card was declined.".into(),
            payment_intent_id: None,
        }
    );
    let handler: HandlerError = err.into();
    assert_eq!(handler.error_type.as_str(), "Marketplace.PaymentDeclined");
    assert_eq!(
        handler.cause,
        Some(
            json!({"failureCode": "generic_decline", "failureMessage": "Your card was declined."})
        )
    );
    let r = fake.single();
    assert_eq!(
        r.route(),
        ("POST", "/v1/payment_intents/pi_3Fake0003/confirm")
    );
    assert_eq!(r.field("payment_method"), Some("pm_card_chargeDeclined"));
    assert_eq!(r.header("idempotency-key"), Some("confirm-pi_3Fake0003"));
}

#[tokio::test]
async fn retrieves_and_cancels_payment_intents() {
    let fake = fake::start(|r, _| match r.route() {
        ("GET", "/v1/payment_intents/pi_3Fake0004") => Answer::Json(
            200,
            fake::payment_intent("pi_3Fake0004", 9_900, "requires_action"),
        ),
        ("POST", "/v1/payment_intents/pi_3Fake0004/cancel") => {
            let mut pi = fake::payment_intent("pi_3Fake0004", 9_900, "canceled");
            pi["cancellation_reason"] = json!(r.field("cancellation_reason"));
            pi["canceled_at"] = json!(1_772_356_100);
            Answer::Json(200, pi)
        }
        _ => Answer::Json(
            404,
            fake::error("invalid_request_error", None, "Unrecognized request URL"),
        ),
    })
    .await;
    let gw = fake.gateway(3);
    let pi = gw
        .retrieve_payment_intent("pi_3Fake0004")
        .await
        .expect("retrieved");
    assert_eq!(pi.status, PaymentIntentStatus::RequiresAction);
    let pi = gw
        .cancel_payment_intent("pi_3Fake0004", Some("abandoned"), "cancel-pi_3Fake0004")
        .await
        .expect("canceled");
    assert_eq!(pi.status, PaymentIntentStatus::Canceled);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_common(&reqs[0]);
    assert_eq!(
        reqs[0].header("idempotency-key"),
        None,
        "a read carries no key"
    );
    assert!(reqs[0].body.is_empty());
    assert_common(&reqs[1]);
    assert_eq!(
        reqs[1].header("idempotency-key"),
        Some("cancel-pi_3Fake0004")
    );
    assert_eq!(reqs[1].field("cancellation_reason"), Some("abandoned"));
}

#[tokio::test]
async fn refunds_part_or_all_of_a_payment() {
    let fake = fake::start(|r, _| {
        let amount = r
            .field("amount")
            .and_then(|a| a.parse().ok())
            .unwrap_or(12_050);
        let mut re = fake::refund("re_3Fake0001", amount, "pi_3Fake0001");
        re["metadata"] = fake::metadata_of(r);
        Answer::Json(200, re)
    })
    .await;
    let gw = fake.gateway(3);
    let partial = gw
        .create_refund(&CreateRefund {
            payment_intent: "pi_3Fake0001".into(),
            amount: Some(5_000),
            reason: Some("requested_by_customer".into()),
            metadata: meta(&[("bookingId", "bk_1"), ("disputeId", "dsp_1")]),
            idempotency_key: "dispute-dsp_1-refund".into(),
        })
        .await
        .expect("refunded");
    assert_eq!(
        partial,
        Refund {
            id: "re_3Fake0001".into(),
            amount: 5_000,
            currency: "usd".into(),
            payment_intent: "pi_3Fake0001".into(),
            status: "succeeded".into(),
            failure_reason: None,
            metadata: meta(&[("bookingId", "bk_1"), ("disputeId", "dsp_1")]),
        }
    );
    let full = gw
        .create_refund(&CreateRefund {
            payment_intent: "pi_3Fake0001".into(),
            amount: None,
            reason: None,
            metadata: BTreeMap::new(),
            idempotency_key: "booking-bk_1-refund".into(),
        })
        .await
        .expect("refunded");
    assert_eq!(full.amount, 12_050);
    let reqs = fake.requests();
    assert_eq!(reqs[0].route(), ("POST", "/v1/refunds"));
    assert_common(&reqs[0]);
    assert_eq!(
        reqs[0].header("idempotency-key"),
        Some("dispute-dsp_1-refund")
    );
    assert_eq!(reqs[0].field("payment_intent"), Some("pi_3Fake0001"));
    assert_eq!(reqs[0].field("amount"), Some("5000"));
    assert_eq!(reqs[0].field("reason"), Some("requested_by_customer"));
    assert_eq!(reqs[0].field("metadata[disputeId]"), Some("dsp_1"));
    assert_eq!(
        reqs[1].field("amount"),
        None,
        "a full refund names no amount"
    );
    assert_eq!(reqs[1].field("reason"), None);
    assert_eq!(
        reqs[1].header("idempotency-key"),
        Some("booking-bk_1-refund")
    );
}

#[tokio::test]
async fn transfers_earnings_and_reverses_them() {
    let fake = fake::start(|r, _| match r.route() {
        ("POST", "/v1/transfers") => {
            let mut t = fake::transfer(
                "tr_1Fake0001",
                r.field("amount").and_then(|a| a.parse().ok()).unwrap_or(0),
                r.field("destination").unwrap_or(""),
                r.field("transfer_group").unwrap_or(""),
            );
            t["metadata"] = fake::metadata_of(r);
            Answer::Json(200, t)
        }
        ("POST", "/v1/transfers/tr_1Fake0001/reversals") => Answer::Json(
            200,
            fake::transfer_reversal(
                "trr_1Fake0001",
                r.field("amount")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(10_243),
                "tr_1Fake0001",
            ),
        ),
        _ => Answer::Json(
            404,
            fake::error("invalid_request_error", None, "Unrecognized request URL"),
        ),
    })
    .await;
    let gw = fake.gateway(3);
    let t = gw
        .create_transfer(&CreateTransfer {
            amount: 10_243,
            currency: "usd".into(),
            destination: "acct_1Provider".into(),
            transfer_group: Some("bk_1".into()),
            source_transaction: Some("ch_3Fake0001".into()),
            metadata: meta(&[("bookingId", "bk_1")]),
            idempotency_key: "booking-bk_1-release".into(),
        })
        .await
        .expect("transferred");
    assert_eq!(
        t,
        Transfer {
            id: "tr_1Fake0001".into(),
            amount: 10_243,
            amount_reversed: 0,
            currency: "usd".into(),
            destination: "acct_1Provider".into(),
            transfer_group: Some("bk_1".into()),
        }
    );
    let rev = gw
        .create_transfer_reversal("tr_1Fake0001", Some(4_250), "dispute-dsp_1-refund-reversal")
        .await
        .expect("reversed");
    assert_eq!(
        rev,
        TransferReversal {
            id: "trr_1Fake0001".into(),
            amount: 4_250,
            transfer: "tr_1Fake0001".into(),
        }
    );
    let reqs = fake.requests();
    assert_common(&reqs[0]);
    assert_eq!(
        reqs[0].header("idempotency-key"),
        Some("booking-bk_1-release")
    );
    assert_eq!(
        reqs[0].header("stripe-account"),
        None,
        "sent from the platform"
    );
    for (k, v) in [
        ("amount", "10243"),
        ("currency", "usd"),
        ("destination", "acct_1Provider"),
        ("transfer_group", "bk_1"),
        ("source_transaction", "ch_3Fake0001"),
        ("metadata[bookingId]", "bk_1"),
    ] {
        assert_eq!(reqs[0].field(k), Some(v), "field {k}");
    }
    assert_common(&reqs[1]);
    assert_eq!(
        reqs[1].header("idempotency-key"),
        Some("dispute-dsp_1-refund-reversal")
    );
    assert_eq!(
        reqs[1].form,
        [("amount".to_owned(), "4250".to_owned())].into()
    );
}

#[tokio::test]
async fn pays_out_on_the_connected_account() {
    let fake = fake::start(|r, _| {
        let mut p = fake::payout(
            "po_1Fake0001",
            r.field("amount").and_then(|a| a.parse().ok()).unwrap_or(0),
            "pending",
        );
        p["metadata"] = fake::metadata_of(r);
        Answer::Json(200, p)
    })
    .await;
    let p = fake
        .gateway(3)
        .create_payout(&CreatePayout {
            amount: 8_000,
            currency: "usd".into(),
            stripe_account: "acct_1Provider".into(),
            metadata: meta(&[("providerId", "prv_1")]),
            idempotency_key: "payout-prv_1-2026-03-01".into(),
        })
        .await
        .expect("paid out");
    assert_eq!(
        p,
        Payout {
            id: "po_1Fake0001".into(),
            amount: 8_000,
            currency: "usd".into(),
            status: "pending".into(),
            arrival_date: 1_772_496_000,
            failure_code: None,
            failure_message: None,
            stripe_account: "acct_1Provider".into(),
            metadata: meta(&[("providerId", "prv_1")]),
        }
    );
    let r = fake.single();
    assert_common(&r);
    assert_eq!(r.route(), ("POST", "/v1/payouts"));
    assert_eq!(r.header("stripe-account"), Some("acct_1Provider"));
    assert_eq!(r.header("idempotency-key"), Some("payout-prv_1-2026-03-01"));
    assert_eq!(r.field("amount"), Some("8000"));
    assert_eq!(r.field("currency"), Some("usd"));
    assert_eq!(r.field("metadata[providerId]"), Some("prv_1"));
}

#[tokio::test]
async fn onboards_express_accounts_with_account_links() {
    let fake = fake::start(|r, _| match r.route() {
        ("POST", "/v1/accounts") => {
            let mut a = fake::account("acct_1Provider", r.field("email").unwrap_or(""), false);
            a["metadata"] = fake::metadata_of(r);
            Answer::Json(200, a)
        }
        ("GET", "/v1/accounts/acct_1Provider") => Answer::Json(
            200,
            fake::account("acct_1Provider", "provider@example.com", true),
        ),
        ("POST", "/v1/account_links") => {
            Answer::Json(200, fake::account_link(r.field("account").unwrap_or("")))
        }
        _ => Answer::Json(
            404,
            fake::error("invalid_request_error", None, "Unrecognized request URL"),
        ),
    })
    .await;
    let gw = fake.gateway(3);
    let acct = gw
        .create_account(&CreateAccount {
            country: "US".into(),
            email: "provider@example.com".into(),
            business_type: "individual".into(),
            metadata: meta(&[("providerId", "prv_1")]),
            idempotency_key: "provider-prv_1-account".into(),
        })
        .await
        .expect("created");
    assert_eq!(
        acct,
        Account {
            id: "acct_1Provider".into(),
            country: "US".into(),
            email: "provider@example.com".into(),
            charges_enabled: false,
            payouts_enabled: false,
            details_submitted: false,
            metadata: meta(&[("providerId", "prv_1")]),
        }
    );
    let again = gw
        .retrieve_account("acct_1Provider")
        .await
        .expect("retrieved");
    assert!(again.charges_enabled && again.payouts_enabled && again.details_submitted);
    let link = gw
        .create_account_link(&CreateAccountLink {
            account: "acct_1Provider".into(),
            refresh_url: "https://marketplace.example.com/onboarding/refresh".into(),
            return_url: "https://marketplace.example.com/onboarding/done".into(),
        })
        .await
        .expect("linked");
    assert_eq!(
        link,
        AccountLink {
            url: "https://connect.stripe.com/setup/e/acct_1Provider/Fake0001".into(),
            created: 1_772_355_600,
            expires_at: 1_772_355_900,
        }
    );
    let reqs = fake.requests();
    assert_common(&reqs[0]);
    assert_eq!(
        reqs[0].header("idempotency-key"),
        Some("provider-prv_1-account")
    );
    for (k, v) in [
        ("type", "express"),
        ("country", "US"),
        ("email", "provider@example.com"),
        ("business_type", "individual"),
        ("capabilities[card_payments][requested]", "true"),
        ("capabilities[transfers][requested]", "true"),
        ("metadata[providerId]", "prv_1"),
    ] {
        assert_eq!(reqs[0].field(k), Some(v), "field {k}");
    }
    assert_eq!(reqs[1].route(), ("GET", "/v1/accounts/acct_1Provider"));
    assert_eq!(reqs[1].header("idempotency-key"), None);
    assert_common(&reqs[2]);
    assert_eq!(
        reqs[2].header("idempotency-key"),
        None,
        "links expire within minutes: a replayed one would be stale"
    );
    for (k, v) in [
        ("account", "acct_1Provider"),
        ("type", "account_onboarding"),
        (
            "refresh_url",
            "https://marketplace.example.com/onboarding/refresh",
        ),
        (
            "return_url",
            "https://marketplace.example.com/onboarding/done",
        ),
    ] {
        assert_eq!(reqs[2].field(k), Some(v), "field {k}");
    }
}

#[tokio::test]
async fn a_transient_failure_is_retried_with_the_same_key_and_body() {
    let fake = fake::start(|_, seen| match seen {
        0 => Answer::Json(
            503,
            fake::error("api_error", None, "Stripe is temporarily unavailable."),
        ),
        1 => Answer::Json(
            429,
            fake::error(
                "invalid_request_error",
                Some("rate_limit"),
                "Too many requests hit the API too quickly.",
            ),
        ),
        _ => Answer::Json(200, fake::refund("re_3Fake0002", 2_000, "pi_3Fake0001")),
    })
    .await;
    let refund = fake
        .gateway(3)
        .create_refund(&CreateRefund {
            payment_intent: "pi_3Fake0001".into(),
            amount: Some(2_000),
            reason: None,
            metadata: meta(&[("bookingId", "bk_1")]),
            idempotency_key: "booking-bk_1-refund-1".into(),
        })
        .await
        .expect("refunded on the third attempt");
    assert_eq!(refund.id, "re_3Fake0002");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(r.header("idempotency-key"), Some("booking-bk_1-refund-1"));
        assert_eq!(r.body, reqs[0].body, "the same request every time");
    }
}

#[tokio::test]
async fn transient_failures_end_as_transient_errors_after_the_last_attempt() {
    let fake = fake::start(|_, _| {
        Answer::Json(
            500,
            fake::error("api_error", None, "An unknown error occurred."),
        )
    })
    .await;
    let err = fake
        .gateway(2)
        .create_transfer(&CreateTransfer {
            amount: 100,
            currency: "usd".into(),
            destination: "acct_1Provider".into(),
            transfer_group: None,
            source_transaction: None,
            metadata: BTreeMap::new(),
            idempotency_key: "t-500".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GatewayError::Transient { status: 500, message } if message.contains("An unknown error occurred.")),
        "{err:?}"
    );
    assert_eq!(err.error_type(), ErrorType::TransientError);
    assert_eq!(fake.requests().len(), 2, "max_attempts bounds the retries");

    // an answer that is not Stripe's error JSON (a proxy's page) is transient too
    let proxy = fake::start(|_, _| Answer::Text(502, "<html>Bad Gateway</html>")).await;
    let err = proxy
        .gateway(1)
        .retrieve_account("acct_1Provider")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::TransientError, "{err:?}");
    assert_eq!(proxy.requests().len(), 1);

    // nobody listening: a network failure, status 0
    let mut config = marketplace_stripe::StripeConfig::new(fake::KEY);
    config.api_base = Some(fake::closed_port().await);
    config.max_attempts = 2;
    config.initial_backoff = std::time::Duration::ZERO;
    let gw = marketplace_stripe::StripeGateway::new(config).expect("valid");
    let err = gw.retrieve_payment_intent("pi_1").await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Transient { status: 0, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn api_errors_map_to_the_stable_error_types() {
    let fake = fake::start(|r, _| match r.route() {
        ("POST", "/v1/payouts") => Answer::Json(
            400,
            fake::error(
                "invalid_request_error",
                Some("balance_insufficient"),
                "You have insufficient funds in your Stripe account.",
            ),
        ),
        ("GET", "/v1/accounts/acct_missing") => {
            let mut e = fake::error(
                "invalid_request_error",
                Some("resource_missing"),
                "No such account: 'acct_missing'",
            );
            e["error"]["param"] = json!("account");
            Answer::Json(404, e)
        }
        ("POST", "/v1/refunds") => {
            let mut e = fake::error(
                "invalid_request_error",
                Some("amount_too_large"),
                "Refund amount ($200.00) is greater than unrefunded amount on charge ($120.50)",
            );
            e["error"]["param"] = json!("amount");
            Answer::Json(400, e)
        }
        ("POST", "/v1/transfers") => Answer::Json(
            400,
            fake::error(
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            ),
        ),
        _ => Answer::Json(
            401,
            fake::error("invalid_request_error", None, "Invalid API Key provided: sk_test_****"),
        ),
    })
    .await;
    let gw = fake.gateway(3);
    let payout = gw
        .create_payout(&CreatePayout {
            amount: 9_000,
            currency: "usd".into(),
            stripe_account: "acct_1Provider".into(),
            metadata: BTreeMap::new(),
            idempotency_key: "payout-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(payout.code(), Some("balance_insufficient"));
    assert_eq!(
        payout.error_type().as_str(),
        "Marketplace.InsufficientBalance"
    );

    let missing = gw.retrieve_account("acct_missing").await.unwrap_err();
    assert_eq!(
        missing,
        GatewayError::Permanent {
            status: 404,
            code: "resource_missing".into(),
            message: "No such account: 'acct_missing'".into(),
            param: Some("account".into()),
        }
    );
    assert_eq!(missing.error_type().as_str(), "Marketplace.NotFound");

    let too_much = gw
        .create_refund(&CreateRefund {
            payment_intent: "pi_3Fake0001".into(),
            amount: Some(20_000),
            reason: None,
            metadata: BTreeMap::new(),
            idempotency_key: "refund-too-much".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(too_much.code(), Some("amount_too_large"));
    assert_eq!(
        too_much.error_type().as_str(),
        "Marketplace.PaymentProviderError"
    );

    let reused = gw
        .create_transfer(&CreateTransfer {
            amount: 1,
            currency: "usd".into(),
            destination: "acct_1Provider".into(),
            transfer_group: None,
            source_transaction: None,
            metadata: BTreeMap::new(),
            idempotency_key: "reused".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        reused.code(),
        Some("idempotency_error"),
        "no code: the type stands in"
    );
    assert_eq!(
        reused.error_type().as_str(),
        "Marketplace.PaymentProviderError"
    );

    let unauthorized = gw.retrieve_payment_intent("pi_x").await.unwrap_err();
    assert!(matches!(
        unauthorized,
        GatewayError::Permanent { status: 401, .. }
    ));
    assert_eq!(
        fake.requests().len(),
        5,
        "permanent errors are never retried"
    );
}

#[tokio::test]
async fn a_bad_idempotency_key_is_refused_before_anything_is_sent() {
    let fake = fake::start(|_, _| Answer::Json(500, json!({}))).await;
    let gw = fake.gateway(3);
    for key in [String::new(), "k".repeat(256)] {
        let err = gw
            .create_transfer_reversal("tr_1", None, &key)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("idempotency_key_invalid"), "{err:?}");
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn an_unknown_answer_shape_is_a_provider_error_not_a_guess() {
    let fake =
        fake::start(|_, _| Answer::Json(200, json!({"id": "pi_1", "object": "payment_intent"})))
            .await;
    let err = fake
        .gateway(3)
        .retrieve_payment_intent("pi_1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("unexpected_response"), "{err:?}");
    assert_eq!(
        fake.requests().len(),
        1,
        "replaying would read the same answer"
    );
}
