//! Input transformers against the AWS-recorded deliveries in
//! tests/data/test_events_inputs.snapshot.json (see tests/data/PROVENANCE.md).
//!
//! The recorded test ids carry the InputTemplate; the paths map and event are the ones
//! that test used (userId, payload, listsingle, listmulti, systemstring, valid).

use event_patterns::transform::{input_path, Context, InputTransformer, TargetInput};
use serde_json::{json, Value};

fn snapshot() -> serde_json::Map<String, Value> {
    let path = format!(
        "{}/tests/data/test_events_inputs.snapshot.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("snapshot file")).expect("JSON")
}

fn event() -> Value {
    json!({"version": "0", "id": "1", "detail-type": "core.update-account-command",
           "source": "core.update-account-command", "account": "111111111111", "time": "date",
           "region": "us-east-1", "resources": [],
           "detail": {"command": "update-account",
                      "payload": {"acc_id": "0a787ecb-4015", "sf_id": "baz"},
                      "listsingle": ["HIGH"], "listmulti": ["ACTIVE", "INACTIVE"], "valid": true}})
}

fn paths() -> Vec<(String, String)> {
    [
        ("userId", "$.detail.payload.acc_id"),
        ("payload", "$.detail.payload"),
        ("listsingle", "$.detail.listsingle"),
        ("listmulti", "$.detail.listmulti"),
        ("systemstring", "$.detail.systemstring"),
        ("valid", "$.detail.valid"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

#[test]
fn nested_keys_replacement_matches_aws() {
    let mut checked = 0;
    for (id, rec) in snapshot() {
        if !id.contains("test_input_transformer_nested_keys_replacement[") {
            continue;
        }
        let template =
            id[id.find('[').expect("[") + 1..id.rfind(']').expect("]")].replace("\\n", "\n");
        let t = InputTransformer::new(&paths(), &template, "target").expect("valid transformer");
        let got = t.apply(&event(), &Context::default());
        match rec["recorded-content"]["input-transformed-messages"].get(0) {
            Some(msg) => {
                let body = &msg["Body"];
                let got = got.unwrap_or_else(|e| panic!("{template}: {e}"));
                assert_eq!(&got, body, "{template}");
            }
            None => assert!(
                got.is_err(),
                "{template}: AWS delivered nothing, got {got:?}"
            ),
        }
        checked += 1;
    }
    assert_eq!(checked, 18);
}

#[test]
fn input_path_matches_aws() {
    let snap = snapshot();
    let body = |k: &str| snap[k]["recorded-content"]["message"][0]["Body"].clone();
    let e = json!({"detail-type": "core.update-account-command", "source": "core.update-account-command",
                   "detail": {"command": "update-account", "payload": {"acc_id": "0a787ecb-4015", "sf_id": "baz"}}});
    assert_eq!(
        input_path("$.detail", &e).unwrap(),
        Some(body("tests/aws/services/events/test_events_inputs.py::TestInputPath::test_put_events_with_input_path"))
    );
    assert_eq!(
        input_path("$.detail.payload", &e).unwrap(),
        Some(body("tests/aws/services/events/test_events_inputs.py::TestInputPath::test_put_events_with_input_path_nested[event_detail0]"))
    );
    // a string selected by the path is delivered as JSON text: "\"baz\""
    let deep = json!({"detail": {"payload": {"sf_id": "baz"}}});
    let v = input_path("$.detail.payload.sf_id", &deep)
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::String(v.to_string()),
        body("tests/aws/services/events/test_events_inputs.py::TestInputPath::test_put_events_with_input_path_max_level_depth")
    );
}

#[test]
fn errors_match_aws() {
    let snap = snapshot();
    let msg = |k: &str, e: &str| {
        snap[k]["recorded-content"][e]["Error"]["Message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let err = InputTransformer::new(&paths(), "<notdefinedkey> hi", "<target-id>").unwrap_err();
    assert_eq!(
        err.to_string(),
        msg("tests/aws/services/events/test_events_inputs.py::TestInputTransformer::test_put_events_with_input_transformer_missing_keys", "missing-key-exception-error")
    );
    let err = TargetInput::new(
        None,
        Some("$.detail"),
        Some((&paths(), "<userId>")),
        "<target-id>",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        msg("tests/aws/services/events/test_events_inputs.py::test_put_event_input_path_and_input_transformer", "duplicated-input-operations-error")
    );
}

#[test]
fn predefined_variables_match_aws() {
    let t = InputTransformer::new(
        &[],
        r#""Message containing all pre defined variables <aws.events.rule-arn> <aws.events.rule-name> <aws.events.event.ingestion-time>""#,
        "target",
    )
    .unwrap();
    let ctx = Context {
        rule_name: "<rule-name>".into(),
        rule_arn: "arn:<partition>:events:<region>:111111111111:rule/<bus-name>/<rule-name>".into(),
        ingestion_time: "date".into(),
        target_id: "target".into(),
    };
    let snap = snapshot();
    let key = snap
        .keys()
        .find(|k| k.contains("test_input_transformer_predefined_variables[\"Message"))
        .unwrap();
    assert_eq!(
        t.apply(&event(), &ctx).unwrap(),
        snap[key]["recorded-content"]["messages"][0]["Body"]
    );
}
