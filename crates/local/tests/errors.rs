//! End-to-end: every bad GraphQL request gets an AppSync-shaped answer — an `errorType`
//! for refused HTTP requests and resolver errors (in `errors[]`, or in the result type's
//! `errorType` for the resolver's own refusals), AppSync's `Validation error of type …`
//! messages without one for validation — never a bare text error, a hang or a crash.

mod common;

use common::{Server, TempDir, BIN};
use serde_json::{json, Value};

const PUBLISH: &str = "mutation($s: String!, $d: String!, $j: AWSJSON!) {
  publishEvent(source: $s, detailType: $d, detail: $j) { success eventId error errorType } }";

fn admin_token(dir: &std::path::Path) -> String {
    let o = std::process::Command::new(BIN)
        .args([
            "token",
            "mint",
            "--sub",
            "ops",
            "--groups",
            "admin",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .expect("mint");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The first error of a response, which must be AppSync-shaped.
fn first_error(r: &marketplace_local::client::Response) -> Value {
    let v = r.json();
    let e = v["errors"][0].clone();
    assert!(
        e["errorType"].as_str().is_some_and(|t| !t.is_empty()),
        "no errorType: {} {}",
        r.status,
        r.body
    );
    assert!(e["message"].is_string(), "no message: {}", r.body);
    e
}

/// The first error of a response refused by validation: AppSync's shape, no `errorType`.
fn validation_error(r: &marketplace_local::client::Response) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["data"], Value::Null, "nothing runs: {}", r.body);
    let e = v["errors"][0].clone();
    assert_eq!(e.get("errorType"), None, "AppSync sets none: {}", r.body);
    assert_eq!(e["path"], Value::Null, "{}", r.body);
    assert!(e["message"].is_string(), "no message: {}", r.body);
    e
}

fn booking_updated(note: &str) -> String {
    json!({"bookingId": "bk_1", "startDateTime": "2027-03-11T09:00:00Z",
           "endDateTime": "2027-03-11T10:00:00Z", "previousStartDateTime": "2027-03-10T09:00:00Z",
           "previousEndDateTime": "2027-03-10T10:00:00Z", "notes": note,
           "timestamp": "2027-03-02T11:00:00Z", "correlationId": "corr-1"})
    .to_string()
}

#[test]
fn every_bad_request_gets_an_appsync_shaped_error() {
    let dir = TempDir::new("errors");
    let s = Server::start(dir.path(), &[]);
    let c = s.client();
    let raw = |body: &str| {
        c.request("POST", "/graphql", Some(body), &[])
            .expect("post")
    };
    let gql = |q: &str, v: Value| c.graphql(q, v).expect("graphql");

    // The HTTP body, answered as AppSync does.
    let r = raw("");
    assert_eq!(r.status, 400);
    let e = first_error(&r);
    assert_eq!(e["errorType"], "MalformedHttpRequestException");
    assert_eq!(e["message"], "Request body is empty.");
    for body in ["{not json", "meow", "[1, 2]", "{}", "{}}", "{\"query\": 5}"] {
        let r = raw(body);
        assert_eq!(r.status, 400, "{body}");
        let e = first_error(&r);
        assert_eq!(e["errorType"], "MalformedHttpRequestException", "{body}");
        assert_eq!(e["message"], "Unable to parse GraphQL query.", "{body}");
    }
    let r = raw(&json!({"query": "{ __typename }", "variables": [1]}).to_string());
    let e = validation_error(&r);
    assert!(e["message"]
        .as_str()
        .unwrap_or("")
        .contains("variables must be a JSON object"));

    // Syntax.
    for q in [
        "{ listWorkflowExecutions(",
        "query {",
        "mutation { startWorkflow(workflowType: ) }",
    ] {
        let r = gql(q, json!({}));
        assert_eq!(r.status, 200);
        let e = first_error(&r);
        assert_eq!(e["errorType"], "MalformedHttpRequestException", "{q}");
        assert!(e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Invalid Syntax"));
        assert_eq!(r.json()["data"], Value::Null);
    }

    // Validation: each names the rule and where.
    let cases: &[(&str, Value, &str)] = &[
        ("{ nope { x } }", json!({}), "FieldUndefined: Field 'nope' in type 'Query'"),
        (
            "{ listWorkflowExecutions { executions { bogus } } }",
            json!({}),
            "Field 'bogus' in type 'WorkflowExecution'",
        ),
        (
            "{ listWorkflowExecutions(limit: \"ten\") { success } }",
            json!({}),
            "WrongType",
        ),
        (
            "query($l: Int) { listWorkflowExecutions(limit: $l) { success } }",
            json!({"l": "ten"}),
            "Variable 'l' has an invalid value",
        ),
        (
            "query($l: Int) { listWorkflowExecutions(limit: $l) { success } }",
            json!({"l": 3_000_000_000_i64}),
            "Variable 'l' has an invalid value",
        ),
        (
            "query($t: WorkflowType) { listWorkflowExecutions(workflowType: $t) { success } }",
            json!({"t": "NOT_A_WORKFLOW"}),
            "Variable 't' has an invalid value",
        ),
        (
            "query($a: String) { getWorkflowStatus(executionArn: $a) { success } }",
            json!({}),
            "VariableTypeMismatch",
        ),
        (
            "mutation($i: AWSJSON!) { startWorkflow(workflowType: BOOKING_LIFECYCLE, input: $i) { success } }",
            json!({"i": "{not json"}),
            "is not a valid 'AWSJSON'",
        ),
        (
            "mutation($i: AWSJSON!) { startWorkflow(workflowType: BOOKING_LIFECYCLE, input: $i) { success } }",
            json!({}),
            "Variable 'i' has coerced Null value for NonNull type 'AWSJSON!'",
        ),
        ("{ getWorkflowStatus { success } }", json!({}), "MissingFieldArgument"),
        ("{ listWorkflowExecutions(bogus: 1) { success } }", json!({}), "UnknownArgument"),
        ("{ listWorkflowExecutions }", json!({}), "SubSelectionRequired"),
        (
            "{ listWorkflowExecutions { success { x } } }",
            json!({}),
            "SubSelectionNotAllowed",
        ),
        ("{ ...Missing }", json!({}), "UndefinedFragment"),
        ("{ __typename @cached }", json!({}), "UnknownDirective"),
        ("{ getWorkflowStatus(executionArn: $nope) { success } }", json!({}), "UndefinedVariable"),
        ("subscription { onEvent { id } }", json!({}), "UnsupportedOperation"),
        ("query A { __typename } query B { __typename }", json!({}), "operationName is required"),
    ];
    for (q, v, want) in cases {
        let r = gql(q, v.clone());
        let e = validation_error(&r);
        let msg = e["message"].as_str().unwrap_or("");
        assert!(msg.contains(want), "{q}: {msg}");
    }
    let r = c
        .post(
            "/graphql",
            &json!({"query": "query A { __typename }", "operationName": "B"}),
        )
        .expect("op");
    assert!(validation_error(&r)["message"]
        .as_str()
        .unwrap_or("")
        .contains("Unknown operation named 'B'"));

    // Refused by authorization: errors[] with errorType Unauthorized, data null for the field.
    let r = gql(
        "mutation { stopWorkflow(executionArn: \"arn:x\") { success } }",
        json!({}),
    );
    assert_eq!(first_error(&r)["errorType"], "Unauthorized");
    assert_eq!(r.json()["data"]["stopWorkflow"], Value::Null);

    // publishEvent's own refusals come back typed in the result.
    let admin = s.with_token(&admin_token(dir.path()));
    let publish = |source: &str, detail_type: &str, detail: &str| {
        let r = admin
            .graphql(PUBLISH, json!({"s": source, "d": detail_type, "j": detail}))
            .expect("publish");
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert!(v.get("errors").is_none(), "{v}");
        v["data"]["publishEvent"].clone()
    };
    let unknown = publish("marketplace.booking", "Booking Teleported", "{}");
    assert_eq!(unknown["success"], false);
    assert!(
        unknown["errorType"].as_str().is_some_and(|t| !t.is_empty()),
        "{unknown}"
    );
    assert!(
        unknown["error"]
            .as_str()
            .unwrap_or("")
            .contains("detail-type"),
        "{unknown}"
    );
    let big = publish(
        "marketplace.booking",
        "Booking Updated",
        &booking_updated(&"x".repeat(300 * 1024)),
    );
    assert_eq!(big["success"], false);
    assert!(
        big["errorType"].as_str().is_some_and(|t| !t.is_empty()),
        "{big}"
    );
    let wrong = publish(
        "marketplace.booking",
        "Booking Updated",
        &booking_updated("ok").replace("\"bk_1\"", "5"),
    );
    assert_eq!(wrong["success"], false);
    assert!(
        wrong["error"].as_str().unwrap_or("").contains("bookingId"),
        "{wrong}"
    );
    let not_object = publish("marketplace.booking", "Booking Updated", "[1]");
    assert_eq!(not_object["success"], false);
    assert!(
        not_object["errorType"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{not_object}"
    );
    assert_eq!(
        publish(
            "marketplace.booking",
            "Booking Updated",
            &booking_updated("fine")
        )["success"],
        true
    );

    // A body over the server's limit is refused in the same shape.
    let huge = format!(
        "{{\"query\": \"{{ __typename }}\", \"variables\": {{\"x\": \"{}\"}}}}",
        "y".repeat(3 * 1024 * 1024)
    );
    let r = raw(&huge);
    assert_eq!(r.status, 413, "{}", &r.body[..r.body.len().min(200)]);
    assert_eq!(first_error(&r)["errorType"], "PayloadTooLargeException");
    // The server is still fine.
    assert_eq!(
        gql("{ __typename }", json!({})).json(),
        json!({"data": {"__typename": "Query"}})
    );
}
