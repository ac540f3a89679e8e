use super::*;
use chrono::TimeZone;
use marketplace_ports::fixtures;
use marketplace_ports::memory::{MemoryPorts, TaskOutcome};
use marketplace_ports::{
    BookingRepository, PaymentRecord, PaymentRepository, ProviderRepository, ServiceRepository,
    WorkflowClient,
};

struct Env {
    m: MemoryPorts,
    bm: BookingManager,
}

async fn env() -> Env {
    let m = MemoryPorts::new(fixtures::t0());
    m.store
        .put_service(&fixtures::service("svc_1", "prv_1"))
        .await
        .unwrap();
    m.store
        .put_provider(&fixtures::active_provider_record("prv_1", "acct_1"), None)
        .await
        .unwrap();
    let mut inactive = fixtures::service("svc_off", "prv_1");
    inactive.active = false;
    m.store.put_service(&inactive).await.unwrap();
    m.store
        .put_service(&fixtures::service("svc_2", "prv_2"))
        .await
        .unwrap();
    m.store
        .put_provider(&fixtures::provider_record("prv_2"), None)
        .await
        .unwrap();
    let (log, metrics, _) = m.observability("booking-manager");
    let bm = BookingManager::new(m.ports.clone(), BookingConfig::default(), log, metrics);
    Env { m, bm }
}

fn t(day: u32, h: u32) -> String {
    marketplace_domain::wire::format_time(&Utc.with_ymd_and_hms(2026, 3, day, h, 0, 0).unwrap())
}

fn request(booking: &str, start_day: u32, start_h: u32) -> Value {
    json!({
        "action": "validateBooking", "bookingId": booking, "serviceId": "svc_1",
        "customerId": "cus_1", "providerId": "prv_1",
        "startDateTime": t(start_day, start_h), "endDateTime": t(start_day, start_h + 1),
        "amount": 120, "currency": "USD", "now": t(1, 9),
        "correlationId": "corr-1", "executionArn": "arn:aws:states:us-east-1:123456789012:execution:ecosystem-booking-lifecycle:booking-bk_1"
    })
}

async fn reserve(e: &Env, booking: &str, day: u32, h: u32) -> Result<Value, HandlerError> {
    let mut v = e.bm.handle(request(booking, day, h), None).await?;
    v["action"] = json!("reserveSlot");
    v["correlationId"] = json!("corr-1");
    e.bm.handle(v, None).await
}

fn err_type(r: Result<Value, HandlerError>) -> (ErrorType, String) {
    let e = r.unwrap_err();
    (e.error_type, e.message)
}

#[tokio::test]
async fn validate_splits_the_fee_exactly() {
    let e = env().await;
    let out = e.bm.handle(request("bk_1", 3, 10), None).await.unwrap();
    assert_eq!(out["amount"], json!(120));
    assert_eq!(out["platformFee"], json!(18));
    assert_eq!(out["providerEarnings"], json!(102));
    assert_eq!(out["stripeAccountId"], "acct_1");
    assert_eq!(out["startDateTime"], "2026-03-03T10:00:00Z");
    // a 90-minute booking costs 1.5 × the hourly price, and fee + earnings = amount
    let mut r = request("bk_2", 3, 10);
    r["endDateTime"] = json!("2026-03-03T11:30:00Z");
    r["amount"] = json!(180);
    let out = e.bm.handle(r, None).await.unwrap();
    assert_eq!(out["platformFee"], json!(27));
    assert_eq!(out["providerEarnings"], json!(153));
}

