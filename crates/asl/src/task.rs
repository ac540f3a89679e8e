//! Task execution through a trait, and the AWS Step Functions Local mock-config format.

use serde_json::Value;
use std::collections::HashMap;

/// What a Task state asks of the outside world.
#[derive(Debug, Clone, Copy)]
pub struct TaskRequest<'a> {
    /// The state's name.
    pub state_name: &'a str,
    /// The `Resource` ARN as written.
    pub resource: &'a str,
    /// Effective parameters (JSONPath `Parameters` / JSONata `Arguments`).
    pub parameters: &'a Value,
    /// Task token for `.waitForTaskToken` resources.
    pub task_token: Option<&'a str>,
    /// 0-based attempt number (retries count up).
    pub attempt: u32,
    /// `TimeoutSeconds` in effect.
    pub timeout_seconds: Option<u64>,
    /// `HeartbeatSeconds` in effect.
    pub heartbeat_seconds: Option<u64>,
}

/// The result of invoking a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// The task produced a result.
    Succeeded(Value),
    /// The task failed with an error name and an optional cause.
    Failed {
        /// Error name (`States.Timeout`, `Lambda.ServiceException`, ...).
        error: String,
        /// Cause text.
        cause: Option<String>,
    },
    /// The task was started and the result arrives later (task token callback or `.sync` child);
    /// the execution pauses until `send_task_success` / `send_task_failure`.
    Pending {
        /// What the submitting call returned (shown in `TaskSubmitted`).
        submitted: Value,
    },
}

/// Runs tasks. Implemented by the local runtime (real handlers), by tests and by the mock config.
pub trait TaskHandler {
    /// Invokes the task.
    fn invoke(&mut self, request: &TaskRequest<'_>) -> TaskOutcome;
}

/// A handler that fails every task: for definitions known to contain no Task.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTasks;

impl TaskHandler for NoTasks {
    fn invoke(&mut self, request: &TaskRequest<'_>) -> TaskOutcome {
        TaskOutcome::Failed {
            error: "States.TaskFailed".into(),
            cause: Some(format!(
                "No task handler is configured for resource '{}' (state '{}')",
                request.resource, request.state_name
            )),
        }
    }
}

/// Errors in a mock configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockConfigError {
    /// Structural problem.
    #[error("mock config: {0}")]
    Invalid(String),
    /// The requested state machine is absent.
    #[error("mock config: state machine '{0}' not found in StateMachines")]
    NoStateMachine(String),
    /// The requested test case is absent.
    #[error("mock config: test case '{1}' not found for state machine '{0}'")]
    NoTestCase(String, String),
    /// A test case names a response that is not defined.
    #[error("mock config: mocked response '{0}' is not defined in MockedResponses")]
    NoResponse(String),
}

#[derive(Debug, Clone)]
enum MockStep {
    Return(Value),
    Throw {
        error: String,
        cause: Option<String>,
    },
}

/// Task results from an AWS Step Functions Local `MockConfigFile` test case.
///
/// `MockedResponses` keys are invocation numbers (`"0"`) or inclusive ranges (`"1-3"`),
/// counted per state. For a bare Lambda function ARN the `Return` value is the Lambda Invoke
/// response and the task result is its `Payload`.
#[derive(Debug, Clone)]
pub struct MockTasks {
    by_state: HashMap<String, Vec<(u32, u32, MockStep)>>,
    calls: HashMap<String, u32>,
}

