//! Typed errors of every port, and their mapping to the stable `errorType` names of the
//! workflow contract (`statemachines/README.md`): a Step Functions Retry/Catch matches on
//! these names, so they never change.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The stable error names a function reports as its Lambda `errorType` (and that
/// `SendTaskFailure` uses as `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorType {
    /// Throttling, store or Stripe 5xx/429/network failure; safe to repeat.
    TransientError,
    /// Bad input; the message names the field and the rule.
    ValidationError,
    /// The booking, dispute, provider or payment does not exist.
    NotFound,
    /// The entity is not in a state that allows this.
    InvalidTransition,
    /// The service is not active.
    ServiceUnavailable,
    /// The provider cannot take charges yet.
    ProviderNotOnboarded,
    /// The conditional write on a slot failed: overlapping booking.
    SlotUnavailable,
    /// Card declined / payment failed; the cause is `{"failureCode","failureMessage"}`.
    PaymentDeclined,
    /// The booking was cancelled while the execution waited on it.
    BookingCancelled,
    /// Stripe refused the request permanently (4xx other than 429).
    PaymentProviderError,
    /// A refund above what is still refundable was requested.
    RefundExceedsCharge,
    /// Stripe reported the payout failed; the cause is `{"failureCode","failureMessage"}`.
    PayoutFailed,
    /// The connected account cannot fund the payout.
    InsufficientBalance,
    /// The caller may not do this (resolver authorization; not a workflow error).
    Unauthorized,
}

impl ErrorType {
    /// Every error type.
    pub const ALL: &'static [ErrorType] = &[
        ErrorType::TransientError,
        ErrorType::ValidationError,
        ErrorType::NotFound,
        ErrorType::InvalidTransition,
        ErrorType::ServiceUnavailable,
        ErrorType::ProviderNotOnboarded,
        ErrorType::SlotUnavailable,
        ErrorType::PaymentDeclined,
        ErrorType::BookingCancelled,
        ErrorType::PaymentProviderError,
        ErrorType::RefundExceedsCharge,
        ErrorType::PayoutFailed,
        ErrorType::InsufficientBalance,
        ErrorType::Unauthorized,
    ];

    /// The wire name, e.g. `Marketplace.TransientError`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::TransientError => "Marketplace.TransientError",
            ErrorType::ValidationError => "Marketplace.ValidationError",
            ErrorType::NotFound => "Marketplace.NotFound",
            ErrorType::InvalidTransition => "Marketplace.InvalidTransition",
            ErrorType::ServiceUnavailable => "Marketplace.ServiceUnavailable",
            ErrorType::ProviderNotOnboarded => "Marketplace.ProviderNotOnboarded",
            ErrorType::SlotUnavailable => "Marketplace.SlotUnavailable",
            ErrorType::PaymentDeclined => "Marketplace.PaymentDeclined",
            ErrorType::BookingCancelled => "Marketplace.BookingCancelled",
            ErrorType::PaymentProviderError => "Marketplace.PaymentProviderError",
            ErrorType::RefundExceedsCharge => "Marketplace.RefundExceedsCharge",
            ErrorType::PayoutFailed => "Marketplace.PayoutFailed",
            ErrorType::InsufficientBalance => "Marketplace.InsufficientBalance",
            ErrorType::Unauthorized => "Marketplace.Unauthorized",
        }
    }

    /// The error type named `name`, if it is one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.as_str() == name)
    }

    /// Whether a workflow retries this error.
    pub fn is_retryable(self) -> bool {
        self == ErrorType::TransientError
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown errorType {s}")))
    }
}

/// Anything that has a contract `errorType`.
pub trait HasErrorType {
    /// The stable name Retry/Catch match on.
    fn error_type(&self) -> ErrorType;
}

