use super::*;
use marketplace_ports::fixtures;
use marketplace_ports::memory::MemoryPorts;
use marketplace_ports::{BookingRepository, ErrorType, NotifyError, ProviderRepository};

struct Env {
    m: MemoryPorts,
    h: NotificationHandler,
}

async fn env() -> Env {
    let m = MemoryPorts::new(fixtures::t0());
    for (id, email, name, groups) in [
        ("cus_1", "ana@example.com", "Ana", vec![]),
        ("prv_1", "sam@example.com", "Sam", vec![]),
        ("adm_1", "ops1@example.com", "Ops One", vec!["admin"]),
        ("adm_2", "ops2@example.com", "Ops Two", vec!["admin"]),
    ] {
        m.store.put_user(
            UserContact {
                user_id: id.into(),
                email: email.into(),
                display_name: name.into(),
            },
            &groups,
        );
    }
    let svc = fixtures::service("svc_1", "prv_1");
    m.store
        .reserve_booking(&fixtures::booking_record(
            "bk_1",
            &svc,
            "cus_1",
            fixtures::t0() + chrono::Duration::days(1),
        ))
        .await
        .unwrap();
    m.store
        .put_provider(&fixtures::provider_record("prv_9"), None)
        .await
        .unwrap();
    let (log, metrics, _) = m.observability("notification-handler");
    let h = NotificationHandler::new(m.ports.clone(), log, metrics);
    Env { m, h }
}

fn confirmed() -> Value {
    json!({"action": "notify", "template": "BOOKING_CONFIRMED",
           "recipients": [{"role": "CUSTOMER", "userId": "cus_1"}, {"role": "PROVIDER", "userId": "prv_1"}],
           "idempotencyKey": "bk_1:BOOKING_CONFIRMED",
           "data": {"bookingId": "bk_1", "confirmationCode": "K7Q2M9XZ", "startDateTime": "2026-03-02T09:00:00Z", "endDateTime": "2026-03-02T10:00:00Z"},
           "correlationId": "corr-1"})
}

