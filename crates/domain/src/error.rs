//! The one validation error of the crate: a field path and the rule it broke.

use std::fmt;

/// A value was rejected: `field` is the JSON path of the offending value (for example
/// `detail.amount`), `rule` the rule it broke in words (for example `must be > 0`).
///
/// Its `Display` is `"{field}: {rule}"`, the form every caller shows to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// Path of the offending value, `.`-separated (`detail.amount`, `resources[0]`).
    pub field: String,
    /// The rule that was broken, in words (`must be > 0`, `is required`).
    pub rule: String,
}

impl ValidationError {
    /// A new error for `field` breaking `rule`.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The same error with `prefix` put in front of its field path
    /// (`amount` under `detail` becomes `detail.amount`).
    pub fn under(mut self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.rule)
        } else {
            write!(f, "{}: {}", self.field, self.rule)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_field_and_rule() {
        let e = ValidationError::new("amount", "must be > 0").under("detail");
        assert_eq!(e.to_string(), "detail.amount: must be > 0");
        assert_eq!(e.field, "detail.amount");
    }

    #[test]
    fn under_handles_index_and_empty_paths() {
        let e = ValidationError::new("[2]", "must be a string").under("resources");
        assert_eq!(e.field, "resources[2]");
        let e = ValidationError::new("", "must be an object").under("detail");
        assert_eq!(e.to_string(), "detail: must be an object");
        let e = ValidationError::new("x", "bad").under("");
        assert_eq!(e.field, "x");
    }
}
