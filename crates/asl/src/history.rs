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

/// Event type with its details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Details {
    ExecutionStarted {
        input: Value,
        role_arn: String,
        state_machine_arn: String,
    },
    ExecutionSucceeded {
        output: Value,
    },
    ExecutionFailed {
        error: Option<String>,
        cause: Option<String>,
    },
    ExecutionTimedOut {
        error: Option<String>,
        cause: Option<String>,
    },
    ExecutionAborted {
        error: Option<String>,
        cause: Option<String>,
    },
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
        assigned: Option<Value>,
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
    MapIteration {
        event_type: String,
        name: Arc<str>,
        index: usize,
    },
    MapRunStarted {
        map_run_arn: String,
    },
    MapRunFailed {
        error: Option<String>,
        cause: Option<String>,
    },
    TaskScheduled {
        resource_type: String,
        resource: String,
        region: String,
        parameters: Value,
        timeout_in_seconds: Option<u64>,
        heartbeat_in_seconds: Option<u64>,
    },
    TaskStarted {
        resource_type: String,
        resource: String,
    },
    TaskSubmitted {
        resource_type: String,
        resource: String,
        output: Value,
    },
    TaskSucceeded {
        resource_type: String,
        resource: String,
        output: Value,
    },
    /// `TaskFailed` / `TaskTimedOut`.
    TaskFailed {
        event_type: String,
        resource_type: String,
        resource: String,
        error: Option<String>,
        cause: Option<String>,
    },
    LambdaFunctionScheduled {
        resource: String,
        input: Value,
        timeout_in_seconds: Option<u64>,
    },
    LambdaFunctionStarted,
    LambdaFunctionSucceeded {
        output: Value,
    },
    /// `LambdaFunctionFailed` / `LambdaFunctionTimedOut`.
    LambdaFunctionFailed {
        event_type: String,
        error: Option<String>,
        cause: Option<String>,
    },
    /// JSONata evaluation failure.
    EvaluationFailed {
        error: String,
        cause: String,
        location: Option<String>,
        state: Arc<str>,
    },
}

