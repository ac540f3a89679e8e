//! # stripe-webhook
//!
//! The endpoint Stripe sends events to (a Lambda function URL on AWS, a route of
//! `marketplace serve` locally). It
//!
//! 1. verifies `Stripe-Signature` (HMAC-SHA256 over `"{t}.{raw_body}"` against every
//!    `v1` value and every configured secret, so secret rotation works; 300 s tolerance on
//!    the injected clock) — refused requests get 400 and change nothing;
//! 2. handles each Stripe event once (idempotency record per event id; redeliveries answer
//!    200 without side effects);
//! 3. completes the task token of the workflow waiting on the PaymentIntent, refund or
//!    payout (`payment_intent.succeeded` / `.payment_failed` / `.canceled`,
//!    `charge.refunded`, `payout.paid` / `.failed`), and publishes what no workflow waits
//!    for: `account.updated` → Provider Account Updated (+ Provider Onboarding Completed
//!    when charges and payouts become enabled); a payout or refund whose workflow stopped
//!    waiting → Payout Completed / Failed, Refund Issued; a payment that landed after its booking expired or was
//!    cancelled → Payment Succeeded (the orchestrator then refunds it);
//!    `charge.dispute.created` → Dispute Created.
//!
//! Answers: 200 handled or ignored, 400 bad signature or body, 500 transient failure
//! (Stripe retries).
#![warn(missing_docs)]

use marketplace_domain::entities::{BookingStatus, ProviderStatus};
use marketplace_domain::ids::CorrelationId;
use marketplace_domain::{Currency, MarketplaceEvent, Money};
use marketplace_ports::callbacks::update_and_report;
use marketplace_ports::fields::{money_json, time_json};
use marketplace_ports::idempotency::Idempotency;
use marketplace_ports::log::{LogContext, Logger};
use marketplace_ports::metrics::{Metrics, Unit};
use marketplace_ports::stripe_signature::{verify, DEFAULT_TOLERANCE_SECONDS};
use marketplace_ports::{publish_all, ErrorType, HandlerError, PaymentKind, Ports, StoreError};
use serde_json::{json, Value};

/// Settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The endpoint's signing secrets (`whsec_...`); more than one during rotation.
    pub secrets: Vec<String>,
    /// Allowed distance between the signature's timestamp and now.
    pub tolerance_seconds: i64,
    /// The marketplace bus.
    pub event_bus_name: String,
}

impl WebhookConfig {
    /// A configuration with `secrets` and the defaults.
    pub fn new(secrets: Vec<String>) -> Self {
        Self {
            secrets,
            tolerance_seconds: DEFAULT_TOLERANCE_SECONDS,
            event_bus_name: "ecosystem-marketplace-events".into(),
        }
    }
}

/// The stripe-webhook function.
#[derive(Clone)]
pub struct StripeWebhook {
    ports: Ports,
    config: WebhookConfig,
    log: Logger,
    metrics: Metrics,
    idempotency: Idempotency,
}

fn response(status: u16, body: Value) -> Value {
    json!({"statusCode": status, "headers": {"content-type": "application/json"}, "body": body.to_string()})
}

/// Decodes standard base64 (with or without padding).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn header<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event
        .get("headers")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))?
        .1
        .as_str()
}

fn currency_of(code: &str) -> Result<Currency, HandlerError> {
    code.to_ascii_uppercase().parse::<Currency>().map_err(|_| {
        HandlerError::validation("currency", format!("{code:?} is not a supported currency"))
    })
}

impl StripeWebhook {
    /// A webhook endpoint over `ports`.
    pub fn new(ports: Ports, config: WebhookConfig, log: Logger, metrics: Metrics) -> Self {
        let idempotency = Idempotency::new(
            ports.idempotency.clone(),
            ports.clock.clone(),
            "stripe-webhook",
            7 * 24 * 3600,
            60,
        )
        .with_pause(ports.pause.clone());
        Self {
            ports,
            config,
            log,
            metrics,
            idempotency,
        }
    }

