//! The event publisher port: EventBridge PutEvents with per-entry results.

use crate::error::PublishError;
use async_trait::async_trait;
use marketplace_domain::PutEventsEntry;
use serde::{Deserialize, Serialize};

/// Most entries one PutEvents call takes.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// One entry's result, in request order: an `event_id`, or an error code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsResultEntry {
    /// The id the bus gave the accepted event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Why the entry failed (`InternalFailure`, `ThrottlingException`, `MalformedDetail`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The error's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl PutEventsResultEntry {
    /// An accepted entry.
    pub fn ok(event_id: impl Into<String>) -> Self {
        Self {
            event_id: Some(event_id.into()),
            error_code: None,
            error_message: None,
        }
    }

    /// A failed entry.
    pub fn failed(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            event_id: None,
            error_code: Some(code.into()),
            error_message: Some(message.into()),
        }
    }

    /// Whether a retry may succeed (throttling or internal failure).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.error_code.as_deref(),
            Some("InternalFailure" | "ThrottlingException" | "InternalException")
        )
    }
}

/// Publishes events to the marketplace bus.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// One PutEvents call with at most [`MAX_ENTRIES_PER_CALL`] entries. Returns one
    /// result per entry, in order; some may fail while others succeed (partial failure).
    /// Errs only when the call as a whole failed.
    async fn put_events(
        &self,
        entries: &[PutEventsEntry],
    ) -> Result<Vec<PutEventsResultEntry>, PublishError>;
}

/// Publishes all `entries` in batches of ten, retrying only the failed retryable entries
/// up to `max_attempts` times per batch. Returns the event ids in order, or
/// [`PublishError::EntriesFailed`] if any entry is still not accepted.
pub async fn publish_all(
    publisher: &dyn EventPublisher,
    entries: &[PutEventsEntry],
    max_attempts: u32,
) -> Result<Vec<String>, PublishError> {
    let mut ids: Vec<Option<String>> = vec![None; entries.len()];
    let mut last_error: Vec<Option<String>> = vec![None; entries.len()];
    for (chunk_index, chunk) in entries.chunks(MAX_ENTRIES_PER_CALL).enumerate() {
        let base = chunk_index * MAX_ENTRIES_PER_CALL;
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() && attempt < max_attempts.max(1) {
            attempt += 1;
            let batch: Vec<PutEventsEntry> = pending.iter().map(|i| chunk[*i].clone()).collect();
            let results = publisher.put_events(&batch).await?;
            if results.len() != batch.len() {
                return Err(PublishError::Unavailable(format!(
                    "PutEvents returned {} results for {} entries",
                    results.len(),
                    batch.len()
                )));
            }
            let mut retry = Vec::new();
            for (i, r) in pending.iter().zip(results) {
                match r.event_id {
                    Some(id) if r.error_code.is_none() => ids[base + i] = Some(id),
                    _ => {
                        last_error[base + i] = Some(format!(
                            "{}: {}",
                            r.error_code.as_deref().unwrap_or("Unknown"),
                            r.error_message.as_deref().unwrap_or("")
                        ));
                        if r.is_retryable() {
                            retry.push(*i);
                        }
                    }
                }
            }
            pending = retry;
        }
    }
    let failed: Vec<usize> = (0..entries.len()).filter(|i| ids[*i].is_none()).collect();
    if let Some(first) = failed.first() {
        return Err(PublishError::EntriesFailed {
            failed: failed.len(),
            total: entries.len(),
            first_error: last_error[*first].clone().unwrap_or_default(),
        });
    }
    Ok(ids.into_iter().flatten().collect())
}
