//! Workflow types, their state machines and timeouts, execution names, ARNs and statuses.

use crate::error::ValidationError;
use crate::wire::Wire;
use serde_json::{json, Value};
use std::fmt;
use std::time::Duration;

wire_enum! {
    /// The four long-running business flows, each a Step Functions state machine.
    WorkflowType {
        /// A booking from creation to confirmation, expiry or cancellation.
        BookingLifecycle = "BOOKING_LIFECYCLE",
        /// Charging a booking and splitting the platform fee.
        PaymentProcessing = "PAYMENT_PROCESSING",
        /// A dispute from opening to resolution (waits up to 7 days for the provider).
        DisputeResolution = "DISPUTE_RESOLUTION",
        /// A provider's Stripe Connect onboarding.
        ProviderOnboarding = "PROVIDER_ONBOARDING",
    }
}

impl WorkflowType {
    /// The state machine's name (`ecosystem-booking-lifecycle`); its definition is
    /// `statemachines/<name>.asl.json`.
    pub fn state_machine_name(self) -> &'static str {
        match self {
            WorkflowType::BookingLifecycle => "ecosystem-booking-lifecycle",
            WorkflowType::PaymentProcessing => "ecosystem-payment-processing",
            WorkflowType::DisputeResolution => "ecosystem-dispute-resolution",
            WorkflowType::ProviderOnboarding => "ecosystem-provider-onboarding",
        }
    }

    /// The workflow type whose state machine is `name`.
    pub fn from_state_machine_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|w| w.state_machine_name() == name)
    }

    /// The execution timeout (the state machine's `TimeoutSeconds`).
    pub fn timeout(self) -> Duration {
        Duration::from_secs(self.timeout_seconds())
    }

    /// The execution timeout in seconds, equal to the deployed definition's top-level
    /// `TimeoutSeconds` (a test reads `statemachines/*.asl.json` to keep them equal):
    /// a booking runs until its service has ended (booking-manager accepts starts up to
    /// 180 days ahead; 201 days leaves room for the service itself and the completion
    /// steps; the 15-minute payment window is a task timeout inside it),
    /// payment 10 min, dispute 7 days + 1 h (the 7-day response window plus the final
    /// escalation), onboarding 30 min.
    pub fn timeout_seconds(self) -> u64 {
        match self {
            WorkflowType::BookingLifecycle => 201 * 24 * 60 * 60,
            WorkflowType::PaymentProcessing => 10 * 60,
            WorkflowType::DisputeResolution => 7 * 24 * 60 * 60 + 60 * 60,
            WorkflowType::ProviderOnboarding => 30 * 60,
        }
    }
}

wire_enum! {
    /// The status of a Step Functions execution, as `DescribeExecution` reports it.
    ExecutionStatus {
        /// Still running.
        Running = "RUNNING",
        /// Finished with an output.
        Succeeded = "SUCCEEDED",
        /// Finished with an error.
        Failed = "FAILED",
        /// Ran past its timeout.
        TimedOut = "TIMED_OUT",
        /// Stopped by `StopExecution`.
        Aborted = "ABORTED",
        /// Failed and waiting to be redriven.
        PendingRedrive = "PENDING_REDRIVE",
    }
}

impl ExecutionStatus {
    /// Whether the execution has stopped (everything but RUNNING).
    pub fn is_terminal(self) -> bool {
        self != ExecutionStatus::Running
    }
}

/// An execution name as Step Functions accepts it: 1 to 80 characters, no whitespace,
/// no control characters and none of `< > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : /`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionName(String);

const EXECUTION_NAME_FORBIDDEN: &str = "<>{}[]?*\"#%\\^|~`$&,;:/";

