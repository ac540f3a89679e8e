//! Shared handler plumbing: the invocation context (correlation id propagation, log
//! context, metrics), the common fields of task payloads, EventBridge target inputs, and
//! SQS-style partial batch failure.

use crate::clock::IdGenerator;
use crate::error::HandlerError;
use crate::fields::Fields;
use crate::log::{LogContext, Logger};
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;

/// The correlation id carried by `payload`: `correlationId` at the top, in `detail`
/// (an EventBridge event or target input), or in `input` (a workflow start).
pub fn correlation_id_of(payload: &Value) -> Option<String> {
    let candidates = [
        payload.get("correlationId"),
        payload.get("detail").and_then(|d| d.get("correlationId")),
        payload.get("input").and_then(|d| d.get("correlationId")),
        payload
            .get("arguments")
            .and_then(|d| d.get("correlationId")),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The correlation id of `payload`, or a new one (`corr-...`) when it has none.
pub fn ensure_correlation_id(payload: &Value, ids: &dyn IdGenerator) -> String {
    correlation_id_of(payload).unwrap_or_else(|| ids.new_id("corr-"))
}

/// One invocation: its log context, logger and metrics.
#[derive(Clone)]
pub struct Invocation {
    /// Attached to every log record.
    pub context: LogContext,
    /// The logger.
    pub log: Logger,
    /// This invocation's own metrics collector (flushed by the caller at the end).
    pub metrics: Metrics,
}

impl Invocation {
    /// An invocation for `payload` with Lambda request id `request_id`: reads the
    /// correlation id, the execution ARN and the workflow type from the payload.
    pub fn new(payload: &Value, request_id: Option<&str>, log: Logger, metrics: Metrics) -> Self {
        let execution_arn = payload
            .get("executionArn")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let workflow_type = payload
            .get("workflowType")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                execution_arn
                    .as_deref()
                    .and_then(|a| marketplace_domain::ExecutionArn::new(a).ok())
                    .and_then(|a| a.workflow_type())
                    .map(|w| w.as_str().to_owned())
            });
        Self {
            context: LogContext {
                correlation_id: correlation_id_of(payload),
                workflow_type,
                execution_arn,
                request_id: request_id.map(str::to_owned),
            },
            log,
            metrics: metrics.fresh(),
        }
    }

    /// The correlation id, or `fallback`.
    pub fn correlation_id_or(&self, fallback: &str) -> String {
        self.context
            .correlation_id
            .clone()
            .unwrap_or_else(|| fallback.to_owned())
    }

    /// Logs `err` at ERROR (validation and not-found at WARN) with its errorType.
    pub fn log_error(&self, action: &str, err: &HandlerError) {
        let fields = [
            ("action", Value::String(action.to_owned())),
            (
                "errorType",
                Value::String(err.error_type.as_str().to_owned()),
            ),
        ];
        if err.error_type.is_retryable() {
            self.log.error(&self.context, &err.message, &fields)
        } else {
            self.log.warn(&self.context, &err.message, &fields)
        }
    }
}

/// The fields every workflow task payload has.
#[derive(Debug, Clone)]
pub struct TaskPayload<'a> {
    /// The action to run.
    pub action: &'a str,
    /// The business flow.
    pub correlation_id: Option<&'a str>,
    /// The calling execution.
    pub execution_arn: Option<&'a str>,
    /// The callback token of a `.waitForTaskToken` task.
    pub task_token: Option<&'a str>,
    /// All fields.
    pub fields: Fields<'a>,
}

impl<'a> TaskPayload<'a> {
    /// Reads the common fields; `action` is required.
    pub fn parse(payload: &'a Value) -> Result<Self, HandlerError> {
        if !payload.is_object() {
            return Err(HandlerError::validation("payload", "must be a JSON object"));
        }
        let fields = Fields::new(payload);
        Ok(Self {
            action: fields.str("action")?,
            correlation_id: fields.opt_str("correlationId")?,
            execution_arn: fields.opt_str("executionArn")?,
            task_token: fields.opt_str("taskToken")?,
            fields,
        })
    }

    /// The task token, required for a callback action.
    pub fn require_task_token(&self) -> Result<&'a str, HandlerError> {
        self.task_token
            .ok_or_else(|| HandlerError::validation("taskToken", "is required for this action"))
    }
}

/// The input an EventBridge rule target gets (rules.json's input transformer):
/// `{"action": "handleEvent", "rule", "eventId", "source", "detailType", "time",
/// "account", "region", "detail"}`. A raw EventBridge event (`id`, `detail-type`) is
/// accepted too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetEvent {
    /// The rule that matched.
    pub rule: Option<String>,
    /// The event's id.
    pub event_id: String,
    /// `marketplace.booking`, ...
    pub source: String,
    /// `Booking Confirmed`, ...
    pub detail_type: String,
    /// When the event happened (RFC 3339).
    pub time: Option<String>,
    /// The detail.
    pub detail: Value,
}

