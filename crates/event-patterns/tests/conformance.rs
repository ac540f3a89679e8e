//! The AWS-recorded TestEventPattern cases (see tests/data/PROVENANCE.md): every outcome
//! and every error text must agree, and the compiled matcher must agree with the
//! reference evaluator on every case whose pattern and event are valid.

use event_patterns::{reference, test_event_pattern, Pattern, RuleSet};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).expect("case file is JSON");
    v["cases"].as_array().expect("cases array").clone()
}

/// Pattern text as the conformance runner sends it (Python `json.dumps` spacing).
fn pattern_text(case: &Value) -> String {
    if let Some(Value::String(raw)) = case.get("pattern_text") {
        return raw.clone();
    }
    fn spaced(v: &Value, out: &mut String) {
        match v {
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    spaced(x, out);
                }
                out.push(']');
            }
            Value::Object(m) => {
                out.push('{');
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push_str(": ");
                    spaced(x, out);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    spaced(&case["pattern"], &mut s);
    s
}

fn check(cases: &[Value]) -> usize {
    let mut checked = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let text = pattern_text(case);
        let event = &case["event"];
        let got = test_event_pattern(&text, event);
        match case["expected"].as_str() {
            Some("match") => assert_eq!(got, Ok(true), "{name}"),
            Some("no_match") => assert_eq!(got, Ok(false), "{name}"),
            Some("error") => {
                let err = got.expect_err(name);
                assert_eq!(
                    err.code(),
                    case["aws_error"]["code"].as_str().unwrap_or(""),
                    "{name}"
                );
                let first_line = err.to_string();
                assert_eq!(
                    first_line,
                    case["aws_error"]["message"].as_str().unwrap_or(""),
                    "{name}"
                );
            }
            other => panic!("{name}: unknown expectation {other:?}"),
        }
        // differential: compiled matcher vs reference evaluator
        if let Ok(p) = Pattern::parse(&text) {
            if event.is_object() {
                let mut set = RuleSet::new();
                set.add("r", p.clone());
                let bytes = serde_json::to_vec(event).expect("serialise");
                let compiled = !set.matches(&bytes).expect("event").is_empty();
                assert_eq!(
                    compiled,
                    reference::matches(&p, event),
                    "{name}: compiled vs reference"
                );
            }
        }
        checked += 1;
    }
    checked
}

#[test]
fn core_cases_agree_with_aws() {
    assert_eq!(check(&load("cases.json")), 155);
}

#[test]
fn extra_cases_agree_with_aws() {
    assert_eq!(check(&load("extra-cases.json")), 21);
}

#[test]
fn all_core_cases_in_one_rule_set() {
    // every valid core pattern as one rule; each event must match exactly the rules the
    // reference evaluator says
    let cases = load("cases.json");
    let mut set = RuleSet::new();
    let mut patterns = Vec::new();
    for c in &cases {
        if let Ok(p) = Pattern::parse(&pattern_text(c)) {
            let name = c["name"].as_str().expect("name").to_string();
            patterns.push((name.clone(), p.clone()));
            set.add(name, p);
        }
    }
    assert!(patterns.len() > 100);
    for c in &cases {
        let event = &c["event"];
        if !event.is_object() {
            continue;
        }
        let bytes = serde_json::to_vec(event).expect("serialise");
        let mut got: Vec<&str> = set.matches(&bytes).expect("event");
        got.sort_unstable();
        let mut want: Vec<&str> = patterns
            .iter()
            .filter(|(_, p)| reference::matches(p, event))
            .map(|(n, _)| n.as_str())
            .collect();
        want.sort_unstable();
        assert_eq!(got, want, "event of {}", c["name"]);
    }
}
