//! The contract test suite every adapter runs against itself: each function takes a port
//! implementation and asserts the semantics the handlers rely on (conditional writes,
//! slot overlap, one open dispute per booking, ledger de-duplication, idempotency record
//! conditions, PutEvents results, Step Functions name and token rules). Functions panic
//! with a message on a violation, so an adapter's test is just
//!
//! ```text
//! #[tokio::test]
//! async fn bookings() { marketplace_ports::contract::booking_repository(&my_store(), "t1").await }
//! ```
//!
//! `ns` is a namespace prefix for every id the function writes, so the suite can run
//! against a store that is not empty (a shared moto endpoint, an existing SQLite file).

use crate::error::{PublishError, StoreError, WorkflowError};
use crate::events::EventPublisher;
use crate::fixtures;
use crate::idempotency_store::*;
use crate::store::*;
use crate::workflow::{ListExecutionsRequest, WorkflowClient};
use chrono::Duration;
use marketplace_domain::{Currency, ExecutionStatus, Money, PutEventsEntry, WorkflowType};
use serde_json::json;

/// Services: put, get, list by provider, missing is None.
pub async fn service_repository(repo: &dyn ServiceRepository, ns: &str) {
    let s = fixtures::service(&format!("{ns}-svc"), &format!("{ns}-prv"));
    repo.put_service(&s).await.expect("put_service");
    assert_eq!(
        repo.get_service(&format!("{ns}-svc")).await.expect("get"),
        Some(s.clone())
    );
    assert_eq!(
        repo.get_service(&format!("{ns}-none")).await.expect("get"),
        None
    );
    let listed = repo
        .list_services_by_provider(&format!("{ns}-prv"))
        .await
        .expect("list");
    assert_eq!(listed, vec![s]);
}

/// Providers: create once, versioned updates, lookup by account.
pub async fn provider_repository(repo: &dyn ProviderRepository, ns: &str) {
    let pid = format!("{ns}-prv");
    let rec = fixtures::provider_record(&pid);
    assert_eq!(repo.put_provider(&rec, None).await.expect("create"), 1);
    assert!(
        matches!(
            repo.put_provider(&rec, None).await,
            Err(StoreError::ConditionFailed { .. })
        ),
        "creating an existing provider must fail"
    );
    let acct = format!("acct_{}", ns.replace('-', ""));
    let active = fixtures::active_provider_record(&pid, &acct);
    assert_eq!(
        repo.put_provider(&active, Some(1)).await.expect("update"),
        2
    );
    assert!(
        matches!(
            repo.put_provider(&active, Some(1)).await,
            Err(StoreError::ConditionFailed { .. })
        ),
        "a stale version must fail"
    );
    let got = repo.get_provider(&pid).await.expect("get").expect("exists");
    assert_eq!(got.version, 2);
    assert_eq!(got.value, active);
    let by_acct = repo
        .find_provider_by_account(&acct)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(by_acct.value.provider.id().as_str(), pid);
    assert!(repo
        .find_provider_by_account("acct_nobody")
        .await
        .expect("find")
        .is_none());
}