    /// Handles an HTTP request event (`headers`, `body`, `isBase64Encoded`; a Lambda
    /// function URL or API Gateway event) and answers an HTTP response object.
    pub async fn handle(&self, event: Value, request_id: Option<&str>) -> Value {
        let ctx = LogContext {
            request_id: request_id.map(str::to_owned),
            ..Default::default()
        };
        let raw = match (
            event.get("body"),
            event
                .get("isBase64Encoded")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ) {
            (Some(Value::String(b)), true) => match base64_decode(b) {
                Some(bytes) => bytes,
                None => return response(400, json!({"error": "body: is not valid base64"})),
            },
            (Some(Value::String(b)), false) => b.as_bytes().to_vec(),
            _ => return response(400, json!({"error": "body: is required"})),
        };
        let out = self
            .handle_raw(header(&event, "stripe-signature"), &raw, &ctx)
            .await;
        self.metrics.flush();
        out
    }

    /// Verifies and handles a raw body with its `Stripe-Signature` header.
    pub async fn handle_raw(&self, signature: Option<&str>, raw: &[u8], ctx: &LogContext) -> Value {
        if let Err(e) = verify(
            signature,
            raw,
            &self.config.secrets,
            self.ports.clock.now(),
            self.config.tolerance_seconds,
        ) {
            self.metrics
                .add("WebhookSignatureRejected", Unit::Count, 1.0);
            self.log.warn(ctx, &format!("webhook refused: {e}"), &[]);
            return response(400, json!({"error": format!("Stripe-Signature: {e}")}));
        }
        let event: Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => return response(400, json!({"error": format!("body: is not JSON: {e}")})),
        };
        let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
            return response(
                400,
                json!({"error": "body: must be a Stripe event with id and type"}),
            );
        };
        let mut ctx = ctx.clone();
        ctx.correlation_id = event["data"]["object"]["metadata"]["correlationId"]
            .as_str()
            .map(str::to_owned);
        let fingerprint = json!({"id": id, "type": kind});
        let result = self
            .idempotency
            .run(&format!("stripe-event:{id}"), &fingerprint, || {
                self.dispatch(kind, &event)
            })
            .await;
        match result {
            Ok((v, _)) => {
                self.metrics.add("WebhookHandled", Unit::Count, 1.0);
                self.log.info(
                    &ctx,
                    &format!("{kind} handled"),
                    &[("stripeEventId", json!(id)), ("result", v.clone())],
                );
                response(200, json!({"received": true, "result": v}))
            }
            Err(e) if e.error_type == ErrorType::TransientError => {
                self.metrics.add("WebhookFailed", Unit::Count, 1.0);
                self.log
                    .error(&ctx, &e.message, &[("stripeEventId", json!(id))]);
                response(500, json!({"error": e.message}))
            }
            Err(e) => {
                // Stripe would retry any non-2xx for days: answer 200 for events we can
                // never handle, and say why
                self.metrics.add("WebhookUnprocessable", Unit::Count, 1.0);
                self.log.warn(
                    &ctx,
                    &e.message,
                    &[
                        ("stripeEventId", json!(id)),
                        ("errorType", json!(e.error_type.as_str())),
                    ],
                );
                response(200, json!({"received": true, "ignored": e.message}))
            }
        }
    }

    async fn dispatch(&self, kind: &str, event: &Value) -> Result<Value, HandlerError> {
        let obj = &event["data"]["object"];
        match kind {
            "payment_intent.succeeded"
            | "payment_intent.payment_failed"
            | "payment_intent.canceled" => self.payment_intent(kind, obj).await,
            "charge.refunded" | "charge.refund.updated" => self.refunds(obj).await,
            "refund.updated" | "refund.failed" => self.refund(obj).await,
            "payout.paid" | "payout.failed" | "payout.canceled" => self.payout(kind, obj).await,
            "account.updated" => self.account(obj).await,
            "charge.dispute.created" => self.chargeback(obj).await,
            other => Ok(json!({"handled": false, "reason": format!("{other} is not used")})),
        }
    }

    async fn publish(
        &self,
        source: &str,
        detail_type: &str,
        detail: Value,
    ) -> Result<String, HandlerError> {
        let event = MarketplaceEvent::decode(source, detail_type, &detail)
            .map_err(|e| HandlerError::validation(e.field(), e.to_string()))?;
        let entry = event.to_put_events_entry(Some(&self.config.event_bus_name));
        let ids = publish_all(self.ports.events.as_ref(), &[entry], 3).await?;
        self.metrics.add("EventPublished", Unit::Count, 1.0);
        Ok(ids.into_iter().next().unwrap_or_default())
    }

    async fn payment_intent(&self, kind: &str, pi: &Value) -> Result<Value, HandlerError> {
        let id = pi["id"]
            .as_str()
            .ok_or_else(|| HandlerError::validation("data.object.id", "is required"))?;
        let status = match kind {
            "payment_intent.succeeded" => "succeeded",
            "payment_intent.payment_failed" => "failed",
            _ => "canceled",
        };
        let charge = pi["latest_charge"].as_str().map(str::to_owned);
        let err = &pi["last_payment_error"];
        let code = err["decline_code"]
            .as_str()
            .or(err["code"].as_str())
            .map(str::to_owned);
        let message = err["message"].as_str().map(str::to_owned);
        let Some(d) = update_and_report(&self.ports, id, |r| {
            if r.status == "succeeded" {
                return; // a success is final
            }
            r.status = status.into();
            if charge.is_some() {
                r.charge_id = charge.clone();
            }
            if status == "failed" {
                r.failure_code = code.clone();
                r.failure_message = message.clone();
            }
        })
        .await?
        else {
            return Ok(json!({"handled": false, "reason": format!("payment {id} is not ours")}));
        };
        let mut published = None;
        if status == "succeeded" && !d.accepted {
            // a payment that lands after its booking stopped waiting is refunded by the
            // orchestrator on this event
            if let Some(booking_id) = &d.record.booking_id {
                if let Some(b) = self.ports.bookings.get_booking(booking_id).await? {
                    if matches!(
                        b.value.booking.status(),
                        BookingStatus::Expired | BookingStatus::Cancelled
                    ) {
                        let r = &d.record;
                        let fee = r.platform_fee.unwrap_or(Money::zero(r.amount.currency()));
                        let earnings = r.provider_earnings.unwrap_or(r.amount);
                        published = Some(
                            self.publish("marketplace.payment", "Payment Succeeded", json!({
                                "paymentIntentId": r.id, "amount": money_json(&r.amount), "platformFee": money_json(&fee),
                                "providerEarnings": money_json(&earnings), "currency": r.amount.currency().code(),
                                "bookingId": booking_id, "timestamp": time_json(&self.ports.clock.now()),
                                "correlationId": r.correlation_id,
                            }))
                            .await?,
                        );
                    }
                }
            }
        }
        Ok(
            json!({"handled": true, "status": d.record.status, "deliveredToWorkflow": d.accepted, "publishedEventId": published}),
        )
    }

    async fn refunds(&self, charge: &Value) -> Result<Value, HandlerError> {
        let mut handled = Vec::new();
        for refund in charge["refunds"]["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            handled.push(self.refund(&refund).await?);
        }
        Ok(json!({"handled": true, "refunds": handled}))
    }

    async fn refund(&self, refund: &Value) -> Result<Value, HandlerError> {
        let id = refund["id"]
            .as_str()
            .ok_or_else(|| HandlerError::validation("refund.id", "is required"))?;
        let status = refund["status"].as_str().unwrap_or("succeeded").to_owned();
        let reason = refund["failure_reason"].as_str().map(str::to_owned);
        let before = self.ports.payments.get_payment(id).await?;
        let d = update_and_report(&self.ports, id, |r| {
            if r.kind == PaymentKind::Refund && r.status != status {
                r.status = status.clone();
                if reason.is_some() {
                    r.failure_code = reason.clone();
                }
            }
        })
        .await?;
        let Some(d) = d else {
            return Ok(json!({"refundId": id, "handled": false}));
        };
        // a refund that settles after its workflow stopped waiting is published here
        let waited = before
            .as_ref()
            .is_some_and(|b| b.value.task_token.is_some() && b.value.status != "succeeded");
        let mut published = None;
        if waited && !d.accepted && d.record.status == "succeeded" {
            let r = &d.record;
            let meta = &refund["metadata"];
            let reason = meta["reason"].as_str().unwrap_or("REQUESTED_BY_CUSTOMER");
            let mut detail = json!({
                "refundId": r.id, "paymentIntentId": r.payment_intent_id, "bookingId": r.booking_id,
                "amount": money_json(&r.amount), "currency": r.amount.currency().code(), "reason": reason,
                "timestamp": time_json(&self.ports.clock.now()), "correlationId": r.correlation_id,
            });
            if let Some(dispute) = meta["disputeId"].as_str() {
                detail["disputeId"] = json!(dispute);
            }
            published = Some(
                self.publish("marketplace.payment", "Refund Issued", detail)
                    .await?,
            );
        }
        Ok(
            json!({"refundId": id, "status": d.record.status, "deliveredToWorkflow": d.accepted, "publishedEventId": published}),
        )
    }

    async fn payout(&self, kind: &str, po: &Value) -> Result<Value, HandlerError> {
        let id = po["id"]
            .as_str()
            .ok_or_else(|| HandlerError::validation("data.object.id", "is required"))?;
        let status = match kind {
            "payout.paid" => "paid",
            "payout.failed" => "failed",
            _ => "canceled",
        };
        let code = po["failure_code"].as_str().map(str::to_owned);
        let message = po["failure_message"].as_str().map(str::to_owned);
        let before = self.ports.payments.get_payment(id).await?;
        let Some(d) = update_and_report(&self.ports, id, |r| {
            r.status = status.into();
            r.failure_code = code.clone();
            r.failure_message = message.clone();
        })
        .await?
        else {
            return Ok(json!({"handled": false, "reason": format!("payout {id} is not ours")}));
        };
        // the workflow stopped waiting (its token expired): publish the outcome here
        let waited = before.is_some_and(|b| b.value.task_token.is_some());
        let mut published = None;
        if waited && !d.accepted {
            let r = &d.record;
            let provider = r.provider_id.clone().unwrap_or_default();
            let mut detail = json!({
                "payoutId": r.id, "providerId": provider, "amount": money_json(&r.amount), "currency": r.amount.currency().code(),
                "timestamp": time_json(&self.ports.clock.now()), "correlationId": r.correlation_id,
            });
            let dt = if status == "paid" {
                "Payout Completed"
            } else {
                detail["failureCode"] =
                    json!(r.failure_code.clone().unwrap_or_else(|| status.into()));
                detail["failureMessage"] = json!(r
                    .failure_message
                    .clone()
                    .unwrap_or_else(|| format!("payout {status}")));
                "Payout Failed"
            };
            published = Some(self.publish("marketplace.payment", dt, detail).await?);
        }
        Ok(
            json!({"handled": true, "status": status, "deliveredToWorkflow": d.accepted, "publishedEventId": published}),
        )
    }

    async fn account(&self, acct: &Value) -> Result<Value, HandlerError> {
        let id = acct["id"]
            .as_str()
            .ok_or_else(|| HandlerError::validation("data.object.id", "is required"))?;
        let charges = acct["charges_enabled"].as_bool().unwrap_or(false);
        let payouts = acct["payouts_enabled"].as_bool().unwrap_or(false);
        let submitted = acct["details_submitted"].as_bool();
        let account_id = id
            .parse()
            .map_err(|e: marketplace_domain::ValidationError| {
                HandlerError::validation("data.object.id", e.rule)
            })?;
        for _ in 0..5 {
            let Some(current) = self.ports.providers.find_provider_by_account(id).await? else {
                return Ok(
                    json!({"handled": false, "reason": format!("account {id} belongs to no provider")}),
                );
            };
            let mut r = current.value.clone();
            let corr = CorrelationId::new(
                r.correlation_id
                    .clone()
                    .unwrap_or_else(|| format!("provider-{}", r.provider.id())),
            )
            .map_err(|e| HandlerError::validation("correlationId", e.rule))?;
            let now = self.ports.clock.now();
            let updated = r.provider.account_updated(
                &account_id,
                charges,
                payouts,
                submitted,
                now,
                corr.clone(),
            )?;
            let completed =
                if charges && payouts && r.provider.status() == ProviderStatus::Onboarding {
                    Some(r.provider.complete_onboarding(now, corr)?)
                } else {
                    None
                };
            r.charges_enabled = charges;
            r.payouts_enabled = payouts;
            match self
                .ports
                .providers
                .put_provider(&r, Some(current.version))
                .await
            {
                Ok(_) => {}
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let mut ids = vec![
                self.publish_event(MarketplaceEvent::ProviderAccountUpdated(updated))
                    .await?,
            ];
            if let Some(c) = completed {
                ids.push(
                    self.publish_event(MarketplaceEvent::ProviderOnboardingCompleted(c))
                        .await?,
                );
            }
            return Ok(
                json!({"handled": true, "providerId": r.provider.id().as_str(), "status": r.provider.status().as_str(), "publishedEventIds": ids}),
            );
        }
        Err(HandlerError::transient(format!(
            "the provider of {id} kept changing; retry"
        )))
    }

    async fn publish_event(&self, event: MarketplaceEvent) -> Result<String, HandlerError> {
        let entry = event.to_put_events_entry(Some(&self.config.event_bus_name));
        let ids = publish_all(self.ports.events.as_ref(), &[entry], 3).await?;
        self.metrics.add("EventPublished", Unit::Count, 1.0);
        Ok(ids.into_iter().next().unwrap_or_default())
    }

    async fn chargeback(&self, dispute: &Value) -> Result<Value, HandlerError> {
        let id = dispute["id"]
            .as_str()
            .ok_or_else(|| HandlerError::validation("data.object.id", "is required"))?;
        let Some(pi) = dispute["payment_intent"].as_str() else {
            return Ok(json!({"handled": false, "reason": "the dispute names no PaymentIntent"}));
        };
        let Some(p) = self.ports.payments.get_payment(pi).await? else {
            return Ok(json!({"handled": false, "reason": format!("payment {pi} is not ours")}));
        };
        let p = p.value;
        let (Some(booking), Some(customer), Some(provider)) = (
            p.booking_id.clone(),
            p.customer_id.clone(),
            p.provider_id.clone(),
        ) else {
            return Ok(json!({"handled": false, "reason": "the payment has no booking"}));
        };
        let reason = dispute["reason"].as_str().unwrap_or("general");
        let amount = match (dispute["amount"].as_i64(), dispute["currency"].as_str()) {
            (Some(a), Some(c)) => Money::from_minor(a, currency_of(c)?)
                .map(|m| m.to_string())
                .unwrap_or_default(),
            _ => String::new(),
        };
        let id_text = id.replace(
            |c: char| !(c.is_ascii_alphanumeric() || "_-.:".contains(c)),
            "_",
        );
        let event_id = self
            .publish("marketplace.dispute", "Dispute Created", json!({
                "disputeId": id_text, "bookingId": booking, "disputeType": "REFUND_REQUEST", "customerId": customer,
                "providerId": provider, "description": format!("Card dispute {id} opened with the bank ({reason}) for {amount}"),
                "timestamp": time_json(&self.ports.clock.now()), "correlationId": p.correlation_id,
            }))
            .await?;
        Ok(json!({"handled": true, "publishedEventId": event_id}))
    }
}

#[cfg(test)]
mod tests;
