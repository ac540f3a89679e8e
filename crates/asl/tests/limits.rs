//! The history limit and the error names Step Functions raises for path and branch failures.

use asl::{
    parse_definition, Execution, ExecutionInfo, NoTasks, RunOptions, Status, TaskHandler,
    TaskOutcome, TaskRequest, VirtualClock,
};
use serde_json::json;

const LIMIT_CAUSE: &str = "The execution reached the maximum number of history events (25000).";

fn spin() -> asl::StateMachine {
    parse_definition(&json!({
        "StartAt": "Loop",
        "States": {
            "Loop": {"Type": "Choice", "Choices": [{"Variable": "$.spin", "BooleanEquals": true, "Next": "Loop"}],
                     "Default": "Stop"},
            "Stop": {"Type": "Succeed"}
        }
    }))
    .unwrap()
}

#[test]
fn a_runaway_loop_fails_with_event_25000() {
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({"spin": true}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&spin(), &mut NoTasks, &clock), Status::Failed);
    let s = e.state();
    assert_eq!(s.error.as_deref(), Some("States.Runtime"));
    assert_eq!(s.cause.as_deref(), Some(LIMIT_CAUSE));
    // As AWS records it: 24,999 events of the machine, then ExecutionFailed as #25000.
    assert_eq!(s.history.len(), 25_000);
    let last = &s.history[24_999];
    assert_eq!(last.id, 25_000);
    assert_eq!(last.previous_event_id, 24_999);
    assert_eq!(last.details.event_type(), "ExecutionFailed");
    assert_eq!(s.history[24_998].details.event_type(), "ChoiceStateExited");
    assert_eq!(s.event_count, 25_000);
}

#[test]
fn the_limit_holds_without_a_recorded_history() {
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({"spin": true}), ExecutionInfo::default(), 1, &clock);
    let opts = RunOptions {
        record_history: false,
        ..RunOptions::default()
    };
    assert_eq!(
        e.run_with(&spin(), &mut NoTasks, &clock, opts),
        Status::Failed
    );
    assert_eq!(e.state().cause.as_deref(), Some(LIMIT_CAUSE));
    assert_eq!(e.state().event_count, 25_000);
}

#[test]
fn no_task_is_started_past_the_limit_even_inside_a_tolerant_map() {
    struct Count(u32);
    impl TaskHandler for Count {
        fn invoke(&mut self, _r: &TaskRequest<'_>) -> TaskOutcome {
            self.0 += 1;
            TaskOutcome::Succeeded(json!(1))
        }
    }
    // Each item: MapIterationStarted, TaskStateEntered, LambdaFunctionScheduled/Started/
    // Succeeded, TaskStateExited, MapIterationSucceeded = 7 events.
    let sm = parse_definition(&json!({
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ToleratedFailurePercentage": 100,
            "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": true}}},
            "End": true}}
    }))
    .unwrap();
    let items: Vec<u32> = (0..5000).collect();
    let clock = VirtualClock::at_epoch_2024();
    let mut tasks = Count(0);
    let mut e = Execution::new(json!(items), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut tasks, &clock), Status::Failed);
    assert_eq!(e.state().cause.as_deref(), Some(LIMIT_CAUSE));
    assert_eq!(e.state().history.len(), 25_000);
    // ExecutionStarted, MapStateEntered, MapStateStarted, then 7 per item.
    assert_eq!(tasks.0, (24_999 - 3) / 7 + 1);
}

#[test]
fn a_missing_parameters_path_is_a_runtime_error_not_caught_by_states_all() {
    // Recorded AWS executions report States.Runtime here (the specification's
    // States.ParameterPathFailure is not what the service raises).
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {
            "P": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                  "Parameters": {"x.$": "$.missing"},
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": true},
            "Caught": {"Type": "Succeed"}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({"a": 1}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Failed);
    assert_eq!(e.state().error.as_deref(), Some("States.Runtime"));
    let cause = e.state().cause.clone().unwrap();
    assert!(cause.contains(
        "The JSONPath '$.missing' specified for the field 'x.$' could not be found in the input '{\"a\":1}'"
    ), "{cause}");
}

#[test]
fn a_failed_branch_fails_the_parallel_with_its_own_error() {
    // As the recorded AWS executions show: the Catch sees the branch's error, not
    // States.BranchFailed.
    let sm = parse_definition(&json!({
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [
                    {"StartAt": "Ok", "States": {"Ok": {"Type": "Pass", "End": true}}},
                    {"StartAt": "No", "States": {"No": {"Type": "Fail", "Error": "Custom.Error", "Cause": "why"}}}],
                  "Catch": [{"ErrorEquals": ["States.BranchFailed"], "Next": "Wrong"},
                            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Right"}],
                  "End": true},
            "Wrong": {"Type": "Fail", "Error": "WrongCatcher"},
            "Right": {"Type": "Succeed"}
        }
    }))
    .unwrap();
    let clock = VirtualClock::at_epoch_2024();
    let mut e = Execution::new(json!({}), ExecutionInfo::default(), 1, &clock);
    assert_eq!(e.run(&sm, &mut NoTasks, &clock), Status::Succeeded);
    assert_eq!(
        e.state().output,
        Some(json!({"err": {"Error": "Custom.Error", "Cause": "why"}}))
    );
}
