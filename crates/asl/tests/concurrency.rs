//! Parallel branches and Map iterations that wait for task tokens progress independently:
//! every outstanding token can be answered, in any order, with the state persisted between
//! callbacks.

use asl::{
    parse_definition, Clock, Execution, ExecutionInfo, ExecutionState, Status, TaskHandler,
    TaskOutcome, TaskRequest, VirtualClock, Waiting,
};
use serde_json::{json, Value};

/// Every task waits for its token; records (state, parameters, token) of each invocation.
#[derive(Default)]
struct Callbacks {
    seen: Vec<(String, Value, String)>,
}

impl TaskHandler for Callbacks {
    fn invoke(&mut self, r: &TaskRequest<'_>) -> TaskOutcome {
        self.seen.push((
            r.state_name.to_string(),
            r.parameters.clone(),
            r.task_token.unwrap_or_default().to_string(),
        ));
        TaskOutcome::Pending {
            submitted: json!({}),
        }
    }
}

fn types(s: &ExecutionState) -> Vec<String> {
    s.history.iter().map(|h| h.details.event_type()).collect()
}

/// Persists and restores, as a host does between runs.
fn roundtrip(e: &Execution) -> Execution {
    let text = serde_json::to_string(e.state()).unwrap();
    Execution::from_state(serde_json::from_str::<ExecutionState>(&text).unwrap())
}

fn tokens(e: &Execution) -> Vec<String> {
    e.state().task_tokens().map(str::to_string).collect()
}

fn callback_task(name: &str, next: Option<&str>) -> Value {
    let mut t = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token", "who": name}},
    });
    match next {
        Some(n) => t["Next"] = json!(n),
        None => t["End"] = json!(true),
    }
    t
}

fn parallel_of(n: usize) -> asl::StateMachine {
    let branches: Vec<Value> = (0..n)
        .map(|i| {
            let name = format!("Ask{i}");
            json!({"StartAt": name, "States": {
                name.clone(): callback_task(&name, Some("Shape")),
                "Shape": {"Type": "Pass", "Parameters": {"branch": i, "answer.$": "$"}, "End": true}
            }})
        })
        .collect();
    parse_definition(&json!({
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": branches, "Next": "Done"},
                   "Done": {"Type": "Pass", "End": true}}
    }))
    .unwrap()
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for pos in 0..=p.len() {
            let mut q = p.clone();
            q.insert(pos, n - 1);
            out.push(q);
        }
    }
    out
}

/// Runs a Parallel of `n` callback branches, answering the tokens in `order`, persisting the
/// state before and after every callback.
fn answer_parallel_in_order(n: usize, order: &[usize]) {
    let sm = parallel_of(n);
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Callbacks::default();
    let mut e = Execution::new(json!({"x": 1}), ExecutionInfo::default(), 7, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    // Every branch is waiting, each with its own token.
    assert_eq!(tasks.seen.len(), n, "every branch started");
    let issued: Vec<String> = tasks.seen.iter().map(|s| s.2.clone()).collect();
    assert_eq!(
        tokens(&e),
        issued,
        "all tokens outstanding, in branch order"
    );
    let mut distinct = issued.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), n, "tokens are distinct");
    // `waiting` keeps meaning the first wait.
    assert!(matches!(&e.state().waiting, Some(Waiting::Task { token, .. }) if *token == issued[0]));
    for (k, &b) in order.iter().enumerate() {
        let before = e.state().history.clone();
        let mut r = roundtrip(&e);
        r.send_task_success(&issued[b], json!({"reply": b}))
            .unwrap();
        // Answered once: a second answer is refused.
        assert!(r.send_task_success(&issued[b], json!(0)).is_err());
        let mut r = roundtrip(&r);
        let status = r.run(&sm, &mut tasks, &clock);
        let after = &r.state().history;
        assert_eq!(&after[..before.len()], &before[..], "history only grows");
        let left: Vec<String> = order[k + 1..].iter().map(|&i| issued[i].clone()).collect();
        let mut expected = left.clone();
        expected.sort_by_key(|t| issued.iter().position(|x| x == t));
        assert_eq!(tokens(&r), expected, "after answering {:?}", &order[..=k]);
        if k + 1 < n {
            assert_eq!(status, Status::Running);
        } else {
            assert_eq!(status, Status::Succeeded);
        }
        e = r;
    }
    assert_eq!(tasks.seen.len(), n, "no task was invoked twice");
    let out = e.state().output.clone().unwrap();
    let want: Vec<Value> = (0..n)
        .map(|i| json!({"branch": i, "answer": {"reply": i}}))
        .collect();
    assert_eq!(out, Value::Array(want));
    let t = types(e.state());
    assert_eq!(t.iter().filter(|x| *x == "TaskSucceeded").count(), n);
    assert_eq!(t.iter().filter(|x| *x == "TaskSubmitted").count(), n);
    assert_eq!(t.last().unwrap(), "ExecutionSucceeded");
    // Ids and links are consistent.
    for (i, h) in e.state().history.iter().enumerate() {
        assert_eq!(h.id, i as u64 + 1);
        assert!(h.previous_event_id < h.id);
    }
}

