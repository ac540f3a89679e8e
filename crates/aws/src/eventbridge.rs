//! The event publisher on EventBridge `PutEvents`.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use marketplace_domain::PutEventsEntry;
use marketplace_ports::events::{EventPublisher, PutEventsResultEntry, MAX_ENTRIES_PER_CALL};
use marketplace_ports::PublishError;
use std::time::Duration;

/// Publishes to one bus. Entries without a bus name go to the configured bus. Failed
/// entries with a retryable code (throttling, internal failure) are sent again, alone,
/// up to `max_attempts` calls in all with exponential backoff; the results keep request
/// order.
#[derive(Clone, Debug)]
pub struct EventBridgePublisher {
    client: Client,
    bus_name: String,
    max_attempts: u32,
    base_delay: Duration,
}

impl EventBridgePublisher {
    /// A publisher to `bus_name` (3 attempts, 50 ms first backoff).
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
        }
    }

    /// Changes the retry policy (`max_attempts` ≥ 1 calls; the delay doubles per retry).
    pub fn with_retry(mut self, max_attempts: u32, base_delay: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.base_delay = base_delay;
        self
    }

    fn request_entry(&self, e: &PutEventsEntry) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(&e.source)
            .detail_type(&e.detail_type)
            .detail(&e.detail)
            .event_bus_name(
                e.event_bus_name
                    .clone()
                    .unwrap_or_else(|| self.bus_name.clone()),
            )
            .set_resources((!e.resources.is_empty()).then(|| e.resources.clone()))
            .set_time(e.time.map(crate::from_chrono))
            .set_trace_header(e.trace_header.clone())
            .build()
    }
}

/// The per-entry failure EventBridge gives an entry whose detail is not a JSON object
/// (checked before sending: the entry would fail anyway).
fn malformed(e: &PutEventsEntry) -> Option<PutEventsResultEntry> {
    match serde_json::from_str::<serde_json::Value>(&e.detail) {
        Ok(v) if v.is_object() => None,
        _ => Some(PutEventsResultEntry::failed(
            "MalformedDetail",
            "Detail is malformed.",
        )),
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn put_events(
        &self,
        entries: &[PutEventsEntry],
    ) -> Result<Vec<PutEventsResultEntry>, PublishError> {
        if entries.is_empty() || entries.len() > MAX_ENTRIES_PER_CALL {
            return Err(PublishError::Invalid(format!(
                "Entries must hold 1 to {MAX_ENTRIES_PER_CALL} entries, got {}",
                entries.len()
            )));
        }
        let mut results: Vec<Option<PutEventsResultEntry>> =
            entries.iter().map(malformed).collect();
        let mut pending: Vec<usize> = (0..entries.len())
            .filter(|i| results[*i].is_none())
            .collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let request: Vec<PutEventsRequestEntry> = pending
                .iter()
                .map(|i| self.request_entry(&entries[*i]))
                .collect();
            let out = self
                .client
                .put_events()
                .set_entries(Some(request))
                .send()
                .await
                .map_err(|e| {
                    let code = e.code().unwrap_or("Unknown").to_owned();
                    let message = e
                        .message()
                        .map(str::to_owned)
                        .unwrap_or_else(|| e.to_string());
                    if code == "ValidationException" {
                        PublishError::Invalid(format!("{code}: {message}"))
                    } else {
                        PublishError::Unavailable(format!("PutEvents: {code}: {message}"))
                    }
                })?;
            let answers = out.entries.unwrap_or_default();
            if answers.len() != pending.len() {
                return Err(PublishError::Unavailable(format!(
                    "PutEvents returned {} results for {} entries",
                    answers.len(),
                    pending.len()
                )));
            }
            let mut retry = Vec::new();
            for (i, a) in pending.iter().zip(answers) {
                let r = match (a.event_id, a.error_code) {
                    (Some(id), None) => PutEventsResultEntry::ok(id),
                    (_, code) => PutEventsResultEntry::failed(
                        code.unwrap_or_else(|| "InternalFailure".into()),
                        a.error_message.unwrap_or_default(),
                    ),
                };
                if r.is_retryable() && attempt < self.max_attempts {
                    retry.push(*i);
                }
                results[*i] = Some(r);
            }
            pending = retry;
            if !pending.is_empty() {
                tokio::time::sleep(self.base_delay * 2u32.saturating_pow(attempt - 1)).await;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| PutEventsResultEntry::failed("InternalFailure", "no result"))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(detail: &str) -> PutEventsEntry {
        PutEventsEntry {
            source: "s".into(),
            detail_type: "t".into(),
            detail: detail.into(),
            event_bus_name: None,
            resources: Vec::new(),
            time: None,
            trace_header: None,
        }
    }

    #[test]
    fn only_json_objects_are_well_formed_details() {
        assert!(malformed(&entry(r#"{"a":1}"#)).is_none());
        for bad in ["not json", "[1]", "3", ""] {
            let r = malformed(&entry(bad)).expect("malformed");
            assert_eq!(r.error_code.as_deref(), Some("MalformedDetail"));
            assert!(!r.is_retryable());
        }
    }
}
