//! Differential property tests: the compiled [`RuleSet`] (raw-byte scanner, field index,
//! hash lookups, array-consistency bookkeeping) against the plain reference evaluator
//! over `serde_json::Value`, on random events and random patterns of every kind.

use event_patterns::{reference, Pattern, RuleSet};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KEYS: [&str; 5] = ["a", "b", "c", "d.e", "a\"q"];
const STRINGS: [&str; 12] = [
    "",
    "a",
    "ab",
    "ba",
    "AB",
    "aBc",
    "x*y",
    "10.0.0.7",
    "10.0.1.9",
    "2001:db8::1",
    "Ünï",
    "\\\"",
];
const NUMBERS: [f64; 9] = [0.0, 1.0, -1.0, 2.5, 100.0, 300.0, -122.4291636, 5e9, 1e12];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..STRINGS.len()).prop_map(|i| json!(STRINGS[i])),
        (0..NUMBERS.len()).prop_map(|i| json!(NUMBERS[i])),
        (0i64..4).prop_map(|i| json!(i)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 40, 4, |inner| {
        prop_oneof![
            2 => prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            3 => prop::collection::vec((0..KEYS.len(), inner), 1..5).prop_map(|kv| {
                let mut m = Map::new();
                for (k, v) in kv {
                    m.insert(KEYS[k].to_string(), v);
                }
                Value::Object(m)
            }),
        ]
    })
}

fn event() -> impl Strategy<Value = Value> {
    prop::collection::vec((0..KEYS.len(), value()), 2..8).prop_map(|kv| {
        let mut m = Map::new();
        for (k, v) in kv {
            m.insert(KEYS[k].to_string(), v);
        }
        Value::Object(m)
    })
}

fn s() -> impl Strategy<Value = Value> {
    (0..STRINGS.len()).prop_map(|i| json!(STRINGS[i]))
}

fn nonempty_s() -> impl Strategy<Value = Value> {
    (1..STRINGS.len()).prop_map(|i| json!(STRINGS[i]))
}

fn n() -> impl Strategy<Value = Value> {
    (0..NUMBERS.len() - 1).prop_map(|i| json!(NUMBERS[i]))
}

fn wildcard() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("*")),
        Just(json!("a*")),
        Just(json!("*b")),
        Just(json!("a*c")),
        Just(json!("*B*")),
        Just(json!("10.*.7")),
        Just(json!("x\\*y")),
        Just(json!("")),
    ]
}

fn matcher() -> impl Strategy<Value = Value> {
    prop_oneof![
        s(),
        n(),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        s().prop_map(|v| json!({"prefix": v})),
        s().prop_map(|v| json!({"suffix": v})),
        s().prop_map(|v| json!({"prefix": {"equals-ignore-case": v}})),
        s().prop_map(|v| json!({"suffix": {"equals-ignore-case": v}})),
        s().prop_map(|v| json!({"equals-ignore-case": v})),
        wildcard().prop_map(|v| json!({"wildcard": v})),
        s().prop_map(|v| json!({"anything-but": v})),
        prop::collection::vec(s(), 1..3).prop_map(|v| json!({"anything-but": v})),
        n().prop_map(|v| json!({"anything-but": v})),
        prop::collection::vec(n(), 1..3).prop_map(|v| json!({"anything-but": v})),
        nonempty_s().prop_map(|v| json!({"anything-but": {"prefix": v}})),
        nonempty_s().prop_map(|v| json!({"anything-but": {"suffix": v}})),
        prop::collection::vec(s(), 1..3)
            .prop_map(|v| json!({"anything-but": {"equals-ignore-case": v}})),
        wildcard().prop_map(|v| json!({"anything-but": {"wildcard": v}})),
        n().prop_map(|v| json!({"numeric": [">", v]})),
        n().prop_map(|v| json!({"numeric": ["<=", v]})),
        n().prop_map(|v| json!({"numeric": ["=", v]})),
        (n(), n()).prop_map(|(a, b)| json!({"numeric": [">=", a, "<", b]})),
        any::<bool>().prop_map(|b| json!({"exists": b})),
        Just(json!({"cidr": "10.0.0.0/24"})),
        Just(json!({"cidr": "2001:db8::/32"})),
    ]
}

fn pattern_object(depth: u32) -> BoxedStrategy<Value> {
    let field = if depth == 0 {
        prop::collection::vec(matcher(), 1..4)
            .prop_map(Value::Array)
            .boxed()
    } else {
        prop_oneof![
            3 => prop::collection::vec(matcher(), 1..4).prop_map(Value::Array),
            1 => pattern_object(depth - 1),
        ]
        .boxed()
    };
    let base = prop::collection::vec((0..4usize, field), 1..3).prop_map(|kv| {
        let mut m = Map::new();
        for (k, v) in kv {
            m.insert(KEYS[k].to_string(), v);
        }
        m
    });
    if depth == 0 {
        base.prop_map(Value::Object).boxed()
    } else {
        (
            base,
            prop::option::weighted(0.25, (pattern_object(depth - 1), pattern_object(depth - 1))),
        )
            .prop_map(|(mut m, or)| {
                if let Some((x, y)) = or {
                    m.insert("$or".into(), json!([x, y]));
                }
                Value::Object(m)
            })
            .boxed()
    }
}

