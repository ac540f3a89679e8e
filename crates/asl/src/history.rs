//! Execution history events shaped like Step Functions' `GetExecutionHistory`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The type of a state, as used in event type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum StateType {
    Pass,
    Task,
    Choice,
    Wait,
    Succeed,
    Fail,
    Parallel,
    Map,
}

impl StateType {
    /// `"Pass"`, `"Task"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            StateType::Pass => "Pass",
            StateType::Task => "Task",
            StateType::Choice => "Choice",
            StateType::Wait => "Wait",
            StateType::Succeed => "Succeed",
            StateType::Fail => "Fail",
            StateType::Parallel => "Parallel",
            StateType::Map => "Map",
        }
    }
}

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// 1-based id.
    pub id: u64,
    /// Id of the event this one follows (0 for none).
    pub previous_event_id: u64,
    /// When it happened (from the clock).
    pub timestamp: DateTime<Utc>,
    /// Type and details.
    pub details: Details,
}

/// `ExecutionStarted` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ExecutionStartedDetails {
    pub input: Value,
    pub role_arn: String,
    pub state_machine_arn: String,
}

/// An error name and cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ErrorCause {
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// `TaskScheduled` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TaskScheduledDetails {
    pub resource_type: String,
    pub resource: String,
    pub region: String,
    /// Shared with the task's request.
    pub parameters: Arc<Value>,
    pub timeout_in_seconds: Option<u64>,
    pub heartbeat_in_seconds: Option<u64>,
}

/// `TaskStarted` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TaskResource {
    pub resource_type: String,
    pub resource: String,
}

/// `TaskSubmitted` / `TaskSucceeded` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TaskOutput {
    pub resource_type: String,
    pub resource: String,
    /// Shared with the journal and the state's result.
    pub output: Arc<Value>,
}

/// `TaskFailed` / `TaskTimedOut` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TaskFailure {
    pub event_type: String,
    pub resource_type: String,
    pub resource: String,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// `LambdaFunctionScheduled` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LambdaScheduled {
    pub resource: String,
    pub input: Value,
    pub timeout_in_seconds: Option<u64>,
}

/// `LambdaFunctionFailed` / `LambdaFunctionTimedOut` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LambdaFailure {
    pub event_type: String,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// `ActivityScheduled` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ActivityScheduledDetails {
    pub resource: String,
    pub input: Value,
    pub timeout_in_seconds: Option<u64>,
    pub heartbeat_in_seconds: Option<u64>,
}

/// `EvaluationFailed` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EvaluationFailure {
    pub error: String,
    pub cause: String,
    pub location: Option<String>,
    pub state: Arc<str>,
}

/// `MapIteration*` details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MapIterationDetails {
    pub event_type: String,
    pub name: Arc<str>,
    pub index: usize,
}

