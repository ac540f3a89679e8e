//! The workflow client on Step Functions.

use async_trait::async_trait;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::types::{ExecutionStatus as SdkStatus, HistoryEvent as SdkHistoryEvent};
use aws_sdk_sfn::Client;
use chrono::{DateTime, Utc};
use marketplace_domain::{ExecutionArn, ExecutionName, ExecutionStatus, WorkflowType};
use marketplace_ports::workflow::*;
use marketplace_ports::WorkflowError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Maps a Step Functions error code to the port's typed error.
pub fn map_error_code(code: &str, message: String) -> WorkflowError {
    match code {
        "ExecutionAlreadyExists" => WorkflowError::ExecutionAlreadyExists(message),
        "ExecutionDoesNotExist" => WorkflowError::ExecutionDoesNotExist(message),
        "StateMachineDoesNotExist" => WorkflowError::StateMachineDoesNotExist(message),
        "TaskDoesNotExist" => WorkflowError::TaskDoesNotExist(message),
        "TaskTimedOut" => WorkflowError::TaskTimedOut(message),
        "InvalidToken" => WorkflowError::InvalidToken(message),
        "InvalidArn" => WorkflowError::InvalidArn(message),
        "InvalidName" => WorkflowError::InvalidName(message),
        "InvalidExecutionInput" => WorkflowError::InvalidExecutionInput(message),
        "InvalidOutput" => WorkflowError::InvalidOutput(message),
        other => WorkflowError::Unavailable(format!("{other}: {message}")),
    }
}

fn map_err<E, R>(operation: &str, e: SdkError<E, R>) -> WorkflowError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = e
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| e.to_string());
    match e.code() {
        Some(code) => map_error_code(code, message),
        None => WorkflowError::Unavailable(format!("{operation}: {message}")),
    }
}

fn status(s: &SdkStatus) -> Result<ExecutionStatus, WorkflowError> {
    s.as_str()
        .parse()
        .map_err(|_| WorkflowError::Unavailable(format!("unknown execution status {}", s.as_str())))
}

fn date(t: &aws_sdk_sfn::primitives::DateTime) -> DateTime<Utc> {
    crate::to_chrono(t).unwrap_or(DateTime::UNIX_EPOCH)
}

fn check_arn(arn: &str) -> Result<ExecutionArn, WorkflowError> {
    ExecutionArn::new(arn).map_err(|e| WorkflowError::InvalidArn(format!("{arn}: {e}")))
}

/// Step Functions for the four marketplace state machines.
#[derive(Clone, Debug)]
pub struct StepFunctionsClient {
    client: Client,
    state_machines: BTreeMap<WorkflowType, String>,
}

impl StepFunctionsClient {
    /// A client of the state machines by workflow type (the `*_STATE_MACHINE_ARN` variables).
    pub fn new(client: Client, state_machines: BTreeMap<WorkflowType, String>) -> Self {
        Self {
            client,
            state_machines,
        }
    }

    fn machine(&self, workflow: WorkflowType) -> Result<&str, WorkflowError> {
        self.state_machines
            .get(&workflow)
            .map(String::as_str)
            .ok_or_else(|| {
                WorkflowError::StateMachineDoesNotExist(format!(
                    "no state machine is configured for {workflow}"
                ))
            })
    }

    fn workflow_of(&self, state_machine_arn: &str) -> Option<WorkflowType> {
        self.state_machines
            .iter()
            .find(|(_, arn)| arn.as_str() == state_machine_arn)
            .map(|(wf, _)| *wf)
            .or_else(|| {
                state_machine_arn
                    .rsplit(':')
                    .next()
                    .and_then(WorkflowType::from_state_machine_name)
            })
    }

    async fn list_one(
        &self,
        workflow: WorkflowType,
        request: &ListExecutionsRequest,
        next_token: Option<String>,
    ) -> Result<ExecutionPage, WorkflowError> {
        let out = self
            .client
            .list_executions()
            .state_machine_arn(self.machine(workflow)?)
            .set_status_filter(request.status.map(|s| SdkStatus::from(s.as_str())))
            .max_results(request.max_results.clamp(1, 1000) as i32)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| map_err("ListExecutions", e))?;
        let mut executions = Vec::new();
        for e in out.executions {
            executions.push(ExecutionSummary {
                workflow_type: self.workflow_of(&e.state_machine_arn),
                status: status(&e.status)?,
                start_date: date(&e.start_date),
                stop_date: e.stop_date.as_ref().map(date),
                execution_arn: e.execution_arn,
                state_machine_arn: e.state_machine_arn,
                name: e.name,
            });
        }
        Ok(ExecutionPage {
            executions,
            next_token: out.next_token,
        })
    }
}