impl MockTasks {
    /// Reads a test case out of a mock config document.
    pub fn from_config(
        config: &Value,
        state_machine: &str,
        test_case: &str,
    ) -> Result<MockTasks, MockConfigError> {
        let sms = config
            .get("StateMachines")
            .and_then(|v| v.as_object())
            .ok_or_else(|| MockConfigError::Invalid("'StateMachines' must be an object".into()))?;
        let sm = sms
            .get(state_machine)
            .ok_or_else(|| MockConfigError::NoStateMachine(state_machine.into()))?;
        let tc = sm
            .get("TestCases")
            .and_then(|t| t.get(test_case))
            .and_then(|t| t.as_object())
            .ok_or_else(|| MockConfigError::NoTestCase(state_machine.into(), test_case.into()))?;
        let responses = config
            .get("MockedResponses")
            .and_then(|v| v.as_object())
            .ok_or_else(|| {
                MockConfigError::Invalid("'MockedResponses' must be an object".into())
            })?;
        let mut by_state = HashMap::new();
        for (state, resp) in tc {
            let rname = resp.as_str().ok_or_else(|| {
                MockConfigError::Invalid(format!("test case entry '{state}' must name a response"))
            })?;
            let r = responses
                .get(rname)
                .and_then(|r| r.as_object())
                .ok_or_else(|| MockConfigError::NoResponse(rname.into()))?;
            let mut steps = Vec::new();
            for (k, v) in r {
                let (a, b) = match k.split_once('-') {
                    Some((a, b)) => (a.trim().parse(), b.trim().parse()),
                    None => (k.trim().parse(), k.trim().parse()),
                };
                let (Ok(a), Ok(b)) = (a, b) else {
                    return Err(MockConfigError::Invalid(format!(
                        "response '{rname}': key '{k}' must be an invocation number or a range 'a-b'"
                    )));
                };
                let step = if let Some(ret) = v.get("Return") {
                    MockStep::Return(ret.clone())
                } else if let Some(t) = v.get("Throw") {
                    MockStep::Throw {
                        error: t
                            .get("Error")
                            .and_then(|e| e.as_str())
                            .unwrap_or("")
                            .to_string(),
                        cause: t.get("Cause").and_then(|c| c.as_str()).map(str::to_string),
                    }
                } else {
                    return Err(MockConfigError::Invalid(format!(
                        "response '{rname}' entry '{k}' needs 'Return' or 'Throw'"
                    )));
                };
                steps.push((a, b, step));
            }
            by_state.insert(state.clone(), steps);
        }
        Ok(MockTasks {
            by_state,
            calls: HashMap::new(),
        })
    }
}

/// True for a bare Lambda function ARN (`arn:aws:lambda:...:function:name`).
pub fn is_lambda_arn(resource: &str) -> bool {
    resource.starts_with("arn:") && resource.contains(":lambda:") && resource.contains(":function:")
}

impl TaskHandler for MockTasks {
    fn invoke(&mut self, request: &TaskRequest<'_>) -> TaskOutcome {
        let n = self
            .calls
            .entry(request.state_name.to_string())
            .or_insert(0);
        let call = *n;
        *n += 1;
        let Some(steps) = self.by_state.get(request.state_name) else {
            return TaskOutcome::Failed {
                error: "States.TaskFailed".into(),
                cause: Some(format!(
                    "No mocked response for state '{}' in the selected test case",
                    request.state_name
                )),
            };
        };
        let step = steps
            .iter()
            .find(|(a, b, _)| *a <= call && call <= *b)
            .map(|(_, _, s)| s)
            .or_else(|| {
                // Step Functions Local repeats the last response for further invocations.
                steps.iter().max_by_key(|(_, b, _)| *b).map(|(_, _, s)| s)
            });
        match step {
            Some(MockStep::Return(v)) => {
                if is_lambda_arn(request.resource) {
                    TaskOutcome::Succeeded(v.get("Payload").cloned().unwrap_or(Value::Null))
                } else {
                    TaskOutcome::Succeeded(v.clone())
                }
            }
            Some(MockStep::Throw { error, cause }) => TaskOutcome::Failed {
                error: error.clone(),
                cause: cause.clone(),
            },
            None => TaskOutcome::Failed {
                error: "States.TaskFailed".into(),
                cause: Some(format!(
                    "No mocked response for state '{}'",
                    request.state_name
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req<'a>(name: &'a str, res: &'a str, p: &'a Value) -> TaskRequest<'a> {
        TaskRequest {
            state_name: name,
            resource: res,
            parameters: p,
            task_token: None,
            attempt: 0,
            timeout_seconds: None,
            heartbeat_seconds: None,
        }
    }

    #[test]
    fn mock_ranges_and_lambda_payload() {
        let cfg = json!({"StateMachines": {"M": {"TestCases": {"T": {"A": "R"}}}},
            "MockedResponses": {"R": {"0": {"Throw": {"Error": "E", "Cause": "C"}},
                                      "1-2": {"Return": {"StatusCode": 200, "Payload": {"x": 1}}}}}});
        let mut m = MockTasks::from_config(&cfg, "M", "T").unwrap();
        let p = json!({});
        let arn = "arn:aws:lambda:us-east-1:1:function:f";
        assert!(matches!(
            m.invoke(&req("A", arn, &p)),
            TaskOutcome::Failed { .. }
        ));
        assert_eq!(
            m.invoke(&req("A", arn, &p)),
            TaskOutcome::Succeeded(json!({"x": 1}))
        );
        assert_eq!(
            m.invoke(&req("A", "arn:aws:states:::lambda:invoke", &p)),
            TaskOutcome::Succeeded(json!({"StatusCode": 200, "Payload": {"x": 1}}))
        );
        assert!(MockTasks::from_config(&cfg, "X", "T").is_err());
    }
}
