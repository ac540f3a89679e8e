//! End-to-end behaviour of the interpreter through its public API.

use asl::{
    parse_definition, Clock, Execution, ExecutionInfo, ExecutionState, NoTasks, Status,
    TaskHandler, TaskOutcome, TaskRequest, VirtualClock,
};
use serde_json::{json, Value};

fn types(e: &Execution) -> Vec<String> {
    e.state()
        .history
        .iter()
        .map(|h| h.details.event_type())
        .collect()
}

/// Records every request; answers from a closure.
struct Scripted<F: FnMut(&TaskRequest<'_>) -> TaskOutcome> {
    f: F,
    seen: Vec<(String, Value, Option<String>)>,
}

impl<F: FnMut(&TaskRequest<'_>) -> TaskOutcome> TaskHandler for Scripted<F> {
    fn invoke(&mut self, r: &TaskRequest<'_>) -> TaskOutcome {
        self.seen.push((
            r.state_name.to_string(),
            r.parameters.clone(),
            r.task_token.map(str::to_string),
        ));
        (self.f)(r)
    }
}

#[test]
fn pass_choice_chain_with_parameters_and_result_path() {
    let sm = parse_definition(&json!({
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Parameters": {"n.$": "$.start", "tag": "x"}, "ResultPath": "$.acc", "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [
                {"Variable": "$.acc.n", "NumericGreaterThan": 2, "Next": "Big"}
            ], "Default": "Small"},
            "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "End": true},
            "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size", "End": true}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({"start": 3}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Succeeded);
    assert_eq!(
        e.state().output,
        Some(json!({"start": 3, "acc": {"n": 3, "tag": "x"}, "size": "big"}))
    );
    assert_eq!(
        types(&e),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    let h = e.state().history[1].to_json();
    assert_eq!(h["stateEnteredEventDetails"]["name"], "Init");
    assert_eq!(h["stateEnteredEventDetails"]["input"], "{\"start\":3}");
}

#[test]
fn seven_day_wait_is_instant_on_a_virtual_clock() {
    let sm = parse_definition(&json!({
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", "Seconds": 604800, "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let start = clock.now();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Succeeded);
    assert_eq!(clock.now() - start, chrono::Duration::days(7));
    let last = e.state().history.last().unwrap();
    assert_eq!(last.timestamp - start, chrono::Duration::days(7));
}

#[test]
fn state_machine_timeout_times_out_a_long_wait() {
    let sm = parse_definition(&json!({
        "StartAt": "W", "TimeoutSeconds": 60,
        "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::TimedOut);
    assert_eq!(types(&e).last().unwrap(), "ExecutionTimedOut");
}

#[test]
fn retry_backoff_with_max_delay_then_catch() {
    let sm = parse_definition(&json!({
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                  "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 10, "BackoffRate": 3.0,
                             "MaxAttempts": 3, "MaxDelaySeconds": 20}],
                  "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Handled"}],
                  "End": true},
            "Handled": {"Type": "Pass", "End": true}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let start = clock.now();
    let mut tasks = Scripted {
        f: |_r: &TaskRequest<'_>| TaskOutcome::Failed {
            error: "Boom".into(),
            cause: Some("bad".into()),
        },
        seen: vec![],
    };
    let mut e = Execution::new(json!({"a": 1}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Succeeded);
    assert_eq!(tasks.seen.len(), 4, "one try plus three retries");
    // 10 + min(30, 20) + min(90, 20)
    assert_eq!(clock.now() - start, chrono::Duration::seconds(50));
    assert_eq!(
        e.state().output,
        Some(json!({"a": 1, "err": {"Error": "Boom", "Cause": "bad"}}))
    );
}

#[test]
fn task_token_pause_serialise_resume() {
    let sm = parse_definition(&json!({
        "StartAt": "Ask",
        "States": {
            "Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token", "who.$": "$.who"}},
                    "ResultPath": "$.answer", "Next": "Done"},
            "Done": {"Type": "Pass", "End": true}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Scripted {
        f: |_r: &TaskRequest<'_>| TaskOutcome::Pending {
            submitted: json!({"MessageId": "m-1"}),
        },
        seen: vec![],
    };
    let mut e = Execution::new(json!({"who": "ada"}), ExecutionInfo::default(), 9, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    let (_, params, token) = tasks.seen[0].clone();
    let token = token.expect("a token is issued");
    assert_eq!(params["MessageBody"]["token"], json!(token));
    assert_eq!(types(&e).last().unwrap(), "TaskSubmitted");

    // Persist and drop everything.
    let saved = serde_json::to_string(e.state()).unwrap();
    drop(e);
    let state: ExecutionState = serde_json::from_str(&saved).unwrap();
    let mut e = Execution::from_state(state);
    assert!(e.send_task_success("not-the-token", json!(1)).is_err());
    e.send_task_success(&token, json!({"ok": true})).unwrap();
    // The handler must not be called again on replay.
    let mut never = Scripted {
        f: |_r: &TaskRequest<'_>| panic!("task re-invoked during replay"),
        seen: vec![],
    };
    assert_eq!(e.run(&sm, &mut never, &clock), Status::Succeeded);
    assert_eq!(
        e.state().output,
        Some(json!({"who": "ada", "answer": {"ok": true}}))
    );
    let t = types(&e);
    assert_eq!(
        t,
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "TaskStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
}

#[test]
fn heartbeat_timeout_fails_a_pending_task() {
    let sm = parse_definition(&json!({
        "StartAt": "Ask",
        "States": {"Ask": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
                           "HeartbeatSeconds": 30, "Parameters": {"t.$": "$$.Task.Token"}, "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Scripted {
        f: |_r: &TaskRequest<'_>| TaskOutcome::Pending {
            submitted: json!({}),
        },
        seen: vec![],
    };
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 3, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    assert!(!e.check_task_timeouts(clock.now()));
    clock.advance(31.0);
    assert!(e.check_task_timeouts(clock.now()));
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Failed);
    assert_eq!(e.state().error.as_deref(), Some("States.HeartbeatTimeout"));
    assert!(types(&e).contains(&"TaskTimedOut".to_string()));
}

#[test]
fn parallel_and_map_with_item_selector() {
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": true}}},
                {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": 2, "End": true}}}
            ], "ResultPath": "$.par", "Next": "M"},
            "M": {"Type": "Map", "ItemsPath": "$.xs",
                  "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
                  "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
                  "ResultPath": "$.out", "End": true}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(
        json!({"xs": ["a", "b"]}),
        ExecutionInfo::default(),
        1,
        &clock,
    );
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Succeeded);
    assert_eq!(
        e.state().output,
        Some(json!({"xs": ["a", "b"], "par": [1, 2],
                    "out": [{"i": 0, "v": "a"}, {"i": 1, "v": "b"}]}))
    );
    let t = types(&e);
    assert!(t.contains(&"ParallelStateStarted".to_string()));
    assert_eq!(
        t.iter().filter(|x| *x == "MapIterationSucceeded").count(),
        2
    );
}

#[test]
fn map_tolerated_failures() {
    let def = |tolerated: u64| {
        parse_definition(&json!({
            "StartAt": "M",
            "States": {"M": {"Type": "Map", "ToleratedFailureCount": tolerated,
                "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "C", "States": {
                        "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "F"}], "Default": "OK"},
                        "F": {"Type": "Fail", "Error": "Two"},
                        "OK": {"Type": "Succeed"}}},
                "End": true}}
        }))
        .unwrap()
    };
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!([1, 2, 3]), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&def(1), &mut NoTasks, &clock), Status::Succeeded);
    let mut e = Execution::new(json!([1, 2, 3]), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&def(0), &mut NoTasks, &clock), Status::Failed);
    assert_eq!(e.state().error.as_deref(), Some("Two"));
}

#[test]
fn runtime_errors_are_not_caught_by_states_all() {
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Parameters": {"x.$": "$.missing"},
                  "End": true}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Failed);
    assert_eq!(e.state().error.as_deref(), Some("States.Runtime"));
    assert_eq!(
        e.state().cause.as_deref(),
        Some("An error occurred while executing the state 'P' (entered at the event id #2). The JSONPath '$.missing' specified for the field 'x.$' could not be found in the input '{}'")
    );
}

