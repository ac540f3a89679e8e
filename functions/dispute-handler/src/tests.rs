use super::*;
use marketplace_domain::Currency;
use marketplace_domain::WorkflowType;
use marketplace_ports::fixtures;
use marketplace_ports::memory::{MemoryPorts, TaskOutcome};
use marketplace_ports::{BookingRepository, DisputeRepository, WorkflowClient};

fn usd(s: &str) -> Money {
    Money::parse(s, Currency::Usd).unwrap()
}

struct Env {
    m: MemoryPorts,
    h: DisputeHandler,
}

async fn env() -> Env {
    let m = MemoryPorts::new(fixtures::t0());
    let svc = fixtures::service("svc_1", "prv_1");
    let corr = CorrelationId::new("corr-b").unwrap();
    for (id, paid, day) in [("bk_1", true, 1), ("bk_2", false, 2)] {
        let mut b =
            fixtures::booking_record(id, &svc, "cus_1", fixtures::t0() + Duration::days(day));
        if paid {
            b.booking
                .confirm(
                    "pi_1".parse().unwrap(),
                    "ABCD2345",
                    fixtures::t0(),
                    corr.clone(),
                )
                .unwrap();
            b.payment_intent_id = Some("pi_1".into());
        }
        m.store.reserve_booking(&b).await.unwrap();
    }
    let (log, metrics, _) = m.observability("dispute-handler");
    let h = DisputeHandler::new(m.ports.clone(), log, metrics);
    Env { m, h }
}

fn create(id: &str, booking: &str, kind: &str, requested: Value) -> Value {
    json!({"action": "createDispute", "disputeId": id, "bookingId": booking, "disputeType": kind, "customerId": "cus_1",
           "description": "the session was cut short", "requestedRefundAmount": requested, "now": "2026-03-03T12:00:00Z",
           "correlationId": "corr-d"})
}

#[tokio::test]
async fn create_validates_and_is_idempotent() {
    let e = env().await;
    let out =
        e.h.handle(create("dsp_1", "bk_1", "REFUND_REQUEST", json!(40)), None)
            .await
            .unwrap();
    assert_eq!(out["providerId"], "prv_1");
    assert_eq!(out["paymentIntentId"], "pi_1");
    assert_eq!(
        (
            out["amountPaid"].clone(),
            out["refundableAmount"].clone(),
            out["requestedRefundAmount"].clone()
        ),
        (json!(120), json!(120), json!(40))
    );
    assert_eq!(out["reviewDeadline"], "2026-03-04T12:00:00Z");
    assert_eq!(out["resolutionDeadline"], "2026-03-10T12:00:00Z");
    assert_eq!(
        e.h.handle(create("dsp_1", "bk_1", "REFUND_REQUEST", json!(40)), None)
            .await
            .unwrap(),
        out,
        "a retried task answers the same"
    );
    let cases = [
        (
            create("dsp_2", "bk_1", "SERVICE_COMPLAINT", Value::Null),
            ErrorType::ValidationError,
            "bookingId: booking bk_1 already has the open dispute dsp_1",
        ),
        (
            create("dsp_3", "bk_2", "REFUND_REQUEST", Value::Null),
            ErrorType::ValidationError,
            "bookingId: booking bk_2 is PENDING_PAYMENT and was not paid",
        ),
        (
            create("dsp_4", "bk_x", "REFUND_REQUEST", Value::Null),
            ErrorType::NotFound,
            "booking bk_x does not exist",
        ),
        (
            {
                let mut c = create("dsp_5", "bk_1", "REFUND_REQUEST", Value::Null);
                c["customerId"] = json!("cus_2");
                c
            },
            ErrorType::ValidationError,
            "customerId: must be the booking's customer",
        ),
        (
            {
                let mut c = create("dsp_6", "bk_1", "REFUND_REQUEST", Value::Null);
                c["now"] = json!("2026-04-03T12:00:00Z");
                c
            },
            ErrorType::ValidationError,
            "now: disputes must be opened within 30 days after the service ended",
        ),
        (
            create("dsp_7", "bk_1", "ANGRY", Value::Null),
            ErrorType::ValidationError,
            "disputeType: must be one of",
        ),
    ];
    for (req, ty, msg) in cases {
        let err = e.h.handle(req, None).await.unwrap_err();
        assert_eq!(err.error_type, ty, "{}", err.message);
        assert!(err.message.starts_with(msg), "{:?} vs {msg:?}", err.message);
    }
}

