use super::*;
use marketplace_domain::entities::Dispute;
use marketplace_domain::events::{DisputeResolution, DisputeType, EscalationReason};
use marketplace_domain::ids::CorrelationId;
use marketplace_domain::Money;
use marketplace_ports::fixtures;
use marketplace_ports::log::MemorySink;
use marketplace_ports::memory::{MemoryPorts, TaskOutcome};
use marketplace_ports::{
    BookingRepository, DisputeRecord, DisputeRepository, PaymentRecord, PaymentRepository,
    WorkflowClient,
};

struct Env {
    m: MemoryPorts,
    o: Orchestrator,
    sink: MemorySink,
}

fn env() -> Env {
    let m = MemoryPorts::new(fixtures::t0());
    let (log, metrics, sink) = m.observability("workflow-orchestrator");
    let o = Orchestrator::new(m.ports.clone(), OrchestratorConfig::default(), log, metrics);
    Env { m, o, sink }
}

fn admin() -> Value {
    json!({"sub": "adm_1", "username": "root", "claims": {"cognito:groups": ["admin"]}, "groups": ["admin"]})
}

fn user(sub: &str) -> Value {
    json!({"sub": sub, "username": sub, "claims": {}, "groups": []})
}

fn call(field: &str, args: Value, identity: Value) -> Value {
    json!({"arguments": args, "identity": identity, "source": null,
           "request": {"headers": {"x-correlation-id": "hdr-corr"}}, "prev": null,
           "info": {"fieldName": field, "parentTypeName": "Mutation", "variables": {}, "selectionSetList": []},
           "stash": {}})
}

fn booking_input(customer: &str) -> String {
    json!({"serviceId": "svc_1", "customerId": customer, "providerId": "prv_1",
           "startDateTime": "2026-03-03T10:00:00Z", "endDateTime": "2026-03-03T11:00:00Z",
           "amount": 120, "currency": "USD"})
    .to_string()
}

async fn start(e: &Env, identity: Value, wt: &str, input: String) -> Value {
    e.o.handle(
        call(
            "startWorkflow",
            json!({"workflowType": wt, "input": input}),
            identity,
        ),
        Some("req-1"),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn start_is_idempotent_and_validated() {
    let e = env();
    let first = start(&e, Value::Null, "BOOKING_LIFECYCLE", booking_input("cus_1")).await;
    assert_eq!(first["success"], json!(true), "{first}");
    assert_eq!(first["status"], "RUNNING");
    assert_eq!(first["workflowType"], "BOOKING_LIFECYCLE");
    let name = first["executionName"].as_str().unwrap().to_owned();
    assert!(name.starts_with("booking-bk_"));
    assert_eq!(first["correlationId"], json!(name));
    assert!(first["executionArn"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":execution:ecosystem-booking-lifecycle:{name}")));
    // retried start: same execution, no second workflow
    let again = start(&e, Value::Null, "BOOKING_LIFECYCLE", booking_input("cus_1")).await;
    assert_eq!(again["executionArn"], first["executionArn"]);
    let list =
        e.m.workflows
            .list_executions(&Default::default())
            .await
            .unwrap();
    assert_eq!(list.executions.len(), 1);
    // the same name with another input is refused
    let clash = e
        .o
        .handle(call("startWorkflow", json!({"workflowType": "BOOKING_LIFECYCLE", "input": booking_input("cus_2"), "executionName": name}), Value::Null), None)
        .await
        .unwrap();
    assert_eq!(clash["errorType"], "ExecutionAlreadyExists");
    // validation errors name field and rule
    let bad = start(
        &e,
        Value::Null,
        "BOOKING_LIFECYCLE",
        json!({"customerId": "cus_1"}).to_string(),
    )
    .await;
    assert_eq!(
        bad,
        json!({"success": false, "errorType": "ValidationException", "error": "input.serviceId: is required"})
    );
    let bad = start(&e, Value::Null, "NOPE", "{}".into()).await;
    assert_eq!(bad["errorType"], "ValidationException");
    assert!(bad["error"].as_str().unwrap().starts_with("workflowType: "));
    let bad = start(&e, Value::Null, "BOOKING_LIFECYCLE", "{not json".into()).await;
    assert!(bad["error"]
        .as_str()
        .unwrap()
        .starts_with("input: must be valid JSON"));
    // the log line carries the request and correlation ids
    let line = e
        .sink
        .lines()
        .into_iter()
        .find(|l| l.contains("startWorkflow resolved"))
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["requestId"], "req-1");
    assert_eq!(v["correlationId"], "hdr-corr");
    assert_eq!(v["level"], "INFO");
    // EMF metrics were flushed with the workflow type dimension
    let emf = e
        .sink
        .lines()
        .into_iter()
        .find(|l| l.contains("WorkflowStarted"))
        .unwrap();
    let v: Value = serde_json::from_str(&emf).unwrap();
    assert_eq!(v["workflowType"], "BOOKING_LIFECYCLE");
    assert_eq!(
        v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "EcosystemMarketplace"
    );
}