/// The error a handler returns: a Lambda function error (`errorType`, `errorMessage`)
/// with an optional JSON `cause` (used by `PaymentDeclined` and `PayoutFailed`).
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("{error_type}: {message}")]
pub struct HandlerError {
    /// The stable name.
    #[serde(rename = "errorType")]
    pub error_type: ErrorType,
    /// What went wrong; names the field and the rule for validation errors.
    #[serde(rename = "errorMessage")]
    pub message: String,
    /// Structured detail (e.g. `{"failureCode","failureMessage"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Value>,
}

impl HandlerError {
    /// An error of `error_type` with `message`.
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
            cause: None,
        }
    }

    /// Adds a structured cause.
    pub fn with_cause(mut self, cause: Value) -> Self {
        self.cause = Some(cause);
        self
    }

    /// `Marketplace.ValidationError` naming `field` and `rule` (`field: rule`).
    pub fn validation(field: &str, rule: impl fmt::Display) -> Self {
        Self::new(ErrorType::ValidationError, format!("{field}: {rule}"))
    }

    /// `Marketplace.NotFound`.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::new(ErrorType::NotFound, format!("{what} does not exist"))
    }

    /// `Marketplace.TransientError`.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorType::TransientError, message)
    }

    /// The text Step Functions shows as `cause`: the JSON cause when there is one,
    /// else the message.
    pub fn cause_text(&self) -> String {
        match &self.cause {
            Some(c) => c.to_string(),
            None => self.message.clone(),
        }
    }

    /// The Lambda error response body `{"errorType","errorMessage"}`.
    pub fn to_lambda_error(&self) -> Value {
        serde_json::json!({
            "errorType": self.error_type.as_str(),
            "errorMessage": match &self.cause {
                Some(c) => c.to_string(),
                None => self.message.clone(),
            },
        })
    }
}

impl HasErrorType for HandlerError {
    fn error_type(&self) -> ErrorType {
        self.error_type
    }
}

impl From<marketplace_domain::ValidationError> for HandlerError {
    fn from(e: marketplace_domain::ValidationError) -> Self {
        Self::new(ErrorType::ValidationError, e.to_string())
    }
}

impl From<marketplace_domain::EntityError> for HandlerError {
    fn from(e: marketplace_domain::EntityError) -> Self {
        match e {
            marketplace_domain::EntityError::IllegalTransition { .. } => {
                Self::new(ErrorType::InvalidTransition, e.to_string())
            }
            marketplace_domain::EntityError::Invalid(v) => v.into(),
        }
    }
}

impl From<marketplace_domain::MoneyError> for HandlerError {
    fn from(e: marketplace_domain::MoneyError) -> Self {
        Self::new(ErrorType::ValidationError, e.to_string())
    }
}

/// Errors of the store repositories and the idempotency store.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write failed: the item exists or changed since it was read.
    #[error("conditional write on {entity} {id} failed: {reason}")]
    ConditionFailed {
        /// `booking`, `payment`, ...
        entity: &'static str,
        /// The item's key.
        id: String,
        /// Which condition.
        reason: String,
    },
    /// The slot reservation overlaps a booking that holds one of its slots.
    #[error("slot unavailable: provider {provider_id} is booked from {slot_start} by {conflicting_booking_id}")]
    SlotUnavailable {
        /// The provider.
        provider_id: String,
        /// The first 15-minute slot found taken (RFC 3339).
        slot_start: String,
        /// The booking that holds it.
        conflicting_booking_id: String,
    },
    /// The item does not exist (for updates that require it).
    #[error("{entity} {id} does not exist")]
    NotFound {
        /// `booking`, `payment`, ...
        entity: &'static str,
        /// The item's key.
        id: String,
    },
    /// Throttling, timeouts, network or 5xx: safe to repeat.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored item could not be read back (corrupt or from an incompatible version).
    #[error("stored {entity} {id} is unreadable: {reason}")]
    Corrupt {
        /// `booking`, `payment`, ...
        entity: &'static str,
        /// The item's key.
        id: String,
        /// Why.
        reason: String,
    },
}