#[test]
fn parallel_of_two_callbacks_in_every_order() {
    for order in permutations(2) {
        answer_parallel_in_order(2, &order);
    }
}

#[test]
fn parallel_of_three_callbacks_in_every_order() {
    let all = permutations(3);
    assert_eq!(all.len(), 6);
    for order in all {
        answer_parallel_in_order(3, &order);
    }
}

#[test]
fn a_branch_failure_aborts_the_waiting_branch_and_invalidates_its_token() {
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [
                {"StartAt": "A", "States": {"A": callback_task("A", None)}},
                {"StartAt": "B", "States": {"B": callback_task("B", None)}}
            ], "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "After"}],
             "Next": "After"},
            "After": callback_task("After", None)
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Callbacks::default();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    let (a, b) = (tasks.seen[0].2.clone(), tasks.seen[1].2.clone());
    let mut e = roundtrip(&e);
    e.send_task_failure(&b, Some("Boom".into()), Some("b broke".into()))
        .unwrap();
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    // The Parallel failed and was caught; only the next state's token is outstanding.
    let after = tasks.seen[2].2.clone();
    assert_eq!(tasks.seen[2].0, "After");
    assert_eq!(tokens(&e), vec![after.clone()]);
    let mut e = roundtrip(&e);
    assert_eq!(
        e.send_task_success(&a, json!(1)),
        Err(asl::ExecError::InvalidToken(a.clone()))
    );
    assert!(e.send_task_heartbeat(&a, &clock).is_err());
    let t = types(e.state());
    let failed = t.iter().position(|x| x == "TaskFailed").unwrap();
    let aborted: Vec<usize> = t
        .iter()
        .enumerate()
        .filter(|(_, x)| *x == "TaskStateAborted")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        aborted.len(),
        2,
        "the failed and the waiting task are aborted: {t:?}"
    );
    assert!(aborted.iter().all(|&i| i > failed));
    let pf = t.iter().position(|x| x == "ParallelStateFailed").unwrap();
    assert!(aborted.iter().all(|&i| i < pf));
    e.send_task_success(&after, json!("fine")).unwrap();
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Succeeded);
    assert_eq!(
        e.state().output,
        Some(json!("fine")),
        "the caught error flowed into After"
    );
    assert_eq!(tasks.seen[2].1["MessageBody"]["who"], json!("After"));
}

#[test]
fn a_failing_branch_fails_the_parallel_while_another_waits() {
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": [
            {"StartAt": "A", "States": {"A": callback_task("A", None)}},
            {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope", "Cause": "no"}}}
        ], "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Callbacks::default();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Failed);
    assert_eq!(e.state().error.as_deref(), Some("Nope"));
    assert!(tokens(&e).is_empty());
    let a = tasks.seen[0].2.clone();
    assert_eq!(
        e.send_task_success(&a, json!(1)),
        Err(asl::ExecError::NotRunning("FAILED"))
    );
    let t = types(e.state());
    assert!(t.contains(&"TaskStateAborted".to_string()), "{t:?}");
}

fn map_of_callbacks(max_concurrency: u64) -> asl::StateMachine {
    parse_definition(&json!({
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": max_concurrency,
            "ItemProcessor": {"StartAt": "Ask", "States": {"Ask": {
                "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token", "item.$": "$"}},
                "End": true}}},
            "End": true}}
    }))
    .unwrap()
}

/// Runs a Map over five callback items, always answering the most recently started
/// outstanding task first; returns the largest number of outstanding tokens seen.
fn run_map(max_concurrency: u64) -> usize {
    let sm = map_of_callbacks(max_concurrency);
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Callbacks::default();
    let mut e = Execution::new(
        json!({"items": [10, 11, 12, 13, 14]}),
        ExecutionInfo::default(),
        3,
        &clock,
    );
    let mut status = e.run(&sm, &mut tasks, &clock);
    let mut most = 0;
    let mut rounds = 0;
    while status == Status::Running {
        rounds += 1;
        assert!(rounds <= 5, "one callback per item");
        let out = tokens(&e);
        most = most.max(out.len());
        let last = out.last().unwrap().clone();
        let item = tasks
            .seen
            .iter()
            .find(|s| s.2 == last)
            .map(|s| s.1["MessageBody"]["item"].clone())
            .unwrap();
        let mut r = roundtrip(&e);
        r.send_task_success(&last, json!({"done": item})).unwrap();
        let mut r = roundtrip(&r);
        let before = r.state().history.clone();
        status = r.run(&sm, &mut tasks, &clock);
        assert_eq!(&r.state().history[..before.len()], &before[..]);
        e = r;
    }
    assert_eq!(status, Status::Succeeded);
    assert_eq!(tasks.seen.len(), 5, "each item's task ran once");
    assert_eq!(
        e.state().output,
        Some(json!([{"done": 10}, {"done": 11}, {"done": 12}, {"done": 13}, {"done": 14}]))
    );
    let t = types(e.state());
    assert_eq!(
        t.iter().filter(|x| *x == "MapIterationSucceeded").count(),
        5
    );
    assert_eq!(t.last().unwrap(), "ExecutionSucceeded");
    most
}

