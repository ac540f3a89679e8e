//! Structured logs, one JSON object per line (Powertools-style): `timestamp`, `level`,
//! `message`, the invocation's `correlationId`, `workflowType`, `executionArn`,
//! `requestId`, `function`, and any extra fields. Honours Lambda's advanced logging
//! controls: `AWS_LAMBDA_LOG_LEVEL` (TRACE, DEBUG, INFO, WARN, ERROR, FATAL; default INFO)
//! and `AWS_LAMBDA_LOG_FORMAT` (JSON, the default here, or Text).

use crate::clock::Clock;
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Log levels, in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something odd, handled.
    Warn,
    /// A failed operation.
    Error,
    /// The function cannot go on.
    Fatal,
}

impl Level {
    /// The name Lambda uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    /// Parses a level name (case-insensitive; `WARNING` is WARN).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARN" | "WARNING" => Level::Warn,
            "ERROR" => Level::Error,
            "FATAL" | "CRITICAL" => Level::Fatal,
            _ => return None,
        })
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// `timestamp LEVEL message key=value ...`.
    Text,
}

/// The invocation's context, attached to every record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogContext {
    /// The business flow.
    pub correlation_id: Option<String>,
    /// BOOKING_LIFECYCLE, ...
    pub workflow_type: Option<String>,
    /// The execution that called.
    pub execution_arn: Option<String>,
    /// The Lambda request id.
    pub request_id: Option<String>,
}

/// Where log lines go.
pub type LogSink = Arc<Mutex<dyn Write + Send>>;

/// A logger writing one record per line to a sink.
#[derive(Clone)]
pub struct Logger {
    function: String,
    level: Level,
    format: Format,
    sink: LogSink,
    clock: Arc<dyn Clock>,
}

impl Logger {
    /// A logger for `function` with the level and format from the environment.
    pub fn from_env(function: &str, sink: LogSink, clock: Arc<dyn Clock>) -> Self {
        Self::from_lookup(function, sink, clock, |k| std::env::var(k).ok())
    }

    /// As [`Logger::from_env`], reading variables through `lookup` (tests).
    pub fn from_lookup(
        function: &str,
        sink: LogSink,
        clock: Arc<dyn Clock>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let level = lookup("AWS_LAMBDA_LOG_LEVEL")
            .or_else(|| lookup("POWERTOOLS_LOG_LEVEL"))
            .and_then(|l| Level::parse(&l))
            .unwrap_or(Level::Info);
        let format = match lookup("AWS_LAMBDA_LOG_FORMAT").map(|f| f.to_ascii_uppercase()) {
            Some(f) if f == "TEXT" => Format::Text,
            _ => Format::Json,
        };
        Self {
            function: function.to_owned(),
            level,
            format,
            sink,
            clock,
        }
    }

    /// A logger to standard output.
    pub fn stdout(function: &str, clock: Arc<dyn Clock>) -> Self {
        Self::from_env(function, Arc::new(Mutex::new(std::io::stdout())), clock)
    }

    /// The active level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether `level` is logged.
    pub fn enabled(&self, level: Level) -> bool {
        level >= self.level
    }

    /// Writes one record.
    pub fn log(&self, level: Level, ctx: &LogContext, message: &str, fields: &[(&str, Value)]) {
        if !self.enabled(level) {
            return;
        }
        let ts = marketplace_domain::wire::format_time(&self.clock.now());
        let line = match self.format {
            Format::Json => {
                let mut o = Map::new();
                o.insert("timestamp".into(), Value::String(ts));
                o.insert("level".into(), Value::String(level.as_str().into()));
                o.insert("message".into(), Value::String(message.into()));
                o.insert("function".into(), Value::String(self.function.clone()));
                let ctx_fields = [
                    ("correlationId", &ctx.correlation_id),
                    ("workflowType", &ctx.workflow_type),
                    ("executionArn", &ctx.execution_arn),
                    ("requestId", &ctx.request_id),
                ];
                for (k, v) in ctx_fields {
                    if let Some(v) = v {
                        o.insert(k.into(), Value::String(v.clone()));
                    }
                }
                for (k, v) in fields {
                    // extra fields never overwrite the standard keys
                    o.entry(k.to_string()).or_insert_with(|| v.clone());
                }
                Value::Object(o).to_string()
            }
            Format::Text => {
                let mut s = format!("{ts} {} {message}", level.as_str());
                if let Some(c) = &ctx.correlation_id {
                    s.push_str(&format!(" correlationId={c}"));
                }
                if let Some(r) = &ctx.request_id {
                    s.push_str(&format!(" requestId={r}"));
                }
                for (k, v) in fields {
                    s.push_str(&format!(" {k}={v}"));
                }
                s
            }
        };
        let mut w = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        // a log line that cannot be written must not fail the invocation
        let _ = writeln!(w, "{line}");
    }

