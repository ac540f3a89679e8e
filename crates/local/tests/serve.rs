//! End-to-end: `marketplace serve` driven over HTTP (GraphQL, admin API) and the CLI.

mod common;

use common::{mint, Server, TempDir, BIN};
use serde_json::{json, Value};
use std::process::Command;

fn booking_input(customer: &str, start: &str) -> String {
    json!({"serviceId": "svc_1", "customerId": customer, "providerId": "prv_1",
           "startDateTime": start, "endDateTime": start.replace("T10:", "T11:"),
           "amount": 120, "currency": "USD"})
    .to_string()
}

fn booking_updated(n: usize) -> String {
    json!({"bookingId": format!("bk_{n}"), "startDateTime": "2027-03-11T09:00:00Z",
           "endDateTime": "2027-03-11T10:00:00Z", "previousStartDateTime": "2027-03-10T09:00:00Z",
           "previousEndDateTime": "2027-03-10T10:00:00Z", "notes": "moved",
           "timestamp": "2027-03-02T11:00:00Z", "correlationId": format!("corr-{n}")})
    .to_string()
}

const START: &str = "mutation($t: WorkflowType!, $i: AWSJSON!, $n: String) {
  startWorkflow(workflowType: $t, input: $i, executionName: $n) { success executionArn executionName status correlationId errorType error } }";

#[test]
fn health_metrics_explorer_and_auth() {
    let dir = TempDir::new("auth");
    let s = Server::start(dir.path(), &[]);
    let r = s.anon().get("/health").expect("health");
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("ok")));
    let page = s.anon().get("/").expect("explorer");
    assert!(page.body.contains("/explorer.js"), "{}", page.body);
    let m = s.anon().get("/metrics").expect("metrics");
    assert!(
        m.body
            .contains("# TYPE marketplace_events_published_total counter"),
        "{}",
        m.body
    );

    let q = "{ listWorkflowExecutions { success } }";
    let r = s.anon().graphql(q, json!({})).expect("no key");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errors"][0]["errorType"], "UnauthorizedException");
    let r = s
        .anon()
        .with_header("x-api-key", "wrong")
        .graphql(q, json!({}))
        .expect("bad key");
    assert_eq!(r.status, 401);
    let r = s
        .with_token("not.a.token")
        .graphql(q, json!({}))
        .expect("bad token");
    assert_eq!(r.status, 401);
    assert_eq!(s.client().graphql(q, json!({})).expect("ok").status, 200);
    assert_eq!(s.anon().get("/admin/stats").expect("admin").status, 401);

    // Tokens minted offline from the data directory's signing key; the resolver is the
    // workflow-orchestrator's own code, which applies the ownership rules.
    let user = mint(dir.path(), "cus_1", "");
    let admin = mint(dir.path(), "admin-1", "admin");
    let started = s
        .with_token(&user)
        .graphql(
            START,
            json!({"t": "BOOKING_LIFECYCLE", "i": booking_input("cus_1", "2027-01-10T10:00:00Z")}),
        )
        .expect("start")
        .json();
    let arn = started["data"]["startWorkflow"]["executionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        arn.starts_with(
            "arn:aws:states:us-east-1:000000000000:execution:ecosystem-booking-lifecycle:"
        ),
        "{started}"
    );
    let stop =
        "mutation($a: String!) { stopWorkflow(executionArn: $a) { success status errorType } }";
    let r = s
        .with_token(&user)
        .graphql(stop, json!({"a": arn}))
        .expect("user stop")
        .json();
    assert_eq!(r["errors"][0]["errorType"], "Unauthorized", "{r}");
    assert_eq!(
        r["errors"][0]["message"],
        "Not Authorized to access stopWorkflow on type Mutation"
    );
    // Another customer does not see the execution; its owner and admins do.
    let status =
        "query($a: String!) { getWorkflowStatus(executionArn: $a) { success errorType status } }";
    let other = mint(dir.path(), "cus_2", "");
    let r = s
        .with_token(&other)
        .graphql(status, json!({"a": arn}))
        .expect("other")
        .json();
    assert_eq!(
        r["data"]["getWorkflowStatus"]["errorType"], "UnauthorizedException",
        "{r}"
    );
    let r = s
        .with_token(&user)
        .graphql(status, json!({"a": arn}))
        .expect("owner")
        .json();
    assert_eq!(r["data"]["getWorkflowStatus"]["success"], true, "{r}");
    let r = s
        .with_token(&admin)
        .graphql(stop, json!({"a": arn}))
        .expect("admin stop")
        .json();
    assert!(r.get("errors").is_none(), "{r}");
    assert!(r["data"]["stopWorkflow"].is_object(), "{r}");
    assert_ne!(
        r["data"]["stopWorkflow"]["errorType"], "UnauthorizedException",
        "{r}"
    );
}