#[tokio::test]
async fn validate_rejects_each_rule_with_its_error_type() {
    let e = env().await;
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Edit, ErrorType, &str)> = vec![
        (
            Box::new(|r| r["startDateTime"] = json!("2026-03-01T08:00:00Z")),
            ErrorType::ValidationError,
            "startDateTime: must be after now",
        ),
        (
            Box::new(|r| r["endDateTime"] = r["startDateTime"].clone()),
            ErrorType::ValidationError,
            "endDateTime: must be after startDateTime",
        ),
        (
            Box::new(|r| {
                r["startDateTime"] = json!("2026-12-01T10:00:00Z");
                r["endDateTime"] = json!("2026-12-01T11:00:00Z");
            }),
            ErrorType::ValidationError,
            "startDateTime: must be at most 180 days ahead",
        ),
        (
            Box::new(|r| r["endDateTime"] = json!("2026-03-20T10:00:00Z")),
            ErrorType::ValidationError,
            "endDateTime: the booking must last at most 14 days",
        ),
        (
            Box::new(|r| r["amount"] = json!(100)),
            ErrorType::ValidationError,
            "amount: must be 120.00 USD, the service's price for 60 minutes",
        ),
        (
            Box::new(|r| r["currency"] = json!("EUR")),
            ErrorType::ValidationError,
            "currency: must be the service's currency USD",
        ),
        (
            Box::new(|r| r["serviceId"] = json!("svc_none")),
            ErrorType::NotFound,
            "service svc_none does not exist",
        ),
        (
            Box::new(|r| r["serviceId"] = json!("svc_off")),
            ErrorType::ServiceUnavailable,
            "service svc_off is not active",
        ),
        (
            Box::new(|r| {
                r["serviceId"] = json!("svc_2");
                r["providerId"] = json!("prv_2");
            }),
            ErrorType::ProviderNotOnboarded,
            "provider prv_2 cannot take charges yet (Stripe onboarding not complete)",
        ),
        (
            Box::new(|r| r["providerId"] = json!("prv_2")),
            ErrorType::ValidationError,
            "providerId: must be the service's provider prv_1",
        ),
        (
            Box::new(|r| r["bookingId"] = json!("bad id!")),
            ErrorType::ValidationError,
            "bookingId",
        ),
        (
            Box::new(|r| r["amount"] = json!("lots")),
            ErrorType::ValidationError,
            "amount: must be a number (got \"lots\")",
        ),
    ];
    for (edit, want, msg) in cases {
        let mut r = request("bk_1", 3, 10);
        edit(&mut r);
        let (got, text) = err_type(e.bm.handle(r, None).await);
        assert_eq!(got, want, "{text}");
        assert!(text.starts_with(msg), "{text:?} should start with {msg:?}");
    }
    e.m.store.set_unavailable(true);
    assert_eq!(
        err_type(e.bm.handle(request("bk_1", 3, 10), None).await).0,
        ErrorType::TransientError
    );
}

#[tokio::test]
async fn reserve_is_idempotent_and_detects_overlap() {
    let e = env().await;
    let out = reserve(&e, "bk_1", 3, 10).await.unwrap();
    assert_eq!(
        out,
        json!({"status": "PENDING_PAYMENT", "reservedUntil": "2026-03-01T09:15:00Z"})
    );
    // the same task again: same answer, one booking
    assert_eq!(reserve(&e, "bk_1", 3, 10).await.unwrap(), out);
    // another booking overlapping: SlotUnavailable, nothing written
    let (ty, msg) = err_type(reserve(&e, "bk_2", 3, 10).await);
    assert_eq!(ty, ErrorType::SlotUnavailable);
    assert!(msg.contains("bk_1"), "{msg}");
    assert!(e.m.store.get_booking("bk_2").await.unwrap().is_none());
    // the next hour is free
    reserve(&e, "bk_3", 3, 11).await.unwrap();
    // reusing an id for another slot is refused
    let (ty, msg) = err_type(reserve(&e, "bk_1", 4, 10).await);
    assert_eq!(
        (ty, msg.as_str()),
        (
            ErrorType::ValidationError,
            "bookingId: bk_1 is already used by a different booking"
        )
    );
}