/// Event type with its details. Large payloads are boxed so that a history entry stays small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Details {
    ExecutionStarted(Box<ExecutionStartedDetails>),
    ExecutionSucceeded {
        output: Box<Value>,
    },
    ExecutionFailed(Box<ErrorCause>),
    ExecutionTimedOut(Box<ErrorCause>),
    ExecutionAborted(Box<ErrorCause>),
    /// `<Type>StateEntered`.
    StateEntered {
        state_type: StateType,
        name: Arc<str>,
        input: Arc<Value>,
    },
    /// `<Type>StateExited`.
    StateExited {
        state_type: StateType,
        name: Arc<str>,
        output: Arc<Value>,
        assigned: Option<Box<Value>>,
    },
    /// `<Type>StateAborted` (no details).
    StateAborted {
        state_type: StateType,
    },
    /// Events without details (`ParallelStateStarted`, `MapStateSucceeded`, ...).
    Plain {
        event_type: String,
    },
    MapStateStarted {
        length: usize,
    },
    MapIteration(Box<MapIterationDetails>),
    MapRunStarted {
        map_run_arn: String,
    },
    MapRunFailed(Box<ErrorCause>),
    TaskScheduled(Box<TaskScheduledDetails>),
    TaskStarted(Box<TaskResource>),
    TaskSubmitted(Box<TaskOutput>),
    TaskSucceeded(Box<TaskOutput>),
    /// `TaskFailed` / `TaskTimedOut`.
    TaskFailed(Box<TaskFailure>),
    LambdaFunctionScheduled(Box<LambdaScheduled>),
    LambdaFunctionStarted,
    LambdaFunctionSucceeded {
        output: Box<Value>,
    },
    /// `LambdaFunctionFailed` / `LambdaFunctionTimedOut`.
    LambdaFunctionFailed(Box<LambdaFailure>),
    /// JSONata evaluation failure.
    EvaluationFailed(Box<EvaluationFailure>),
    ActivityScheduled(Box<ActivityScheduledDetails>),
    /// A worker took the activity task.
    ActivityStarted,
    ActivitySucceeded {
        output: Box<Value>,
    },
    /// `ActivityFailed` / `ActivityTimedOut` (same shape as the Lambda failure details).
    ActivityFailed(Box<LambdaFailure>),
}

impl Details {
    /// The `type` field.
    pub fn event_type(&self) -> String {
        match self {
            Details::ExecutionStarted(_) => "ExecutionStarted".into(),
            Details::ExecutionSucceeded { .. } => "ExecutionSucceeded".into(),
            Details::ExecutionFailed(_) => "ExecutionFailed".into(),
            Details::ExecutionTimedOut(_) => "ExecutionTimedOut".into(),
            Details::ExecutionAborted(_) => "ExecutionAborted".into(),
            Details::StateEntered { state_type, .. } => {
                format!("{}StateEntered", state_type.as_str())
            }
            Details::StateExited { state_type, .. } => {
                format!("{}StateExited", state_type.as_str())
            }
            Details::StateAborted { state_type } => format!("{}StateAborted", state_type.as_str()),
            Details::Plain { event_type } => event_type.clone(),
            Details::MapStateStarted { .. } => "MapStateStarted".into(),
            Details::MapIteration(d) => d.event_type.clone(),
            Details::MapRunStarted { .. } => "MapRunStarted".into(),
            Details::MapRunFailed(_) => "MapRunFailed".into(),
            Details::TaskScheduled(_) => "TaskScheduled".into(),
            Details::TaskStarted(_) => "TaskStarted".into(),
            Details::TaskSubmitted(_) => "TaskSubmitted".into(),
            Details::TaskSucceeded(_) => "TaskSucceeded".into(),
            Details::TaskFailed(d) => d.event_type.clone(),
            Details::LambdaFunctionScheduled(_) => "LambdaFunctionScheduled".into(),
            Details::LambdaFunctionStarted => "LambdaFunctionStarted".into(),
            Details::LambdaFunctionSucceeded { .. } => "LambdaFunctionSucceeded".into(),
            Details::LambdaFunctionFailed(d) => d.event_type.clone(),
            Details::EvaluationFailed(_) => "EvaluationFailed".into(),
            Details::ActivityScheduled(_) => "ActivityScheduled".into(),
            Details::ActivityStarted => "ActivityStarted".into(),
            Details::ActivitySucceeded { .. } => "ActivitySucceeded".into(),
            Details::ActivityFailed(d) => d.event_type.clone(),
        }
    }
}

fn text(v: &Value) -> Value {
    Value::String(serde_json::to_string(v).unwrap_or_default())
}

fn put_opt(m: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(s) = v {
        m.insert(k.into(), Value::String(s.clone()));
    }
}

