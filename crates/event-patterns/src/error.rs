//! Error types of this crate.

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern breaks a rule of the pattern language; `reason` is EventBridge's text.
    #[error("Event pattern is not valid. Reason: {reason}")]
    Invalid {
        /// EventBridge's reason text, e.g. `Empty arrays are not allowed`.
        reason: String,
    },
    /// The pattern text is longer than the configured limit (EventBridge: 4096).
    #[error("1 validation error detected: Value at 'eventPattern' failed to satisfy constraint: Member must have length less than or equal to {max}")]
    TooLarge {
        /// Length of the pattern text in characters.
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

impl PatternError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        PatternError::Invalid {
            reason: reason.into(),
        }
    }

    /// The AWS error code EventBridge answers with for this error.
    pub fn code(&self) -> &'static str {
        match self {
            PatternError::Invalid { .. } => "InvalidEventPatternException",
            PatternError::TooLarge { .. } => "ValidationException",
        }
    }
}

/// Why an event could not be matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The event bytes are not one well-formed JSON object.
    #[error("event is not valid JSON at byte {offset}: {what}")]
    Malformed {
        /// Byte offset where reading stopped.
        offset: usize,
        /// What was expected there.
        what: &'static str,
    },
    /// The event nests objects/arrays deeper than the matcher allows.
    #[error("event nests deeper than {max} levels")]
    TooDeep {
        /// The depth limit.
        max: usize,
    },
    /// The event is not an EventBridge event (TestEventPattern: `Parameter Event is not valid.`).
    #[error("Parameter Event is not valid.")]
    NotAnEvent,
}

impl EventError {
    /// The AWS error code for this error.
    pub fn code(&self) -> &'static str {
        "ValidationException"
    }
}

/// Why an input transformer could not be built or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// A JSON path (InputPath or an InputPathsMap value) is not one EventBridge accepts.
    #[error("{0}")]
    InvalidPath(String),
    /// The InputTemplate uses a placeholder that is neither defined nor predefined.
    #[error("InputTemplate for target {target} contains invalid placeholder {placeholder}.")]
    InvalidPlaceholder {
        /// The target id named in the message.
        target: String,
        /// The unknown placeholder name.
        placeholder: String,
    },
    /// Any other violation of the InputTransformer rules (message names the rule).
    #[error("{0}")]
    Invalid(String),
    /// Applying a JSON template produced text that is not JSON (EventBridge drops such deliveries).
    #[error("the transformed input is not valid JSON: {0}")]
    NotJson(String),
}