/// The history event's details keyed as in the AWS JSON (`executionStartedEventDetails`, ...).
fn history_details(e: &SdkHistoryEvent) -> Option<Value> {
    fn obj(pairs: &[(&str, Option<&str>)]) -> Value {
        let mut m = Map::new();
        for (k, v) in pairs {
            if let Some(v) = v {
                m.insert((*k).to_owned(), Value::String((*v).to_owned()));
            }
        }
        Value::Object(m)
    }
    let (key, value) = if let Some(d) = &e.execution_started_event_details {
        (
            "executionStartedEventDetails",
            obj(&[("input", d.input()), ("roleArn", d.role_arn())]),
        )
    } else if let Some(d) = &e.execution_succeeded_event_details {
        (
            "executionSucceededEventDetails",
            obj(&[("output", d.output())]),
        )
    } else if let Some(d) = &e.execution_failed_event_details {
        (
            "executionFailedEventDetails",
            obj(&[("error", d.error()), ("cause", d.cause())]),
        )
    } else if let Some(d) = &e.execution_aborted_event_details {
        (
            "executionAbortedEventDetails",
            obj(&[("error", d.error()), ("cause", d.cause())]),
        )
    } else if let Some(d) = &e.execution_timed_out_event_details {
        (
            "executionTimedOutEventDetails",
            obj(&[("error", d.error()), ("cause", d.cause())]),
        )
    } else if let Some(d) = &e.state_entered_event_details {
        (
            "stateEnteredEventDetails",
            obj(&[("name", Some(d.name())), ("input", d.input())]),
        )
    } else if let Some(d) = &e.state_exited_event_details {
        (
            "stateExitedEventDetails",
            obj(&[("name", Some(d.name())), ("output", d.output())]),
        )
    } else if let Some(d) = &e.task_scheduled_event_details {
        (
            "taskScheduledEventDetails",
            obj(&[
                ("resourceType", Some(d.resource_type())),
                ("resource", Some(d.resource())),
                ("region", Some(d.region())),
                ("parameters", Some(d.parameters())),
            ]),
        )
    } else if let Some(d) = &e.task_started_event_details {
        (
            "taskStartedEventDetails",
            obj(&[
                ("resourceType", Some(d.resource_type())),
                ("resource", Some(d.resource())),
            ]),
        )
    } else if let Some(d) = &e.task_succeeded_event_details {
        (
            "taskSucceededEventDetails",
            obj(&[
                ("resourceType", Some(d.resource_type())),
                ("resource", Some(d.resource())),
                ("output", d.output()),
            ]),
        )
    } else if let Some(d) = &e.task_failed_event_details {
        (
            "taskFailedEventDetails",
            obj(&[
                ("resourceType", Some(d.resource_type())),
                ("resource", Some(d.resource())),
                ("error", d.error()),
                ("cause", d.cause()),
            ]),
        )
    } else if let Some(d) = &e.task_timed_out_event_details {
        (
            "taskTimedOutEventDetails",
            obj(&[
                ("resourceType", Some(d.resource_type())),
                ("resource", Some(d.resource())),
                ("error", d.error()),
                ("cause", d.cause()),
            ]),
        )
    } else if let Some(d) = &e.lambda_function_succeeded_event_details {
        (
            "lambdaFunctionSucceededEventDetails",
            obj(&[("output", d.output())]),
        )
    } else if let Some(d) = &e.lambda_function_failed_event_details {
        (
            "lambdaFunctionFailedEventDetails",
            obj(&[("error", d.error()), ("cause", d.cause())]),
        )
    } else {
        return None;
    };
    Some(json!({ key: value }))
}

#[async_trait]
impl WorkflowClient for StepFunctionsClient {
    fn state_machine_arn(&self, workflow_type: WorkflowType) -> String {
        self.state_machines
            .get(&workflow_type)
            .cloned()
            .unwrap_or_default()
    }

