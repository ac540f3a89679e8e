//! Property tests: parsing arbitrary input never panics.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|i| json!(i)),
        prop_oneof![
            Just("Pass"),
            Just("Task"),
            Just("Choice"),
            Just("Wait"),
            Just("Succeed"),
            Just("Fail"),
            Just("Parallel"),
            Just("Map"),
            Just("A"),
            Just("B"),
            Just("$.x"),
            Just("$$.Execution.Id"),
            Just("States.Format('{}', $.a)"),
            Just("{% $x %}"),
            Just("JSONata"),
            Just("JSONPath"),
            Just("2016-03-14T01:59:00Z")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let keys = prop_oneof![
            Just("StartAt"),
            Just("States"),
            Just("Type"),
            Just("Next"),
            Just("End"),
            Just("Choices"),
            Just("Default"),
            Just("Variable"),
            Just("StringEquals"),
            Just("Parameters"),
            Just("x.$"),
            Just("ResultPath"),
            Just("InputPath"),
            Just("Branches"),
            Just("ItemProcessor"),
            Just("Iterator"),
            Just("Retry"),
            Just("Catch"),
            Just("ErrorEquals"),
            Just("Seconds"),
            Just("Timestamp"),
            Just("QueryLanguage"),
            Just("Assign"),
            Just("Output"),
            Just("Resource"),
            Just("A"),
            Just("B"),
            Just("And"),
            Just("Not")
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..6).prop_map(|kv| {
                let mut m = Map::new();
                for (k, v) in kv {
                    m.insert(k.to_string(), v);
                }
                Value::Object(m)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_arbitrary_definitions_never_panics(v in arb_json()) {
        let _ = asl::parse_definition(&v);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(s in ".{0,200}") {
        let _ = asl::parse_definition_text(&s);
        let _ = asl::path::Path::parse(&s);
        let _ = asl::intrinsic::parse(&s);
    }

    #[test]
    fn paths_and_intrinsics_never_panic(s in "[$@.\\[\\]'\"*?()a-z0-9,:<>=!&| -]{0,40}") {
        let doc = json!({"a": [1, {"b": "c"}], "d": {"e": null}});
        if let Ok(p) = asl::path::Path::parse(&s) {
            let _ = p.select(&doc);
            let _ = p.miss_message(&doc);
        }
        let _ = asl::intrinsic::parse(&format!("States.Format({s})"));
    }

    #[test]
    fn valid_pass_chains_always_succeed(n in 1usize..20, input in any::<i64>()) {
        let mut states = Map::new();
        for i in 0..n {
            let mut s = Map::new();
            s.insert("Type".into(), json!("Pass"));
            if i + 1 == n { s.insert("End".into(), json!(true)); } else { s.insert("Next".into(), json!(format!("S{}", i + 1))); }
            states.insert(format!("S{i}"), Value::Object(s));
        }
        let sm = asl::parse_definition(&json!({"StartAt": "S0", "States": states})).unwrap();
        let clock = asl::VirtualClock::at_epoch_2024();
        let mut e = asl::Execution::new(json!(input), asl::ExecutionInfo::default(), 1, &clock);
        prop_assert_eq!(e.run(&sm, &mut asl::NoTasks, &clock), asl::Status::Succeeded);
        prop_assert_eq!(e.state().output.clone(), Some(json!(input)));
        prop_assert_eq!(e.state().history.len(), 2 * n + 2);
    }
}
