//! The idempotency store port: records with conditional-put semantics, as Powertools for
//! AWS Lambda keeps them in DynamoDB (`id`, `status`, `expiration`, `in_progress_expiration`,
//! `data`, `validation`).

use crate::error::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The state of an idempotency record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IdempotencyStatus {
    /// A handler is working on it.
    InProgress,
    /// Done; `response` holds the result to return again.
    Completed,
}

/// One idempotency record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    /// The idempotency key (function name + key).
    pub id: String,
    /// IN_PROGRESS or COMPLETED.
    pub status: IdempotencyStatus,
    /// When the record expires (epoch seconds; DynamoDB TTL).
    pub expiration: i64,
    /// When an IN_PROGRESS record is considered abandoned (epoch milliseconds; the
    /// invocation's deadline).
    pub in_progress_expiration: Option<i64>,
    /// The stored response of a COMPLETED record.
    pub response: Option<Value>,
    /// Hash of the payload that created it; a different payload under the same key is refused.
    pub payload_hash: Option<String>,
}

impl IdempotencyRecord {
    /// Whether this record still blocks a new IN_PROGRESS put at `now_ms` (epoch ms):
    /// not expired, and if IN_PROGRESS, its in-progress expiration not passed.
    pub fn blocks(&self, now_ms: i64) -> bool {
        if self.expiration * 1000 <= now_ms {
            return false;
        }
        match self.status {
            IdempotencyStatus::Completed => true,
            IdempotencyStatus::InProgress => match self.in_progress_expiration {
                Some(deadline) => deadline > now_ms,
                None => true,
            },
        }
    }
}

/// Why a conditional put of an IN_PROGRESS record failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdempotencyPutError {
    /// A live record exists (returned so the caller can answer from it).
    #[error("idempotency record {} exists ({:?})", .0.id, .0.status)]
    AlreadyExists(Box<IdempotencyRecord>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Conditional storage of idempotency records.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Puts `record` (IN_PROGRESS) unless a record with its id exists that
    /// [`IdempotencyRecord::blocks`] at `now_ms`; then returns that record.
    /// Condition: `attribute_not_exists(id) OR expiration < now OR (status = IN_PROGRESS
    /// AND in_progress_expiration < now_ms)`.
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now_ms: i64,
    ) -> Result<(), IdempotencyPutError>;
    /// Marks the record COMPLETED with `response` and a new `expiration`.
    async fn complete(&self, id: &str, response: &Value, expiration: i64)
        -> Result<(), StoreError>;
    /// Deletes the record (the handler failed: a retry may run again).
    async fn delete(&self, id: &str) -> Result<(), StoreError>;
    /// The record, if present (expired records may still be returned).
    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
}