/// Bookings: reservation is one conditional transaction over the booking and its slots.
pub async fn booking_repository(repo: &dyn BookingRepository, ns: &str) {
    let svc = fixtures::service(&format!("{ns}-svc"), &format!("{ns}-prv"));
    let other_provider = fixtures::service(&format!("{ns}-svc2"), &format!("{ns}-prv2"));
    let start = fixtures::t0() + Duration::days(2);
    let a = fixtures::booking_record(&format!("{ns}-a"), &svc, &format!("{ns}-cus1"), start);
    assert_eq!(repo.reserve_booking(&a).await.expect("reserve a"), 1);
    assert!(
        matches!(
            repo.reserve_booking(&a).await,
            Err(StoreError::ConditionFailed { .. })
        ),
        "reserving the same booking id twice must fail with ConditionFailed"
    );
    // overlapping (starts 30 minutes into a): SlotUnavailable naming a, nothing written
    let b = fixtures::booking_record(
        &format!("{ns}-b"),
        &svc,
        &format!("{ns}-cus2"),
        start + Duration::minutes(30),
    );
    match repo.reserve_booking(&b).await {
        Err(StoreError::SlotUnavailable {
            conflicting_booking_id,
            ..
        }) => {
            assert_eq!(conflicting_booking_id, format!("{ns}-a"))
        }
        other => panic!("overlap must be SlotUnavailable, got {other:?}"),
    }
    assert!(
        repo.get_booking(&format!("{ns}-b"))
            .await
            .expect("get")
            .is_none(),
        "a refused reservation writes nothing"
    );
    // a slot right after b's (b is refused for now) and another provider's same slot are free
    let c = fixtures::booking_record(
        &format!("{ns}-c"),
        &svc,
        &format!("{ns}-cus2"),
        start + Duration::minutes(90),
    );
    repo.reserve_booking(&c).await.expect("adjacent booking");
    let d = fixtures::booking_record(
        &format!("{ns}-d"),
        &other_provider,
        &format!("{ns}-cus2"),
        start,
    );
    repo.reserve_booking(&d)
        .await
        .expect("other provider, same time");
    // conditional update
    let mut a2 = a.clone();
    a2.payment_intent_id = Some("pi_contract".into());
    assert_eq!(repo.update_booking(&a2, 1, false).await.expect("update"), 2);
    assert!(
        matches!(
            repo.update_booking(&a2, 1, false).await,
            Err(StoreError::ConditionFailed { .. })
        ),
        "a stale version must fail"
    );
    let got = repo
        .get_booking(&format!("{ns}-a"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (got.version, got.value.payment_intent_id.as_deref()),
        (2, Some("pi_contract"))
    );
    // still held: b refused again; released: b fits
    assert!(matches!(
        repo.reserve_booking(&b).await,
        Err(StoreError::SlotUnavailable { .. })
    ));
    let mut a3 = a2.clone();
    a3.slot_released = true;
    repo.update_booking(&a3, 2, true).await.expect("release");
    repo.reserve_booking(&b)
        .await
        .expect("slot free after release");
    // queries
    let by_customer = repo
        .list_bookings_by_customer(&format!("{ns}-cus2"))
        .await
        .expect("list");
    let ids: Vec<String> = by_customer
        .iter()
        .map(|r| r.booking.id().to_string())
        .collect();
    // newest start first: c (10:30), b (09:30), d (09:00, other provider)
    assert_eq!(
        ids,
        [format!("{ns}-c"), format!("{ns}-b"), format!("{ns}-d")]
    );
    assert!(
        by_customer
            .windows(2)
            .all(|w| w[0].booking.start_date_time() >= w[1].booking.start_date_time()),
        "newest start first"
    );
    let by_provider = repo
        .list_bookings_by_provider(&format!("{ns}-prv"))
        .await
        .expect("list");
    assert_eq!(by_provider.len(), 3, "provider 1 has a, b and c");
}

fn payment(ns: &str, id: &str, booking: &str) -> PaymentRecord {
    let usd = |c: i64| Money::from_minor(c, Currency::Usd).unwrap_or(Money::zero(Currency::Usd));
    PaymentRecord {
        customer_id: Some(format!("{ns}-cus")),
        provider_id: Some(format!("{ns}-prv")),
        platform_fee: Some(usd(1_800)),
        provider_earnings: Some(usd(10_200)),
        correlation_id: format!("corr-{ns}"),
        ..fixtures::payment_record(id, booking)
    }
}

/// Payments: create once, versioned updates (task token), list by booking.
pub async fn payment_repository(repo: &dyn PaymentRepository, ns: &str) {
    let booking = format!("{ns}-bk");
    let p = payment(ns, &format!("pi_{ns}1"), &booking);
    assert_eq!(repo.put_payment(&p, None).await.expect("create"), 1);
    assert!(matches!(
        repo.put_payment(&p, None).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    let mut with_token = p.clone();
    with_token.task_token = Some("token-1".into());
    assert_eq!(
        repo.put_payment(&with_token, Some(1))
            .await
            .expect("update"),
        2
    );
    assert!(matches!(
        repo.put_payment(&with_token, Some(1)).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert!(
        matches!(
            repo.put_payment(&payment(ns, &format!("pi_{ns}x"), &booking), Some(3))
                .await,
            Err(StoreError::NotFound { .. })
        ),
        "updating a missing record is NotFound"
    );
    let mut r = payment(ns, &format!("re_{ns}1"), &booking);
    r.kind = PaymentKind::Refund;
    r.created_at += Duration::seconds(1);
    repo.put_payment(&r, None).await.expect("refund");
    let got = repo
        .get_payment(&format!("pi_{ns}1"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.value.task_token.as_deref(), Some("token-1"));
    let listed = repo.list_payments_by_booking(&booking).await.expect("list");
    let ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [format!("pi_{ns}1").as_str(), format!("re_{ns}1").as_str()]
    );
}

/// Disputes: create once, one open dispute per booking, versioned updates.
pub async fn dispute_repository(repo: &dyn DisputeRepository, ns: &str) {
    use marketplace_domain::entities::Dispute;
    use marketplace_domain::events::DisputeType;
    use marketplace_domain::ids::CorrelationId;
    let svc = fixtures::service(&format!("{ns}-svc"), &format!("{ns}-prv"));
    let mut b = fixtures::booking_record(
        &format!("{ns}-bk"),
        &svc,
        &format!("{ns}-cus"),
        fixtures::t0() + Duration::days(1),
    );
    let corr = CorrelationId::new("corr-contract").expect("corr");
    b.booking
        .confirm(
            "pi_contract".parse().expect("pi"),
            "ABCD1234",
            fixtures::t0(),
            corr.clone(),
        )
        .expect("confirm");
    let make = |id: &str| {
        let (d, _) = Dispute::open(
            id.parse().expect("id"),
            &b.booking,
            DisputeType::RefundRequest,
            "not as described",
            fixtures::t0(),
            corr.clone(),
        )
        .expect("open");
        DisputeRecord {
            dispute: d,
            booking_id: format!("{ns}-bk"),
            dispute_type: DisputeType::RefundRequest,
            customer_id: format!("{ns}-cus"),
            provider_id: format!("{ns}-prv"),
            payment_intent_id: Some("pi_contract".into()),
            amount_paid: b.booking.price(),
            refundable_amount: b.booking.price(),
            requested_refund_amount: None,
            description: "not as described".into(),
            review_deadline: fixtures::t0() + Duration::hours(24),
            resolution_deadline: fixtures::t0() + Duration::days(7),
            provider_task_token: None,
            admin_task_token: None,
            escalation_level: None,
            provider_response: None,
            admin_decision: None,
            open: true,
            correlation_id: "corr-contract".into(),
        }
    };
    let d1 = make(&format!("{ns}-d1"));
    assert_eq!(repo.create_dispute(&d1).await.expect("create"), 1);
    assert!(matches!(
        repo.create_dispute(&d1).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    let d2 = make(&format!("{ns}-d2"));
    assert!(
        matches!(
            repo.create_dispute(&d2).await,
            Err(StoreError::ConditionFailed { .. })
        ),
        "a second open dispute on the same booking must fail"
    );
    assert!(repo
        .get_dispute(&format!("{ns}-d2"))
        .await
        .expect("get")
        .is_none());
    let mut closed = d1.clone();
    closed.open = false;
    closed.provider_task_token = Some("tok".into());
    assert_eq!(repo.update_dispute(&closed, 1).await.expect("update"), 2);
    assert!(matches!(
        repo.update_dispute(&closed, 1).await,
        Err(StoreError::ConditionFailed { .. })
    ));
    repo.create_dispute(&d2)
        .await
        .expect("a new dispute once the first is closed");
    let listed = repo
        .list_disputes_by_booking(&format!("{ns}-bk"))
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
}

/// Ledger: one entry per event id; balances sum the deltas per currency.
pub async fn ledger_repository(repo: &dyn LedgerRepository, ns: &str) {
    let pid = format!("{ns}-prv");
    let entry =
        |event: &str, pending: i64, available: i64, paid: i64, currency: Currency| LedgerEntry {
            event_id: format!("{ns}-{event}"),
            provider_id: pid.clone(),
            currency,
            pending_delta: pending,
            available_delta: available,
            paid_out_delta: paid,
            reason: "contract".into(),
            reference: "ref".into(),
            at: fixtures::t0(),
        };
    assert!(repo
        .append_entry(&entry("e1", 10_200, 0, 0, Currency::Usd))
        .await
        .expect("append"));
    assert!(
        !repo
            .append_entry(&entry("e1", 10_200, 0, 0, Currency::Usd))
            .await
            .expect("append"),
        "a duplicate event id appends nothing"
    );
    assert!(repo
        .append_entry(&entry("e2", -10_200, 10_200, 0, Currency::Usd))
        .await
        .expect("append"));
    assert!(repo
        .append_entry(&entry("e3", 0, -4_000, 4_000, Currency::Usd))
        .await
        .expect("append"));
    assert!(repo
        .append_entry(&entry("e4", 500, 0, 0, Currency::Eur))
        .await
        .expect("append"));
    let usd = repo.balance(&pid, Currency::Usd).await.expect("balance");
    assert_eq!(
        usd,
        LedgerBalance {
            pending: 0,
            available: 6_200,
            paid_out: 4_000
        }
    );
    let eur = repo.balance(&pid, Currency::Eur).await.expect("balance");
    assert_eq!(eur.pending, 500);
    let entries = repo.list_entries(&pid).await.expect("list");
    let ids: Vec<String> = entries.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(ids, ["e1", "e2", "e3", "e4"].map(|e| format!("{ns}-{e}")));
}

/// Idempotency records: conditional IN_PROGRESS put, completion, expiry, deletion.
pub async fn idempotency_store(store: &dyn IdempotencyStore, ns: &str) {
    let now_ms: i64 = 1_772_355_600_000;
    let rec = |id: &str, in_progress_until: i64, expiration: i64| IdempotencyRecord {
        id: format!("{ns}-{id}"),
        status: IdempotencyStatus::InProgress,
        expiration,
        in_progress_expiration: Some(in_progress_until),
        response: None,
        payload_hash: Some("h1".into()),
    };
    let live = rec("k1", now_ms + 30_000, now_ms / 1000 + 3600);
    store
        .put_in_progress(&live, now_ms)
        .await
        .expect("first put");
    match store.put_in_progress(&live, now_ms + 1).await {
        Err(IdempotencyPutError::AlreadyExists(r)) => {
            assert_eq!(r.status, IdempotencyStatus::InProgress)
        }
        other => panic!("a live IN_PROGRESS record must block, got {other:?}"),
    }
    // the in-progress deadline passed (the invocation died): the next put takes over
    store
        .put_in_progress(
            &rec("k1", now_ms + 90_000, now_ms / 1000 + 3600),
            now_ms + 60_000,
        )
        .await
        .expect("stale IN_PROGRESS is replaced");
    store
        .complete(&format!("{ns}-k1"), &json!({"ok": 1}), now_ms / 1000 + 3600)
        .await
        .expect("complete");
    match store.put_in_progress(&live, now_ms + 120_000).await {
        Err(IdempotencyPutError::AlreadyExists(r)) => {
            assert_eq!(r.status, IdempotencyStatus::Completed);
            assert_eq!(r.response, Some(json!({"ok": 1})));
            assert_eq!(r.payload_hash.as_deref(), Some("h1"));
        }
        other => panic!("a COMPLETED record must block and be returned, got {other:?}"),
    }
    // expired COMPLETED records do not block
    store
        .put_in_progress(&live, (now_ms / 1000 + 3601) * 1000)
        .await
        .expect("expired record is replaced");
    // delete frees the key
    store.delete(&format!("{ns}-k1")).await.expect("delete");
    assert!(store.get(&format!("{ns}-k1")).await.expect("get").is_none());
    store
        .put_in_progress(&live, now_ms)
        .await
        .expect("put after delete");
    assert!(store.get(&format!("{ns}-k1")).await.expect("get").is_some());
}

fn entry(detail: &str) -> PutEventsEntry {
    PutEventsEntry {
        source: "marketplace.contract".into(),
        detail_type: "Contract Test".into(),
        detail: detail.to_owned(),
        event_bus_name: Some("ecosystem-marketplace-events".into()),
        resources: Vec::new(),
        time: None,
        trace_header: None,
    }
}

/// PutEvents: 1–10 entries, one result per entry in order, malformed entries fail alone.
pub async fn event_publisher(publisher: &dyn EventPublisher) {
    let results = publisher
        .put_events(&[entry(r#"{"n":1}"#), entry("not json"), entry(r#"{"n":3}"#)])
        .await
        .expect("put_events");
    assert_eq!(results.len(), 3, "one result per entry");
    assert!(results[0].event_id.is_some() && results[0].error_code.is_none());
    assert!(
        results[1].event_id.is_none() && results[1].error_code.is_some(),
        "a malformed detail fails alone"
    );
    assert!(results[2].event_id.is_some());
    assert_ne!(results[0].event_id, results[2].event_id);
    let eleven: Vec<PutEventsEntry> = (0..11).map(|i| entry(&format!(r#"{{"n":{i}}}"#))).collect();
    assert!(matches!(
        publisher.put_events(&eleven).await,
        Err(PublishError::Invalid(_))
    ));
    assert!(matches!(
        publisher.put_events(&[]).await,
        Err(PublishError::Invalid(_))
    ));
}

/// Step Functions: idempotent start by name and input, describe, stop, history, list, tokens.
pub async fn workflow_client(client: &dyn WorkflowClient, ns: &str) {
    workflow_client_executions(client, ns).await;
    workflow_client_task_tokens(client).await;
}

/// The execution steps of [`workflow_client`]: idempotent start by name and input,
/// describe, list, history, stop, names never reused. Returns the ARN of the execution it
/// started (and stopped), so an adapter's own test can check more about it.
pub async fn workflow_client_executions(client: &dyn WorkflowClient, ns: &str) -> String {
    let name = format!("{ns}-booking-1");
    let input = r#"{"operation":"BOOK","bookingId":"bk1"}"#;
    let started = client
        .start_execution(WorkflowType::BookingLifecycle, &name, input)
        .await
        .expect("start");
    assert!(started
        .execution_arn
        .ends_with(&format!(":ecosystem-booking-lifecycle:{name}")));
    let again = client
        .start_execution(WorkflowType::BookingLifecycle, &name, input)
        .await
        .expect("same name and input while running is idempotent");
    assert_eq!(again, started);
    assert!(matches!(
        client
            .start_execution(WorkflowType::BookingLifecycle, &name, r#"{"other":1}"#)
            .await,
        Err(WorkflowError::ExecutionAlreadyExists(_))
    ));
    assert!(matches!(
        client
            .start_execution(WorkflowType::BookingLifecycle, "bad name", input)
            .await,
        Err(WorkflowError::InvalidName(_))
    ));
    assert!(matches!(
        client
            .start_execution(
                WorkflowType::BookingLifecycle,
                &format!("{ns}-x"),
                "{not json"
            )
            .await,
        Err(WorkflowError::InvalidExecutionInput(_))
    ));
    let d = client
        .describe_execution(&started.execution_arn)
        .await
        .expect("describe");
    assert_eq!(d.status, ExecutionStatus::Running);
    assert_eq!(d.input.as_deref(), Some(input));
    assert_eq!(d.workflow_type, Some(WorkflowType::BookingLifecycle));
    let missing = started
        .execution_arn
        .replace(&name, &format!("{ns}-missing"));
    assert!(matches!(
        client.describe_execution(&missing).await,
        Err(WorkflowError::ExecutionDoesNotExist(_))
    ));
    assert!(matches!(
        client.describe_execution("not-an-arn").await,
        Err(WorkflowError::InvalidArn(_))
    ));
    let list = client
        .list_executions(&ListExecutionsRequest {
            workflow_type: Some(WorkflowType::BookingLifecycle),
            status: Some(ExecutionStatus::Running),
            max_results: 1000,
            next_token: None,
        })
        .await
        .expect("list");
    assert!(list
        .executions
        .iter()
        .any(|e| e.execution_arn == started.execution_arn));
    let history = client
        .get_execution_history(&started.execution_arn, 100, None, false)
        .await
        .expect("history");
    assert_eq!(
        history.events.first().map(|e| e.event_type.as_str()),
        Some("ExecutionStarted")
    );
    client
        .stop_execution(&started.execution_arn, Some("Admin.Stop"), Some("contract"))
        .await
        .expect("stop");
    let d = client
        .describe_execution(&started.execution_arn)
        .await
        .expect("describe");
    assert_eq!(d.status, ExecutionStatus::Aborted);
    assert!(d.stop_date.is_some());
    assert!(
        matches!(
            client
                .start_execution(WorkflowType::BookingLifecycle, &name, input)
                .await,
            Err(WorkflowError::ExecutionAlreadyExists(_))
        ),
        "a finished execution's name cannot be reused"
    );
    started.execution_arn
}

/// The task-token step of [`workflow_client`]: an unknown token is a stale-token error.
pub async fn workflow_client_task_tokens(client: &dyn WorkflowClient) {
    assert!(matches!(
        client.send_task_success("no-such-token", "{}").await,
        Err(e) if e.is_stale_token()
    ));
}

/// Stripe semantics a gateway adapter must keep (run against a fake or test-mode
/// endpoint whose test cards behave like Stripe's): idempotency keys, declines as
/// intents, refund limits.
pub async fn payment_gateway(gateway: &dyn crate::PaymentGateway, ns: &str) {
    use crate::error::GatewayError;
    use crate::payments::*;
    use std::collections::BTreeMap;
    let create = |pm: &str, key: &str, amount: i64| CreatePaymentIntent {
        amount,
        currency: "usd".into(),
        customer: None,
        payment_method: Some(pm.into()),
        confirm: true,
        transfer_group: Some(format!("{ns}-bk")),
        application_fee_amount: None,
        transfer_destination: None,
        metadata: BTreeMap::new(),
        idempotency_key: format!("{ns}-{key}"),
    };
    let paid = gateway
        .create_payment_intent(&create("pm_card_visa", "pi", 12_000))
        .await
        .expect("create");
    assert_eq!(paid.status, PaymentIntentStatus::Succeeded);
    let again = gateway
        .create_payment_intent(&create("pm_card_visa", "pi", 12_000))
        .await
        .expect("replay");
    assert_eq!(
        again.id, paid.id,
        "the same idempotency key returns the same intent"
    );
    match gateway
        .create_payment_intent(&create("pm_card_visa", "pi", 1))
        .await
    {
        Err(GatewayError::Permanent { code, .. }) => assert_eq!(code, "idempotency_error"),
        other => {
            panic!("the same key with other parameters must be idempotency_error, got {other:?}")
        }
    }
    let declined = gateway
        .create_payment_intent(&create("pm_card_chargeDeclined", "declined", 12_000))
        .await
        .expect("a decline is an intent, not an error");
    assert_eq!(declined.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert!(declined.last_payment_error.is_some());
    let refund = |amount: i64, key: &str| CreateRefund {
        payment_intent: paid.id.clone(),
        amount: Some(amount),
        reason: Some("requested_by_customer".into()),
        metadata: BTreeMap::new(),
        idempotency_key: format!("{ns}-{key}"),
    };
    let r = gateway
        .create_refund(&refund(12_000, "r1"))
        .await
        .expect("refund");
    assert_eq!(r.amount, 12_000);
    assert_eq!(
        gateway
            .create_refund(&refund(12_000, "r1"))
            .await
            .expect("replay")
            .id,
        r.id
    );
    assert!(
        matches!(
            gateway.create_refund(&refund(1, "r2")).await,
            Err(GatewayError::Permanent { .. })
        ),
        "nothing is left to refund"
    );
}

/// The notifier accepts a message with a recipient and refuses one without.
pub async fn notifier(notifier: &dyn crate::Notifier, ns: &str) {
    let mut m = crate::notify::EmailMessage {
        to: vec![format!("{ns}@example.com")],
        subject: "contract".into(),
        text_body: "hello".into(),
        html_body: Some("<p>hello</p>".into()),
        idempotency_key: format!("{ns}:CONTRACT"),
        template: "CONTRACT".into(),
        correlation_id: Some(format!("corr-{ns}")),
    };
    let id = notifier.send_email(&m).await.expect("send");
    assert!(!id.is_empty(), "a message id is returned");
    m.to.clear();
    assert!(
        matches!(
            notifier.send_email(&m).await,
            Err(crate::NotifyError::Rejected(_))
        ),
        "a message without recipients is rejected"
    );
}

/// The user directory: users by id, members of a group. Before the call the directory
/// must hold `{ns}-u1` (in group `{ns}-g`) and `{ns}-u2` (in no group); each adapter
/// seeds them through its own means (a table insert locally, AdminCreateUser on Cognito).
pub async fn user_directory(directory: &dyn UserDirectory, ns: &str) {
    let u1 = directory
        .get_user(&format!("{ns}-u1"))
        .await
        .expect("get_user")
        .expect("seeded user exists");
    assert_eq!(u1.user_id, format!("{ns}-u1"));
    assert!(u1.email.contains('@'), "a contact has an e-mail address");
    assert!(directory
        .get_user(&format!("{ns}-nobody"))
        .await
        .expect("get_user")
        .is_none());
    let members = directory
        .group_members(&format!("{ns}-g"))
        .await
        .expect("group_members");
    let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    assert_eq!(
        ids,
        [format!("{ns}-u1").as_str()],
        "only members are listed"
    );
    assert!(directory
        .group_members(&format!("{ns}-empty"))
        .await
        .expect("group_members")
        .is_empty());
}