/// Leaves of an event as (key path, value).
fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                path.push(k.clone());
                leaves(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) => a.iter().for_each(|x| leaves(x, path, out)),
        leaf => {
            if !path.is_empty() {
                out.push((path.clone(), leaf.clone()))
            }
        }
    }
}

/// A matcher derived from an event value, chosen by `sel`; mostly ones that accept it.
fn derived_matcher(v: &Value, sel: u8) -> Value {
    match (v, sel % 8) {
        (Value::String(s), 1) if !s.is_empty() => {
            json!({"prefix": &s[..s.char_indices().nth(1).map_or(s.len(), |(i, _)| i)]})
        }
        (Value::String(s), 2) => json!({"equals-ignore-case": s.to_uppercase()}),
        (Value::String(s), 3) => {
            json!({"wildcard": format!("*{}", s.chars().last().map(String::from).unwrap_or_default().replace('*', "\\*").replace('\\', "\\\\"))})
        }
        (Value::String(s), 4) => json!({"suffix": {"equals-ignore-case": s.to_lowercase()}}),
        (Value::Number(n), 1) => json!({"numeric": [">=", n]}),
        (Value::Number(n), 2) => json!({"numeric": ["<", n]}),
        (_, 5) => json!({"exists": true}),
        (_, 6) => json!({"anything-but": "zz"}),
        (_, 7) => json!({"exists": false}),
        (v, _) => v.clone(),
    }
}

fn derived() -> impl Strategy<Value = (Value, Value)> {
    (
        event(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    )
        .prop_map(|(e, picks)| {
            let mut ls = Vec::new();
            leaves(&e, &mut Vec::new(), &mut ls);
            let mut pattern = Map::new();
            for (idx, sel) in picks {
                if ls.is_empty() {
                    break;
                }
                let (path, v) = &ls[idx.index(ls.len())];
                let mut m = &mut pattern;
                for seg in &path[..path.len() - 1] {
                    let entry = m.entry(seg.clone()).or_insert_with(|| json!({}));
                    if !entry.is_object() {
                        *entry = json!({});
                    }
                    m = entry.as_object_mut().expect("object");
                }
                m.insert(
                    path[path.len() - 1].clone(),
                    json!([derived_matcher(v, sel)]),
                );
            }
            (Value::Object(pattern), e)
        })
}

fn compiled_matches(p: &Pattern, event: &Value) -> bool {
    let mut set = RuleSet::new();
    set.add("p", p.clone());
    let bytes = serde_json::to_vec(event).expect("serialise");
    !set.matches(&bytes).expect("well-formed event").is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn single_pattern_agrees(p in pattern_object(2), e in event()) {
        if let Ok(pattern) = Pattern::from_value(&p) {
            prop_assert_eq!(compiled_matches(&pattern, &e), reference::matches(&pattern, &e),
                "pattern {} event {}", p, e);
        }
    }

    #[test]
    fn derived_pattern_agrees((p, e) in derived()) {
        if let Ok(pattern) = Pattern::from_value(&p) {
            prop_assert_eq!(compiled_matches(&pattern, &e), reference::matches(&pattern, &e),
                "pattern {} event {}", p, e);
        }
    }

    #[test]
    fn rule_set_agrees(ps in prop::collection::vec(pattern_object(1), 1..8),
                       es in prop::collection::vec(event(), 1..6)) {
        let mut set = RuleSet::new();
        let mut valid = Vec::new();
        for (i, p) in ps.iter().enumerate() {
            if let Ok(pattern) = Pattern::from_value(p) {
                valid.push((format!("r{i}"), pattern));
            }
        }
        set.extend(valid.clone());
        let mut scratch = set.scratch();
        for e in &es {
            let bytes = serde_json::to_vec(e).expect("serialise");
            let mut got = Vec::new();
            set.match_with(&mut scratch, &bytes, |r| got.push(r)).expect("event");
            got.sort_unstable();
            let want: Vec<usize> = valid.iter().enumerate()
                .filter(|(_, (_, p))| reference::matches(p, e))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(got, want, "event {}", e);
        }
    }

    /// Removing rules at run time leaves exactly the remaining rules matching.
    #[test]
    fn add_remove_agrees(ps in prop::collection::vec(pattern_object(1), 2..6), e in event(), drop_at in 0usize..6) {
        let mut set = RuleSet::new();
        let mut kept = Vec::new();
        for (i, p) in ps.iter().enumerate() {
            if let Ok(pattern) = Pattern::from_value(p) {
                set.add(format!("r{i}"), pattern.clone());
                kept.push((format!("r{i}"), pattern));
            }
        }
        if drop_at < kept.len() {
            let (name, _) = kept.remove(drop_at);
            prop_assert!(set.remove(&name));
        }
        let bytes = serde_json::to_vec(&e).expect("serialise");
        let mut got: Vec<String> = set.matches(&bytes).expect("event").into_iter().map(String::from).collect();
        got.sort();
        let mut want: Vec<String> = kept.iter().filter(|(_, p)| reference::matches(p, &e)).map(|(n, _)| n.clone()).collect();
        want.sort();
        prop_assert_eq!(got, want);
    }

    /// Arbitrary bytes never panic the matcher.
    #[test]
    fn garbage_events_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut set = RuleSet::new();
        set.add_json("r", r#"{"a": [{"exists": true}], "b": {"c": [{"prefix": "x"}]}}"#).expect("valid");
        let _ = set.matches(&bytes);
        let mut framed = b"{\"a\":".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = set.matches(&framed);
    }
}

/// The generators are not degenerate: random patterns match random events often enough
/// for the differential tests to exercise both outcomes.
#[test]
fn generators_exercise_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut valid, mut matched) = (0, 0);
    for _ in 0..2000 {
        let p = pattern_object(2).new_tree(&mut runner).unwrap().current();
        let e = event().new_tree(&mut runner).unwrap().current();
        if let Ok(pattern) = Pattern::from_value(&p) {
            valid += 1;
            if reference::matches(&pattern, &e) {
                matched += 1;
            }
        }
    }
    assert!(valid > 1000, "valid patterns: {valid}");
    assert!(matched > valid / 20, "matched {matched} of {valid}");
    assert!(matched < valid, "matched {matched} of {valid}");
    let (mut dv, mut dm) = (0, 0);
    for _ in 0..1000 {
        let (p, e) = derived().new_tree(&mut runner).unwrap().current();
        if let Ok(pattern) = Pattern::from_value(&p) {
            dv += 1;
            if reference::matches(&pattern, &e) {
                dm += 1;
            }
        }
    }
    assert!(
        dv > 500 && dm > dv / 3 && dm < dv,
        "derived: matched {dm} of {dv}"
    );
}

