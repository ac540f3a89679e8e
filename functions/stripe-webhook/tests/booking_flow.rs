//! A booking's money path across the handler libraries, called in the order the
//! booking-lifecycle state machine calls them, with Stripe's webhooks signed and
//! delivered (twice: Stripe redelivers) to stripe-webhook. Proves at handler level that
//! redelivery and retried tasks never charge, refund or pay out twice, and that the money
//! adds up.

use booking_manager::{BookingConfig, BookingManager};
use chrono::Duration;
use marketplace_domain::Currency;
use marketplace_ports::fixtures;
use marketplace_ports::memory::{MemoryPorts, TaskOutcome};
use marketplace_ports::payments::{CreateAccount, PaymentGateway};
use marketplace_ports::stripe_signature::sign_header;
use marketplace_ports::{
    Clock, LedgerRepository, PaymentRepository, ProviderRepository, ServiceRepository, UserContact,
    WorkflowClient,
};
use payout_manager::PayoutManager;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use stripe_webhook::{StripeWebhook, WebhookConfig};
use workflow_orchestrator::{Orchestrator, OrchestratorConfig};

struct World {
    m: MemoryPorts,
    bookings: BookingManager,
    payouts: PayoutManager,
    webhook: StripeWebhook,
    orchestrator: Orchestrator,
    hooks: Arc<Mutex<Vec<Value>>>,
    account: String,
}

async fn world() -> World {
    let m = MemoryPorts::new(fixtures::t0());
    let hooks = Arc::new(Mutex::new(Vec::new()));
    let sink = hooks.clone();
    m.stripe
        .set_webhook_sink(Arc::new(move |e| sink.lock().unwrap().push(e)));
    let acct = m
        .stripe
        .create_account(&CreateAccount {
            country: "US".into(),
            email: "sam@example.com".into(),
            business_type: "individual".into(),
            metadata: BTreeMap::new(),
            idempotency_key: "provider-prv_1-connect-account".into(),
        })
        .await
        .unwrap();
    m.store
        .put_service(&fixtures::service("svc_1", "prv_1"))
        .await
        .unwrap();
    m.store
        .put_provider(&fixtures::active_provider_record("prv_1", &acct.id), None)
        .await
        .unwrap();
    m.store.put_user(
        UserContact {
            user_id: "cus_1".into(),
            email: "ana@example.com".into(),
            display_name: "Ana".into(),
        },
        &[],
    );
    let (log, metrics, _) = m.observability("flow");
    World {
        bookings: BookingManager::new(
            m.ports.clone(),
            BookingConfig::default(),
            log.clone(),
            metrics.clone(),
        ),
        payouts: PayoutManager::new(m.ports.clone(), log.clone(), metrics.clone()),
        webhook: StripeWebhook::new(
            m.ports.clone(),
            WebhookConfig::new(vec!["whsec_flow".into()]),
            log.clone(),
            metrics.clone(),
        ),
        orchestrator: Orchestrator::new(
            m.ports.clone(),
            OrchestratorConfig::default(),
            log,
            metrics,
        ),
        hooks,
        account: acct.id,
        m,
    }
}

impl World {
    async fn bm(&self, v: Value) -> Value {
        self.bookings.handle(v, None).await.unwrap()
    }
    async fn pm(&self, v: Value) -> Value {
        self.payouts.handle(v, None).await.unwrap()
    }
    /// Delivers every pending Stripe webhook twice, as Stripe may.
    async fn deliver_webhooks(&self) -> usize {
        let events: Vec<Value> = std::mem::take(&mut *self.hooks.lock().unwrap());
        for e in &events {
            let body = e.to_string();
            let sig = sign_header(
                &["whsec_flow"],
                self.m.clock.now().timestamp(),
                body.as_bytes(),
            );
            for _ in 0..2 {
                let r = self
                    .webhook
                    .handle(
                        json!({"headers": {"stripe-signature": sig}, "body": body}),
                        None,
                    )
                    .await;
                assert_eq!(r["statusCode"], 200, "{r}");
            }
        }
        events.len()
    }

