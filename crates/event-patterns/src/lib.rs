//! Amazon EventBridge event patterns, without any AWS dependency.
//!
//! * [`Pattern`] parses and validates one pattern, refusing what EventBridge refuses with
//!   EventBridge's own reason text (`Event pattern is not valid. Reason: ...`).
//! * [`RuleSet`] compiles many named patterns into one matcher that reports every
//!   matching rule in a single pass over the raw bytes of an event; rules can be added
//!   and removed at run time.
//! * [`transform`] implements target input transformation: `InputPath`, and
//!   `InputPathsMap` + `InputTemplate` with the `<aws.events.*>` predefined variables.
//! * [`test_event_pattern`] behaves like the `TestEventPattern` API.
//! * [`reference`] is the plain, slow evaluator over `serde_json::Value` that the compiled
//!   matcher is tested against.
//!
//! Supported pattern language: exact values (strings, numbers compared numerically,
//! `true`/`false`/`null`), `prefix`, `suffix` (both also with `equals-ignore-case`),
//! `equals-ignore-case`, `wildcard`, `anything-but` (values, lists, and its `prefix`,
//! `suffix`, `wildcard` and `equals-ignore-case` forms), `numeric` (`=`, `<`, `<=`, `>`,
//! `>=`, ranges), `exists`, `cidr` (IPv4 and IPv6), `$or`, nested fields, arrays with
//! array-consistent matching, and dotted keys.
//!
//! ```
//! use event_patterns::{Pattern, RuleSet};
//!
//! let p = Pattern::parse(r#"{"detail": {"state": [{"anything-but": "initializing"}]}}"#)?;
//! let mut rules = RuleSet::new();
//! rules.add("not-initializing", p);
//! let matched = rules.matches(br#"{"detail": {"state": "running"}}"#).unwrap();
//! assert_eq!(matched, vec!["not-initializing"]);
//! # Ok::<(), event_patterns::PatternError>(())
//! ```

#![warn(missing_docs)]

mod error;
mod json;
mod machine;
mod pattern;
pub mod reference;
mod scan;
pub mod transform;
mod values;

pub use error::{EventError, PatternError, TransformError};
pub use machine::{RuleSet, Scratch};
pub use pattern::{Limits, Pattern};
pub use values::{fixed6, fold, NUMERIC_LIMIT};

/// The envelope fields `TestEventPattern` requires of an event.
pub const REQUIRED_EVENT_FIELDS: [&str; 6] =
    ["id", "account", "source", "time", "region", "detail-type"];

/// Why [`test_event_pattern`] gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestError {
    /// The pattern was refused.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// The event was refused (`Parameter Event is not valid.`).
    #[error(transparent)]
    Event(#[from] EventError),
}

impl TestError {
    /// The AWS error code: `InvalidEventPatternException` or `ValidationException`.
    pub fn code(&self) -> &'static str {
        match self {
            TestError::Pattern(p) => p.code(),
            TestError::Event(e) => e.code(),
        }
    }
}

/// Checks that `event` has the shape `TestEventPattern` accepts: a JSON object with the
/// envelope fields in [`REQUIRED_EVENT_FIELDS`].
pub fn validate_event(event: &serde_json::Value) -> Result<(), EventError> {
    let obj = event.as_object().ok_or(EventError::NotAnEvent)?;
    if REQUIRED_EVENT_FIELDS.iter().all(|f| obj.contains_key(*f)) {
        Ok(())
    } else {
        Err(EventError::NotAnEvent)
    }
}

/// Does the pattern text match the event? Behaves like EventBridge's `TestEventPattern`:
/// the event is checked first (`Parameter Event is not valid.`), then the pattern.
pub fn test_event_pattern(pattern: &str, event: &serde_json::Value) -> Result<bool, TestError> {
    validate_event(event)?;
    let p = Pattern::parse(pattern)?;
    let mut rules = RuleSet::new();
    rules.add("test", p);
    let bytes = serde_json::to_vec(event).map_err(|_| EventError::NotAnEvent)?;
    Ok(!rules.matches(&bytes)?.is_empty())
}