#[test]
fn array_consistency() {
    let p =
        Pattern::parse(r#"{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}"#).unwrap();
    let e = json!({"employees": [
        {"firstName": "John", "lastName": "Doe"},
        {"firstName": "Anna", "lastName": "Smith"},
        {"firstName": "Peter", "lastName": "Jones"}]});
    assert!(!reference::matches(&p, &e));
    assert!(!compiled_matches(&p, &e));
    let e2 =
        json!({"employees": [[{"firstName": "Anna", "lastName": "Jones"}], [{"firstName": "x"}]]});
    assert!(reference::matches(&p, &e2));
    assert!(compiled_matches(&p, &e2));
}

#[test]
fn deep_events_are_errors_not_crashes() {
    let mut set = RuleSet::new();
    set.add_json("r", r#"{"a": [1]}"#).unwrap();
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(set.matches(deep.as_bytes()).is_err());
    // deep but irrelevant subtrees are skipped without recursion
    let skipped = format!(
        "{{\"z\":{}1{},\"a\":1}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(set.matches(skipped.as_bytes()).unwrap(), vec!["r"]);
}

#[test]
fn dotted_and_empty_keys() {
    for (p, e, want) in [
        (r#"{"": {"x": [1]}}"#, json!({".x": 1}), true),
        (r#"{"": {"x": [1]}}"#, json!({"": {"x": 1}}), true),
        (r#"{"a.b": {"c": [1]}}"#, json!({"a": {"b.c": 1}}), true),
        (r#"{"a": {"b": [1]}}"#, json!({"a.b": [2, 1]}), true),
        (r#"{"a": {"b": [1]}}"#, json!({"a.c": 1}), false),
    ] {
        let pattern = Pattern::parse(p).unwrap();
        assert_eq!(reference::matches(&pattern, &e), want, "{p} {e}");
        assert_eq!(compiled_matches(&pattern, &e), want, "{p} {e}");
    }
}

#[test]
fn strings_across_block_boundaries() {
    // escapes, quotes and brackets inside strings at every offset around 64-byte blocks
    let target = "va\"l}]\\ue";
    let p = Pattern::parse(&json!({"k": [target], "z": [{"prefix": "x"}]}).to_string()).unwrap();
    for pad in 0..140 {
        let e = json!({"pad": "p".repeat(pad), "skip": {"s": "a\"b\\", "t": ["]", "}"]},
                       "k": target, "z": format!("x{}", "\\".repeat(pad % 5))});
        assert!(reference::matches(&p, &e));
        assert!(compiled_matches(&p, &e), "pad {pad}");
        let e2 = json!({"pad": "p".repeat(pad), "k": format!("{target}!"), "z": "x"});
        assert!(!compiled_matches(&p, &e2), "pad {pad}");
    }
}
