//! `marketplace.workflow` events: a workflow execution started or stopped.

use crate::error::ValidationError;
use crate::wire::LongText;
use crate::workflow::{ExecutionArn, ExecutionName, WorkflowType};
use chrono::{DateTime, Utc};
use serde_json::Value;

fn check_execution(
    workflow_type: WorkflowType,
    arn: &ExecutionArn,
    name: &ExecutionName,
) -> Result<(), ValidationError> {
    if arn.execution_name() != name.as_str() {
        return Err(ValidationError::new(
            "executionName",
            format!(
                "must match the name in executionArn ({:?})",
                arn.execution_name()
            ),
        ));
    }
    if let Some(t) = arn.workflow_type() {
        if t != workflow_type {
            return Err(ValidationError::new(
                "workflowType",
                format!("must match the state machine in executionArn ({t})"),
            ));
        }
    }
    Ok(())
}

fn check_stop(start: &DateTime<Utc>, stop: &DateTime<Utc>) -> Result<(), ValidationError> {
    if stop < start {
        return Err(ValidationError::new(
            "stopDate",
            "must not be before startDate",
        ));
    }
    Ok(())
}

detail! {
    /// A workflow execution started.
    WorkflowStarted = Workflow, "Workflow Started" {
        /// Which workflow.
        workflow_type: WorkflowType => "workflowType",
        /// The execution.
        execution_arn: ExecutionArn => "executionArn",
        /// The execution's name (the last part of its ARN).
        execution_name: ExecutionName => "executionName",
        /// When it started.
        start_date: DateTime<Utc> => "startDate",
    }
}

impl WorkflowStarted {
    fn rules(&self) -> Result<(), ValidationError> {
        check_execution(
            self.workflow_type,
            &self.execution_arn,
            &self.execution_name,
        )
    }
}

detail! {
    /// A workflow execution succeeded.
    WorkflowSucceeded = Workflow, "Workflow Succeeded" {
        /// Which workflow.
        workflow_type: WorkflowType => "workflowType",
        /// The execution.
        execution_arn: ExecutionArn => "executionArn",
        /// The execution's name.
        execution_name: ExecutionName => "executionName",
        /// When it started.
        start_date: DateTime<Utc> => "startDate",
        /// When it stopped (not before the start).
        stop_date: DateTime<Utc> => "stopDate",
        /// The execution's output, any JSON.
        output: Option<Value> => "output",
    }
}

impl WorkflowSucceeded {
    fn rules(&self) -> Result<(), ValidationError> {
        check_execution(
            self.workflow_type,
            &self.execution_arn,
            &self.execution_name,
        )?;
        check_stop(&self.start_date, &self.stop_date)
    }
}

detail! {
    /// A workflow execution failed.
    WorkflowFailed = Workflow, "Workflow Failed" {
        /// Which workflow.
        workflow_type: WorkflowType => "workflowType",
        /// The execution.
        execution_arn: ExecutionArn => "executionArn",
        /// The execution's name.
        execution_name: ExecutionName => "executionName",
        /// When it started.
        start_date: DateTime<Utc> => "startDate",
        /// When it stopped (not before the start).
        stop_date: DateTime<Utc> => "stopDate",
        /// The error name (`States.TaskFailed`, `PaymentDeclined`).
        error: Option<LongText> => "error",
        /// The error's cause.
        cause: Option<LongText> => "cause",
    }
}

impl WorkflowFailed {
    fn rules(&self) -> Result<(), ValidationError> {
        check_execution(
            self.workflow_type,
            &self.execution_arn,
            &self.execution_name,
        )?;
        check_stop(&self.start_date, &self.stop_date)
    }
}

detail! {
    /// A workflow execution ran past its timeout.
    WorkflowTimedOut = Workflow, "Workflow Timed Out" {
        /// Which workflow.
        workflow_type: WorkflowType => "workflowType",
        /// The execution.
        execution_arn: ExecutionArn => "executionArn",
        /// The execution's name.
        execution_name: ExecutionName => "executionName",
        /// When it started.
        start_date: DateTime<Utc> => "startDate",
        /// When it stopped (not before the start).
        stop_date: DateTime<Utc> => "stopDate",
    }
}

impl WorkflowTimedOut {
    fn rules(&self) -> Result<(), ValidationError> {
        check_execution(
            self.workflow_type,
            &self.execution_arn,
            &self.execution_name,
        )?;
        check_stop(&self.start_date, &self.stop_date)
    }
}

detail! {
    /// A workflow execution was stopped (`stopWorkflow`).
    WorkflowAborted = Workflow, "Workflow Aborted" {
        /// Which workflow.
        workflow_type: WorkflowType => "workflowType",
        /// The execution.
        execution_arn: ExecutionArn => "executionArn",
        /// The execution's name.
        execution_name: ExecutionName => "executionName",
        /// When it started.
        start_date: DateTime<Utc> => "startDate",
        /// When it stopped (not before the start).
        stop_date: DateTime<Utc> => "stopDate",
        /// The error given to StopExecution.
        error: Option<LongText> => "error",
        /// The cause given to StopExecution.
        cause: Option<LongText> => "cause",
    }
}

impl WorkflowAborted {
    fn rules(&self) -> Result<(), ValidationError> {
        check_execution(
            self.workflow_type,
            &self.execution_arn,
            &self.execution_name,
        )?;
        check_stop(&self.start_date, &self.stop_date)
    }
}
