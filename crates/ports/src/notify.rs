//! The notifier port: e-mail (SES v2 on AWS, an outbox locally).

use crate::error::NotifyError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailMessage {
    /// Recipients' addresses.
    pub to: Vec<String>,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text_body: String,
    /// The HTML body.
    pub html_body: Option<String>,
    /// Identifies the message for de-duplication and tracing (`{subjectId}:{TEMPLATE}:{userId}`).
    pub idempotency_key: String,
    /// The template it was rendered from.
    pub template: String,
    /// The business flow.
    pub correlation_id: Option<String>,
}

/// Sends e-mail.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `message`; returns the provider's message id.
    async fn send_email(&self, message: &EmailMessage) -> Result<String, NotifyError>;
}
