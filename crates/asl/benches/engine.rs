//! Throughput of the interpreter: state transitions, whole executions, a large Map.

use asl::{
    parse_definition, Execution, ExecutionInfo, NoTasks, RunOptions, StateMachine, VirtualClock,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Map, Value};

/// A loop of Pass (Parameters + ResultPath) and Choice states running `n` iterations:
/// 2 transitions per iteration.
pub fn counter_loop() -> StateMachine {
    parse_definition(&json!({
        "StartAt": "Inc",
        "States": {
            "Inc": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.c.i, 1)", "n.$": "$.c.n"},
                    "ResultPath": "$.c", "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [
                {"Variable": "$.c.i", "NumericLessThanPath": "$.c.n", "Next": "Inc"}
            ], "Default": "Done"},
            "Done": {"Type": "Succeed"}
        }
    }))
    .expect("valid")
}

/// Ten states: Pass/Choice with Parameters and ResultPath.
pub fn ten_states() -> StateMachine {
    let mut states = Map::new();
    for i in 0..9 {
        let next = format!("S{}", i + 1);
        let s = if i % 3 == 2 {
            json!({"Type": "Choice", "Choices": [{"Variable": "$.v", "NumericGreaterThanEquals": 0, "Next": next}], "Default": "S9"})
        } else {
            json!({"Type": "Pass", "Parameters": {"v.$": "$.v", "step": i}, "ResultPath": "$.last", "Next": next})
        };
        states.insert(format!("S{i}"), s);
    }
    states.insert(
        "S9".into(),
        json!({"Type": "Pass", "Result": "done", "ResultPath": "$.r", "End": true}),
    );
    parse_definition(&json!({"StartAt": "S0", "States": Value::Object(states)})).expect("valid")
}

/// An inline Map over its input.
pub fn map_machine() -> StateMachine {
    parse_definition(&json!({
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {
            "P": {"Type": "Pass", "Parameters": {"x.$": "$"}, "End": true}}}, "End": true}}
    }))
    .expect("valid")
}

fn run(sm: &StateMachine, input: &Value, record: bool) -> u64 {
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(input.clone(), ExecutionInfo::default(), 1, &clock);
    e.run_with(
        sm,
        &mut NoTasks,
        &clock,
        RunOptions {
            record_history: record,
            ..RunOptions::default()
        },
    );
    e.state().transitions
}

fn benches(c: &mut Criterion) {
    let lp = counter_loop();
    let mut g = c.benchmark_group("transitions");
    for record in [true, false] {
        let input = json!({"c": {"i": 0, "n": 5000}});
        g.throughput(Throughput::Elements(10_001));
        g.bench_with_input(
            BenchmarkId::new(
                "pass_choice_loop_5000",
                if record { "history" } else { "no_history" },
            ),
            &input,
            |b, i| b.iter(|| run(&lp, i, record)),
        );
    }
    g.finish();

    let ten = ten_states();
    let mut g = c.benchmark_group("executions");
    g.throughput(Throughput::Elements(1));
    let input = json!({"v": 1});
    g.bench_function("ten_states_with_history", |b| {
        b.iter(|| run(&ten, &input, true))
    });
    g.finish();

    let m = map_machine();
    let items = Value::Array((0..10_000).map(|i| json!(i)).collect());
    let mut g = c.benchmark_group("map");
    g.sample_size(20);
    g.bench_function("inline_map_10000_items", |b| {
        b.iter(|| run(&m, &items, true))
    });
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
