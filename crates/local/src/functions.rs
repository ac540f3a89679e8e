//! The function handlers, called in process: what a Lambda target or a Lambda task invokes.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A function error, as Lambda reports it (`errorType`, `errorMessage`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct InvokeError {
    /// The stable error name a Retry/Catch matches (`Marketplace.TransientError`, ...).
    pub error_type: String,
    /// What happened.
    pub message: String,
}

impl InvokeError {
    /// An error of a type.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        InvokeError {
            error_type: error_type.into(),
            message: message.into(),
        }
    }
}

/// A function: one handler library, invoked with a JSON payload.
pub trait Function: Send + Sync {
    /// Handles one invocation.
    fn invoke(&self, payload: Value) -> Result<Value, InvokeError>;
}

impl<F> Function for F
where
    F: Fn(Value) -> Result<Value, InvokeError> + Send + Sync,
{
    fn invoke(&self, payload: Value) -> Result<Value, InvokeError> {
        self(payload)
    }
}

/// The functions of the runtime, by name (`notification-handler`, ...).
#[derive(Default)]
pub struct Functions {
    map: RwLock<HashMap<String, Arc<dyn Function>>>,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .map
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("Functions").field("names", &names).finish()
    }
}

/// The local ARN of a function.
pub fn function_arn(name: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{}:function:{name}",
        crate::REGION,
        crate::ACCOUNT
    )
}

impl Functions {
    /// Registers (or replaces) a function.
    pub fn register(&self, name: &str, f: Arc<dyn Function>) {
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        m.insert(name.to_string(), f);
    }

    /// Is a function registered under `name`?
    pub fn has(&self, name: &str) -> bool {
        let m = self.map.read().unwrap_or_else(|p| p.into_inner());
        m.contains_key(name)
    }

    /// Invokes a function by name or ARN. An unknown name fails like Lambda does
    /// (`Lambda.ResourceNotFoundException`); a panic inside a handler becomes an
    /// `Lambda.Unknown` error instead of taking the server down.
    pub fn invoke(&self, name_or_arn: &str, payload: Value) -> Result<Value, InvokeError> {
        let name = name_or_arn
            .rsplit_once(":function:")
            .map(|(_, n)| n.split(':').next().unwrap_or(n))
            .unwrap_or(name_or_arn);
        let f = {
            let m = self.map.read().unwrap_or_else(|p| p.into_inner());
            m.get(name).cloned()
        };
        let Some(f) = f else {
            return Err(InvokeError::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {}", function_arn(name)),
            ));
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.invoke(payload))) {
            Ok(r) => r,
            Err(_) => Err(InvokeError::new(
                "Lambda.Unknown",
                format!("function {name} panicked"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invokes_by_name_and_arn_and_reports_unknown_functions() {
        let fs = Functions::default();
        fs.register("echo", Arc::new(|v: Value| Ok(json!({"got": v}))));
        assert_eq!(fs.invoke("echo", json!(1)), Ok(json!({"got": 1})));
        assert_eq!(
            fs.invoke(&function_arn("echo"), json!(2)),
            Ok(json!({"got": 2}))
        );
        let e = fs.invoke("nope", json!(null)).expect_err("unknown");
        assert_eq!(e.error_type, "Lambda.ResourceNotFoundException");
        fs.register(
            "boom",
            Arc::new(|_v: Value| -> Result<Value, InvokeError> { panic!("boom") }),
        );
        assert_eq!(
            fs.invoke("boom", json!(null))
                .expect_err("panic")
                .error_type,
            "Lambda.Unknown"
        );
    }
}