#[test]
fn data_limit_on_task_results() {
    let sm = parse_definition(&json!({
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let big = "x".repeat(300_000);
    let mut tasks = Scripted {
        f: move |_r: &TaskRequest<'_>| TaskOutcome::Succeeded(json!(big.clone())),
        seen: vec![],
    };
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Failed);
    assert_eq!(e.state().error.as_deref(), Some("States.DataLimitExceeded"));
}

#[test]
fn variables_are_assigned_after_output() {
    let sm = parse_definition(&json!({
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"x": 1}, "Next": "B"},
            "B": {"Type": "Pass", "Parameters": {"old.$": "$x"}, "Assign": {"x": 2}, "Next": "C"},
            "C": {"Type": "Pass", "Parameters": {"old.$": "$.old", "now.$": "$x"}, "End": true}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Succeeded);
    assert_eq!(e.state().output, Some(json!({"old": 1, "now": 2})));
}

#[test]
fn stop_aborts() {
    let sm = parse_definition(&json!({
        "StartAt": "Ask",
        "States": {"Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Scripted {
        f: |_r: &TaskRequest<'_>| TaskOutcome::Pending {
            submitted: json!({}),
        },
        seen: vec![],
    };
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    e.run(&sm, &mut tasks, &clock);
    e.stop(Some("Stopped".into()), None, &clock);
    assert_eq!(e.state().status, Status::Aborted);
    assert_eq!(types(&e).last().unwrap(), "ExecutionAborted");
}

#[test]
fn result_path_on_a_scalar_input_is_a_match_failure() {
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Result": 1, "ResultPath": "$.a.b", "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!("text"), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Failed);
    assert_eq!(
        e.state().error.as_deref(),
        Some("States.ResultPathMatchFailure")
    );
}

#[test]
fn jsonata_states_variables_and_assign() {
    let sm = parse_definition(&json!({
        "QueryLanguage": "JSONata",
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"total": "{% $sum($states.input.xs) %}"},
                  "Output": {"n": "{% $count($states.input.xs) %}"}, "Next": "B"},
            "B": {"Type": "Choice", "Choices": [
                {"Condition": "{% $total > 5 %}", "Next": "Big",
                 "Output": {"total": "{% $total %}", "n": "{% $states.input.n %}"}}
            ], "Default": "Small"},
            "Big": {"Type": "Succeed"},
            "Small": {"Type": "Fail", "Error": "Small", "Cause": "{% 'total ' & $string($total) %}"}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(
        json!({"xs": [1, 2, 3]}),
        ExecutionInfo::default(),
        1,
        &clock,
    );
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Succeeded);
    assert_eq!(e.state().output, Some(json!({"total": 6, "n": 3})));
    let mut e = Execution::new(json!({"xs": [1, 2]}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Failed);
    assert_eq!(e.state().cause.as_deref(), Some("total 3"));
}

#[test]
fn jsonata_undefined_output_is_a_query_evaluation_error() {
    let sm = parse_definition(&json!({
        "QueryLanguage": "JSONata",
        "StartAt": "S",
        "States": {"S": {"Type": "Pass", "Output": "{% $nope %}", "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Failed);
    assert_eq!(
        e.state().error.as_deref(),
        Some("States.QueryEvaluationError")
    );
    assert_eq!(
        types(&e),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "EvaluationFailed",
            "ExecutionFailed"
        ]
    );
    let ev = e.state().history[2].to_json();
    assert_eq!(ev["evaluationFailedEventDetails"]["location"], "Output");
}

#[test]
fn choice_operators() {
    let sm = parse_definition(&json!({
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [
                {"And": [
                    {"Variable": "$.name", "StringMatches": "log-*.txt"},
                    {"Variable": "$.at", "TimestampGreaterThan": "2024-01-01T00:00:00Z"},
                    {"Not": {"Variable": "$.missing", "IsPresent": true}},
                    {"Variable": "$.n", "NumericLessThanEqualsPath": "$.max"}
                ], "Next": "Yes"}
            ], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": "yes", "End": true},
            "No": {"Type": "Pass", "Result": "no", "End": true}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let run = |input: Value| {
        let mut e = Execution::new(input, ExecutionInfo::default(), 1, &clock);
        e.run(&sm, &mut NoTasks, &clock);
        e.state().output.clone()
    };
    assert_eq!(
        run(json!({"name": "log-1.txt", "at": "2024-02-01T00:00:00Z", "n": 2, "max": 2})),
        Some(json!("yes"))
    );
    assert_eq!(
        run(json!({"name": "log-1.csv", "at": "2024-02-01T00:00:00Z", "n": 2, "max": 2})),
        Some(json!("no"))
    );
}

#[test]
fn resumed_executions_replay_deterministically() {
    let sm = parse_definition(&json!({
        "StartAt": "Stamp",
        "States": {
            "Stamp": {"Type": "Pass", "Parameters": {"t.$": "$$.State.EnteredTime", "id.$": "States.UUID()"}, "Next": "Ask"},
            "Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {"token.$": "$$.Task.Token"}, "ResultPath": "$.reply", "End": true}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Scripted {
        f: |_r: &TaskRequest<'_>| TaskOutcome::Pending {
            submitted: json!({}),
        },
        seen: vec![],
    };
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 42, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    let before = e.state().history.clone();
    let token = tasks.seen[0].2.clone().unwrap();
    clock.advance(3600.0);
    e.send_task_success(&token, json!("ok")).unwrap();
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Succeeded);
    let after = &e.state().history;
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "replayed events are identical"
    );
    let out = e.state().output.clone().unwrap();
    assert_eq!(out["t"], json!("2024-01-01T00:00:00.000Z"));
    assert_eq!(out["reply"], json!("ok"));
    assert_eq!(tasks.seen.len(), 1, "the task was invoked once");
}

#[test]
fn checkpoint_after_every_transition_and_resume_from_storage() {
    let sm = parse_definition(&json!({
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Parameters": {"id.$": "States.UUID()", "n": 1}, "ResultPath": "$.a", "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 86400, "Next": "M"},
            "M": {"Type": "Map", "ItemsPath": "$.xs", "ItemProcessor": {"StartAt": "I",
                  "States": {"I": {"Type": "Pass", "End": true}}}, "ResultPath": "$.ys", "Next": "End"},
            "End": {"Type": "Succeed"}
        }
    }))
    .unwrap();
    let input = json!({"xs": [1, 2, 3]});
    let clock = VirtualClock::at_epoch_2024();
    let mut whole = Execution::new(input.clone(), ExecutionInfo::default(), 5, &clock);
    assert_eq!(whole.run(&sm, &mut NoTasks, &clock), Status::Succeeded);

    let clock = VirtualClock::at_epoch_2024();
    let opts = asl::RunOptions {
        checkpoint_every: Some(1),
        ..asl::RunOptions::default()
    };
    let mut stored =
        serde_json::to_string(Execution::new(input, ExecutionInfo::default(), 5, &clock).state())
            .unwrap();
    let mut runs = 0;
    loop {
        let state: ExecutionState = serde_json::from_str(&stored).unwrap();
        let mut e = Execution::from_state(state);
        let status = e.run_with(&sm, &mut NoTasks, &clock, opts);
        stored = serde_json::to_string(e.state()).unwrap();
        runs += 1;
        assert!(runs < 50, "no progress");
        if status != Status::Running {
            assert_eq!(status, Status::Succeeded);
            assert_eq!(e.state().output, whole.state().output);
            assert_eq!(e.state().history, whole.state().history);
            break;
        }
        assert_eq!(e.state().waiting, Some(asl::Waiting::Checkpoint));
    }
    assert!(runs > 5, "stopped after every transition ({runs} runs)");
}

#[test]
fn activity_tasks_wait_for_a_worker() {
    let sm = parse_definition(&json!({
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:review",
                            "HeartbeatSeconds": 60, "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Scripted {
        f: |_r: &TaskRequest<'_>| TaskOutcome::Pending {
            submitted: json!({}),
        },
        seen: vec![],
    };
    let mut e = Execution::new(json!({"doc": 1}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    assert_eq!(types(&e).last().unwrap(), "ActivityScheduled");
    let token = tasks.seen[0]
        .2
        .clone()
        .expect("activities get a task token");
    e.send_task_success(&token, json!({"approved": true}))
        .unwrap();
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Succeeded);
    assert_eq!(
        types(&e),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "ActivityScheduled",
            "ActivityStarted",
            "ActivitySucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let scheduled = e.state().history[2].to_json();
    assert_eq!(
        scheduled["activityScheduledEventDetails"]["heartbeatInSeconds"],
        60
    );
}

/// A clock that never waits: like a durable host, it pauses the execution and resumes it
/// later. Time moves only through `set`.
struct PausingClock(std::cell::Cell<chrono::DateTime<chrono::Utc>>);

impl PausingClock {
    fn at(t: chrono::DateTime<chrono::Utc>) -> Self {
        PausingClock(std::cell::Cell::new(t))
    }
    fn set(&self, t: chrono::DateTime<chrono::Utc>) {
        self.0.set(t);
    }
}

impl Clock for PausingClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.get()
    }
    fn wait_until(&self, t: chrono::DateTime<chrono::Utc>) -> bool {
        t <= self.0.get()
    }
}

fn t0() -> chrono::DateTime<chrono::Utc> {
    VirtualClock::at_epoch_2024().now()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// Serialises and restores, as a host does between runs.
fn roundtrip(e: &Execution) -> Execution {
    let text = serde_json::to_string(e.state()).unwrap();
    Execution::from_state(serde_json::from_str::<ExecutionState>(&text).unwrap())
}

fn timer(e: &Execution) -> Option<chrono::DateTime<chrono::Utc>> {
    match &e.state().waiting {
        Some(asl::Waiting::Timer { until }) => Some(*until),
        _ => None,
    }
}

fn wait_machine(extra: Value) -> asl::StateMachine {
    let mut d = json!({
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
            "Done": {"Type": "Pass", "Result": "ok", "End": true}
        }
    });
    if let (Some(d), Some(x)) = (d.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            d.insert(k.clone(), v.clone());
        }
    }
    parse_definition(&d).unwrap()
}

#[test]
fn a_resumed_wait_keeps_the_due_time_fixed_at_entry() {
    let sm = wait_machine(json!({}));
    let clock = PausingClock::at(t0());
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Running);
    let due = t0() + secs(3600);
    assert_eq!(timer(&e), Some(due));

    // Resumed early (after 10 minutes): still waiting for the same instant.
    clock.set(t0() + secs(600));
    let mut e = roundtrip(&e);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Running);
    assert_eq!(timer(&e), Some(due), "the due time must not move");
    assert_eq!(types(&e).last().unwrap(), "WaitStateEntered");
    // Resumed again, one second before: still the same.
    clock.set(due - secs(1));
    let mut e = roundtrip(&e);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Running);
    assert_eq!(timer(&e), Some(due));

    // Resumed exactly at the due time: proceeds.
    clock.set(due);
    let mut e = roundtrip(&e);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Succeeded);
    assert_eq!(e.state().output, Some(json!("ok")));
    let h = &e.state().history;
    let entered = h
        .iter()
        .find(|x| x.details.event_type() == "WaitStateEntered")
        .unwrap();
    let exited = h
        .iter()
        .find(|x| x.details.event_type() == "WaitStateExited")
        .unwrap();
    assert_eq!(entered.timestamp, t0(), "replay keeps the entry time");
    assert_eq!(exited.timestamp, due);
    assert!(h.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
}

#[test]
fn a_wait_resumed_late_proceeds_and_keeps_its_history() {
    let sm = wait_machine(json!({}));
    let clock = PausingClock::at(t0());
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Running);
    let before: Vec<_> = e.state().history.clone();
    clock.set(t0() + secs(86_400));
    let mut e = roundtrip(&e);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Succeeded);
    let h = &e.state().history;
    assert_eq!(
        &h[..before.len()],
        &before[..],
        "the paused history is unchanged"
    );
    let exited = h
        .iter()
        .find(|x| x.details.event_type() == "WaitStateExited")
        .unwrap();
    assert_eq!(exited.timestamp, t0() + secs(86_400));
    assert!(h.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
}

#[test]
fn a_retry_interval_resumed_early_keeps_its_due_time() {
    let sm = parse_definition(&json!({
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30, "MaxAttempts": 1}],
            "End": true}}
    }))
    .unwrap();
    let clock = PausingClock::at(t0());
    let mut tasks = Scripted {
        f: |_r: &TaskRequest<'_>| TaskOutcome::Failed {
            error: "Boom".into(),
            cause: None,
        },
        seen: Vec::new(),
    };
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    assert_eq!(timer(&e), Some(t0() + secs(30)));
    clock.set(t0() + secs(20));
    let mut e = roundtrip(&e);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    assert_eq!(timer(&e), Some(t0() + secs(30)));
    clock.set(t0() + secs(30));
    let mut e = roundtrip(&e);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Failed);
    assert_eq!(
        tasks.seen.len(),
        2,
        "one attempt and one retry, never re-invoked on resume"
    );
}