#[test]
fn automated_rules() {
    let r = usd("120");
    let d = |t, resp, offer: Option<&str>, req: Option<&str>, refundable: Money| {
        decide(t, resp, offer.map(usd), req.map(usd), refundable)
    };
    use DisputeType::*;
    let x = d(RefundRequest, "ACCEPT", None, Some("40"), r);
    assert_eq!(
        (x.decision, x.refund, x.rule),
        ("REFUND", usd("40"), "R1-accepted-refund")
    );
    assert_eq!(
        d(RefundRequest, "ACCEPT", None, None, r).refund,
        r,
        "no request: everything refundable"
    );
    assert_eq!(
        d(RefundRequest, "ACCEPT", None, Some("500"), r).refund,
        r,
        "capped at refundable"
    );
    let x = d(RefundRequest, "NO_RESPONSE", None, Some("100"), r);
    assert_eq!(
        (x.decision, x.rule),
        ("REFUND", "R2-small-claim-unanswered")
    );
    let x = d(RefundRequest, "NO_RESPONSE", None, Some("100.01"), r);
    assert_eq!(
        (x.decision, x.escalation),
        ("ESCALATE", Some("PROVIDER_NO_RESPONSE"))
    );
    let x = d(RefundRequest, "NO_RESPONSE", None, None, r);
    assert_eq!(
        x.decision, "ESCALATE",
        "no request = the whole 120, above the small claim"
    );
    assert_eq!(
        d(RefundRequest, "REJECT", None, Some("10"), r).escalation,
        Some("NO_AGREEMENT")
    );
    let x = d(RefundRequest, "PARTIAL_OFFER", Some("20"), Some("40"), r);
    assert_eq!((x.decision, x.refund), ("PARTIAL_REFUND", usd("20")));
    assert_eq!(
        d(RefundRequest, "PARTIAL_OFFER", Some("19.99"), Some("40"), r).decision,
        "ESCALATE"
    );
    let x = d(ServiceComplaint, "ACCEPT", None, None, usd("120.01"));
    assert_eq!(
        (x.decision, x.refund),
        ("PARTIAL_REFUND", usd("60.01")),
        "50 %, half-up"
    );
    assert_eq!(
        d(ServiceComplaint, "PARTIAL_OFFER", Some("30"), None, r).refund,
        usd("30")
    );
    assert_eq!(
        d(ServiceComplaint, "PARTIAL_OFFER", Some("29.99"), None, r).decision,
        "ESCALATE"
    );
    assert_eq!(
        d(ServiceComplaint, "NO_RESPONSE", None, None, r).escalation,
        Some("PROVIDER_NO_RESPONSE")
    );
    assert_eq!(
        d(ServiceComplaint, "REJECT", None, None, r).decision,
        "ESCALATE"
    );
    let x = d(
        ServiceComplaint,
        "ACCEPT",
        None,
        None,
        Money::zero(Currency::Usd),
    );
    assert_eq!((x.decision, x.rule), ("REJECT", "R0-nothing-refundable"));
}