#[tokio::test]
async fn users_see_and_start_only_their_own_workflows() {
    let e = env();
    let own = start(
        &e,
        user("cus_1"),
        "BOOKING_LIFECYCLE",
        booking_input("cus_1"),
    )
    .await;
    assert_eq!(own["success"], json!(true));
    let other = start(
        &e,
        user("cus_1"),
        "BOOKING_LIFECYCLE",
        booking_input("cus_2"),
    )
    .await;
    assert_eq!(other["errorType"], "UnauthorizedException");
    let pay = start(
        &e,
        user("cus_1"),
        "PAYMENT_PROCESSING",
        json!({"paymentType": "PAYOUT"}).to_string(),
    )
    .await;
    assert_eq!(pay["errorType"], "UnauthorizedException");
    let theirs = start(&e, Value::Null, "BOOKING_LIFECYCLE", booking_input("cus_2")).await;
    let arn = theirs["executionArn"].as_str().unwrap();
    let status =
        |who: Value, arn: &str| call("getWorkflowStatus", json!({"executionArn": arn}), who);
    let r = e.o.handle(status(user("cus_1"), arn), None).await.unwrap();
    assert_eq!(r["errorType"], "UnauthorizedException");
    let r = e.o.handle(status(user("cus_2"), arn), None).await.unwrap();
    assert_eq!(
        (r["success"].clone(), r["status"].clone()),
        (json!(true), json!("RUNNING"))
    );
    let input: Value = serde_json::from_str(r["input"].as_str().unwrap()).unwrap();
    assert_eq!(input["customerId"], "cus_2");
    let r = e.o.handle(status(admin(), arn), None).await.unwrap();
    assert_eq!(r["success"], json!(true));
    // list: a user sees only theirs, the admin both
    let list = |who: Value| {
        call(
            "listWorkflowExecutions",
            json!({"workflowType": "BOOKING_LIFECYCLE"}),
            who,
        )
    };
    let mine = e.o.handle(list(user("cus_1")), None).await.unwrap();
    assert_eq!(mine["executions"].as_array().unwrap().len(), 1);
    assert_eq!(mine["executions"][0]["executionArn"], own["executionArn"]);
    let all = e.o.handle(list(admin()), None).await.unwrap();
    assert_eq!(all["executions"].as_array().unwrap().len(), 2);
    let bad =
        e.o.handle(
            call("listWorkflowExecutions", json!({"limit": 0}), admin()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(bad["error"], "limit: must be an integer from 1 to 1000");
    // history, missing execution, malformed ARN
    let h =
        e.o.handle(
            call(
                "getExecutionHistory",
                json!({"executionArn": arn}),
                user("cus_2"),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(h["events"][0]["type"], "ExecutionStarted");
    let missing = arn.replace("booking-", "booking-x");
    let r = e.o.handle(status(admin(), &missing), None).await.unwrap();
    assert_eq!(r["errorType"], "ExecutionDoesNotExist");
    let r = e.o.handle(status(admin(), "arn:nope"), None).await.unwrap();
    assert_eq!(r["errorType"], "InvalidArn");
}

#[tokio::test]
async fn only_admins_stop_and_batch_invoke_answers_each() {
    let e = env();
    let s = start(&e, Value::Null, "BOOKING_LIFECYCLE", booking_input("cus_1")).await;
    let arn = s["executionArn"].as_str().unwrap();
    let stop = |who: Value| {
        call(
            "stopWorkflow",
            json!({"executionArn": arn, "error": "Ops.Stop", "cause": "test"}),
            who,
        )
    };
    let batch = Value::Array(vec![stop(Value::Null), stop(user("cus_1")), stop(admin())]);
    let out = e.o.handle(batch, None).await.unwrap();
    let out = out.as_array().unwrap();
    assert_eq!(out[0]["errorType"], "UnauthorizedException");
    assert_eq!(out[1]["errorType"], "UnauthorizedException");
    assert_eq!(
        (out[2]["success"].clone(), out[2]["status"].clone()),
        (json!(true), json!("ABORTED"))
    );
    let iam = json!({"accountId": "123456789012", "userArn": "arn:aws:iam::123456789012:role/ops"});
    let again = e.o.handle(stop(iam), None).await.unwrap();
    assert_eq!(
        again["success"],
        json!(true),
        "stopping a stopped execution is a no-op"
    );
}

#[tokio::test]
async fn publish_event_checks_rights_and_the_catalogue() {
    let e = env();
    let registered = json!({"providerId": "prv_9", "email": "p@example.com", "businessName": "Studio", "country": "US"}).to_string();
    let publish = |who: Value, source: &str, dt: &str, detail: String| {
        call(
            "publishEvent",
            json!({"source": source, "detailType": dt, "detail": detail}),
            who,
        )
    };
    let ok =
        e.o.handle(
            publish(
                Value::Null,
                "marketplace.provider",
                "Provider Registered",
                registered.clone(),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(ok["success"], json!(true), "{ok}");
    let published = e.m.bus.published();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].detail()["correlationId"],
        "hdr-corr",
        "the request's correlation id is propagated"
    );
    assert_eq!(
        published[0].entry.event_bus_name.as_deref(),
        Some("ecosystem-marketplace-events")
    );
    let pay = json!({"paymentIntentId": "pi_1", "amount": 10, "platformFee": 1, "providerEarnings": 9, "currency": "USD", "bookingId": "bk_1"}).to_string();
    let r =
        e.o.handle(
            publish(
                Value::Null,
                "marketplace.payment",
                "Payment Succeeded",
                pay.clone(),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["errorType"], "UnauthorizedException");
    let r =
        e.o.handle(
            publish(
                user("prv_8"),
                "marketplace.provider",
                "Provider Registered",
                registered.clone(),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        r["errorType"], "UnauthorizedException",
        "a user publishes only about themselves"
    );
    let r =
        e.o.handle(
            publish(admin(), "marketplace.payment", "Payment Succeeded", pay),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["success"], json!(true));
    let bad = json!({"paymentIntentId": "pi_1", "amount": 10, "platformFee": 2, "providerEarnings": 9, "currency": "USD", "bookingId": "bk_1"}).to_string();
    let r =
        e.o.handle(
            publish(admin(), "marketplace.payment", "Payment Succeeded", bad),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["errorType"], "ValidationException");
    assert_eq!(
        r["error"],
        "detail.providerEarnings: must equal amount - platformFee (8.00)"
    );
    let r =
        e.o.handle(
            publish(
                admin(),
                "marketplace.payment",
                "Payment Exploded",
                "{}".into(),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        r["error"],
        "detail-type \"Payment Exploded\" is not defined for source marketplace.payment"
    );
    e.m.bus.fail_next_entries(1, "ThrottlingException");
    let r =
        e.o.handle(
            publish(
                Value::Null,
                "marketplace.provider",
                "Provider Registered",
                registered,
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["errorType"], "ThrottlingException");
}

async fn escalated_dispute(e: &Env, admin_token: Option<&str>, provider_token: Option<&str>) {
    put_dispute(e, admin_token, provider_token, |_| {}).await
}

/// The dispute `dsp_1` (OPEN, escalation level MANUAL_REVIEW, deadlines from t0) with its
/// tokens registered in a running execution, changed by `edit` before it is stored.
async fn put_dispute(
    e: &Env,
    admin_token: Option<&str>,
    provider_token: Option<&str>,
    edit: impl FnOnce(&mut DisputeRecord),
) {
    let svc = fixtures::service("svc_1", "prv_1");
    let mut b = fixtures::booking_record(
        "bk_1",
        &svc,
        "cus_1",
        fixtures::t0() + chrono::Duration::days(1),
    );
    let corr = CorrelationId::new("corr-d").unwrap();
    b.booking
        .confirm(
            "pi_1".parse().unwrap(),
            "ABCD2345",
            fixtures::t0(),
            corr.clone(),
        )
        .unwrap();
    let (d, _) = Dispute::open(
        "dsp_1".parse().unwrap(),
        &b.booking,
        DisputeType::RefundRequest,
        "no show",
        fixtures::t0(),
        corr,
    )
    .unwrap();
    let exec =
        e.m.workflows
            .start_execution(WorkflowType::DisputeResolution, "dispute-dsp_1", "{}")
            .await
            .unwrap();
    for t in [admin_token, provider_token].into_iter().flatten() {
        e.m.workflows.register_task(t, &exec.execution_arn);
    }
    let mut record = DisputeRecord {
        dispute: d,
        booking_id: "bk_1".into(),
        dispute_type: DisputeType::RefundRequest,
        customer_id: "cus_1".into(),
        provider_id: "prv_1".into(),
        payment_intent_id: Some("pi_1".into()),
        amount_paid: b.booking.price(),
        refundable_amount: b.booking.price(),
        requested_refund_amount: None,
        description: "no show".into(),
        review_deadline: fixtures::t0() + chrono::Duration::hours(24),
        resolution_deadline: fixtures::t0() + chrono::Duration::days(7),
        provider_task_token: provider_token.map(str::to_owned),
        admin_task_token: admin_token.map(str::to_owned),
        escalation_level: Some("MANUAL_REVIEW".into()),
        provider_response: None,
        admin_decision: None,
        open: true,
        correlation_id: "corr-d".into(),
    };
    edit(&mut record);
    e.m.store.create_dispute(&record).await.unwrap();
}

#[tokio::test]
async fn admin_resolves_and_provider_responds() {
    let e = env();
    escalated_dispute(&e, Some("adm-tok"), Some("prv-tok")).await;
    let resolve = |who: Value, resolution: &str, amount: Value| {
        call(
            "resolveDispute",
            json!({"disputeId": "dsp_1", "resolution": resolution, "refundAmount": amount, "notes": "checked"}),
            who,
        )
    };
    let r =
        e.o.handle(resolve(user("cus_1"), "REFUNDED", json!(120)), None)
            .await
            .unwrap();
    assert_eq!(r["errorType"], "UnauthorizedException");
    let r =
        e.o.handle(resolve(admin(), "PARTIALLY_REFUNDED", json!(120)), None)
            .await
            .unwrap();
    assert_eq!(r["error"], "refundAmount: must be > 0 and < the refundable amount (120.00 USD) when resolution is PARTIALLY_REFUNDED");
    let r =
        e.o.handle(resolve(admin(), "REJECTED", json!(1)), None)
            .await
            .unwrap();
    assert_eq!(r["errorType"], "ValidationException");
    let r =
        e.o.handle(resolve(admin(), "PARTIALLY_REFUNDED", json!(60.5)), None)
            .await
            .unwrap();
    assert_eq!(
        r,
        json!({"success": true, "disputeId": "dsp_1", "resolution": "PARTIALLY_REFUNDED", "refundAmount": 60.5, "currency": "USD", "eventId": null})
    );
    match e.m.workflows.task_outcome("adm-tok") {
        Some(TaskOutcome::Success(v)) => {
            assert_eq!(v["resolution"], "PARTIALLY_REFUNDED");
            assert_eq!(v["refundAmount"], json!(60.5));
            assert_eq!(v["adminId"], "root");
        }
        other => panic!("{other:?}"),
    }
    let r =
        e.o.handle(resolve(admin(), "PARTIALLY_REFUNDED", json!(60.5)), None)
            .await
            .unwrap();
    assert_eq!(
        r["errorType"], "Marketplace.InvalidTransition",
        "the decision is taken once"
    );
    // the provider answers
    let respond = |who: Value, resp: &str| {
        call(
            "respondToDispute",
            json!({"disputeId": "dsp_1", "response": resp, "offerAmount": 30, "message": "sorry"}),
            who,
        )
    };
    let r =
        e.o.handle(respond(user("prv_2"), "PARTIAL_OFFER"), None)
            .await
            .unwrap();
    assert_eq!(r["errorType"], "UnauthorizedException");
    let r =
        e.o.handle(respond(user("prv_1"), "MAYBE"), None)
            .await
            .unwrap();
    assert_eq!(r["errorType"], "ValidationException");
    let r =
        e.o.handle(respond(user("prv_1"), "PARTIAL_OFFER"), None)
            .await
            .unwrap();
    assert_eq!(r["success"], json!(true), "{r}");
    assert_eq!(
        e.m.workflows.task_outcome("prv-tok"),
        Some(TaskOutcome::Success(
            json!({"response": "PARTIAL_OFFER", "offerAmount": 30, "message": "sorry"})
        ))
    );
    let r =
        e.o.handle(
            call(
                "resolveDispute",
                json!({"disputeId": "dsp_x", "resolution": "REJECTED", "refundAmount": 0}),
                admin(),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["errorType"], "ResourceNotFoundException");
}

#[tokio::test]
async fn task_mutations_are_admin_only() {
    let e = env();
    let exec =
        e.m.workflows
            .start_execution(WorkflowType::PaymentProcessing, "p", "{}")
            .await
            .unwrap();
    e.m.workflows.register_task("t1", &exec.execution_arn);
    let r =
        e.o.handle(
            call(
                "sendTaskSuccess",
                json!({"taskToken": "t1", "output": "{\"ok\":true}"}),
                Value::Null,
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["errorType"], "UnauthorizedException");
    let r =
        e.o.handle(
            call("sendTaskHeartbeat", json!({"taskToken": "t1"}), admin()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["success"], json!(true));
    let r =
        e.o.handle(
            call(
                "sendTaskSuccess",
                json!({"taskToken": "t1", "output": "{\"ok\":true}"}),
                admin(),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["success"], json!(true));
    assert_eq!(
        e.m.workflows.task_outcome("t1"),
        Some(TaskOutcome::Success(json!({"ok": true})))
    );
    let r =
        e.o.handle(
            call(
                "sendTaskFailure",
                json!({"taskToken": "t1", "error": "E"}),
                admin(),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["errorType"], "TaskTimedOut");
    let r =
        e.o.handle(
            call("sendTaskFailure", json!({"taskToken": "nope"}), admin()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r["errorType"], "TaskDoesNotExist");
    let r =
        e.o.handle(call("explode", json!({}), admin()), None)
            .await
            .unwrap();
    assert_eq!(r["errorType"], "ValidationException");
}

#[tokio::test]
async fn circuit_breaker_opens_on_step_functions_outage() {
    let e = env();
    e.m.workflows.set_unavailable(true);
    for _ in 0..5 {
        let r = start(&e, Value::Null, "BOOKING_LIFECYCLE", booking_input("cus_1")).await;
        assert_eq!(r["errorType"], "ServiceUnavailable");
    }
    assert_eq!(
        e.o.breaker().state(),
        marketplace_ports::breaker::BreakerState::Open
    );
    e.m.workflows.set_unavailable(false);
    let r = start(&e, Value::Null, "BOOKING_LIFECYCLE", booking_input("cus_1")).await;
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("circuit stepfunctions is open"),
        "{r}"
    );
    e.m.clock.advance(chrono::Duration::seconds(30));
    let r = start(&e, Value::Null, "BOOKING_LIFECYCLE", booking_input("cus_1")).await;
    assert_eq!(
        r["success"],
        json!(true),
        "the trial call after 30 s closes the breaker"
    );
    let lines = e.sink.lines();
    assert!(lines
        .iter()
        .any(|l| l.contains("circuit stepfunctions CLOSED -> OPEN")));
    assert!(lines
        .iter()
        .any(|l| l.contains("circuit stepfunctions HALF_OPEN -> CLOSED")));
    assert!(lines.iter().any(|l| l.contains("\"CircuitBreakerOpen\"")));
    let gauges: Vec<f64> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("CircuitBreakerState").and_then(Value::as_f64))
        .collect();
    assert!(
        gauges.contains(&2.0) && gauges.last() == Some(&0.0),
        "{gauges:?}"
    );
}

fn target(rule: &str, id: &str, source: &str, dt: &str, detail: Value) -> Value {
    json!({"action": "handleEvent", "rule": rule, "eventId": id, "source": source, "detailType": dt,
           "time": "2026-03-01T09:00:00Z", "account": "123456789012", "region": "us-east-1", "detail": detail})
}

#[tokio::test]
async fn provider_registered_starts_onboarding_once() {
    let e = env();
    let ev = target(
        "workflow-auto-trigger",
        "e1",
        "marketplace.provider",
        "Provider Registered",
        json!({"providerId": "prv_1", "email": "p@example.com", "businessName": "S", "country": "US", "timestamp": "2026-03-01T09:00:00Z", "correlationId": "corr-p"}),
    );
    let r = e.o.handle(ev.clone(), None).await.unwrap();
    assert_eq!(r["deduplicated"], json!(false));
    let r = e.o.handle(ev, None).await.unwrap();
    assert_eq!(
        r["handled"],
        json!(true),
        "a redelivery is answered without a second execution"
    );
    let list =
        e.m.workflows
            .list_executions(&Default::default())
            .await
            .unwrap();
    assert_eq!(list.executions.len(), 1);
    assert_eq!(list.executions[0].name, "onboarding-prv_1");
    let d =
        e.m.workflows
            .describe_execution(&list.executions[0].execution_arn)
            .await
            .unwrap();
    let input: Value = serde_json::from_str(d.input.as_deref().unwrap()).unwrap();
    assert_eq!(input["correlationId"], "corr-p");
    e.m.workflows.set_unavailable(true);
    let ev2 = target(
        "workflow-auto-trigger",
        "e2",
        "marketplace.provider",
        "Provider Registered",
        json!({"providerId": "prv_2", "email": "q@example.com", "businessName": "S", "country": "US", "timestamp": "2026-03-01T09:00:00Z", "correlationId": "corr-q"}),
    );
    let err = e.o.handle(ev2, None).await.unwrap_err();
    assert_eq!(
        err.error_type,
        ErrorType::TransientError,
        "EventBridge retries it"
    );
}

#[tokio::test]
async fn status_changes_become_workflow_events_once() {
    let e = env();
    let arn = "arn:aws:states:us-east-1:123456789012:execution:ecosystem-dispute-resolution:dispute-dsp_1";
    let ev = target(
        "workflow-execution-status",
        "s1",
        "aws.states",
        "Step Functions Execution Status Change",
        json!({
            "executionArn": arn, "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:ecosystem-dispute-resolution",
            "name": "dispute-dsp_1", "status": "FAILED", "startDate": 1_772_355_600_000i64, "stopDate": 1_772_960_400_000i64,
            "input": "{\"correlationId\":\"corr-d\"}", "output": null, "error": "Marketplace.DisputeEscalated", "cause": "deadline"
        }),
    );
    e.o.handle(ev.clone(), None).await.unwrap();
    e.o.handle(ev, None).await.unwrap();
    let events = e.m.bus.of_type("Workflow Failed");
    assert_eq!(
        events.len(),
        1,
        "a redelivered status change publishes nothing twice"
    );
    let d = events[0].detail();
    assert_eq!(d["workflowType"], "DISPUTE_RESOLUTION");
    assert_eq!(d["correlationId"], "corr-d");
    assert_eq!(d["error"], "Marketplace.DisputeEscalated");
    assert_eq!(d["startDate"], "2026-03-01T09:00:00Z");
    assert_eq!(d["stopDate"], "2026-03-08T09:00:00Z");
    let other = target(
        "workflow-execution-status",
        "s2",
        "aws.states",
        "Step Functions Execution Status Change",
        json!({
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:someone-else:x", "status": "RUNNING", "startDate": 1
        }),
    );
    assert_eq!(
        e.o.handle(other, None).await.unwrap()["handled"],
        json!(false)
    );
}

fn payment(id: &str, booking: &str, token: Option<&str>) -> PaymentRecord {
    let usd =
        |c| marketplace_domain::Money::from_minor(c, marketplace_domain::Currency::Usd).unwrap();
    PaymentRecord {
        customer_id: Some("cus_1".into()),
        provider_id: Some("prv_1".into()),
        stripe_account_id: Some("acct_1".into()),
        platform_fee: Some(usd(1_800)),
        provider_earnings: Some(usd(10_200)),
        task_token: token.map(str::to_owned),
        correlation_id: "corr-b".into(),
        ..fixtures::payment_record(id, booking)
    }
}

fn succeeded(pi: &str, booking: &str, id: &str) -> Value {
    target(
        "payment-events-to-booking-workflow",
        id,
        "marketplace.payment",
        "Payment Succeeded",
        json!({
        "paymentIntentId": pi, "amount": 120, "platformFee": 18, "providerEarnings": 102, "currency": "USD", "bookingId": booking,
        "timestamp": "2026-03-01T09:05:00Z", "correlationId": "corr-b"}),
    )
}

#[tokio::test]
async fn payment_events_complete_the_waiting_booking_or_refund_a_late_payment() {
    let e = env();
    let svc = fixtures::service("svc_1", "prv_1");
    // waiting booking: the token is completed once
    e.m.store
        .reserve_booking(&fixtures::booking_record(
            "bk_1",
            &svc,
            "cus_1",
            fixtures::t0() + chrono::Duration::days(1),
        ))
        .await
        .unwrap();
    let exec =
        e.m.workflows
            .start_execution(WorkflowType::BookingLifecycle, "booking-bk_1", "{}")
            .await
            .unwrap();
    e.m.workflows.register_task("tok-1", &exec.execution_arn);
    e.m.store
        .put_payment(&payment("pi_1", "bk_1", Some("tok-1")), None)
        .await
        .unwrap();
    let r =
        e.o.handle(succeeded("pi_1", "bk_1", "p1"), None)
            .await
            .unwrap();
    assert_eq!(r["delivered"], json!(true));
    assert!(matches!(
        e.m.workflows.task_outcome("tok-1"),
        Some(TaskOutcome::Success(_))
    ));
    e.o.handle(succeeded("pi_1", "bk_1", "p1"), None)
        .await
        .unwrap();
    // expired booking: a REFUND payment workflow, started once
    let mut late = fixtures::booking_record(
        "bk_2",
        &svc,
        "cus_1",
        fixtures::t0() + chrono::Duration::days(2),
    );
    late.booking
        .expire(
            marketplace_domain::events::ExpiryReason::PaymentNotReceived,
            fixtures::t0(),
            CorrelationId::new("corr-b").unwrap(),
        )
        .unwrap();
    e.m.store.reserve_booking(&late).await.unwrap();
    e.m.store
        .put_payment(&payment("pi_2", "bk_2", None), None)
        .await
        .unwrap();
    let r =
        e.o.handle(succeeded("pi_2", "bk_2", "p2"), None)
            .await
            .unwrap();
    assert_eq!(r["bookingStatus"], "EXPIRED");
    let r2 =
        e.o.handle(succeeded("pi_2", "bk_2", "p2"), None)
            .await
            .unwrap();
    assert_eq!(r2["refundExecutionArn"], r["refundExecutionArn"]);
    let refunds: Vec<_> =
        e.m.workflows
            .list_executions(&ListExecutionsRequest {
                workflow_type: Some(WorkflowType::PaymentProcessing),
                ..Default::default()
            })
            .await
            .unwrap()
            .executions;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].name, "refund-late-pi_2");
    let d =
        e.m.workflows
            .describe_execution(&refunds[0].execution_arn)
            .await
            .unwrap();
    let input: Value = serde_json::from_str(d.input.as_deref().unwrap()).unwrap();
    assert_eq!(input["paymentType"], "REFUND");
    assert_eq!(input["amount"], json!(120));
    assert_eq!(input["reason"], "BOOKING_CANCELLED");
    // a declined payment fails the waiting token with PaymentDeclined
    e.m.store
        .reserve_booking(&fixtures::booking_record(
            "bk_3",
            &svc,
            "cus_1",
            fixtures::t0() + chrono::Duration::days(3),
        ))
        .await
        .unwrap();
    e.m.workflows.register_task("tok-3", &exec.execution_arn);
    e.m.store
        .put_payment(&payment("pi_3", "bk_3", Some("tok-3")), None)
        .await
        .unwrap();
    let failed = target(
        "payment-events-to-booking-workflow",
        "p3",
        "marketplace.payment",
        "Payment Failed",
        json!({
        "paymentIntentId": "pi_3", "bookingId": "bk_3", "amount": 120, "currency": "USD", "failureCode": "card_declined",
        "failureMessage": "Your card was declined.", "timestamp": "2026-03-01T09:05:00Z", "correlationId": "corr-b"}),
    );
    e.o.handle(failed, None).await.unwrap();
    match e.m.workflows.task_outcome("tok-3") {
        Some(TaskOutcome::Failure { error, .. }) => {
            assert_eq!(error, "Marketplace.PaymentDeclined")
        }
        other => panic!("{other:?}"),
    }
}

/// A change to the stored dispute fixture.
type Edit = fn(&mut DisputeRecord);

fn escalate(r: &mut DisputeRecord) {
    r.dispute
        .escalate(
            EscalationReason::NoAgreement,
            Some("no agreement"),
            fixtures::t0(),
            CorrelationId::new("corr-d").unwrap(),
        )
        .unwrap();
}

fn resolve_call(resolution: &str, amount: Value) -> Value {
    call(
        "resolveDispute",
        json!({"disputeId": "dsp_1", "resolution": resolution, "refundAmount": amount, "notes": "checked"}),
        admin(),
    )
}

fn respond_call(provider: &str, response: &str) -> Value {
    call(
        "respondToDispute",
        json!({"disputeId": "dsp_1", "response": response, "offerAmount": 30, "message": "sorry"}),
        user(provider),
    )
}

async fn stored(e: &Env) -> DisputeRecord {
    e.m.store.get_dispute("dsp_1").await.unwrap().unwrap().value
}

#[tokio::test]
async fn a_decision_taken_before_the_wait_is_armed_is_recorded_and_taken_once() {
    let e = env();
    put_dispute(&e, None, None, escalate).await;
    let r =
        e.o.handle(resolve_call("PARTIALLY_REFUNDED", json!(60.5)), None)
            .await
            .unwrap();
    assert_eq!(
        r,
        json!({"success": true, "disputeId": "dsp_1", "resolution": "PARTIALLY_REFUNDED", "refundAmount": 60.5, "currency": "USD", "eventId": null})
    );
    let d = stored(&e).await;
    assert_eq!(d.admin_task_token, None);
    let pending = d.admin_decision.clone().expect("recorded");
    assert!(!pending.delivered, "waits for AwaitAdminDecision");
    assert_eq!(pending.answered_by, "root");
    assert_eq!(pending.answered_at, fixtures::t0());
    assert_eq!(
        serde_json::from_str::<Value>(&pending.output).unwrap(),
        json!({"resolution": "PARTIALLY_REFUNDED", "refundAmount": 60.5, "adminId": "root", "notes": "checked"})
    );
    // a second decision while the first is pending is refused and changes nothing
    let r =
        e.o.handle(resolve_call("REJECTED", json!(0)), None)
            .await
            .unwrap();
    assert_eq!(r["success"], json!(false));
    assert_eq!(r["errorType"], "Marketplace.InvalidTransition");
    assert_eq!(
        r["error"],
        format!(
            "dispute dsp_1: an administrator's decision is already recorded and is applied when the workflow reaches its wait (by root at {}); a second one is refused",
            fixtures::t0().to_rfc3339()
        )
    );
    assert_eq!(stored(&e).await.admin_decision, Some(pending));
}

#[tokio::test]
async fn a_decision_taken_while_the_workflow_waits_completes_the_token_once() {
    let e = env();
    put_dispute(&e, Some("adm-tok"), None, escalate).await;
    let r =
        e.o.handle(resolve_call("REJECTED", json!(0)), None)
            .await
            .unwrap();
    assert_eq!(r["success"], json!(true), "{r}");
    assert_eq!(
        e.m.workflows.task_outcome("adm-tok"),
        Some(TaskOutcome::Success(
            json!({"resolution": "REJECTED", "refundAmount": 0, "adminId": "root", "notes": "checked"})
        ))
    );
    let d = stored(&e).await;
    assert_eq!(d.admin_task_token, None);
    assert!(d.admin_decision.as_ref().expect("recorded").delivered);
    // the workflow has not resolved the dispute yet: a second decision is still refused
    let r =
        e.o.handle(resolve_call("REFUNDED", json!(120)), None)
            .await
            .unwrap();
    assert_eq!(r["errorType"], "Marketplace.InvalidTransition");
    assert!(
        r["error"].as_str().unwrap().starts_with(
            "dispute dsp_1: an administrator's decision was already given (by root at "
        ),
        "{r}"
    );
}

#[tokio::test]
async fn decisions_the_workflow_will_not_wait_for_are_refused() {
    let deadline = fixtures::t0() + chrono::Duration::days(7);
    let cases: Vec<(Option<&str>, Edit, i64, String)> = vec![
        (
            None,
            |_| {},
            0,
            "dispute dsp_1 is not waiting for an administrator's decision: it is OPEN, not escalated".into(),
        ),
        (
            None,
            |r| {
                escalate(r);
                r.escalation_level = Some("FINAL".into());
            },
            0,
            "dispute dsp_1 is not waiting for an administrator's decision: it is escalated at the FINAL level".into(),
        ),
        (
            None,
            escalate,
            7 * 86_400 - 60,
            format!(
                "dispute dsp_1 is not waiting for an administrator's decision: its resolution deadline {} is reached",
                deadline.to_rfc3339()
            ),
        ),
        (
            Some("adm-tok"),
            |r| {
                escalate(r);
                let zero = Money::zero(r.amount_paid.currency());
                r.dispute
                    .resolve(
                        DisputeResolution::Rejected,
                        zero,
                        Some("ADMIN:root"),
                        None,
                        fixtures::t0(),
                        CorrelationId::new("corr-d").unwrap(),
                    )
                    .unwrap();
                r.open = false;
            },
            0,
            "dispute dsp_1 is already resolved".into(),
        ),
    ];
    for (token, edit, later, message) in cases {
        let e = env();
        put_dispute(&e, token, None, edit).await;
        e.m.clock.advance(chrono::Duration::seconds(later));
        let r =
            e.o.handle(resolve_call("REJECTED", json!(0)), None)
                .await
                .unwrap();
        assert_eq!(
            (r["errorType"].clone(), r["error"].clone()),
            (json!("Marketplace.InvalidTransition"), json!(message))
        );
        let d = stored(&e).await;
        assert_eq!(d.admin_decision, None, "{message}");
        if let Some(t) = token {
            assert_eq!(e.m.workflows.task_outcome(t), None, "{message}");
        }
    }
}

#[tokio::test]
async fn a_provider_response_before_the_wait_is_armed_is_recorded_and_taken_once() {
    let e = env();
    put_dispute(&e, None, None, |_| {}).await;
    let r =
        e.o.handle(respond_call("prv_2", "ACCEPT"), None)
            .await
            .unwrap();
    assert_eq!(r["errorType"], "UnauthorizedException");
    assert_eq!(stored(&e).await.provider_response, None);
    let r =
        e.o.handle(respond_call("prv_1", "PARTIAL_OFFER"), None)
            .await
            .unwrap();
    assert_eq!(r, json!({"success": true, "disputeId": "dsp_1"}));
    let pending = stored(&e).await.provider_response.expect("recorded");
    assert!(!pending.delivered);
    assert_eq!(pending.answered_by, "prv_1");
    assert_eq!(
        serde_json::from_str::<Value>(&pending.output).unwrap(),
        json!({"response": "PARTIAL_OFFER", "offerAmount": 30, "message": "sorry"})
    );
    let r =
        e.o.handle(respond_call("prv_1", "ACCEPT"), None)
            .await
            .unwrap();
    assert_eq!(r["errorType"], "Marketplace.InvalidTransition");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("dispute dsp_1: the provider's response is already recorded"),
        "{r}"
    );
    assert_eq!(stored(&e).await.provider_response, Some(pending));
}

#[tokio::test]
async fn provider_responses_the_workflow_will_not_wait_for_are_refused() {
    let review_end = fixtures::t0() + chrono::Duration::hours(24);
    let cases: Vec<(Edit, i64, String)> = vec![
        (
            |_| {},
            86_400,
            format!(
                "dispute dsp_1 is not waiting for the provider's response: the review period ended at {}",
                review_end.to_rfc3339()
            ),
        ),
        (
            escalate,
            0,
            "dispute dsp_1 is not waiting for the provider's response: it is ESCALATED".into(),
        ),
    ];
    for (edit, later, message) in cases {
        let e = env();
        put_dispute(&e, None, None, edit).await;
        e.m.clock.advance(chrono::Duration::seconds(later));
        let r =
            e.o.handle(respond_call("prv_1", "ACCEPT"), None)
                .await
                .unwrap();
        assert_eq!(
            (r["errorType"].clone(), r["error"].clone()),
            (json!("Marketplace.InvalidTransition"), json!(message))
        );
        assert_eq!(stored(&e).await.provider_response, None);
    }
}
