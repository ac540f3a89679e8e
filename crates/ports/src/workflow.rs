//! The workflow client port: the Step Functions operations the handlers use.

use crate::error::WorkflowError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_domain::{ExecutionStatus, WorkflowType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// StartExecution's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartedExecution {
    /// The execution's ARN.
    pub execution_arn: String,
    /// When it started (for an idempotent repeat: when the first start did).
    pub start_date: DateTime<Utc>,
}

/// DescribeExecution's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDescription {
    /// The execution's ARN.
    pub execution_arn: String,
    /// The state machine's ARN.
    pub state_machine_arn: String,
    /// The execution's name.
    pub name: String,
    /// Its status.
    pub status: ExecutionStatus,
    /// Which marketplace workflow, when the state machine is one of the four.
    pub workflow_type: Option<WorkflowType>,
    /// The input (JSON text).
    pub input: Option<String>,
    /// The output (JSON text), once SUCCEEDED.
    pub output: Option<String>,
    /// Started.
    pub start_date: DateTime<Utc>,
    /// Stopped, once terminal.
    pub stop_date: Option<DateTime<Utc>>,
    /// The error of a FAILED/TIMED_OUT/ABORTED execution.
    pub error: Option<String>,
    /// Its cause.
    pub cause: Option<String>,
}

/// One ListExecutions item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSummary {
    /// The execution's ARN.
    pub execution_arn: String,
    /// The state machine's ARN.
    pub state_machine_arn: String,
    /// The name.
    pub name: String,
    /// The status.
    pub status: ExecutionStatus,
    /// Which marketplace workflow.
    pub workflow_type: Option<WorkflowType>,
    /// Started.
    pub start_date: DateTime<Utc>,
    /// Stopped.
    pub stop_date: Option<DateTime<Utc>>,
}

/// A page of executions, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionPage {
    /// The executions.
    pub executions: Vec<ExecutionSummary>,
    /// Token of the next page.
    pub next_token: Option<String>,
}

/// One GetExecutionHistory event (details as JSON, keyed like AWS:
/// `{"executionStartedEventDetails": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    /// 1-based id.
    pub id: i64,
    /// The event it follows.
    pub previous_event_id: Option<i64>,
    /// `ExecutionStarted`, `TaskStateEntered`, ...
    #[serde(rename = "type")]
    pub event_type: String,
    /// When.
    pub timestamp: DateTime<Utc>,
    /// The details object, if any.
    pub details: Option<Value>,
}

/// A page of history events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// The events.
    pub events: Vec<HistoryEvent>,
    /// Token of the next page.
    pub next_token: Option<String>,
}

/// A ListExecutions request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListExecutionsRequest {
    /// Only this state machine (all marketplace workflows when None).
    pub workflow_type: Option<WorkflowType>,
    /// Only executions in this status.
    pub status: Option<ExecutionStatus>,
    /// Page size, 1–1000.
    pub max_results: u32,
    /// Continue from here.
    pub next_token: Option<String>,
}

/// The Step Functions operations the marketplace uses.
#[async_trait]
pub trait WorkflowClient: Send + Sync {
    /// The ARN of the state machine of `workflow_type` (account/region of this client).
    fn state_machine_arn(&self, workflow_type: WorkflowType) -> String;

    /// StartExecution. Step Functions semantics: a RUNNING execution with the same name
    /// and the same input is returned again (idempotent); the same name with another
    /// input, or of a finished execution, is `ExecutionAlreadyExists`.
    async fn start_execution(
        &self,
        workflow_type: WorkflowType,
        name: &str,
        input: &str,
    ) -> Result<StartedExecution, WorkflowError>;

    /// DescribeExecution.
    async fn describe_execution(
        &self,
        execution_arn: &str,
    ) -> Result<ExecutionDescription, WorkflowError>;

    /// StopExecution; returns the stop date. Stopping a finished execution is a no-op
    /// that returns its stop date.
    async fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<DateTime<Utc>, WorkflowError>;

    /// SendTaskSuccess with `output` (JSON text).
    async fn send_task_success(&self, task_token: &str, output: &str) -> Result<(), WorkflowError>;

    /// SendTaskFailure.
    async fn send_task_failure(
        &self,
        task_token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError>;

    /// SendTaskHeartbeat.
    async fn send_task_heartbeat(&self, task_token: &str) -> Result<(), WorkflowError>;

    /// GetExecutionHistory.
    async fn get_execution_history(
        &self,
        execution_arn: &str,
        max_results: u32,
        next_token: Option<&str>,
        reverse_order: bool,
    ) -> Result<HistoryPage, WorkflowError>;

    /// ListExecutions, newest first.
    async fn list_executions(
        &self,
        request: &ListExecutionsRequest,
    ) -> Result<ExecutionPage, WorkflowError>;
}
