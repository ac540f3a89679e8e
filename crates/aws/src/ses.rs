//! The notifier on SES v2 `SendEmail`.

use async_trait::async_trait;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag};
use aws_sdk_sesv2::Client;
use marketplace_ports::notify::{EmailMessage, Notifier};
use marketplace_ports::NotifyError;

/// Sends simple (subject + text/HTML) e-mail from one sender address.
#[derive(Clone, Debug)]
pub struct SesNotifier {
    client: Client,
    from: String,
}

/// An SES message tag value: letters, digits, `_` and `-` only.
fn tag_value(v: &str) -> String {
    let cleaned: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect();
    if cleaned.is_empty() {
        "none".into()
    } else {
        cleaned
    }
}

impl SesNotifier {
    /// A notifier sending from `from` (`SENDER_ADDRESS`).
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
        }
    }
}

#[async_trait]
impl Notifier for SesNotifier {
    async fn send_email(&self, message: &EmailMessage) -> Result<String, NotifyError> {
        if message.to.is_empty() {
            return Err(NotifyError::Rejected(
                "to: at least one recipient is required".into(),
            ));
        }
        if let Some(bad) = message.to.iter().find(|a| !a.contains('@')) {
            return Err(NotifyError::Rejected(format!(
                "to: {bad:?} is not an e-mail address"
            )));
        }
        let content = |text: &str| {
            Content::builder()
                .data(text)
                .charset("UTF-8")
                .build()
                .map_err(|e| NotifyError::Rejected(e.to_string()))
        };
        let mut body = Body::builder().text(content(&message.text_body)?);
        if let Some(html) = &message.html_body {
            body = body.html(content(html)?);
        }
        let simple = Message::builder()
            .subject(content(&message.subject)?)
            .body(body.build())
            .build();
        let tag = |name: &str, value: &str| {
            MessageTag::builder()
                .name(name)
                .value(tag_value(value))
                .build()
                .map_err(|e| NotifyError::Rejected(e.to_string()))
        };
        let out = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(message.to.clone()))
                    .build(),
            )
            .content(EmailContent::builder().simple(simple).build())
            .email_tags(tag("template", &message.template)?)
            .email_tags(tag(
                "correlationId",
                message.correlation_id.as_deref().unwrap_or(""),
            )?)
            .send()
            .await
            .map_err(|e| {
                let code = e.code().unwrap_or("Unknown").to_owned();
                let text = e
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| e.to_string());
                match code.as_str() {
                    "MessageRejected"
                    | "BadRequestException"
                    | "MailFromDomainNotVerifiedException"
                    | "AccountSuspendedException"
                    | "SendingPausedException"
                    | "NotFoundException" => NotifyError::Rejected(format!("{code}: {text}")),
                    _ => NotifyError::Unavailable(format!("SendEmail: {code}: {text}")),
                }
            })?;
        out.message_id.filter(|id| !id.is_empty()).ok_or_else(|| {
            NotifyError::Unavailable("SendEmail answered without a MessageId".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_keep_only_allowed_characters() {
        assert_eq!(tag_value("BOOKING_CONFIRMED"), "BOOKING_CONFIRMED");
        assert_eq!(tag_value("corr:1 x"), "corr_1_x");
        assert_eq!(tag_value(""), "none");
    }
}