    /// Start (through the orchestrator) → validate → reserve → PaymentIntent (task
    /// retried) → wait with a token; returns the execution input and the intent id.
    async fn book(&self, customer: &str, start: &str, end: &str) -> (Value, String, String) {
        let started = self
            .orchestrator
            .handle(
                json!({"arguments": {"workflowType": "BOOKING_LIFECYCLE", "input": json!({
                    "serviceId": "svc_1", "customerId": customer, "providerId": "prv_1",
                    "startDateTime": start, "endDateTime": end, "amount": 120, "currency": "USD"}).to_string()},
                       "identity": null, "info": {"fieldName": "startWorkflow"}}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(started["success"], json!(true), "{started}");
        let arn = started["executionArn"].as_str().unwrap().to_owned();
        let d = self.m.workflows.describe_execution(&arn).await.unwrap();
        let input: Value = serde_json::from_str(d.input.as_deref().unwrap()).unwrap();
        let mut v = input.clone();
        v["action"] = json!("validateBooking");
        v["now"] = json!(marketplace_domain::wire::format_time(&self.m.clock.now()));
        v["executionArn"] = json!(arn);
        let booking = self.bm(v).await;
        let mut r = booking.clone();
        r["action"] = json!("reserveSlot");
        r["correlationId"] = input["correlationId"].clone();
        self.bm(r).await;
        let create = json!({"action": "createPaymentIntent", "bookingId": booking["bookingId"], "customerId": customer,
            "providerId": "prv_1", "amount": booking["amount"], "currency": "USD", "platformFee": booking["platformFee"],
            "stripeAccountId": booking["stripeAccountId"], "confirm": false,
            "idempotencyKey": format!("booking-{}-payment-intent", booking["bookingId"].as_str().unwrap()),
            "correlationId": input["correlationId"]});
        let pi = self.pm(create.clone()).await;
        assert_eq!(
            self.pm(create).await["paymentIntentId"],
            pi["paymentIntentId"],
            "a retried task creates no second intent"
        );
        let pi_id = pi["paymentIntentId"].as_str().unwrap().to_owned();
        let token = format!("tok-{pi_id}");
        self.m.workflows.register_task(&token, &arn);
        self.pm(json!({"action": "awaitPaymentConfirmation", "paymentIntentId": pi_id, "bookingId": booking["bookingId"], "taskToken": token}))
            .await;
        (booking, pi_id, token)
    }
}

#[tokio::test]
async fn paid_booking_completes_and_pays_the_provider_once() {
    let w = world().await;
    let (booking, pi, token) = w
        .book("cus_1", "2026-03-03T10:00:00Z", "2026-03-03T11:00:00Z")
        .await;
    let id = booking["bookingId"].as_str().unwrap().to_owned();
    // the customer pays (client-side confirmation); Stripe sends the webhook twice
    w.m.stripe
        .confirm_payment_intent(&pi, Some("pm_card_visa"), "client-confirm")
        .await
        .unwrap();
    assert_eq!(w.deliver_webhooks().await, 1);
    let output = match w.m.workflows.task_outcome(&token) {
        Some(TaskOutcome::Success(v)) => v,
        other => panic!("the waiting booking must get the payment, got {other:?}"),
    };
    let confirmed = w.bm(json!({"action": "confirmBooking", "bookingId": id, "paymentIntentId": pi, "chargeId": output["chargeId"]})).await;
    assert_eq!(confirmed["status"], "CONFIRMED");
    // the workflow's Payment Succeeded reaches the ledger (and is redelivered)
    let succeeded = json!({"action": "handleEvent", "eventId": "ev-paid", "source": "marketplace.payment", "detailType": "Payment Succeeded",
        "detail": {"paymentIntentId": pi, "amount": 120, "platformFee": booking["platformFee"], "providerEarnings": booking["providerEarnings"], "currency": "USD", "bookingId": id}});
    w.pm(succeeded.clone()).await;
    w.pm(succeeded).await;
    // the service ends: completion and earnings, each task retried once
    w.m.clock.advance(Duration::days(3));
    let complete = json!({"action": "completeBooking", "bookingId": id, "now": "2026-03-03T11:00:00Z", "executionArn": "arn:aws:states:us-east-1:123456789012:execution:ecosystem-booking-lifecycle:x"});
    assert_eq!(w.bm(complete.clone()).await["completed"], json!(true));
    assert_eq!(w.bm(complete).await["completed"], json!(true));
    let release = json!({"action": "releaseEarnings", "bookingId": id, "providerId": "prv_1", "stripeAccountId": w.account,
        "paymentIntentId": pi, "chargeId": output["chargeId"], "amount": booking["providerEarnings"], "currency": "USD",
        "idempotencyKey": format!("booking-{id}-earnings")});
    w.pm(release.clone()).await;
    w.pm(release).await;
    // money: one charge of 120, fee 18 + earnings 102, the provider holds 102 once
    assert_eq!(booking["platformFee"], json!(18));
    assert_eq!(booking["providerEarnings"], json!(102));
    assert_eq!(w.m.stripe.balance(&w.account, "usd"), 10_200);
    let creates =
        w.m.stripe
            .calls()
            .iter()
            .filter(|(op, _)| op == "create_payment_intent")
            .count();
    assert_eq!(creates, 2, "two calls, one idempotency key, one intent");
    let bal = w.m.store.balance("prv_1", Currency::Usd).await.unwrap();
    assert_eq!((bal.pending, bal.available), (0, 10_200));
    // a payout of everything, requested twice
    let payout = json!({"action": "createPayout", "providerId": "prv_1", "stripeAccountId": w.account, "amount": 102, "currency": "USD", "idempotencyKey": "payout-flow-1"});
    let p1 = w.pm(payout.clone()).await;
    let p2 = w.pm(payout).await;
    assert_eq!(p1["payoutId"], p2["payoutId"]);
    assert_eq!(w.m.stripe.balance(&w.account, "usd"), 0, "paid out once");
}

#[tokio::test]
async fn late_customer_cancellation_refunds_half_once() {
    let w = world().await;
    let (booking, pi, token) = w
        .book("cus_1", "2026-03-02T08:00:00Z", "2026-03-02T09:00:00Z")
        .await;
    let id = booking["bookingId"].as_str().unwrap().to_owned();
    w.m.stripe
        .confirm_payment_intent(&pi, Some("4242424242424242"), "client-confirm")
        .await
        .unwrap();
    w.deliver_webhooks().await;
    assert!(matches!(
        w.m.workflows.task_outcome(&token),
        Some(TaskOutcome::Success(_))
    ));
    w.bm(json!({"action": "confirmBooking", "bookingId": id, "paymentIntentId": pi, "chargeId": null})).await;
    // 20 hours before the start the customer cancels: 50 %
    let cancel = json!({"action": "cancelBooking", "bookingId": id, "cancelledBy": "CUSTOMER", "reason": "sick",
        "requestedBy": "cus_1", "now": "2026-03-01T12:00:00Z", "executionArn": "arn:aws:states:us-east-1:123456789012:execution:ecosystem-booking-lifecycle:c"});
    let c = w.bm(cancel).await;
    assert_eq!(
        (c["refundPercent"].clone(), c["refundAmount"].clone()),
        (json!(50), json!(60))
    );
    let refund = json!({"action": "refundPayment", "paymentIntentId": pi, "bookingId": id, "amount": c["refundAmount"], "currency": "USD",
        "reason": "BOOKING_CANCELLED", "idempotencyKey": format!("booking-{id}-cancellation-refund")});
    let r1 = w.pm(refund.clone()).await;
    let r2 = w.pm(refund).await;
    assert_eq!(r1, r2);
    w.deliver_webhooks().await;
    assert_eq!(
        w.m.stripe.refunded(&pi),
        6_000,
        "refunded once, half of the charge"
    );
    let rec = w.m.store.get_payment(&pi).await.unwrap().unwrap().value;
    assert!(
        rec.refunded.amount() <= rec.amount.amount(),
        "refunds never exceed the charge"
    );
    // the slot is free for someone else
    let again = w
        .book("cus_2", "2026-03-02T08:00:00Z", "2026-03-02T09:00:00Z")
        .await;
    assert_ne!(again.1, pi);
}

#[tokio::test]
async fn a_declined_card_fails_the_wait_and_books_nothing() {
    let w = world().await;
    let (_, pi, token) = w
        .book("cus_1", "2026-03-05T10:00:00Z", "2026-03-05T11:00:00Z")
        .await;
    w.m.stripe
        .confirm_payment_intent(
            &pi,
            Some("pm_card_chargeDeclinedInsufficientFunds"),
            "client-confirm",
        )
        .await
        .unwrap();
    w.deliver_webhooks().await;
    match w.m.workflows.task_outcome(&token) {
        Some(TaskOutcome::Failure { error, cause }) => {
            assert_eq!(error, "Marketplace.PaymentDeclined");
            assert!(cause.contains("insufficient_funds"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.m.stripe.refunded(&pi), 0);
    assert!(w.m.bus.published().is_empty());
}