#[test]
fn graphql_bad_input_is_refused_with_clear_errors() {
    let dir = TempDir::new("badinput");
    let s = Server::start(dir.path(), &[]);
    let c = s.client();
    let r = c
        .request("POST", "/graphql", Some("{not json"), &[])
        .expect("malformed body");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["errors"][0]["errorType"],
        "MalformedHttpRequestException"
    );
    let e = |q: &str, v: Value| c.graphql(q, v).expect("gql").json()["errors"][0].clone();
    assert_eq!(
        e("{ listWorkflowExecutions(", json!({}))["errorType"],
        "MalformedHttpRequestException"
    );
    assert!(e("{ bogus { x } }", json!({}))["message"]
        .as_str()
        .unwrap_or("")
        .contains("FieldUndefined"));
    assert!(e(
        "{ listWorkflowExecutions(limit: \"ten\") { success } }",
        json!({})
    )["message"]
        .as_str()
        .unwrap_or("")
        .contains("WrongType"));
    assert!(e(START, json!({"t": "NOPE", "i": "{}"}))["message"]
        .as_str()
        .unwrap_or("")
        .contains("Variable 't' has an invalid value"));
    let publish = "mutation($s: String!, $d: String!, $j: AWSJSON!) { publishEvent(source: $s, detailType: $d, detail: $j) { success eventId error errorType } }";
    let admin = s.with_token(&mint(dir.path(), "admin-1", "admin"));
    let r = admin
        .graphql(
            publish,
            json!({"s": "marketplace.booking", "d": "Booking Teleported", "j": "{}"}),
        )
        .expect("p")
        .json();
    let p = &r["data"]["publishEvent"];
    assert_eq!(p["success"], false);
    assert!(
        p["error"].as_str().unwrap_or("").contains("detail-type"),
        "{r}"
    );
    // Only administrators publish arbitrary events.
    let r = c
        .graphql(
            publish,
            json!({"s": "marketplace.booking", "d": "Booking Teleported", "j": "{}"}),
        )
        .expect("p")
        .json();
    assert_eq!(
        r["data"]["publishEvent"]["errorType"], "UnauthorizedException",
        "{r}"
    );
    let big = booking_updated(3).replace("\"moved\"", &format!("\"{}\"", "x".repeat(300 * 1024)));
    let r = admin
        .graphql(
            publish,
            json!({"s": "marketplace.booking", "d": "Booking Updated", "j": big}),
        )
        .expect("big")
        .json();
    assert_eq!(r["data"]["publishEvent"]["success"], false, "{r}");
    // PutEvents itself (the CLI's path) refuses more than 256 KiB per request.
    let r = s
        .admin()
        .post(
            "/admin/publish",
            &json!({"Entries": [{"Source": "test.app", "DetailType": "Big", "Detail": big}]}),
        )
        .expect("put big");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("over the limit"),
        "{}",
        r.body
    );
    let r = c
        .graphql(
            publish,
            json!({"s": "marketplace.booking", "d": "Booking Updated", "j": booking_updated(1)}),
        )
        .expect("ok")
        .json();
    assert_eq!(r["data"]["publishEvent"]["success"], true, "{r}");
    let bad = booking_updated(2).replace("\"bk_2\"", "5");
    let r = c
        .graphql(
            publish,
            json!({"s": "marketplace.booking", "d": "Booking Updated", "j": bad}),
        )
        .expect("bad")
        .json();
    assert_eq!(r["data"]["publishEvent"]["success"], false, "{r}");
    assert!(
        r["data"]["publishEvent"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("bookingId"),
        "{r}"
    );
    // A start with an input that is not an object, and a duplicate name with other input.
    let r = c
        .graphql(START, json!({"t": "BOOKING_LIFECYCLE", "i": "[1]"}))
        .expect("s")
        .json();
    assert_eq!(
        r["data"]["startWorkflow"]["errorType"], "ValidationException",
        "{r}"
    );
    let first = c
        .graphql(START, json!({"t": "BOOKING_LIFECYCLE", "i": booking_input("cus_1", "2027-01-10T10:00:00Z"), "n": "dup"}))
        .expect("s")
        .json();
    assert_eq!(first["data"]["startWorkflow"]["success"], true, "{first}");
    let r = c
        .graphql(START, json!({"t": "BOOKING_LIFECYCLE", "i": booking_input("cus_1", "2027-01-11T10:00:00Z"), "n": "dup"}))
        .expect("s")
        .json();
    assert_eq!(
        r["data"]["startWorkflow"]["errorType"], "ExecutionAlreadyExists",
        "{r}"
    );
    let hist = "query($a: String!) { getExecutionHistory(executionArn: $a, limit: 2) { success events { id type } nextToken } }";
    let arn = first["data"]["startWorkflow"]["executionArn"].clone();
    let h = s.wait_for(10, || {
        let h = c.graphql(hist, json!({"a": arn})).expect("h").json();
        (h["data"]["getExecutionHistory"]["events"]
            .as_array()
            .map_or(0, Vec::len)
            == 2)
            .then_some(h)
    });
    assert_eq!(
        h["data"]["getExecutionHistory"]["events"][0]["type"],
        "ExecutionStarted"
    );
    assert_eq!(h["data"]["getExecutionHistory"]["nextToken"], "2");
}

