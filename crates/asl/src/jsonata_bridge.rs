//! The one place that talks to the JSONata evaluator. Everything else in the crate sees
//! [`Compiled`] expressions and [`evaluate`].

use serde_json::Value;

/// A pre-parsed JSONata expression.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Expression text (inside `{% %}`), trimmed.
    pub text: String,
}

/// A JSONata failure, mapped to `States.QueryEvaluationError` by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonataError {
    /// JSONata error code (e.g. `T1006`), empty when none.
    pub code: String,
    /// Message.
    pub message: String,
}

/// Visits every workflow variable in scope (outer scopes first).
pub type VarVisitor<'a> = dyn Fn(&mut dyn FnMut(&str, &Value)) + 'a;

/// Parses an expression once, at definition load time.
pub fn compile(text: &str) -> Result<Compiled, JsonataError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(JsonataError {
            code: "S0201".into(),
            message: "empty expression".into(),
        });
    }
    Ok(Compiled {
        text: t.to_string(),
    })
}

/// Evaluates an expression against `input` with `$states` and workflow variables bound.
/// `Ok(None)` means the result is undefined.
pub fn evaluate(
    expr: &Compiled,
    _states: &Value,
    _vars: &VarVisitor<'_>,
    _seed: u64,
) -> Result<Option<Value>, JsonataError> {
    Err(JsonataError {
        code: String::new(),
        message: format!(
            "the JSONata evaluator is not linked into this build; cannot evaluate '{}'",
            expr.text
        ),
    })
}