#[tokio::test]
async fn evaluate_escalate_and_resolve() {
    let e = env().await;
    e.h.handle(create("dsp_1", "bk_1", "REFUND_REQUEST", json!(120)), None)
        .await
        .unwrap();
    let exec = "arn:aws:states:us-east-1:123456789012:execution:ecosystem-dispute-resolution:dispute-dsp_1";
    let w = e.h.handle(json!({"action": "awaitProviderResponse", "disputeId": "dsp_1", "taskToken": "tok-p", "executionArn": exec}), None).await.unwrap();
    assert_eq!(w, json!({"waiting": true}));
    assert_eq!(
        e.m.store
            .get_dispute("dsp_1")
            .await
            .unwrap()
            .unwrap()
            .value
            .provider_task_token
            .as_deref(),
        Some("tok-p")
    );
    let ev = e.h.handle(json!({"action": "evaluateDispute", "disputeId": "dsp_1", "providerResponse": {"response": "REJECT", "offerAmount": null, "message": "no"}, "now": "2026-03-03T13:00:00Z"}), None).await.unwrap();
    assert_eq!(
        ev,
        json!({"decision": "ESCALATE", "resolution": null, "refundAmount": 0, "currency": "USD", "rule": "R4-refund-rejected",
                          "explanation": "the provider rejected the refund request", "escalationReason": "NO_AGREEMENT"})
    );
    let esc = e.h.handle(json!({"action": "escalateDispute", "disputeId": "dsp_1", "reason": "NO_AGREEMENT", "detail": null, "level": "MANUAL_REVIEW", "now": "2026-03-03T13:00:00Z", "correlationId": "corr-d"}), None).await.unwrap();
    assert_eq!(esc["eventReason"], "NO_AGREEMENT");
    assert_eq!(esc["deadlinePassed"], json!(false));
    assert_eq!(esc["reviewTimeoutSeconds"], json!(7 * 86_400 - 3_600));
    assert_eq!(esc["heartbeatSeconds"], json!(172_800));
    assert_eq!(esc["resolutionDeadline"], "2026-03-10T12:00:00Z");
    // re-escalation near the deadline
    let late = e.h.handle(json!({"action": "escalateDispute", "disputeId": "dsp_1", "reason": "RESOLUTION_DEADLINE_EXCEEDED", "detail": "States.Timeout", "level": "FINAL", "now": "2026-03-10T11:59:00Z"}), None).await.unwrap();
    assert_eq!(
        (
            late["deadlinePassed"].clone(),
            late["eventReason"].clone(),
            late["escalationLevel"].clone()
        ),
        (json!(true), json!("MANUAL"), json!("FINAL"))
    );
    assert!(late["notes"]
        .as_str()
        .unwrap()
        .starts_with("the 7-day resolution deadline passed"));
    assert_eq!(late["heartbeatSeconds"], json!(1));
    let bad = e.h.handle(json!({"action": "escalateDispute", "disputeId": "dsp_1", "reason": "BORED", "now": "2026-03-04T00:00:00Z"}), None).await.unwrap_err();
    assert!(bad.message.starts_with("reason: must be"));
    // the admin refunds 60: resolved as PARTIALLY_REFUNDED, retried task answers the same
    let resolve = json!({"action": "resolveDispute", "disputeId": "dsp_1", "resolution": "PARTIALLY_REFUNDED", "requestedRefundAmount": 60,
        "refund": {"refundId": "re_1", "amount": 60, "currency": "USD", "status": "succeeded"}, "resolvedBy": "root", "rule": null, "notes": "half"});
    let out = e.h.handle(resolve.clone(), None).await.unwrap();
    assert_eq!(
        (
            out["resolution"].clone(),
            out["refundAmount"].clone(),
            out["resolvedBy"].clone()
        ),
        (json!("PARTIALLY_REFUNDED"), json!(60), json!("root"))
    );
    let again = e.h.handle(resolve, None).await.unwrap();
    assert_eq!(again["refundAmount"], json!(60));
    let rec = e.m.store.get_dispute("dsp_1").await.unwrap().unwrap().value;
    assert!(!rec.open);
    assert_eq!(rec.dispute.status(), DisputeStatus::Resolved);
    let err =
        e.h.handle(
            json!({"action": "awaitAdminDecision", "disputeId": "dsp_1", "taskToken": "t"}),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type, ErrorType::InvalidTransition);
    // a new dispute on the booking is possible once this one is closed
    e.h.handle(
        create("dsp_9", "bk_1", "SERVICE_COMPLAINT", Value::Null),
        None,
    )
    .await
    .unwrap();
    let ev = e.h.handle(json!({"action": "evaluateDispute", "disputeId": "dsp_9", "providerResponse": {"response": "NO_RESPONSE"}, "now": "2026-03-04T13:00:00Z"}), None).await.unwrap();
    assert_eq!(ev["escalationReason"], "PROVIDER_NO_RESPONSE");
}