#[test]
fn map_over_callbacks_without_a_concurrency_limit() {
    assert_eq!(run_map(0), 5, "every item waits at once");
}

#[test]
fn map_over_callbacks_with_max_concurrency_two() {
    assert_eq!(run_map(2), 2, "at most two items in flight");
}

#[test]
fn map_with_max_concurrency_one_runs_items_one_at_a_time() {
    assert_eq!(run_map(1), 1);
}

#[test]
fn heartbeat_timeout_of_one_branch() {
    let mut slow = callback_task("Slow", None);
    slow["HeartbeatSeconds"] = json!(10);
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": [
            {"StartAt": "Calm", "States": {"Calm": callback_task("Calm", None)}},
            {"StartAt": "Slow", "States": {"Slow": slow}}
        ], "End": true}}
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Callbacks::default();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    let (calm, slow_t) = (tasks.seen[0].2.clone(), tasks.seen[1].2.clone());
    assert_eq!(
        e.state().next_due(),
        Some(clock.now() + chrono::Duration::seconds(10))
    );
    clock.advance(6.0);
    let mut e = roundtrip(&e);
    e.send_task_heartbeat(&slow_t, &clock).unwrap();
    let mut e = roundtrip(&e);
    clock.advance(6.0);
    assert!(
        !e.check_task_timeouts(clock.now()),
        "the heartbeat moved the deadline"
    );
    e.send_task_success(&calm, json!("calm")).unwrap();
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    assert_eq!(tokens(&e), vec![slow_t.clone()]);
    clock.advance(5.0);
    let mut e = roundtrip(&e);
    assert!(e.check_task_timeouts(clock.now()));
    assert!(tokens(&e).is_empty());
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Failed);
    assert_eq!(e.state().error.as_deref(), Some("States.HeartbeatTimeout"));
    assert!(types(e.state()).contains(&"TaskTimedOut".to_string()));
}

/// A clock that never waits (a durable host): time moves only through `set`.
struct PausingClock(std::cell::Cell<chrono::DateTime<chrono::Utc>>);

impl Clock for PausingClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.get()
    }
    fn wait_until(&self, t: chrono::DateTime<chrono::Utc>) -> bool {
        t <= self.0.get()
    }
}

#[test]
fn a_timer_branch_and_a_callback_branch_wait_together() {
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": [
            {"StartAt": "Ask", "States": {"Ask": callback_task("Ask", None)}},
            {"StartAt": "Later", "States": {"Later": {"Type": "Wait", "Seconds": 60, "Next": "Long"},
                                           "Long": {"Type": "Wait", "Seconds": 3600, "End": true}}}
        ], "End": true}}
    }))
    .unwrap();
    let t0 = VirtualClock::at_epoch_2024().now();
    let clock = PausingClock(std::cell::Cell::new(t0));
    let mut tasks = Callbacks::default();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    let ask = tasks.seen[0].2.clone();
    let minute = t0 + chrono::Duration::seconds(60);
    assert_eq!(e.state().outstanding().len(), 2);
    assert_eq!(e.state().waiting, Some(Waiting::Timer { until: minute }));
    assert_eq!(e.state().next_due(), Some(minute));
    // The timer fires first: the callback branch keeps waiting.
    clock.0.set(minute);
    let mut e = roundtrip(&e);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    let hour = minute + chrono::Duration::seconds(3600);
    assert_eq!(tokens(&e), vec![ask.clone()]);
    assert_eq!(e.state().next_due(), Some(hour));
    // The callback arrives before the second timer.
    let mut e = roundtrip(&e);
    e.send_task_success(&ask, json!("asked")).unwrap();
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Running);
    assert_eq!(e.state().outstanding(), &[Waiting::Timer { until: hour }]);
    clock.0.set(hour);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Succeeded);
    assert_eq!(e.state().output, Some(json!(["asked", {}])));
    assert_eq!(tasks.seen.len(), 1);
}