#[tokio::test]
async fn renders_per_recipient_and_sends_once_per_key() {
    let e = env().await;
    let out = e.h.handle(confirmed(), None).await.unwrap();
    assert_eq!(
        (out["sent"].clone(), out["deduplicated"].clone()),
        (json!(2), json!(0))
    );
    let sent = e.m.notifier.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].to, ["ana@example.com"]);
    assert_eq!(sent[0].subject, "Your booking bk_1 is confirmed");
    assert!(sent[0].text_body.starts_with("Hello Ana,\n\nYour booking bk_1 from 2026-03-02T09:00:00Z to 2026-03-02T10:00:00Z is confirmed."));
    assert!(sent[0].text_body.contains("K7Q2M9XZ"));
    assert_eq!(sent[1].subject, "New booking bk_1 confirmed");
    assert_eq!(sent[1].correlation_id.as_deref(), Some("corr-1"));
    assert!(sent[1]
        .html_body
        .as_deref()
        .unwrap()
        .contains("<p>Hello Sam,</p>"));
    // redelivered: nothing sent again
    let again = e.h.handle(confirmed(), None).await.unwrap();
    assert_eq!(
        (again["sent"].clone(), again["deduplicated"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(e.m.notifier.sent().len(), 2);
    // the event path with the same key sends nothing either
    let ev = json!({"action": "handleEvent", "rule": "booking-events-to-notification-handler", "eventId": "e1", "source": "marketplace.booking",
        "detailType": "Booking Confirmed", "detail": {"bookingId": "bk_1", "paymentIntentId": "pi_1", "confirmationCode": "K7Q2M9XZ", "timestamp": "2026-03-01T09:05:00Z", "correlationId": "corr-1"}});
    let out = e.h.handle(ev, None).await.unwrap();
    assert_eq!(out["sent"], json!(0));
    assert_eq!(e.m.notifier.sent().len(), 2);
}

#[tokio::test]
async fn admins_group_and_provider_fallback() {
    let e = env().await;
    let out = e.h.handle(json!({"action": "notify", "template": "DISPUTE_NEEDS_REVIEW", "recipients": [{"role": "ADMIN", "userId": "admins"}],
        "idempotencyKey": "dsp_1:DISPUTE_NEEDS_REVIEW:2026-03-02T09:00:00Z", "data": {"disputeId": "dsp_1", "bookingId": "bk_1", "resolutionDeadline": "2026-03-08T09:00:00Z"}}), None).await.unwrap();
    assert_eq!(out["sent"], json!(2));
    let out = e.h.handle(json!({"action": "notify", "template": "PROVIDER_WELCOME", "recipients": [{"role": "PROVIDER", "userId": "prv_9"}],
        "idempotencyKey": "prv_9:PROVIDER_WELCOME", "data": {"providerId": "prv_9", "onboardingUrl": "https://connect.example/x", "onboardingUrlExpiresAt": "2026-03-01T09:05:00Z"}}), None).await.unwrap();
    assert_eq!(out["sent"], json!(1));
    let last = e.m.notifier.sent().pop().unwrap();
    assert_eq!(last.to, ["prv_9@example.com"]);
    assert!(last.text_body.contains("https://connect.example/x"));
}

#[tokio::test]
async fn bad_requests_send_nothing() {
    let e = env().await;
    let cases = [
        (
            {
                let mut c = confirmed();
                c["template"] = json!("BOOKING_EXPLODED");
                c
            },
            ErrorType::ValidationError,
            "template: \"BOOKING_EXPLODED\" is not a template",
        ),
        (
            {
                let mut c = confirmed();
                c["data"] = json!({"bookingId": "bk_1"});
                c
            },
            ErrorType::ValidationError,
            "data.confirmationCode: is required",
        ),
        (
            {
                let mut c = confirmed();
                c["recipients"][1]["userId"] = json!("nobody");
                c
            },
            ErrorType::NotFound,
            "recipient nobody does not exist",
        ),
        (
            {
                let mut c = confirmed();
                c["recipients"][0]["role"] = json!("BOSS");
                c
            },
            ErrorType::ValidationError,
            "recipients[0].role: must be CUSTOMER, PROVIDER or ADMIN",
        ),
        (
            {
                let mut c = confirmed();
                c["recipients"] = json!([]);
                c
            },
            ErrorType::ValidationError,
            "recipients: must be a non-empty array",
        ),
    ];
    for (req, ty, msg) in cases {
        let err = e.h.handle(req, None).await.unwrap_err();
        assert_eq!(err.error_type, ty);
        assert!(err.message.starts_with(msg), "{:?} vs {msg:?}", err.message);
    }
    assert!(
        e.m.notifier.sent().is_empty(),
        "validation happens before any send"
    );
    // a mail outage is transient and leaves no idempotency record behind
    e.m.notifier
        .set_failure(Some(NotifyError::Unavailable("SES throttled".into())));
    assert_eq!(
        e.h.handle(confirmed(), None).await.unwrap_err().error_type,
        ErrorType::TransientError
    );
    e.m.notifier.set_failure(None);
    assert_eq!(
        e.h.handle(confirmed(), None).await.unwrap()["sent"],
        json!(2)
    );
}

#[tokio::test]
async fn every_template_renders_for_every_role() {
    let data = json!({"bookingId": "bk_1", "confirmationCode": "C0DE1234", "cancelledBy": "PROVIDER", "refundPercent": 100,
        "refundAmount": 120.5, "currency": "USD", "amount": 51, "payoutId": "po_1", "disputeId": "dsp_1", "disputeType": "SERVICE_COMPLAINT",
        "reviewDeadline": "2026-03-02T09:00:00Z", "resolution": "PARTIALLY_REFUNDED", "providerId": "prv_1",
        "onboardingUrl": "https://x/y?a=1&b=<2>", "startDateTime": "2026-03-02T09:00:00Z", "chargesEnabled": true, "payoutsEnabled": false});
    let f = Fields::under(&data, "data");
    for t in templates::TEMPLATES {
        for role in [Role::Customer, Role::Provider, Role::Admin] {
            let r = render(t, role, "Kim", &f).unwrap_or_else(|e| panic!("{t}: {e}"));
            assert!(
                !r.subject.is_empty() && r.text.starts_with("Hello Kim,"),
                "{t}"
            );
            assert!(!r.html.contains("<2>"), "HTML is escaped");
        }
    }
    let r = render("BOOKING_FAILED_REFUNDED", Role::Customer, "Kim", &f).unwrap();
    assert!(r.text.contains("120.50 USD"), "{}", r.text);
}

#[tokio::test]
async fn sqs_batches_report_only_failed_records() {
    let e = env().await;
    let ok = json!({"id": "e1", "source": "marketplace.payment", "detail-type": "Payout Completed",
        "detail": {"payoutId": "po_1", "providerId": "prv_1", "amount": 51, "currency": "USD", "timestamp": "2026-03-01T09:00:00Z", "correlationId": "c"}});
    let bad = json!({"id": "e2", "source": "marketplace.booking", "detail-type": "Booking Confirmed",
        "detail": {"bookingId": "bk_unknown", "paymentIntentId": "pi_1", "confirmationCode": "X", "timestamp": "2026-03-01T09:00:00Z", "correlationId": "c"}});
    let batch = json!({"Records": [
        {"messageId": "m1", "body": ok.to_string()},
        {"messageId": "m2", "body": bad.to_string()},
        {"messageId": "m3", "body": ok.to_string()},
    ]});
    let resp = e.h.handle(batch, None).await.unwrap();
    assert_eq!(
        resp,
        json!({"batchItemFailures": [{"itemIdentifier": "m2"}]})
    );
    assert_eq!(
        e.m.notifier.sent().len(),
        1,
        "m3 repeats m1's key: sent once"
    );
}