    async fn start_execution(
        &self,
        workflow_type: WorkflowType,
        name: &str,
        input: &str,
    ) -> Result<StartedExecution, WorkflowError> {
        ExecutionName::new(name)
            .map_err(|e| WorkflowError::InvalidName(format!("name {name:?} {e}")))?;
        serde_json::from_str::<Value>(input).map_err(|e| {
            WorkflowError::InvalidExecutionInput(format!("input is not valid JSON: {e}"))
        })?;
        let machine = self.machine(workflow_type)?;
        let result = self
            .client
            .start_execution()
            .state_machine_arn(machine)
            .name(name)
            .input(input)
            .send()
            .await;
        match result {
            Ok(out) => Ok(StartedExecution {
                execution_arn: out.execution_arn,
                start_date: date(&out.start_date),
            }),
            Err(e) => {
                let err = map_err("StartExecution", e);
                // AWS answers a repeat of a RUNNING execution's name and input with that
                // execution; an endpoint that refuses it instead is answered the same way
                if let WorkflowError::ExecutionAlreadyExists(_) = err {
                    let arn = format!(
                        "{}:{name}",
                        machine.replacen(":stateMachine:", ":execution:", 1)
                    );
                    if let Ok(d) = self.describe_execution(&arn).await {
                        if d.status == ExecutionStatus::Running && d.input.as_deref() == Some(input)
                        {
                            return Ok(StartedExecution {
                                execution_arn: d.execution_arn,
                                start_date: d.start_date,
                            });
                        }
                    }
                }
                Err(err)
            }
        }
    }

    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<ExecutionDescription, WorkflowError> {
        check_arn(execution_arn)?;
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| map_err("DescribeExecution", e))?;
        Ok(ExecutionDescription {
            workflow_type: self.workflow_of(&out.state_machine_arn),
            status: status(&out.status)?,
            start_date: date(&out.start_date),
            stop_date: out.stop_date.as_ref().map(date),
            name: out.name.unwrap_or_default(),
            execution_arn: out.execution_arn,
            state_machine_arn: out.state_machine_arn,
            input: out.input,
            output: out.output,
            error: out.error,
            cause: out.cause,
        })
    }

    async fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<DateTime<Utc>, WorkflowError> {
        let current = self.describe_execution(execution_arn).await?;
        if current.status.is_terminal() {
            return Ok(current.stop_date.unwrap_or(current.start_date));
        }
        let out = self
            .client
            .stop_execution()
            .execution_arn(execution_arn)
            .set_error(error.map(str::to_owned))
            .set_cause(cause.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_err("StopExecution", e))?;
        Ok(date(&out.stop_date))
    }

    async fn send_task_success(&self, task_token: &str, output: &str) -> Result<(), WorkflowError> {
        serde_json::from_str::<Value>(output)
            .map_err(|e| WorkflowError::InvalidOutput(format!("output is not valid JSON: {e}")))?;
        self.client
            .send_task_success()
            .task_token(task_token)
            .output(output)
            .send()
            .await
            .map_err(|e| map_err("SendTaskSuccess", e))?;
        Ok(())
    }

    async fn send_task_failure(
        &self,
        task_token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        self.client
            .send_task_failure()
            .task_token(task_token)
            .error(error)
            .cause(cause)
            .send()
            .await
            .map_err(|e| map_err("SendTaskFailure", e))?;
        Ok(())
    }

    async fn send_task_heartbeat(&self, task_token: &str) -> Result<(), WorkflowError> {
        self.client
            .send_task_heartbeat()
            .task_token(task_token)
            .send()
            .await
            .map_err(|e| map_err("SendTaskHeartbeat", e))?;
        Ok(())
    }

    async fn get_execution_history(
        &self,
        execution_arn: &str,
        max_results: u32,
        next_token: Option<&str>,
        reverse_order: bool,
    ) -> Result<HistoryPage, WorkflowError> {
        check_arn(execution_arn)?;
        let out = self
            .client
            .get_execution_history()
            .execution_arn(execution_arn)
            .max_results(max_results.clamp(1, 1000) as i32)
            .reverse_order(reverse_order)
            .set_next_token(next_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_err("GetExecutionHistory", e))?;
        let events = out
            .events
            .iter()
            .map(|e| HistoryEvent {
                id: e.id,
                previous_event_id: (e.previous_event_id != 0).then_some(e.previous_event_id),
                event_type: e.r#type.as_str().to_owned(),
                timestamp: date(&e.timestamp),
                details: history_details(e),
            })
            .collect();
        Ok(HistoryPage {
            events,
            next_token: out.next_token,
        })
    }

    /// With a workflow type: one ListExecutions call. Without: the four state machines
    /// one after the other (newest first within each), the token naming the machine.
    async fn list_executions(
        &self,
        request: &ListExecutionsRequest,
    ) -> Result<ExecutionPage, WorkflowError> {
        if let Some(wf) = request.workflow_type {
            return self.list_one(wf, request, request.next_token.clone()).await;
        }
        let (mut index, mut token) = match request.next_token.as_deref() {
            None => (0usize, None),
            Some(t) => {
                let (i, rest) = t.split_once('|').ok_or_else(|| {
                    WorkflowError::Unavailable(format!(
                        "nextToken {t:?} was not issued by this client"
                    ))
                })?;
                let i = i.parse().map_err(|_| {
                    WorkflowError::Unavailable(format!(
                        "nextToken {t:?} was not issued by this client"
                    ))
                })?;
                (i, (!rest.is_empty()).then(|| rest.to_owned()))
            }
        };
        let all = WorkflowType::ALL;
        while index < all.len() {
            let page = self.list_one(all[index], request, token.take()).await?;
            let next = match page.next_token {
                Some(t) => Some(format!("{index}|{t}")),
                None if index + 1 < all.len() => Some(format!("{}|", index + 1)),
                None => None,
            };
            if !page.executions.is_empty() || next.is_none() {
                return Ok(ExecutionPage {
                    executions: page.executions,
                    next_token: next,
                });
            }
            index += 1;
        }
        Ok(ExecutionPage {
            executions: Vec::new(),
            next_token: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_typed_errors() {
        assert!(matches!(
            map_error_code("TaskTimedOut", "x".into()),
            WorkflowError::TaskTimedOut(_)
        ));
        assert!(map_error_code("InvalidToken", "x".into()).is_stale_token());
        assert!(matches!(
            map_error_code("ExecutionLimitExceeded", "x".into()),
            WorkflowError::Unavailable(m) if m.starts_with("ExecutionLimitExceeded")
        ));
    }
}