#[test]
fn a_state_saved_before_lanes_still_loads_and_resumes() {
    // Branch 0 finished at once, branch 1 waits: what the previous engine persisted (one
    // journal in execution order, `waiting` only).
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": [
            {"StartAt": "Now", "States": {"Now": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:now", "End": true}}},
            {"StartAt": "Ask", "States": {"Ask": callback_task("Ask", None)}}
        ], "End": true}}
    }))
    .unwrap();
    struct Mixed(Vec<String>);
    impl TaskHandler for Mixed {
        fn invoke(&mut self, r: &TaskRequest<'_>) -> TaskOutcome {
            self.0.push(r.state_name.to_string());
            if r.state_name == "Now" {
                TaskOutcome::Succeeded(json!("now"))
            } else {
                TaskOutcome::Pending {
                    submitted: json!({}),
                }
            }
        }
    }
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 4, &clock);
    assert_eq!(e.run(&sm, &mut Mixed(vec![]), &clock), Status::Running);
    let Some(Waiting::Task { token, .. }) = e.state().waiting.clone() else {
        panic!("waits for a token")
    };
    let mut old = serde_json::to_value(e.state()).unwrap();
    let o = old.as_object_mut().unwrap();
    o.remove("lanes");
    o.remove("waits");
    o.remove("event_count");
    o.insert("journal".into(), json!([{"TaskSucceeded": "now"}]));
    let history_len = e.state().history.len();
    let mut e = Execution::from_state(serde_json::from_value::<ExecutionState>(old).unwrap());
    assert_eq!(e.state().outstanding().len(), 1);
    e.send_task_success(&token, json!("asked")).unwrap();
    let mut again = Mixed(vec![]);
    assert_eq!(e.run(&sm, &mut again, &clock), Status::Succeeded);
    assert!(again.0.is_empty(), "nothing re-invoked: {:?}", again.0);
    assert_eq!(e.state().output, Some(json!(["now", "asked"])));
    let t = types(e.state());
    assert_eq!(t.len(), history_len + 4, "{t:?}");
    assert_eq!(
        &t[history_len..],
        [
            "TaskSucceeded",
            "TaskStateExited",
            "ParallelStateExited",
            "ExecutionSucceeded"
        ]
    );
}

#[test]
fn checkpoints_between_callbacks_keep_every_token() {
    let sm = parallel_of(2);
    let clock = VirtualClock::at_epoch_2024();
    let opts = asl::RunOptions {
        checkpoint_every: Some(1),
        ..asl::RunOptions::default()
    };
    let mut tasks = Callbacks::default();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 2, &clock);
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 40);
        e = roundtrip(&e);
        e.run_with(&sm, &mut tasks, &clock, opts);
        if e.state().waiting != Some(Waiting::Checkpoint) {
            break;
        }
    }
    assert_eq!(tokens(&e).len(), 2);
    let first = tokens(&e)[1].clone();
    e.send_task_success(&first, json!(1)).unwrap();
    let mut answered = false;
    loop {
        runs += 1;
        assert!(runs < 80);
        e = roundtrip(&e);
        let status = e.run_with(&sm, &mut tasks, &clock, opts);
        if status != Status::Running {
            break;
        }
        if e.state().waiting == Some(Waiting::Checkpoint) {
            continue;
        }
        assert!(!answered);
        let t = tokens(&e);
        assert_eq!(t.len(), 1);
        e.send_task_success(&t[0], json!(0)).unwrap();
        answered = true;
    }
    assert_eq!(e.state().status, Status::Succeeded);
    assert_eq!(tasks.seen.len(), 2);
    assert_eq!(
        e.state().output,
        Some(json!([{"branch": 0, "answer": 0}, {"branch": 1, "answer": 1}]))
    );
}

#[test]
fn a_failing_iteration_aborts_the_waiting_ones() {
    struct FailOne;
    impl TaskHandler for FailOne {
        fn invoke(&mut self, r: &TaskRequest<'_>) -> TaskOutcome {
            if r.parameters["MessageBody"]["item"] == json!(1) {
                TaskOutcome::Failed {
                    error: "Item.Broken".into(),
                    cause: None,
                }
            } else {
                TaskOutcome::Pending {
                    submitted: json!({}),
                }
            }
        }
    }
    let sm = map_of_callbacks(0);
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(
        json!({"items": [0, 1, 2]}),
        ExecutionInfo::default(),
        1,
        &clock,
    );
    assert_eq!(e.run(&sm, &mut FailOne, &clock), Status::Failed);
    assert_eq!(e.state().error.as_deref(), Some("Item.Broken"));
    assert!(tokens(&e).is_empty());
    let t = types(e.state());
    assert_eq!(t.iter().filter(|x| *x == "MapIterationAborted").count(), 1);
    assert_eq!(t.iter().filter(|x| *x == "MapIterationStarted").count(), 2);
    assert!(t.contains(&"TaskStateAborted".to_string()));
    assert!(
        e.state().lanes.keys().all(|k| k.is_empty()),
        "no lane left behind"
    );
}