impl HasErrorType for StoreError {
    fn error_type(&self) -> ErrorType {
        match self {
            StoreError::ConditionFailed { .. } => ErrorType::InvalidTransition,
            StoreError::SlotUnavailable { .. } => ErrorType::SlotUnavailable,
            StoreError::NotFound { .. } => ErrorType::NotFound,
            StoreError::Unavailable(_) | StoreError::Corrupt { .. } => ErrorType::TransientError,
        }
    }
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        HandlerError::new(e.error_type(), e.to_string())
    }
}

/// Errors of the event publisher as a whole (per-entry failures are results, not errors).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PublishError {
    /// The request was refused as a whole (too many entries, bad bus name, ...).
    #[error("PutEvents refused: {0}")]
    Invalid(String),
    /// Throttling, network or 5xx: safe to repeat.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// Some entries still failed after the retries of [`crate::publish_all`].
    #[error("{failed} of {total} events were not accepted: {first_error}")]
    EntriesFailed {
        /// How many failed.
        failed: usize,
        /// How many were sent.
        total: usize,
        /// The first entry's `ErrorCode: ErrorMessage`.
        first_error: String,
    },
}

impl HasErrorType for PublishError {
    fn error_type(&self) -> ErrorType {
        match self {
            PublishError::Invalid(_) => ErrorType::ValidationError,
            PublishError::Unavailable(_) | PublishError::EntriesFailed { .. } => {
                ErrorType::TransientError
            }
        }
    }
}

impl From<PublishError> for HandlerError {
    fn from(e: PublishError) -> Self {
        HandlerError::new(e.error_type(), e.to_string())
    }
}

/// Errors of the workflow client, named like Step Functions' exceptions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkflowError {
    /// An execution with this name exists with a different input (or has finished).
    #[error("ExecutionAlreadyExists: {0}")]
    ExecutionAlreadyExists(String),
    /// No such execution.
    #[error("ExecutionDoesNotExist: {0}")]
    ExecutionDoesNotExist(String),
    /// No such state machine.
    #[error("StateMachineDoesNotExist: {0}")]
    StateMachineDoesNotExist(String),
    /// The task token belongs to no waiting task.
    #[error("TaskDoesNotExist: {0}")]
    TaskDoesNotExist(String),
    /// The task already finished or timed out.
    #[error("TaskTimedOut: {0}")]
    TaskTimedOut(String),
    /// The token is malformed.
    #[error("InvalidToken: {0}")]
    InvalidToken(String),
    /// The ARN is malformed.
    #[error("InvalidArn: {0}")]
    InvalidArn(String),
    /// The execution name breaks Step Functions' rules.
    #[error("InvalidName: {0}")]
    InvalidName(String),
    /// The input or output is not valid JSON or too large.
    #[error("InvalidExecutionInput: {0}")]
    InvalidExecutionInput(String),
    /// The output of SendTaskSuccess is not valid JSON or too large.
    #[error("InvalidOutput: {0}")]
    InvalidOutput(String),
    /// Throttling, network, 5xx, or the circuit breaker is open: safe to repeat.
    #[error("workflow service unavailable: {0}")]
    Unavailable(String),
}

impl WorkflowError {
    /// The AWS exception name (`ExecutionDoesNotExist`, ...); GraphQL results carry it.
    pub fn aws_name(&self) -> &'static str {
        match self {
            WorkflowError::ExecutionAlreadyExists(_) => "ExecutionAlreadyExists",
            WorkflowError::ExecutionDoesNotExist(_) => "ExecutionDoesNotExist",
            WorkflowError::StateMachineDoesNotExist(_) => "StateMachineDoesNotExist",
            WorkflowError::TaskDoesNotExist(_) => "TaskDoesNotExist",
            WorkflowError::TaskTimedOut(_) => "TaskTimedOut",
            WorkflowError::InvalidToken(_) => "InvalidToken",
            WorkflowError::InvalidArn(_) => "InvalidArn",
            WorkflowError::InvalidName(_) => "InvalidName",
            WorkflowError::InvalidExecutionInput(_) => "InvalidExecutionInput",
            WorkflowError::InvalidOutput(_) => "InvalidOutput",
            WorkflowError::Unavailable(_) => "ServiceUnavailable",
        }
    }

    /// Whether the token was already used or expired: not an error for a caller that
    /// only wants the outcome delivered once.
    pub fn is_stale_token(&self) -> bool {
        matches!(
            self,
            WorkflowError::TaskDoesNotExist(_)
                | WorkflowError::TaskTimedOut(_)
                | WorkflowError::InvalidToken(_)
        )
    }
}