impl TargetEvent {
    /// Reads a target input or a raw event.
    pub fn parse(payload: &Value) -> Result<Self, HandlerError> {
        let f = Fields::new(payload);
        let event_id = f
            .opt_str("eventId")?
            .or(f.opt_str("id")?)
            .ok_or_else(|| HandlerError::validation("eventId", "is required"))?;
        let detail_type = f
            .opt_str("detailType")?
            .or(f.opt_str("detail-type")?)
            .ok_or_else(|| HandlerError::validation("detailType", "is required"))?;
        let detail = payload
            .get("detail")
            .filter(|d| d.is_object())
            .cloned()
            .ok_or_else(|| HandlerError::validation("detail", "must be an object"))?;
        Ok(Self {
            rule: f.opt_str("rule")?.map(str::to_owned),
            event_id: event_id.to_owned(),
            source: f.str("source")?.to_owned(),
            detail_type: detail_type.to_owned(),
            time: f.opt_str("time")?.map(str::to_owned),
            detail,
        })
    }
}

/// One SQS record (the fields a handler needs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    /// The message id (the item identifier of a failure).
    pub message_id: String,
    /// The body (often an EventBridge event as JSON text).
    pub body: String,
}

/// An SQS event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqsEvent {
    /// The records.
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

/// One failed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// The message id.
    pub item_identifier: String,
}

/// The partial batch response (`ReportBatchItemFailures`): only these are redelivered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// The failed items.
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// Runs `handle` on every record's body (parsed as JSON) in order; records that fail to
/// parse or whose handler fails are reported, the others are acknowledged.
pub async fn process_sqs_batch<F, Fut>(event: &SqsEvent, mut handle: F) -> BatchResponse
where
    F: FnMut(Value) -> Fut,
    Fut: Future<Output = Result<Value, HandlerError>>,
{
    let mut out = BatchResponse::default();
    for r in &event.records {
        let ok = match serde_json::from_str::<Value>(&r.body) {
            Ok(body) => handle(body).await.is_ok(),
            Err(_) => false,
        };
        if !ok {
            out.batch_item_failures.push(BatchItemFailure {
                item_identifier: r.message_id.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SequentialIds;
    use serde_json::json;

    #[test]
    fn correlation_ids_are_found_and_propagated() {
        assert_eq!(
            correlation_id_of(&json!({"correlationId": "c1"})).as_deref(),
            Some("c1")
        );
        assert_eq!(
            correlation_id_of(&json!({"detail": {"correlationId": "c2"}})).as_deref(),
            Some("c2")
        );
        assert_eq!(
            correlation_id_of(&json!({"input": {"correlationId": "c3"}})).as_deref(),
            Some("c3")
        );
        assert_eq!(correlation_id_of(&json!({"correlationId": ""})), None);
        let ids = SequentialIds::default();
        assert_eq!(ensure_correlation_id(&json!({}), &ids), "corr-00000001");
        assert_eq!(
            ensure_correlation_id(&json!({"correlationId": "x"}), &ids),
            "x"
        );
    }

    #[test]
    fn task_payload_and_target_event() {
        let p = json!({"action": "reserveSlot", "correlationId": "c", "taskToken": "t"});
        let t = TaskPayload::parse(&p).unwrap();
        assert_eq!(
            (t.action, t.correlation_id, t.require_task_token().unwrap()),
            ("reserveSlot", Some("c"), "t")
        );
        assert_eq!(
            TaskPayload::parse(&json!({})).unwrap_err().message,
            "action: is required"
        );
        let e = TargetEvent::parse(&json!({"action": "handleEvent", "rule": "r", "eventId": "e1",
            "source": "marketplace.payment", "detailType": "Payment Succeeded", "detail": {"a": 1}})).unwrap();
        assert_eq!(
            (e.event_id.as_str(), e.detail_type.as_str()),
            ("e1", "Payment Succeeded")
        );
        let raw = TargetEvent::parse(
            &json!({"id": "e2", "source": "s", "detail-type": "D", "detail": {}}),
        )
        .unwrap();
        assert_eq!(raw.event_id, "e2");
        assert_eq!(
            TargetEvent::parse(&json!({"id": "e", "source": "s", "detail-type": "D"}))
                .unwrap_err()
                .message,
            "detail: must be an object"
        );
    }

    #[tokio::test]
    async fn partial_batch_failure_reports_only_failed_items() {
        let event = SqsEvent {
            records: vec![
                SqsRecord {
                    message_id: "m1".into(),
                    body: r#"{"ok":true}"#.into(),
                },
                SqsRecord {
                    message_id: "m2".into(),
                    body: r#"{"ok":false}"#.into(),
                },
                SqsRecord {
                    message_id: "m3".into(),
                    body: "not json".into(),
                },
            ],
        };
        let resp = process_sqs_batch(&event, |body| async move {
            if body["ok"] == json!(true) {
                Ok(json!(null))
            } else {
                Err(HandlerError::transient("x"))
            }
        })
        .await;
        let ids: Vec<&str> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["m2", "m3"]);
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]})
        );
    }
}