impl ExecutionName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, ValidationError> {
        let name = name.into();
        let len = name.chars().count();
        if len == 0 || len > 80 {
            return Err(ValidationError::new("", "must be 1 to 80 characters long"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || EXECUTION_NAME_FORBIDDEN.contains(*c))
        {
            return Err(ValidationError::new(
                "",
                format!("must not contain whitespace, control characters or any of {EXECUTION_NAME_FORBIDDEN} (found {c:?})"),
            ));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Wire for ExecutionName {
    fn decode(value: &Value) -> Result<Self, ValidationError> {
        Self::new(
            value
                .as_str()
                .ok_or_else(|| ValidationError::new("", "must be a string"))?,
        )
    }
    fn encode(&self) -> Value {
        Value::String(self.0.clone())
    }
    fn schema() -> Value {
        json!({"type": "string", "minLength": 1, "maxLength": 80, "pattern": EXECUTION_NAME_PATTERN})
    }
}

/// The draft-04 `pattern` of [`ExecutionName`].
pub const EXECUTION_NAME_PATTERN: &str =
    "^[^\\s<>{}\\[\\]?*\"#%\\\\^|~`$&,;:/\\u0000-\\u001f\\u007f-\\u009f]+$";

/// A Step Functions execution ARN:
/// `arn:<partition>:states:<region>:<account>:execution:<stateMachine>:<executionName>`
/// (`express` instead of `execution` for express workflows).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionArn(String);

impl ExecutionArn {
    /// Validates `arn`.
    pub fn new(arn: impl Into<String>) -> Result<Self, ValidationError> {
        let arn = arn.into();
        let parts: Vec<&str> = arn.splitn(8, ':').collect();
        let ok = parts.len() == 8
            && parts[0] == "arn"
            && !parts[1].is_empty()
            && parts[2] == "states"
            && !parts[3].is_empty()
            && !parts[4].is_empty()
            && (parts[5] == "execution" || parts[5] == "express")
            && !parts[6].is_empty()
            && ExecutionName::new(parts[7]).is_ok();
        if !ok || arn.len() > 2048 {
            return Err(ValidationError::new(
                "",
                "must be an execution ARN (arn:<partition>:states:<region>:<account>:execution:<stateMachine>:<name>)",
            ));
        }
        Ok(Self(arn))
    }

    /// Builds the ARN of execution `name` of `state_machine` in `region` and `account`.
    pub fn build(
        partition: &str,
        region: &str,
        account: &str,
        state_machine: &str,
        name: &ExecutionName,
    ) -> Result<Self, ValidationError> {
        Self::new(format!(
            "arn:{partition}:states:{region}:{account}:execution:{state_machine}:{name}"
        ))
    }

    /// The state machine name inside the ARN.
    pub fn state_machine_name(&self) -> &str {
        self.0.split(':').nth(6).unwrap_or_default()
    }

    /// The execution name inside the ARN (the rest after the state machine).
    pub fn execution_name(&self) -> &str {
        self.0.splitn(8, ':').nth(7).unwrap_or_default()
    }

    /// The workflow type, when the state machine is one of the four.
    pub fn workflow_type(&self) -> Option<WorkflowType> {
        WorkflowType::from_state_machine_name(self.state_machine_name())
    }

    /// The ARN.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Wire for ExecutionArn {
    fn decode(value: &Value) -> Result<Self, ValidationError> {
        Self::new(
            value
                .as_str()
                .ok_or_else(|| ValidationError::new("", "must be a string"))?,
        )
    }
    fn encode(&self) -> Value {
        Value::String(self.0.clone())
    }
    fn schema() -> Value {
        json!({"type": "string", "maxLength": 2048, "pattern": EXECUTION_ARN_PATTERN})
    }
}

/// The draft-04 `pattern` of [`ExecutionArn`] (the name part is checked by the type).
pub const EXECUTION_ARN_PATTERN: &str =
    "^arn:[^:]+:states:[^:]+:[^:]+:(execution|express):[^:]+:.+$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_types_know_their_machines_and_timeouts() {
        let w = WorkflowType::DisputeResolution;
        assert_eq!(w.state_machine_name(), "ecosystem-dispute-resolution");
        assert_eq!(w.timeout(), Duration::from_secs(608_400));
        assert_eq!(WorkflowType::BookingLifecycle.timeout_seconds(), 17_366_400);
        assert_eq!(WorkflowType::PaymentProcessing.timeout_seconds(), 600);
        assert_eq!(WorkflowType::ProviderOnboarding.timeout_seconds(), 1800);
        for w in WorkflowType::ALL {
            assert_eq!(
                WorkflowType::from_state_machine_name(w.state_machine_name()),
                Some(*w)
            );
            assert_eq!(w.as_str().parse::<WorkflowType>().unwrap(), *w);
        }
    }

    #[test]
    fn timeouts_equal_the_deployed_definitions() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachines");
        for w in WorkflowType::ALL {
            let file = dir.join(format!(
                "{}.asl.json",
                w.state_machine_name().trim_start_matches("ecosystem-")
            ));
            let text = std::fs::read_to_string(&file).unwrap();
            let def: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                def["TimeoutSeconds"].as_u64(),
                Some(w.timeout_seconds()),
                "{}",
                file.display()
            );
        }
        let e = "BOOKING".parse::<WorkflowType>().unwrap_err();
        assert!(
            e.rule
                .starts_with("must be one of BOOKING_LIFECYCLE, PAYMENT_PROCESSING"),
            "{e}"
        );
    }

    #[test]
    fn execution_names() {
        assert!(ExecutionName::new("booking-bk_1-01HV").is_ok());
        assert!(ExecutionName::new("").is_err());
        assert!(ExecutionName::new("a".repeat(81)).is_err());
        assert!(ExecutionName::new("has space").is_err());
        assert!(ExecutionName::new("a:b").is_err());
    }

    #[test]
    fn execution_arns() {
        let name = ExecutionName::new("bk-1").unwrap();
        let arn = ExecutionArn::build(
            "aws",
            "us-east-1",
            "123456789012",
            "ecosystem-booking-lifecycle",
            &name,
        )
        .unwrap();
        assert_eq!(
            arn.as_str(),
            "arn:aws:states:us-east-1:123456789012:execution:ecosystem-booking-lifecycle:bk-1"
        );
        assert_eq!(arn.execution_name(), "bk-1");
        assert_eq!(arn.workflow_type(), Some(WorkflowType::BookingLifecycle));
        assert!(ExecutionArn::new("arn:aws:states:us-east-1:1:stateMachine:x").is_err());
        assert!(ExecutionArn::new("arn:aws:lambda:us-east-1:1:execution:x:y").is_err());
        assert!(ExecutionArn::new("bk-1").is_err());
    }

    #[test]
    fn statuses() {
        assert!(!ExecutionStatus::Running.is_terminal());
        assert!(ExecutionStatus::PendingRedrive.is_terminal());
        assert_eq!(ExecutionStatus::TimedOut.to_string(), "TIMED_OUT");
    }
}