#[tokio::test]
async fn full_refund_by_rule_resolves_refunded() {
    let e = env().await;
    e.h.handle(create("dsp_1", "bk_1", "REFUND_REQUEST", Value::Null), None)
        .await
        .unwrap();
    let ev = e.h.handle(json!({"action": "evaluateDispute", "disputeId": "dsp_1", "providerResponse": {"response": "ACCEPT"}, "now": "2026-03-03T13:00:00Z"}), None).await.unwrap();
    assert_eq!(
        (
            ev["decision"].clone(),
            ev["resolution"].clone(),
            ev["refundAmount"].clone()
        ),
        (json!("REFUND"), json!("REFUNDED"), json!(120))
    );
    let out = e.h.handle(json!({"action": "resolveDispute", "disputeId": "dsp_1", "resolution": "REFUNDED", "requestedRefundAmount": 120,
        "refund": {"refundId": "re_1", "amount": 120, "currency": "USD", "status": "succeeded"}, "resolvedBy": null, "rule": "R1-accepted-refund", "notes": null}), None).await.unwrap();
    assert_eq!(
        (out["resolution"].clone(), out["resolvedBy"].clone()),
        (json!("REFUNDED"), json!("automation"))
    );
}

/// `dsp_1` opened, its workflow running and (if `escalated`) escalated for manual review.
async fn dispute_in_workflow(e: &Env, escalated: bool) -> String {
    e.h.handle(create("dsp_1", "bk_1", "REFUND_REQUEST", json!(120)), None)
        .await
        .unwrap();
    if escalated {
        e.h.handle(json!({"action": "escalateDispute", "disputeId": "dsp_1", "reason": "NO_AGREEMENT", "detail": null,
                          "level": "MANUAL_REVIEW", "now": "2026-03-03T13:00:00Z", "correlationId": "corr-d"}), None)
            .await
            .unwrap();
    }
    e.m.workflows
        .start_execution(WorkflowType::DisputeResolution, "dispute-dsp_1", "{}")
        .await
        .unwrap()
        .execution_arn
}

/// Records `output` as a pending answer, as the GraphQL resolver does before the wait is armed.
async fn record_pending(e: &Env, admin: bool, output: &Value) -> RecordedAnswer {
    let current = e.m.store.get_dispute("dsp_1").await.unwrap().unwrap();
    let mut next = current.value.clone();
    let answer = RecordedAnswer {
        output: output.to_string(),
        answered_by: if admin { "root" } else { "prv_1" }.into(),
        answered_at: fixtures::t0(),
        delivered: false,
    };
    if admin {
        next.admin_decision = Some(answer.clone());
    } else {
        next.provider_response = Some(answer.clone());
    }
    e.m.store
        .update_dispute(&next, current.version)
        .await
        .unwrap();
    answer
}

async fn record(e: &Env) -> DisputeRecord {
    e.m.store.get_dispute("dsp_1").await.unwrap().unwrap().value
}

fn await_task(action: &str, token: &str) -> Value {
    json!({"action": action, "disputeId": "dsp_1", "taskToken": token, "resolutionDeadline": "2026-03-10T12:00:00Z"})
}

#[tokio::test]
async fn a_decision_recorded_before_the_wait_completes_the_tasks_own_token() {
    let e = env().await;
    let exec = dispute_in_workflow(&e, true).await;
    let decision = json!({"resolution": "PARTIALLY_REFUNDED", "refundAmount": 40.25, "adminId": "root", "notes": "late"});
    let pending = record_pending(&e, true, &decision).await;
    e.m.workflows.register_task("tok-a", &exec);
    let out =
        e.h.handle(await_task("awaitAdminDecision", "tok-a"), None)
            .await
            .unwrap();
    assert_eq!(
        out,
        json!({"waiting": false, "answeredBy": "root", "answeredAt": time_json(&fixtures::t0())})
    );
    assert_eq!(
        e.m.workflows.task_outcome("tok-a"),
        Some(TaskOutcome::Success(decision))
    );
    let r = record(&e).await;
    assert_eq!(r.admin_task_token, None, "the token is used up");
    assert_eq!(
        r.admin_decision,
        Some(RecordedAnswer {
            delivered: true,
            ..pending
        })
    );
    // the refund fails and the dispute is escalated again: a new review, a new decision
    let again = e.h.handle(json!({"action": "escalateDispute", "disputeId": "dsp_1", "reason": "REFUND_FAILED", "detail": "card expired",
                                  "level": "MANUAL_REVIEW", "now": "2026-03-04T13:00:00Z"}), None).await.unwrap();
    assert_eq!(
        again["notes"],
        "escalated for manual review: REFUND_FAILED (card expired)"
    );
    assert_eq!(record(&e).await.admin_decision, None);
}

