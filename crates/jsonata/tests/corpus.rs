//! Differential corpus: every case was evaluated by the JSONata reference implementation
//! (see `fixtures/corpus.json` provenance); this test requires the same result or the
//! same error code, except for the documented known failures below.

use std::collections::BTreeSet;

use jsonata::{Environment, Expression};
use serde_json::Value;

/// Cases we knowingly disagree with, by id, each with the reason. Fixing one makes the
/// test fail until it is removed from this list.
const KNOWN_FAILURES: &[(usize, &str)] = &[(
    1103,
    "$replace with a string pattern and a function replacement: the reference inserts the \
     JavaScript source text of its internal wrapper function; we call the function",
)];

/// Outcome of one case: agreement, plus whether an expected error message matched.
fn run_case(case: &Value, datasets: &Value, now: i64) -> Result<Option<bool>, String> {
    let expr_src = case["expr"].as_str().ok_or("expr")?;
    let dataset = case["dataset"].as_str().ok_or("dataset")?;
    let input = if dataset == "none" {
        None
    } else {
        Some(datasets.get(dataset).ok_or("unknown dataset")?.clone())
    };
    let mut env = Environment::new();
    env.set_now_millis(now);
    let outcome = Expression::parse(expr_src).and_then(|e| e.evaluate_with(input.as_ref(), &env));
    if let Some(code) = case.get("error").and_then(Value::as_str) {
        return match outcome {
            Err(e) if e.code == code => Ok(case
                .get("message")
                .and_then(Value::as_str)
                .map(|m| m == e.message)),
            Err(e) => Err(format!(
                "expected error {code}, got error {}: {}",
                e.code, e.message
            )),
            Ok(v) => Err(format!("expected error {code}, got {:?}", v)),
        };
    }
    let expected = if case.get("undefined").is_some() {
        None
    } else {
        Some(case["result"].clone())
    };
    match outcome {
        Ok(v) if json_eq(&v, &expected) => Ok(None),
        Ok(v) => Err(format!(
            "expected {}, got {}",
            expected
                .map(|e| e.to_string())
                .unwrap_or("undefined".into()),
            v.map(|e| e.to_string()).unwrap_or("undefined".into())
        )),
        Err(e) => Err(format!(
            "expected {}, got error {}: {}",
            expected
                .map(|e| e.to_string())
                .unwrap_or("undefined".into()),
            e.code,
            e.message
        )),
    }
}

fn json_eq(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => value_eq(x, y),
        _ => false,
    }
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| value_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            // key order matters in JSONata output too
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && value_eq(v1, v2))
        }
        _ => a == b,
    }
}

#[test]
fn corpus_agrees_with_reference() {
    let corpus: Value = serde_json::from_str(include_str!("fixtures/corpus.json")).expect("corpus");
    let datasets: Value =
        serde_json::from_str(include_str!("corpus/datasets.json")).expect("datasets");
    let now = corpus["now_millis"].as_i64().expect("now_millis");
    let cases = corpus["cases"].as_array().expect("cases");
    let known: BTreeSet<usize> = KNOWN_FAILURES.iter().map(|(id, _)| *id).collect();
    let mut failures = Vec::new();
    let mut fixed = Vec::new();
    let mut passed = 0;
    let (mut messages, mut messages_same) = (0, 0);
    let mut message_diffs = Vec::new();
    for case in cases {
        let id = case["id"].as_u64().expect("id") as usize;
        let r = std::panic::catch_unwind(|| run_case(case, &datasets, now))
            .unwrap_or_else(|_| Err("panicked".into()));
        match r {
            Ok(msg) => {
                if let Some(same) = msg {
                    messages += 1;
                    if same {
                        messages_same += 1;
                    } else {
                        message_diffs.push(id);
                    }
                }
                passed += 1;
                if known.contains(&id) {
                    fixed.push(id);
                }
            }
            Err(msg) => {
                if !known.contains(&id) {
                    failures.push(format!(
                        "#{id} [{}] {}\n    {msg}",
                        case["dataset"].as_str().unwrap_or(""),
                        case["expr"].as_str().unwrap_or("")
                    ));
                }
            }
        }
    }
    println!(
        "corpus: {passed}/{} cases agree with the reference implementation",
        cases.len()
    );
    println!(
        "corpus: {messages_same}/{messages} expected errors also carry the reference's exact message (differing ids: {message_diffs:?})"
    );
    assert!(
        message_diffs.is_empty(),
        "error messages differ from the reference for cases {message_diffs:?}"
    );
    assert!(
        fixed.is_empty(),
        "known failures now pass, remove them from KNOWN_FAILURES: {fixed:?}"
    );
    assert!(
        failures.is_empty(),
        "{} unexpected disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