/// Formats a timestamp the way Step Functions does (`2024-01-01T00:00:00.000Z`).
pub fn format_ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl HistoryEvent {
    /// The event as GetExecutionHistory returns it (input/output as JSON text).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "timestamp".into(),
            Value::String(format_ts(&self.timestamp)),
        );
        m.insert("type".into(), Value::String(self.details.event_type()));
        m.insert("id".into(), Value::from(self.id));
        m.insert(
            "previousEventId".into(),
            Value::from(self.previous_event_id),
        );
        let (key, det): (&str, Value) = match &self.details {
            Details::ExecutionStarted(d) => (
                "executionStartedEventDetails",
                json!({"input": text(&d.input), "inputDetails": {"truncated": false},
                       "roleArn": d.role_arn}),
            ),
            Details::ExecutionSucceeded { output } => (
                "executionSucceededEventDetails",
                json!({"output": text(output), "outputDetails": {"truncated": false}}),
            ),
            Details::ExecutionFailed(d)
            | Details::ExecutionTimedOut(d)
            | Details::ExecutionAborted(d)
            | Details::MapRunFailed(d) => {
                let k = match &self.details {
                    Details::ExecutionFailed(_) => "executionFailedEventDetails",
                    Details::ExecutionTimedOut(_) => "executionTimedOutEventDetails",
                    Details::ExecutionAborted(_) => "executionAbortedEventDetails",
                    _ => "mapRunFailedEventDetails",
                };
                let mut m = Map::new();
                put_opt(&mut m, "error", &d.error);
                put_opt(&mut m, "cause", &d.cause);
                (k, Value::Object(m))
            }
            Details::StateEntered { name, input, .. } => (
                "stateEnteredEventDetails",
                json!({"name": &**name, "input": text(input), "inputDetails": {"truncated": false}}),
            ),
            Details::StateExited {
                name,
                output,
                assigned,
                ..
            } => {
                let mut d = json!({"name": &**name, "output": text(output),
                                   "outputDetails": {"truncated": false}});
                if let (Some(a), Some(o)) = (assigned, d.as_object_mut()) {
                    let mut vars = Map::new();
                    if let Some(am) = a.as_object() {
                        for (k, v) in am {
                            vars.insert(k.clone(), text(v));
                        }
                    }
                    o.insert("assignedVariables".into(), Value::Object(vars));
                    o.insert(
                        "assignedVariablesDetails".into(),
                        json!({"truncated": false}),
                    );
                }
                ("stateExitedEventDetails", d)
            }
            Details::MapStateStarted { length } => {
                ("mapStateStartedEventDetails", json!({ "length": length }))
            }
            Details::MapIteration(d) => {
                let k = match d.event_type.as_str() {
                    "MapIterationStarted" => "mapIterationStartedEventDetails",
                    "MapIterationSucceeded" => "mapIterationSucceededEventDetails",
                    "MapIterationFailed" => "mapIterationFailedEventDetails",
                    _ => "mapIterationAbortedEventDetails",
                };
                (k, json!({"name": &*d.name, "index": d.index}))
            }
            Details::MapRunStarted { map_run_arn } => (
                "mapRunStartedEventDetails",
                json!({ "mapRunArn": map_run_arn }),
            ),
            Details::TaskScheduled(d) => {
                let mut j = json!({"resourceType": d.resource_type, "resource": d.resource,
                                   "region": d.region, "parameters": text(&d.parameters)});
                if let Some(o) = j.as_object_mut() {
                    if let Some(t) = d.timeout_in_seconds {
                        o.insert("timeoutInSeconds".into(), Value::from(t));
                    }
                    if let Some(h) = d.heartbeat_in_seconds {
                        o.insert("heartbeatInSeconds".into(), Value::from(h));
                    }
                }
                ("taskScheduledEventDetails", j)
            }
            Details::TaskStarted(d) => (
                "taskStartedEventDetails",
                json!({"resourceType": d.resource_type, "resource": d.resource}),
            ),
            Details::TaskSubmitted(d) | Details::TaskSucceeded(d) => {
                let k = if matches!(self.details, Details::TaskSubmitted(_)) {
                    "taskSubmittedEventDetails"
                } else {
                    "taskSucceededEventDetails"
                };
                (
                    k,
                    json!({"resourceType": d.resource_type, "resource": d.resource,
                           "output": text(&d.output), "outputDetails": {"truncated": false}}),
                )
            }
            Details::TaskFailed(d) => {
                let mut m = Map::new();
                m.insert(
                    "resourceType".into(),
                    Value::String(d.resource_type.clone()),
                );
                m.insert("resource".into(), Value::String(d.resource.clone()));
                put_opt(&mut m, "error", &d.error);
                put_opt(&mut m, "cause", &d.cause);
                let k = if d.event_type == "TaskTimedOut" {
                    "taskTimedOutEventDetails"
                } else {
                    "taskFailedEventDetails"
                };
                (k, Value::Object(m))
            }
            Details::LambdaFunctionScheduled(d) => {
                let mut j = json!({"resource": d.resource, "input": text(&d.input),
                                   "inputDetails": {"truncated": false}});
                if let (Some(t), Some(o)) = (d.timeout_in_seconds, j.as_object_mut()) {
                    o.insert("timeoutInSeconds".into(), Value::from(t));
                }
                ("lambdaFunctionScheduledEventDetails", j)
            }
            Details::LambdaFunctionSucceeded { output } => (
                "lambdaFunctionSucceededEventDetails",
                json!({"output": text(output), "outputDetails": {"truncated": false}}),
            ),
            Details::LambdaFunctionFailed(d) => {
                let mut m = Map::new();
                put_opt(&mut m, "error", &d.error);
                put_opt(&mut m, "cause", &d.cause);
                let k = if d.event_type == "LambdaFunctionTimedOut" {
                    "lambdaFunctionTimedOutEventDetails"
                } else {
                    "lambdaFunctionFailedEventDetails"
                };
                (k, Value::Object(m))
            }
            Details::EvaluationFailed(d) => {
                let mut j = json!({"error": d.error, "cause": d.cause, "state": &*d.state});
                if let (Some(l), Some(o)) = (&d.location, j.as_object_mut()) {
                    o.insert("location".into(), Value::String(l.clone()));
                }
                ("evaluationFailedEventDetails", j)
            }
            Details::ActivityScheduled(d) => {
                let mut j = json!({"resource": d.resource, "input": text(&d.input),
                                   "inputDetails": {"truncated": false}});
                if let Some(o) = j.as_object_mut() {
                    if let Some(t) = d.timeout_in_seconds {
                        o.insert("timeoutInSeconds".into(), Value::from(t));
                    }
                    if let Some(h) = d.heartbeat_in_seconds {
                        o.insert("heartbeatInSeconds".into(), Value::from(h));
                    }
                }
                ("activityScheduledEventDetails", j)
            }
            Details::ActivitySucceeded { output } => (
                "activitySucceededEventDetails",
                json!({"output": text(output), "outputDetails": {"truncated": false}}),
            ),
            Details::ActivityFailed(d) => {
                let mut m = Map::new();
                put_opt(&mut m, "error", &d.error);
                put_opt(&mut m, "cause", &d.cause);
                let k = if d.event_type == "ActivityTimedOut" {
                    "activityTimedOutEventDetails"
                } else {
                    "activityFailedEventDetails"
                };
                (k, Value::Object(m))
            }
            Details::StateAborted { .. }
            | Details::Plain { .. }
            | Details::LambdaFunctionStarted
            | Details::ActivityStarted => ("", Value::Null),
        };
        if !key.is_empty() {
            m.insert(key.into(), det);
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod size_tests {
    /// Histories hold tens of thousands of events: keep an entry small (large payloads boxed).
    #[test]
    fn history_entries_stay_small() {
        assert!(std::mem::size_of::<super::HistoryEvent>() <= 80);
        assert!(std::mem::size_of::<super::Details>() <= 48);
    }
}