impl HasErrorType for WorkflowError {
    fn error_type(&self) -> ErrorType {
        match self {
            WorkflowError::ExecutionDoesNotExist(_)
            | WorkflowError::StateMachineDoesNotExist(_) => ErrorType::NotFound,
            WorkflowError::ExecutionAlreadyExists(_)
            | WorkflowError::TaskDoesNotExist(_)
            | WorkflowError::TaskTimedOut(_) => ErrorType::InvalidTransition,
            WorkflowError::InvalidToken(_)
            | WorkflowError::InvalidArn(_)
            | WorkflowError::InvalidName(_)
            | WorkflowError::InvalidExecutionInput(_)
            | WorkflowError::InvalidOutput(_) => ErrorType::ValidationError,
            WorkflowError::Unavailable(_) => ErrorType::TransientError,
        }
    }
}

impl From<WorkflowError> for HandlerError {
    fn from(e: WorkflowError) -> Self {
        HandlerError::new(e.error_type(), e.to_string())
    }
}

/// How Stripe refused a request, classified for retry decisions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    /// 429, 5xx, network failure, `lock_timeout`: safe to repeat with the same idempotency key.
    #[error("payment provider unavailable ({status}): {message}")]
    Transient {
        /// HTTP status (0 for a network failure).
        status: u16,
        /// Stripe's message.
        message: String,
    },
    /// The card was declined or the payment failed (`card_declined`, `insufficient_funds`, ...).
    #[error("payment declined ({code}): {message}")]
    Declined {
        /// Stripe's `code` (`card_declined`, `expired_card`, ...).
        code: String,
        /// Stripe's `decline_code` (`insufficient_funds`, `generic_decline`, ...).
        decline_code: Option<String>,
        /// Stripe's message.
        message: String,
        /// The PaymentIntent the decline concerns, if any.
        payment_intent_id: Option<String>,
    },
    /// Any other 4xx: the request will not succeed if repeated.
    #[error("payment provider refused ({status} {code}): {message}")]
    Permanent {
        /// HTTP status.
        status: u16,
        /// Stripe's `code` (`resource_missing`, `balance_insufficient`, `idempotency_error`, ...).
        code: String,
        /// Stripe's message.
        message: String,
        /// The parameter at fault, if Stripe named one.
        param: Option<String>,
    },
}

impl GatewayError {
    /// A permanent error with `code`.
    pub fn permanent(status: u16, code: &str, message: impl Into<String>) -> Self {
        GatewayError::Permanent {
            status,
            code: code.to_owned(),
            message: message.into(),
            param: None,
        }
    }

    /// Stripe's code for permanent and declined errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            GatewayError::Transient { .. } => None,
            GatewayError::Declined { code, .. } | GatewayError::Permanent { code, .. } => {
                Some(code)
            }
        }
    }
}

impl HasErrorType for GatewayError {
    fn error_type(&self) -> ErrorType {
        match self {
            GatewayError::Transient { .. } => ErrorType::TransientError,
            GatewayError::Declined { .. } => ErrorType::PaymentDeclined,
            GatewayError::Permanent { code, .. } if code == "balance_insufficient" => {
                ErrorType::InsufficientBalance
            }
            GatewayError::Permanent { code, .. } if code == "resource_missing" => {
                ErrorType::NotFound
            }
            GatewayError::Permanent { .. } => ErrorType::PaymentProviderError,
        }
    }
}