#[test]
fn a_wait_past_the_timeout_times_out_at_the_timeout_on_a_pausing_clock() {
    let sm = wait_machine(json!({"TimeoutSeconds": 60}));
    let clock = PausingClock::at(t0());
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(
        e.run(&sm, &mut NoTasks, &clock),
        Status::Running,
        "not timed out before the timeout instant"
    );
    let deadline = t0() + secs(60);
    assert_eq!(timer(&e), Some(deadline), "wakes at the timeout instant");

    clock.set(t0() + secs(59));
    let mut e = roundtrip(&e);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Running);
    assert_eq!(timer(&e), Some(deadline));

    // Resumed late: timed out at the deadline, the wait cut short (never exited).
    clock.set(t0() + secs(600));
    let mut e = roundtrip(&e);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::TimedOut);
    let t = types(&e);
    assert_eq!(t.last().unwrap(), "ExecutionTimedOut");
    assert!(!t.iter().any(|x| x == "WaitStateExited"));
    assert_eq!(t.iter().filter(|x| *x == "PassStateExited").count(), 1);
    assert_eq!(e.state().history.last().unwrap().timestamp, deadline);
    assert_eq!(e.state().error.as_deref(), Some("States.Timeout"));
}

#[test]
fn a_wait_past_the_timeout_on_a_virtual_clock_ends_at_the_timeout() {
    let sm = wait_machine(json!({"TimeoutSeconds": 60}));
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::TimedOut);
    assert_eq!(clock.now(), t0() + secs(60));
    assert_eq!(e.state().history.last().unwrap().timestamp, t0() + secs(60));
}
