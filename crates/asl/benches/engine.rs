//! Throughput of the interpreter: state transitions, whole executions, a large Map.

use asl::{
    parse_definition, Execution, ExecutionInfo, ExecutionState, NoTasks, RunOptions, StateMachine,
    TaskHandler, TaskOutcome, TaskRequest, VirtualClock,
};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
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

/// A callback task in a loop: every round waits for a task token, then counts.
pub fn callback_loop() -> StateMachine {
    parse_definition(&json!({
        "StartAt": "Ask",
        "States": {
            "Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
                    "ResultPath": "$.reply", "Next": "Count"},
            "Count": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.c.i, 1)", "n.$": "$.c.n"},
                      "ResultPath": "$.c", "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [
                {"Variable": "$.c.i", "NumericLessThanPath": "$.c.n", "Next": "Ask"}
            ], "Default": "Done"},
            "Done": {"Type": "Succeed"}
        }
    }))
    .expect("valid")
}

/// Every task waits for its token.
struct Callbacks;

impl TaskHandler for Callbacks {
    fn invoke(&mut self, _r: &TaskRequest<'_>) -> TaskOutcome {
        TaskOutcome::Pending {
            submitted: json!({}),
        }
    }
}

/// An execution of `callback_loop` paused after `done` answered tasks.
fn paused_after(sm: &StateMachine, done: u64, clock: &VirtualClock) -> ExecutionState {
    let mut e = Execution::new(
        json!({"c": {"i": 0, "n": done + 10}}),
        ExecutionInfo::default(),
        1,
        clock,
    );
    e.run(sm, &mut Callbacks, clock);
    for _ in 0..done {
        answer(&mut e);
        e.run(sm, &mut Callbacks, clock);
    }
    e.into_state()
}

fn answer(e: &mut Execution) {
    let token = e
        .state()
        .task_tokens()
        .next()
        .expect("paused on a token")
        .to_string();
    e.send_task_success(&token, json!({"ok": true}))
        .expect("outstanding token");
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

    // Resuming a paused execution (deliver a task result, run to the next pause) after N
    // answered tasks: the cost of replaying the execution so far.
    let cb = callback_loop();
    let clock = VirtualClock::at_epoch_2024();
    let mut g = c.benchmark_group("resume");
    for done in [10u64, 100, 1000] {
        let state = paused_after(&cb, done, &clock);
        g.bench_with_input(
            BenchmarkId::new("callback_after_completed_tasks", done),
            &state,
            |b, st| {
                b.iter_batched(
                    || Execution::from_state(st.clone()),
                    |mut e| {
                        answer(&mut e);
                        e.run(&cb, &mut Callbacks, &clock)
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