#[tokio::test]
async fn without_a_recorded_decision_the_wait_stores_its_token() {
    let e = env().await;
    let exec = dispute_in_workflow(&e, true).await;
    e.m.workflows.register_task("tok-a", &exec);
    let out =
        e.h.handle(await_task("awaitAdminDecision", "tok-a"), None)
            .await
            .unwrap();
    assert_eq!(out, json!({"waiting": true}));
    assert_eq!(e.m.workflows.task_outcome("tok-a"), None, "still waiting");
    let r = record(&e).await;
    assert_eq!(r.admin_task_token.as_deref(), Some("tok-a"));
    assert_eq!(r.admin_decision, None);
}

#[tokio::test]
async fn a_failed_completion_keeps_the_decision_pending_for_the_retry() {
    let e = env().await;
    let exec = dispute_in_workflow(&e, true).await;
    let decision =
        json!({"resolution": "REJECTED", "refundAmount": 0, "adminId": "root", "notes": null});
    record_pending(&e, true, &decision).await;
    // the token is unknown to the workflow service: the task fails and is retried
    let err =
        e.h.handle(await_task("awaitAdminDecision", "tok-a"), None)
            .await
            .unwrap_err();
    assert!(err.message.contains("Task Token does not exist"), "{err:?}");
    let r = record(&e).await;
    assert!(!r.admin_decision.as_ref().unwrap().delivered);
    assert_eq!(r.admin_task_token, None);
    e.m.workflows.register_task("tok-a", &exec);
    e.h.handle(await_task("awaitAdminDecision", "tok-a"), None)
        .await
        .unwrap();
    assert_eq!(
        e.m.workflows.task_outcome("tok-a"),
        Some(TaskOutcome::Success(decision))
    );
    assert!(record(&e).await.admin_decision.unwrap().delivered);
}

#[tokio::test]
async fn a_recorded_provider_response_completes_the_review_wait() {
    let e = env().await;
    let exec = dispute_in_workflow(&e, false).await;
    let response = json!({"response": "ACCEPT", "offerAmount": null, "message": "sorry"});
    record_pending(&e, false, &response).await;
    e.m.workflows.register_task("tok-p", &exec);
    let out =
        e.h.handle(await_task("awaitProviderResponse", "tok-p"), None)
            .await
            .unwrap();
    assert_eq!(out["answeredBy"], "prv_1");
    assert_eq!(
        e.m.workflows.task_outcome("tok-p"),
        Some(TaskOutcome::Success(response))
    );
    let r = record(&e).await;
    assert_eq!(r.provider_task_token, None);
    assert!(r.provider_response.unwrap().delivered);
    // the admin wait is not touched by the provider's answer
    assert_eq!(r.admin_decision, None);
}

#[tokio::test]
async fn a_new_escalation_drops_an_unapplied_decision_and_says_so() {
    let e = env().await;
    dispute_in_workflow(&e, true).await;
    record_pending(&e, true, &json!({"resolution": "REJECTED"})).await;
    let out = e.h.handle(json!({"action": "escalateDispute", "disputeId": "dsp_1", "reason": "RESOLUTION_DEADLINE_EXCEEDED",
                                "detail": null, "level": "FINAL", "now": "2026-03-10T12:00:00Z"}), None).await.unwrap();
    assert_eq!(
        out["notes"],
        format!(
            "the 7-day resolution deadline passed without a decision; the decision recorded by root at {} was not applied",
            fixtures::t0().to_rfc3339()
        )
    );
    assert_eq!(record(&e).await.admin_decision, None);
}

#[tokio::test]
async fn a_resolved_dispute_sends_no_recorded_decision() {
    let e = env().await;
    let exec = dispute_in_workflow(&e, true).await;
    e.h.handle(json!({"action": "resolveDispute", "disputeId": "dsp_1", "resolution": "REJECTED", "refund": null,
                      "resolvedBy": "root", "rule": null, "notes": null}), None)
        .await
        .unwrap();
    record_pending(&e, true, &json!({"resolution": "REJECTED"})).await;
    e.m.workflows.register_task("tok-a", &exec);
    let err =
        e.h.handle(await_task("awaitAdminDecision", "tok-a"), None)
            .await
            .unwrap_err();
    assert_eq!(err.error_type, ErrorType::InvalidTransition);
    assert_eq!(err.message, "dispute dsp_1 is already resolved");
    assert_eq!(e.m.workflows.task_outcome("tok-a"), None);
}