impl Details {
    /// The `type` field.
    pub fn event_type(&self) -> String {
        match self {
            Details::ExecutionStarted { .. } => "ExecutionStarted".into(),
            Details::ExecutionSucceeded { .. } => "ExecutionSucceeded".into(),
            Details::ExecutionFailed { .. } => "ExecutionFailed".into(),
            Details::ExecutionTimedOut { .. } => "ExecutionTimedOut".into(),
            Details::ExecutionAborted { .. } => "ExecutionAborted".into(),
            Details::StateEntered { state_type, .. } => {
                format!("{}StateEntered", state_type.as_str())
            }
            Details::StateExited { state_type, .. } => {
                format!("{}StateExited", state_type.as_str())
            }
            Details::StateAborted { state_type } => format!("{}StateAborted", state_type.as_str()),
            Details::Plain { event_type } => event_type.clone(),
            Details::MapStateStarted { .. } => "MapStateStarted".into(),
            Details::MapIteration { event_type, .. } => event_type.clone(),
            Details::MapRunStarted { .. } => "MapRunStarted".into(),
            Details::MapRunFailed { .. } => "MapRunFailed".into(),
            Details::TaskScheduled { .. } => "TaskScheduled".into(),
            Details::TaskStarted { .. } => "TaskStarted".into(),
            Details::TaskSubmitted { .. } => "TaskSubmitted".into(),
            Details::TaskSucceeded { .. } => "TaskSucceeded".into(),
            Details::TaskFailed { event_type, .. } => event_type.clone(),
            Details::LambdaFunctionScheduled { .. } => "LambdaFunctionScheduled".into(),
            Details::LambdaFunctionStarted => "LambdaFunctionStarted".into(),
            Details::LambdaFunctionSucceeded { .. } => "LambdaFunctionSucceeded".into(),
            Details::LambdaFunctionFailed { event_type, .. } => event_type.clone(),
            Details::EvaluationFailed { .. } => "EvaluationFailed".into(),
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
            Details::ExecutionStarted {
                input,
                role_arn,
                state_machine_arn,
            } => (
                "executionStartedEventDetails",
                json!({"input": text(input), "inputDetails": {"truncated": false},
                       "roleArn": role_arn, "stateMachineArn": state_machine_arn}),
            ),
            Details::ExecutionSucceeded { output } => (
                "executionSucceededEventDetails",
                json!({"output": text(output), "outputDetails": {"truncated": false}}),
            ),
            Details::ExecutionFailed { error, cause }
            | Details::ExecutionTimedOut { error, cause }
            | Details::ExecutionAborted { error, cause }
            | Details::MapRunFailed { error, cause } => {
                let k = match &self.details {
                    Details::ExecutionFailed { .. } => "executionFailedEventDetails",
                    Details::ExecutionTimedOut { .. } => "executionTimedOutEventDetails",
                    Details::ExecutionAborted { .. } => "executionAbortedEventDetails",
                    _ => "mapRunFailedEventDetails",
                };
                let mut d = Map::new();
                put_opt(&mut d, "error", error);
                put_opt(&mut d, "cause", cause);
                (k, Value::Object(d))
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
            Details::MapIteration {
                event_type,
                name,
                index,
            } => {
                let k = match event_type.as_str() {
                    "MapIterationStarted" => "mapIterationStartedEventDetails",
                    "MapIterationSucceeded" => "mapIterationSucceededEventDetails",
                    "MapIterationFailed" => "mapIterationFailedEventDetails",
                    _ => "mapIterationAbortedEventDetails",
                };
                (k, json!({"name": &**name, "index": index}))
            }
            Details::MapRunStarted { map_run_arn } => (
                "mapRunStartedEventDetails",
                json!({ "mapRunArn": map_run_arn }),
            ),
            Details::TaskScheduled {
                resource_type,
                resource,
                region,
                parameters,
                timeout_in_seconds,
                heartbeat_in_seconds,
            } => {
                let mut d = json!({"resourceType": resource_type, "resource": resource,
                                   "region": region, "parameters": text(parameters)});
                if let Some(o) = d.as_object_mut() {
                    if let Some(t) = timeout_in_seconds {
                        o.insert("timeoutInSeconds".into(), Value::from(*t));
                    }
                    if let Some(h) = heartbeat_in_seconds {
                        o.insert("heartbeatInSeconds".into(), Value::from(*h));
                    }
                }
                ("taskScheduledEventDetails", d)
            }
            Details::TaskStarted {
                resource_type,
                resource,
            } => (
                "taskStartedEventDetails",
                json!({"resourceType": resource_type, "resource": resource}),
            ),
            Details::TaskSubmitted {
                resource_type,
                resource,
                output,
            } => (
                "taskSubmittedEventDetails",
                json!({"resourceType": resource_type, "resource": resource,
                       "output": text(output), "outputDetails": {"truncated": false}}),
            ),
            Details::TaskSucceeded {
                resource_type,
                resource,
                output,
            } => (
                "taskSucceededEventDetails",
                json!({"resourceType": resource_type, "resource": resource,
                       "output": text(output), "outputDetails": {"truncated": false}}),
            ),
            Details::TaskFailed {
                event_type,
                resource_type,
                resource,
                error,
                cause,
            } => {
                let mut d = Map::new();
                d.insert("resourceType".into(), Value::String(resource_type.clone()));
                d.insert("resource".into(), Value::String(resource.clone()));
                put_opt(&mut d, "error", error);
                put_opt(&mut d, "cause", cause);
                let k = if event_type == "TaskTimedOut" {
                    "taskTimedOutEventDetails"
                } else {
                    "taskFailedEventDetails"
                };
                (k, Value::Object(d))
            }
            Details::LambdaFunctionScheduled {
                resource,
                input,
                timeout_in_seconds,
            } => {
                let mut d = json!({"resource": resource, "input": text(input),
                                   "inputDetails": {"truncated": false}});
                if let (Some(t), Some(o)) = (timeout_in_seconds, d.as_object_mut()) {
                    o.insert("timeoutInSeconds".into(), Value::from(*t));
                }
                ("lambdaFunctionScheduledEventDetails", d)
            }
            Details::LambdaFunctionSucceeded { output } => (
                "lambdaFunctionSucceededEventDetails",
                json!({"output": text(output), "outputDetails": {"truncated": false}}),
            ),
            Details::LambdaFunctionFailed {
                event_type,
                error,
                cause,
            } => {
                let mut d = Map::new();
                put_opt(&mut d, "error", error);
                put_opt(&mut d, "cause", cause);
                let k = if event_type == "LambdaFunctionTimedOut" {
                    "lambdaFunctionTimedOutEventDetails"
                } else {
                    "lambdaFunctionFailedEventDetails"
                };
                (k, Value::Object(d))
            }
            Details::EvaluationFailed {
                error,
                cause,
                location,
                state,
            } => {
                let mut d = json!({"error": error, "cause": cause, "state": &**state});
                if let (Some(l), Some(o)) = (location, d.as_object_mut()) {
                    o.insert("location".into(), Value::String(l.clone()));
                }
                ("evaluationFailedEventDetails", d)
            }
            Details::StateAborted { .. }
            | Details::Plain { .. }
            | Details::LambdaFunctionStarted => ("", Value::Null),
        };
        if !key.is_empty() {
            m.insert(key.into(), det);
        }
        Value::Object(m)
    }
}
