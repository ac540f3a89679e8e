//! # notification-handler
//!
//! Renders and sends the marketplace's e-mails (`statemachines/README.md`,
//! "notification-handler") through the [`Notifier`](marketplace_ports::Notifier) port
//! (SES v2 on AWS, an outbox locally):
//!
//! - the workflows' `notify` task: `template`, `recipients` (`[{role, userId}]`; ADMIN
//!   with `admins`/`operations` = the members of the group `admin`), `idempotencyKey`,
//!   `data`;
//! - the EventBridge rules `*-events-to-notification-handler` (`handleEvent`): each
//!   booking, payment, dispute and provider event a user should hear about becomes a
//!   template for its recipients, keyed `{subjectId}:{TEMPLATE}` exactly like the
//!   workflow path, so a message is sent once whichever path asks first;
//! - an SQS batch of such events (`Records`), answering a partial batch failure.
//!
//! Every message is sent at most once per idempotency key and recipient (idempotency
//! record keyed by both); a redelivery replays. Every template and recipient is checked
//! before anything is sent, so a bad request sends nothing.
#![warn(missing_docs)]

pub mod templates;

use marketplace_ports::fields::Fields;
use marketplace_ports::handler::{
    process_sqs_batch, BatchResponse, Invocation, SqsEvent, TargetEvent, TaskPayload,
};
use marketplace_ports::idempotency::{Idempotency, Outcome};
use marketplace_ports::log::Logger;
use marketplace_ports::metrics::{Metrics, Unit};
use marketplace_ports::{EmailMessage, HandlerError, Ports, UserContact};
use serde_json::{json, Value};
use templates::{render, Role};

/// The notification-handler function.
#[derive(Clone)]
pub struct NotificationHandler {
    ports: Ports,
    log: Logger,
    metrics: Metrics,
    idempotency: Idempotency,
}

struct Planned {
    contact: UserContact,
    message: EmailMessage,
}

impl NotificationHandler {
    /// A notification handler over `ports`.
    pub fn new(ports: Ports, log: Logger, metrics: Metrics) -> Self {
        let idempotency = Idempotency::new(
            ports.idempotency.clone(),
            ports.clock.clone(),
            "notification-handler",
            7 * 24 * 3600,
            60,
        )
        .with_pause(ports.pause.clone());
        Self {
            ports,
            log,
            metrics,
            idempotency,
        }
    }