impl From<GatewayError> for HandlerError {
    fn from(e: GatewayError) -> Self {
        let error_type = e.error_type();
        let message = e.to_string();
        match e {
            GatewayError::Declined {
                code,
                decline_code,
                message: m,
                ..
            } => HandlerError::new(error_type, message).with_cause(serde_json::json!({
                "failureCode": decline_code.unwrap_or(code),
                "failureMessage": m,
            })),
            _ => HandlerError::new(error_type, message),
        }
    }
}

/// Errors of the notifier.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotifyError {
    /// The message was refused (bad address, unverified sender, too large).
    #[error("message rejected: {0}")]
    Rejected(String),
    /// Throttling, network, 5xx: safe to repeat.
    #[error("mail service unavailable: {0}")]
    Unavailable(String),
}

impl HasErrorType for NotifyError {
    fn error_type(&self) -> ErrorType {
        match self {
            NotifyError::Rejected(_) => ErrorType::ValidationError,
            NotifyError::Unavailable(_) => ErrorType::TransientError,
        }
    }
}

impl From<NotifyError> for HandlerError {
    fn from(e: NotifyError) -> Self {
        HandlerError::new(e.error_type(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for e in ErrorType::ALL {
            assert!(e.as_str().starts_with("Marketplace."));
            assert_eq!(ErrorType::parse(e.as_str()), Some(*e));
            assert!(seen.insert(e.as_str()));
            let json = serde_json::to_string(e).unwrap();
            assert_eq!(serde_json::from_str::<ErrorType>(&json).unwrap(), *e);
        }
        assert_eq!(ErrorType::parse("Marketplace.Nope"), None);
        assert!(ErrorType::TransientError.is_retryable());
        assert!(!ErrorType::PaymentDeclined.is_retryable());
    }

    #[test]
    fn every_port_error_maps_to_a_contract_name() {
        let slot = StoreError::SlotUnavailable {
            provider_id: "p".into(),
            slot_start: "2026-01-01T09:00:00Z".into(),
            conflicting_booking_id: "b".into(),
        };
        assert_eq!(slot.error_type(), ErrorType::SlotUnavailable);
        assert_eq!(
            StoreError::Unavailable("x".into()).error_type(),
            ErrorType::TransientError
        );
        assert_eq!(
            GatewayError::permanent(400, "balance_insufficient", "no").error_type(),
            ErrorType::InsufficientBalance
        );
        assert_eq!(
            GatewayError::permanent(400, "parameter_invalid_integer", "no").error_type(),
            ErrorType::PaymentProviderError
        );
        assert_eq!(
            GatewayError::Transient {
                status: 429,
                message: "slow down".into()
            }
            .error_type(),
            ErrorType::TransientError
        );
        assert_eq!(
            WorkflowError::ExecutionDoesNotExist("a".into()).error_type(),
            ErrorType::NotFound
        );
        assert!(WorkflowError::TaskTimedOut("t".into()).is_stale_token());
        assert!(!WorkflowError::Unavailable("t".into()).is_stale_token());
    }

    #[test]
    fn declines_carry_the_failure_cause() {
        let e: HandlerError = GatewayError::Declined {
            code: "card_declined".into(),
            decline_code: Some("insufficient_funds".into()),
            message: "Your card has insufficient funds.".into(),
            payment_intent_id: Some("pi_1".into()),
        }
        .into();
        assert_eq!(e.error_type, ErrorType::PaymentDeclined);
        let lambda = e.to_lambda_error();
        assert_eq!(lambda["errorType"], "Marketplace.PaymentDeclined");
        let cause: Value = serde_json::from_str(lambda["errorMessage"].as_str().unwrap()).unwrap();
        assert_eq!(cause["failureCode"], "insufficient_funds");
    }
}