async fn confirm(e: &Env, booking: &str) -> Value {
    e.bm.handle(json!({"action": "confirmBooking", "bookingId": booking, "paymentIntentId": "pi_1", "chargeId": "ch_1", "correlationId": "corr-1"}), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn confirm_expire_fail_and_complete() {
    let e = env().await;
    reserve(&e, "bk_1", 3, 10).await.unwrap();
    let out = confirm(&e, "bk_1").await;
    let code = confirmation_code("bk_1");
    assert_eq!(
        out,
        json!({"status": "CONFIRMED", "confirmationCode": code})
    );
    assert_eq!(code.len(), 8);
    assert_eq!(
        confirm(&e, "bk_1").await,
        out,
        "confirming twice answers the same"
    );
    // a confirmed booking cannot expire
    let (ty, _) = err_type(e.bm.handle(json!({"action": "expireBooking", "bookingId": "bk_1", "reason": "PAYMENT_NOT_RECEIVED"}), None).await);
    assert_eq!(ty, ErrorType::InvalidTransition);
    // completion: once, and a retried task of the same execution replays true
    let complete = json!({"action": "completeBooking", "bookingId": "bk_1", "now": t(3, 11), "executionArn": "arn:aws:states:us-east-1:123456789012:execution:ecosystem-booking-lifecycle:booking-bk_1"});
    assert_eq!(
        e.bm.handle(complete.clone(), None).await.unwrap(),
        json!({"completed": true, "status": "COMPLETED"})
    );
    assert_eq!(
        e.bm.handle(complete, None).await.unwrap(),
        json!({"completed": true, "status": "COMPLETED"})
    );

    // expire an unpaid booking: slot released, second call is a no-op
    reserve(&e, "bk_2", 4, 10).await.unwrap();
    let expire =
        json!({"action": "expireBooking", "bookingId": "bk_2", "reason": "PAYMENT_NOT_RECEIVED"});
    assert_eq!(
        e.bm.handle(expire.clone(), None).await.unwrap(),
        json!({"status": "EXPIRED", "slotReleased": true})
    );
    assert_eq!(
        e.bm.handle(expire, None).await.unwrap(),
        json!({"status": "EXPIRED", "slotReleased": true})
    );
    reserve(&e, "bk_4", 4, 10)
        .await
        .expect("the expired booking's slot is free again");
    // confirming a cancelled booking: BookingCancelled
    e.bm.handle(
        json!({"action": "failBooking", "bookingId": "bk_4", "reason": "PAYMENT_DECLINED"}),
        None,
    )
    .await
    .unwrap();
    let (ty, _) = err_type(
        e.bm.handle(
            json!({"action": "confirmBooking", "bookingId": "bk_4", "paymentIntentId": "pi_9"}),
            None,
        )
        .await,
    );
    assert_eq!(ty, ErrorType::BookingCancelled);
    // failBooking of a booking never created is a no-op
    assert_eq!(
        e.bm.handle(
            json!({"action": "failBooking", "bookingId": "bk_never", "reason": "X"}),
            None
        )
        .await
        .unwrap(),
        json!({"status": "CANCELLED", "slotReleased": false})
    );
    // completing a cancelled booking releases nothing
    assert_eq!(
        e.bm.handle(
            json!({"action": "completeBooking", "bookingId": "bk_4", "now": t(5, 10)}),
            None
        )
        .await
        .unwrap(),
        json!({"completed": false, "status": "CANCELLED"})
    );
}

fn cancel(booking: &str, by: &str, requested_by: &str, now: &str) -> Value {
    json!({"action": "cancelBooking", "bookingId": booking, "cancelledBy": by, "reason": "plans changed",
           "requestedBy": requested_by, "now": now, "correlationId": "corr-c",
           "executionArn": format!("arn:aws:states:us-east-1:123456789012:execution:ecosystem-booking-lifecycle:booking-{booking}-cancel")})
}

#[tokio::test]
async fn refund_policy() {
    let e = env().await;
    // booking on day 3 at 10:00; cancelled on day 1 at 09:00 (49 h before) by the customer: 100 %
    for (booking, day, by, who, now, percent, amount) in [
        (
            "bk_a",
            3,
            "CUSTOMER",
            "cus_1",
            "2026-03-01T09:00:00Z",
            100,
            json!(120),
        ),
        (
            "bk_b",
            4,
            "CUSTOMER",
            "cus_1",
            "2026-03-03T20:00:00Z",
            50,
            json!(60),
        ),
        (
            "bk_c",
            5,
            "PROVIDER",
            "prv_1",
            "2026-03-05T09:59:00Z",
            100,
            json!(120),
        ),
        (
            "bk_d",
            6,
            "SYSTEM",
            "ops",
            "2026-03-06T09:00:00Z",
            100,
            json!(120),
        ),
    ] {
        reserve(&e, booking, day, 10).await.unwrap();
        confirm(&e, booking).await;
        let out =
            e.bm.handle(cancel(booking, by, who, now), None)
                .await
                .unwrap();
        assert_eq!(out["refundPercent"], json!(percent), "{booking}");
        assert_eq!(out["refundAmount"], amount, "{booking}");
        assert_eq!(out["refundRequired"], json!(true));
        assert_eq!(out["previousStatus"], "CONFIRMED");
        assert_eq!(out["paymentIntentId"], "pi_1");
        assert_eq!(out["currency"], "USD");
    }
    // after the start: refused; a second cancel of a cancelled booking: InvalidTransition
    reserve(&e, "bk_e", 7, 10).await.unwrap();
    confirm(&e, "bk_e").await;
    let (ty, msg) = err_type(
        e.bm.handle(
            cancel("bk_e", "CUSTOMER", "cus_1", "2026-03-07T10:30:00Z"),
            None,
        )
        .await,
    );
    assert_eq!(
        (ty, msg.as_str()),
        (
            ErrorType::ValidationError,
            "now: the service has already started: open a dispute instead"
        )
    );
    let (ty, _) = err_type(e.bm.handle(json!({"action": "cancelBooking", "bookingId": "bk_a", "cancelledBy": "CUSTOMER", "reason": "x", "requestedBy": "cus_1", "now": "2026-03-01T09:00:00Z", "executionArn": "other"}), None).await);
    assert_eq!(ty, ErrorType::InvalidTransition);
    // the same cancellation task retried replays its answer
    let replay =
        e.bm.handle(
            cancel("bk_a", "CUSTOMER", "cus_1", "2026-03-01T09:00:00Z"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(replay["refundAmount"], json!(120));
    // someone else's booking
    let (ty, msg) = err_type(
        e.bm.handle(
            cancel("bk_e", "CUSTOMER", "cus_2", "2026-03-06T10:30:00Z"),
            None,
        )
        .await,
    );
    assert_eq!(
        (ty, msg.as_str()),
        (
            ErrorType::ValidationError,
            "requestedBy: must be the booking's customer when cancelledBy is CUSTOMER"
        )
    );
    let (ty, _) = err_type(
        e.bm.handle(
            cancel("bk_none", "CUSTOMER", "cus_1", "2026-03-01T09:00:00Z"),
            None,
        )
        .await,
    );
    assert_eq!(ty, ErrorType::NotFound);
}

#[tokio::test]
async fn cancelling_an_unpaid_booking_fails_the_payment_wait_once() {
    let e = env().await;
    reserve(&e, "bk_1", 3, 10).await.unwrap();
    // the workflow created a PaymentIntent and waits on it with a token
    let mut rec = e.m.store.get_booking("bk_1").await.unwrap().unwrap();
    rec.value.payment_intent_id = Some("pi_w".into());
    e.m.store
        .update_booking(&rec.value, rec.version, false)
        .await
        .unwrap();
    let exec =
        e.m.workflows
            .start_execution(
                marketplace_domain::WorkflowType::BookingLifecycle,
                "booking-bk_1",
                "{}",
            )
            .await
            .unwrap();
    e.m.workflows.register_task("tok-1", &exec.execution_arn);
    let payment = PaymentRecord {
        customer_id: Some("cus_1".into()),
        provider_id: Some("prv_1".into()),
        task_token: Some("tok-1".into()),
        correlation_id: "corr-1".into(),
        ..fixtures::payment_record("pi_w", "bk_1")
    };
    e.m.store.put_payment(&payment, None).await.unwrap();
    let out =
        e.bm.handle(
            cancel("bk_1", "CUSTOMER", "cus_1", "2026-03-01T09:05:00Z"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out["previousStatus"], "PENDING_PAYMENT");
    assert_eq!(out["refundRequired"], json!(false));
    assert_eq!(out["refundAmount"], json!(0));
    assert_eq!(out["refundPercent"], json!(0));
    match e.m.workflows.task_outcome("tok-1") {
        Some(TaskOutcome::Failure { error, .. }) => {
            assert_eq!(error, "Marketplace.BookingCancelled")
        }
        other => panic!("the waiting token must be failed, got {other:?}"),
    }
    assert!(
        e.m.store
            .get_payment("pi_w")
            .await
            .unwrap()
            .unwrap()
            .value
            .outcome_delivered
    );
    // the slot is free again
    reserve(&e, "bk_2", 3, 10).await.unwrap();
}

#[test]
fn policy_helpers() {
    let start = Utc.with_ymd_and_hms(2026, 3, 3, 10, 0, 0).unwrap();
    assert_eq!(
        refund_percent(CancelledBy::Customer, start - Duration::hours(24), start),
        Some(100)
    );
    assert_eq!(
        refund_percent(
            CancelledBy::Customer,
            start - Duration::hours(24) + Duration::seconds(1),
            start
        ),
        Some(50)
    );
    assert_eq!(
        refund_percent(CancelledBy::Provider, start - Duration::minutes(1), start),
        Some(100)
    );
    assert_eq!(refund_percent(CancelledBy::System, start, start), None);
    let odd = Money::parse("0.03", marketplace_domain::Currency::Usd).unwrap();
    assert_eq!(percent_of(odd, 50).to_minor(), 2, "half-up: 1.5 cents -> 2");
    assert_ne!(confirmation_code("bk_1"), confirmation_code("bk_2"));
    assert!(confirmation_code("bk_1")
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
}