    /// Handles a `notify` task, a `handleEvent` target input, or an SQS batch.
    pub async fn handle(
        &self,
        payload: Value,
        request_id: Option<&str>,
    ) -> Result<Value, HandlerError> {
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload).map_err(|e| {
                HandlerError::validation("Records", format!("is not an SQS event: {e}"))
            })?;
            let resp = self.handle_batch(&event, request_id).await;
            return serde_json::to_value(resp).map_err(|e| HandlerError::transient(e.to_string()));
        }
        let inv = Invocation::new(&payload, request_id, self.log.clone(), self.metrics.clone());
        let action = payload
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let result = self.dispatch(&payload, &inv).await;
        match &result {
            Ok(out) => inv.log.info(
                &inv.context,
                &format!("{action} done"),
                &[("result", out.clone())],
            ),
            Err(e) => {
                inv.metrics.add("NotificationFailed", Unit::Count, 1.0);
                inv.log_error(&action, e)
            }
        }
        inv.metrics.flush();
        result
    }

    /// An SQS batch: each body is a target input or an EventBridge event; failed records
    /// are reported for redelivery, the others acknowledged.
    pub async fn handle_batch(&self, event: &SqsEvent, request_id: Option<&str>) -> BatchResponse {
        process_sqs_batch(event, |mut body| async move {
            if body.get("action").is_none() {
                body["action"] = json!("handleEvent");
            }
            Box::pin(self.handle(body, request_id)).await
        })
        .await
    }

    async fn dispatch(&self, payload: &Value, inv: &Invocation) -> Result<Value, HandlerError> {
        let task = TaskPayload::parse(payload)?;
        match task.action {
            "notify" => {
                let f = task.fields;
                let template = f.str("template")?;
                let key = f.str("idempotencyKey")?;
                let recipients = match f.get("recipients") {
                    Some(Value::Array(a)) if !a.is_empty() => a.clone(),
                    _ => return Err(f.error("recipients", "must be a non-empty array")),
                };
                let data = f.get("data").cloned().unwrap_or_else(|| json!({}));
                if !data.is_object() {
                    return Err(f.error("data", "must be an object"));
                }
                self.notify(template, &recipients, key, &data, task.correlation_id, inv)
                    .await
            }
            "handleEvent" => self.handle_event(payload, inv).await,
            other => Err(HandlerError::validation(
                "action",
                format!("{other:?} is not an action of notification-handler"),
            )),
        }
    }

    async fn contacts(&self, role: Role, user_id: &str) -> Result<Vec<UserContact>, HandlerError> {
        if role == Role::Admin && matches!(user_id, "admins" | "operations" | "admin") {
            let members = self.ports.users.group_members("admin").await?;
            if members.is_empty() {
                return Err(HandlerError::not_found("the admin group's members"));
            }
            return Ok(members);
        }
        if let Some(c) = self.ports.users.get_user(user_id).await? {
            return Ok(vec![c]);
        }
        if role == Role::Provider {
            if let Some(p) = self.ports.providers.get_provider(user_id).await? {
                return Ok(vec![UserContact {
                    user_id: user_id.to_owned(),
                    email: p.value.provider.email().to_owned(),
                    display_name: user_id.to_owned(),
                }]);
            }
        }
        Err(HandlerError::not_found(format!("recipient {user_id}")))
    }

    /// Renders for every recipient first, then sends each message once per key.
    async fn notify(
        &self,
        template: &str,
        recipients: &[Value],
        key: &str,
        data: &Value,
        correlation_id: Option<&str>,
        inv: &Invocation,
    ) -> Result<Value, HandlerError> {
        let data_fields = Fields::under(data, "data");
        let mut planned = Vec::new();
        for (i, r) in recipients.iter().enumerate() {
            let name = format!("recipients[{i}]");
            let rf = Fields::under(r, &name);
            let role_text = rf.str("role")?;
            let role = Role::parse(role_text)
                .ok_or_else(|| rf.error("role", "must be CUSTOMER, PROVIDER or ADMIN"))?;
            let user_id = rf.str("userId")?;
            for contact in self.contacts(role, user_id).await? {
                let rendered = render(template, role, &contact.display_name, &data_fields)?;
                planned.push(Planned {
                    message: EmailMessage {
                        to: vec![contact.email.clone()],
                        subject: rendered.subject,
                        text_body: rendered.text,
                        html_body: Some(rendered.html),
                        idempotency_key: format!("{key}:{}", contact.user_id),
                        template: template.to_owned(),
                        correlation_id: correlation_id.map(str::to_owned),
                    },
                    contact,
                });
            }
        }
        let mut sent = 0;
        let mut replayed = 0;
        let mut ids = Vec::new();
        for p in planned {
            let id_key = format!("notify:{key}:{}", p.contact.user_id);
            let fingerprint = json!({"template": template, "userId": p.contact.user_id});
            let message = &p.message;
            let (v, outcome) = self
                .idempotency
                .run(&id_key, &fingerprint, || async move {
                    let id = self.ports.notifier.send_email(message).await?;
                    Ok(json!({"messageId": id}))
                })
                .await?;
            match outcome {
                Outcome::Executed => sent += 1,
                Outcome::Replayed => replayed += 1,
            }
            ids.push(v["messageId"].clone());
        }
        inv.metrics.add_dimension("template", template);
        inv.metrics
            .add("NotificationSent", Unit::Count, f64::from(sent));
        if replayed > 0 {
            inv.metrics
                .add("NotificationDeduplicated", Unit::Count, f64::from(replayed));
        }
        Ok(json!({"template": template, "sent": sent, "deduplicated": replayed, "messageIds": ids}))
    }

    async fn booking_parties(&self, booking_id: &str) -> Result<(String, String), HandlerError> {
        let b = self
            .ports
            .bookings
            .get_booking(booking_id)
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("booking {booking_id}")))?;
        Ok((
            b.value.booking.customer_id().to_string(),
            b.value.booking.provider_id().to_string(),
        ))
    }

    async fn handle_event(&self, payload: &Value, inv: &Invocation) -> Result<Value, HandlerError> {
        let event = TargetEvent::parse(payload)?;
        let d = &event.detail;
        let f = Fields::under(d, "detail");
        let both = |c: &str, p: &str| json!([{"role": "CUSTOMER", "userId": c}, {"role": "PROVIDER", "userId": p}]);
        let customer = |c: &str| json!([{"role": "CUSTOMER", "userId": c}]);
        let provider = |p: &str| json!([{"role": "PROVIDER", "userId": p}]);
        let (template, recipients, key, data): (&str, Value, String, Value) = match event
            .detail_type
            .as_str()
        {
            "Booking Confirmed" => {
                let id = f.str("bookingId")?;
                let (c, p) = self.booking_parties(id).await?;
                (
                    "BOOKING_CONFIRMED",
                    both(&c, &p),
                    format!("{id}:BOOKING_CONFIRMED"),
                    d.clone(),
                )
            }
            "Booking Cancelled" => {
                let id = f.str("bookingId")?;
                let (c, p) = self.booking_parties(id).await?;
                (
                    "BOOKING_CANCELLED",
                    both(&c, &p),
                    format!("{id}:BOOKING_CANCELLED"),
                    d.clone(),
                )
            }
            "Booking Expired" => {
                let id = f.str("bookingId")?;
                (
                    "BOOKING_EXPIRED",
                    customer(f.str("customerId")?),
                    format!("{id}:BOOKING_EXPIRED"),
                    d.clone(),
                )
            }
            "Booking Completed" => {
                let id = f.str("bookingId")?;
                (
                    "BOOKING_COMPLETED",
                    both(f.str("customerId")?, f.str("providerId")?),
                    format!("{id}:BOOKING_COMPLETED"),
                    d.clone(),
                )
            }
            "Booking Updated" => {
                let id = f.str("bookingId")?;
                let (c, p) = self.booking_parties(id).await?;
                (
                    "BOOKING_UPDATED",
                    both(&c, &p),
                    format!("{id}:BOOKING_UPDATED:{}", f.str("startDateTime")?),
                    d.clone(),
                )
            }
            "Payment Failed" => {
                let id = f.str("bookingId")?;
                let (c, _) = self.booking_parties(id).await?;
                (
                    "PAYMENT_DECLINED",
                    customer(&c),
                    format!("{id}:PAYMENT_DECLINED"),
                    d.clone(),
                )
            }
            "Refund Issued" => {
                let id = f.str("bookingId")?;
                let (c, _) = self.booking_parties(id).await?;
                let mut data = d.clone();
                data["refundAmount"] = d["amount"].clone();
                (
                    "REFUND_ISSUED",
                    customer(&c),
                    format!("{}:REFUND_ISSUED", f.str("refundId")?),
                    data,
                )
            }
            "Payout Completed" => (
                "PAYOUT_COMPLETED",
                provider(f.str("providerId")?),
                format!("{}:PAYOUT_COMPLETED", f.str("payoutId")?),
                d.clone(),
            ),
            "Payout Failed" => (
                "PAYOUT_FAILED",
                provider(f.str("providerId")?),
                format!("{}:PAYOUT_FAILED", f.str("payoutId")?),
                d.clone(),
            ),
            "Dispute Created" => {
                let id = f.str("disputeId")?;
                let mut data = d.clone();
                if data.get("reviewDeadline").is_none() {
                    let opened = f.time("timestamp")?;
                    data["reviewDeadline"] =
                        marketplace_ports::fields::time_json(&(opened + chrono_hours(24)));
                }
                (
                    "DISPUTE_OPENED_PROVIDER",
                    provider(f.str("providerId")?),
                    format!("{id}:DISPUTE_OPENED_PROVIDER"),
                    data,
                )
            }
            "Dispute Escalated" => {
                let id = f.str("disputeId")?;
                (
                    "DISPUTE_NEEDS_REVIEW",
                    json!([{"role": "ADMIN", "userId": "admins"}]),
                    format!("{id}:DISPUTE_NEEDS_REVIEW:{}", f.str("timestamp")?),
                    d.clone(),
                )
            }
            "Dispute Resolved" => {
                let id = f.str("disputeId")?;
                let (c, p) = self.booking_parties(f.str("bookingId")?).await?;
                (
                    "DISPUTE_RESOLVED",
                    both(&c, &p),
                    format!("{id}:DISPUTE_RESOLVED"),
                    d.clone(),
                )
            }
            "Provider Onboarding Completed" => {
                let id = f.str("providerId")?;
                (
                    "PROVIDER_ONBOARDING_COMPLETED",
                    provider(id),
                    format!("{id}:PROVIDER_ONBOARDING_COMPLETED"),
                    d.clone(),
                )
            }
            "Provider Onboarding Failed" => {
                let id = f.str("providerId")?;
                let mut data = d.clone();
                data["errorType"] = d["reason"].clone();
                (
                    "PROVIDER_ONBOARDING_FAILED",
                    provider(id),
                    format!("{id}:PROVIDER_ONBOARDING_FAILED:{}", event.event_id),
                    data,
                )
            }
            "Provider Account Updated" => {
                let id = f.str("providerId")?;
                (
                    "PROVIDER_ACCOUNT_UPDATED",
                    provider(id),
                    format!("{id}:PROVIDER_ACCOUNT_UPDATED:{}", event.event_id),
                    d.clone(),
                )
            }
            other => {
                return Ok(
                    json!({"handled": false, "reason": format!("no notification for {other:?}")}),
                )
            }
        };
        let recipients = recipients.as_array().cloned().unwrap_or_default();
        let corr = d.get("correlationId").and_then(Value::as_str);
        self.notify(template, &recipients, &key, &data, corr, inv)
            .await
    }
}

fn chrono_hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

#[cfg(test)]
mod tests;