#[test]
fn cli_client_commands_and_restart_on_the_same_data_dir() {
    let dir = TempDir::new("cli");
    let s = Server::start(dir.path(), &[]);
    let o = s.cli(&[
        "publish",
        "--source",
        "test.cli",
        "--detail-type",
        "Hello",
        "--detail",
        "{\"n\":1}",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["FailedEntryCount"], 0);
    let o = s.cli(&[
        "publish",
        "--source",
        "test.cli",
        "--detail-type",
        "Bad",
        "--detail",
        "[1]",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["Entries"][0]["ErrorCode"], "MalformedDetail");
    let o = s.cli(&[
        "workflows",
        "start",
        "--type",
        "PAYMENT_PROCESSING",
        "--name",
        "p-1",
        "--input",
        "{\"paymentType\":\"PAYOUT\"}",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    let arn = v["executionArn"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        arn,
        "arn:aws:states:us-east-1:000000000000:execution:ecosystem-payment-processing:p-1"
    );
    let o = s.cli(&[
        "workflows",
        "start",
        "--type",
        "PAYMENT_PROCESSING",
        "--name",
        "p-1",
        "--input",
        "{\"other\":1}",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("ExecutionAlreadyExists"));
    let o = s.cli(&["workflows", "status", &arn]);
    assert!(o.status.success());
    let o = s.cli(&["workflows", "history", &arn]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["events"][0]["type"], "ExecutionStarted");
    let o = s.cli(&["workflows", "list", "--type", "PAYMENT_PROCESSING"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["executions"].as_array().map_or(0, Vec::len), 1);
    let o = s.cli(&["clock", "advance", "24h"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = s.cli(&["clock", "advance", "3 weeks"]);
    assert!(!o.status.success());
    let o = s.cli(&["events", "replay"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v["eventsReplayed"].as_u64().unwrap_or(0) >= 1, "{v}");
    let o = s.cli(&[
        "events",
        "replay",
        "--pattern",
        "{\"source\":[{\"bogus\":1}]}",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Event pattern is not valid"));
    let o = s.cli(&["dlq", "list"]);
    assert!(o.status.success());
    let o = s.cli(&["tasks", "success", "nope"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("TaskDoesNotExist"));
    let key = s.api_key.clone();
    let archived = s.archive().len();
    drop(s);
    // Restarted on the same data dir: same key, same archive, same executions.
    let s = Server::start(dir.path(), &[]);
    assert_eq!(s.api_key, key);
    assert_eq!(s.archive().len(), archived);
    let v = s.admin_get(&format!(
        "/admin/workflows/status?executionArn={}",
        arn.replace(':', "%3A")
    ));
    assert_eq!(v["name"], "p-1");
}

#[test]
fn concurrent_clients_all_get_their_events_archived() {
    let dir = TempDir::new("concurrent");
    let s = Server::start(dir.path(), &[]);
    let publish = "mutation($j: AWSJSON!) { publishEvent(source: \"marketplace.booking\", detailType: \"Booking Updated\", detail: $j) { success eventId error errorType } }";
    let ids: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let c = s.client();
                sc.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let r = c
                                .graphql(publish, json!({"j": booking_updated(t * 100 + i)}))
                                .expect("publish")
                                .json();
                            assert_eq!(r["data"]["publishEvent"]["success"], true, "{r}");
                            r["data"]["publishEvent"]["eventId"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(ids.len(), 200);
    let archive = s.archive();
    for id in &ids {
        assert_eq!(
            archive.iter().filter(|e| e["id"] == json!(id)).count(),
            1,
            "{id}"
        );
    }
}

#[test]
fn invalid_rules_and_definitions_stop_the_server_with_a_clear_error() {
    let dir = TempDir::new("badfiles");
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        json!({"eventBus": {"name": "b"}, "deadLetterQueues": [{"name": "q"}], "rules": [
            {"name": "broken-rule", "pattern": {"source": [{"prefix": 5}]}, "targets": [
                {"id": "t", "type": "lambda", "function": "notification-handler",
                 "retryPolicy": {"maximumRetryAttempts": 1, "maximumEventAgeInSeconds": 60}, "deadLetterQueue": "q"}]}]})
        .to_string(),
    )
    .expect("write");
    let o = Command::new(BIN)
        .args(["serve", "--port", "0", "--rules"])
        .arg(&rules)
        .arg("--data-dir")
        .arg(dir.path().join("d1"))
        .output()
        .expect("serve");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rule 'broken-rule'") && err.contains("Event pattern is not valid"),
        "{err}"
    );

    let sm = dir.path().join("sm");
    std::fs::create_dir_all(&sm).expect("dir");
    common::write_machines(
        &sm,
        &json!({"StartAt": "Missing", "States": {"A": {"Type": "Pass", "End": true}}}),
    );
    let o = Command::new(BIN)
        .args(["serve", "--port", "0", "--statemachines"])
        .arg(&sm)
        .arg("--data-dir")
        .arg(dir.path().join("d2"))
        .output()
        .expect("serve");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("InvalidDefinition: booking-lifecycle.asl.json"),
        "{err}"
    );
}

#[test]
fn the_demo_runs_all_four_workflows_to_success() {
    let dir = TempDir::new("demo");
    let o = Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("demo");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for wt in [
        "PROVIDER_ONBOARDING",
        "BOOKING_LIFECYCLE",
        "PAYMENT_PROCESSING",
        "DISPUTE_RESOLUTION",
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(wt) && l.contains("SUCCEEDED"));
        assert!(line.is_some(), "{wt} did not succeed:\n{out}");
    }
    for event in [
        "Booking Confirmed",
        "Payment Succeeded",
        "Booking Completed",
        "Dispute Resolved",
        "Refund Issued",
    ] {
        assert!(out.contains(event), "{event} missing:\n{out}");
    }
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let dir = TempDir::new("inuse");
    let data = dir.path().join("data");
    let first = Server::start(&data, &[]);
    let o = Command::new(BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&data)
        .output()
        .expect("second serve");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is in use by another marketplace process (pid "),
        "{err}"
    );
    // The first server is untouched; once it is gone (even by kill -9), the directory is free.
    assert_eq!(first.anon().get("/health").expect("health").status, 200);
    first.kill9();
    let again = Server::start(&data, &[]);
    assert_eq!(again.anon().get("/health").expect("health").status, 200);
}