    /// INFO record.
    pub fn info(&self, ctx: &LogContext, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Info, ctx, message, fields)
    }
    /// WARN record.
    pub fn warn(&self, ctx: &LogContext, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Warn, ctx, message, fields)
    }
    /// ERROR record.
    pub fn error(&self, ctx: &LogContext, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Error, ctx, message, fields)
    }
    /// DEBUG record.
    pub fn debug(&self, ctx: &LogContext, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Debug, ctx, message, fields)
    }
}

/// A sink that keeps lines in memory (tests and the local runtime's log view).
#[derive(Clone, Default)]
pub struct MemorySink(Arc<Mutex<Vec<u8>>>);

impl MemorySink {
    /// A new empty sink.
    pub fn new() -> Self {
        Self::default()
    }
    /// As a [`LogSink`].
    pub fn sink(&self) -> LogSink {
        Arc::new(Mutex::new(self.clone()))
    }
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        let b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&b)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::json;

    fn logger(vars: &[(&str, &str)]) -> (Logger, MemorySink) {
        let sink = MemorySink::new();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let l = Logger::from_lookup(
            "booking-manager",
            sink.sink(),
            Arc::new(ManualClock::new(crate::fixtures::t0())),
            move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        );
        (l, sink)
    }

    #[test]
    fn json_lines_carry_the_context_and_extra_fields() {
        let (l, sink) = logger(&[]);
        let ctx = LogContext {
            correlation_id: Some("corr-1".into()),
            workflow_type: Some("BOOKING_LIFECYCLE".into()),
            execution_arn: Some("arn:aws:states:us-east-1:1:execution:sm:n".into()),
            request_id: Some("req-1".into()),
        };
        l.info(
            &ctx,
            "slot reserved",
            &[("bookingId", json!("bk_1")), ("level", json!("x"))],
        );
        l.debug(&ctx, "not shown at INFO", &[]);
        let lines = sink.lines();
        assert_eq!(lines.len(), 1);
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["timestamp"], "2026-03-01T09:00:00Z");
        assert_eq!(
            v["level"], "INFO",
            "extra fields never overwrite standard keys"
        );
        assert_eq!(v["message"], "slot reserved");
        assert_eq!(v["correlationId"], "corr-1");
        assert_eq!(v["workflowType"], "BOOKING_LIFECYCLE");
        assert_eq!(
            v["executionArn"],
            "arn:aws:states:us-east-1:1:execution:sm:n"
        );
        assert_eq!(v["requestId"], "req-1");
        assert_eq!(v["function"], "booking-manager");
        assert_eq!(v["bookingId"], "bk_1");
    }

    #[test]
    fn level_and_format_from_the_environment() {
        let (l, sink) = logger(&[
            ("AWS_LAMBDA_LOG_LEVEL", "warn"),
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
        ]);
        assert_eq!(l.level(), Level::Warn);
        l.info(&LogContext::default(), "hidden", &[]);
        l.error(&LogContext::default(), "boom", &[("code", json!(7))]);
        assert_eq!(sink.lines(), ["2026-03-01T09:00:00Z ERROR boom code=7"]);
        let (l, _) = logger(&[("AWS_LAMBDA_LOG_LEVEL", "nonsense")]);
        assert_eq!(
            l.level(),
            Level::Info,
            "an unknown level falls back to INFO"
        );
    }
}
