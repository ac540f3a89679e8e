//! # payout-manager
//!
//! Stripe Connect money movement for the marketplace (`statemachines/README.md`,
//! "payout-manager"), over the [`PaymentGateway`](marketplace_ports::PaymentGateway) port.
//!
//! Money moves as **separate charges and transfers**: the PaymentIntent is created on the
//! platform account with `transfer_group = bookingId` (no `application_fee_amount`, no
//! destination); at completion `releaseEarnings` transfers the provider's earnings to the
//! connected account with `source_transaction` = the charge. A refund before completion
//! needs no transfer reversal; a refund after it reverses the transfer in proportion
//! (`refund × transfer / charge`, half-up).
//!
//! Every Stripe call carries the idempotency key the workflow derived from the business
//! operation; `refundPayment` also records it with a conditional write, so a retried task
//! never refunds twice and replays its first answer.
//!
//! The earnings ledger (one entry per event or money movement, conditional on its key),
//! in minor units: Payment Succeeded → pending += earnings; releaseEarnings → pending −=,
//! available +=; Refund Issued → pending (or, after the transfer, available) −= the
//! provider's share; createPayout → available −= amount; Payout Completed → paid out +=;
//! Payout Failed → available += (restored).
#![warn(missing_docs)]

use chrono::{DateTime, TimeZone, Utc};
use marketplace_domain::entities::Provider;
use marketplace_domain::entities::ProviderStatus;
use marketplace_domain::events::RefundReason;
use marketplace_domain::ids::{CorrelationId, ProviderId, StripeAccountId};
use marketplace_domain::{Currency, Money};
use marketplace_ports::callbacks::{attach_task_token, update_and_deliver};
use marketplace_ports::fields::{money_json, time_json, Fields};
use marketplace_ports::handler::{
    process_sqs_batch, Invocation, SqsEvent, TargetEvent, TaskPayload,
};
use marketplace_ports::idempotency::Idempotency;
use marketplace_ports::log::Logger;
use marketplace_ports::metrics::{Metrics, Unit};
use marketplace_ports::payments::*;
use marketplace_ports::{
    ErrorType, GatewayError, HandlerError, LedgerEntry, PaymentKind, PaymentRecord, Ports,
    ProviderRecord, StoreError,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The payout-manager function.
#[derive(Clone)]
pub struct PayoutManager {
    ports: Ports,
    log: Logger,
    metrics: Metrics,
    idempotency: Idempotency,
}

/// Stripe's refund reason for ours.
pub fn stripe_refund_reason(reason: RefundReason) -> &'static str {
    match reason {
        RefundReason::Duplicate => "duplicate",
        RefundReason::Fraudulent => "fraudulent",
        _ => "requested_by_customer",
    }
}

/// `part × numerator / denominator` in integer minor units, half-up.
pub fn pro_rata(part: i64, numerator: i64, denominator: i64) -> i64 {
    if denominator <= 0 {
        return 0;
    }
    let n = i128::from(part) * i128::from(numerator);
    let d = i128::from(denominator);
    ((2 * n + d) / (2 * d)) as i64
}

fn stripe_status(pi: &PaymentIntent) -> String {
    match (pi.status, &pi.last_payment_error) {
        (PaymentIntentStatus::RequiresPaymentMethod, Some(_)) => "failed".into(),
        (s, _) => s.as_str().to_owned(),
    }
}

fn minor(m: &Money) -> i64 {
    m.to_minor()
}

fn money(minor_units: i64, currency: Currency) -> Result<Money, HandlerError> {
    Money::from_minor(minor_units, currency).map_err(|e| HandlerError::validation("amount", e))
}

fn unix(t: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(t, 0).single()
}

fn gateway(e: GatewayError) -> HandlerError {
    match &e {
        GatewayError::Permanent { code, .. }
            if code == "amount_too_large" || code == "charge_already_refunded" =>
        {
            HandlerError::new(ErrorType::RefundExceedsCharge, e.to_string())
        }
        _ => e.into(),
    }
}

impl PayoutManager {
    /// A payout manager over `ports`.
    pub fn new(ports: Ports, log: Logger, metrics: Metrics) -> Self {
        let idempotency = Idempotency::new(
            ports.idempotency.clone(),
            ports.clock.clone(),
            "payout-manager",
            7 * 24 * 3600,
            120,
        )
        .with_pause(ports.pause.clone());
        Self {
            ports,
            log,
            metrics,
            idempotency,
        }
    }

    /// Handles one task payload, EventBridge target input, or SQS batch of ledger events
    /// (answering a partial batch failure).
    pub async fn handle(
        &self,
        payload: Value,
        request_id: Option<&str>,
    ) -> Result<Value, HandlerError> {
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload).map_err(|e| {
                HandlerError::validation("Records", format!("is not an SQS event: {e}"))
            })?;
            let resp = process_sqs_batch(&event, |mut body| async move {
                if body.get("action").is_none() {
                    body["action"] = json!("handleEvent");
                }
                Box::pin(self.handle(body, request_id)).await
            })
            .await;
            return serde_json::to_value(resp).map_err(|e| HandlerError::transient(e.to_string()));
        }
        let inv = Invocation::new(&payload, request_id, self.log.clone(), self.metrics.clone());
        let action = payload
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let result = self.dispatch(&payload).await;
        inv.metrics.add_dimension("action", &action);
        match &result {
            Ok(out) => {
                inv.metrics.add("ActionSucceeded", Unit::Count, 1.0);
                inv.log.info(
                    &inv.context,
                    &format!("{action} done"),
                    &[("action", json!(action)), ("result", out.clone())],
                );
            }
            Err(e) => {
                inv.metrics.add("ActionFailed", Unit::Count, 1.0);
                inv.log_error(&action, e);
            }
        }
        inv.metrics.flush();
        result
    }

    async fn dispatch(&self, payload: &Value) -> Result<Value, HandlerError> {
        let task = TaskPayload::parse(payload)?;
        let corr = task.correlation_id.unwrap_or("").to_owned();
        let f = task.fields;
        match task.action {
            "createPaymentIntent" => self.create_payment_intent(&f, &corr).await,
            "awaitPaymentConfirmation" => {
                let token = task.require_task_token()?;
                self.await_payment(&f, token).await
            }
            "cancelPaymentIntent" => self.cancel_payment_intent(&f).await,
            "refundPayment" => {
                let key = f.str("idempotencyKey")?;
                let (v, _) = self
                    .idempotency
                    .run(&format!("refund:{key}"), &refund_fingerprint(&f), || {
                        self.refund_payment(&f, &corr)
                    })
                    .await?;
                Ok(v)
            }
            "awaitRefundSettlement" => {
                let token = task.require_task_token()?;
                let r = attach_task_token(&self.ports, f.str("refundId")?, token).await?;
                Ok(json!({"waiting": !r.outcome_delivered}))
            }
            "releaseEarnings" => self.release_earnings(&f, &corr).await,
            "createPayout" => self.create_payout(&f, &corr).await,
            "awaitPayoutSettlement" => {
                let token = task.require_task_token()?;
                let r = attach_task_token(&self.ports, f.str("payoutId")?, token).await?;
                Ok(json!({"waiting": !r.outcome_delivered}))
            }
            "createConnectedAccount" => self.create_connected_account(&f, &corr).await,
            "createAccountLink" => self.create_account_link(&f).await,
            "updateProviderProfile" => self.update_provider_profile(&f, &corr).await,
            "handleEvent" => self.handle_event(payload).await,
            other => Err(HandlerError::validation(
                "action",
                format!("{other:?} is not an action of payout-manager"),
            )),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }

    fn new_record(&self, id: &str, kind: PaymentKind, amount: Money, corr: &str) -> PaymentRecord {
        PaymentRecord {
            id: id.to_owned(),
            kind,
            booking_id: None,
            customer_id: None,
            provider_id: None,
            stripe_account_id: None,
            payment_intent_id: None,
            amount,
            platform_fee: None,
            provider_earnings: None,
            refunded: Money::zero(amount.currency()),
            status: String::new(),
            charge_id: None,
            transfer_id: None,
            failure_code: None,
            failure_message: None,
            arrival_date: None,
            task_token: None,
            outcome_delivered: false,
            correlation_id: corr.to_owned(),
            created_at: self.now(),
            updated_at: self.now(),
        }
    }

    /// Creates the record, or (on a retry) leaves the existing one.
    async fn put_new(&self, record: &PaymentRecord) -> Result<(), HandlerError> {
        match self.ports.payments.put_payment(record, None).await {
            Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_payment_intent(
        &self,
        f: &Fields<'_>,
        corr: &str,
    ) -> Result<Value, HandlerError> {
        let booking_id = f.str("bookingId")?;
        let currency = f.currency("currency")?;
        let amount = f.money("amount", currency)?;
        if amount.is_zero() {
            return Err(f.error("amount", "must be > 0"));
        }
        let fee = f.money("platformFee", currency)?;
        if fee.amount() > amount.amount() {
            return Err(f.error("platformFee", "must not exceed amount"));
        }
        let earnings = amount.checked_sub(&fee)?;
        let account: StripeAccountId = f.parse("stripeAccountId")?;
        let key = f.str("idempotencyKey")?;
        let confirm = f.opt_bool("confirm")?.unwrap_or(false);
        let pm = f.opt_str("paymentMethodId")?;
        if confirm && pm.is_none() {
            return Err(f.error("paymentMethodId", "is required when confirm is true"));
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("bookingId".into(), booking_id.to_owned());
        metadata.insert("customerId".into(), f.str("customerId")?.to_owned());
        metadata.insert("providerId".into(), f.str("providerId")?.to_owned());
        metadata.insert("platformFee".into(), fee.amount().to_string());
        metadata.insert("correlationId".into(), corr.to_owned());
        let pi = self
            .ports
            .gateway
            .create_payment_intent(&CreatePaymentIntent {
                amount: minor(&amount),
                currency: currency.stripe_code(),
                customer: None,
                payment_method: pm.map(str::to_owned),
                confirm,
                transfer_group: Some(booking_id.to_owned()),
                application_fee_amount: None,
                transfer_destination: None,
                metadata,
                idempotency_key: key.to_owned(),
            })
            .await
            .map_err(gateway)?;
        let status = stripe_status(&pi);
        let mut record = self.new_record(&pi.id, PaymentKind::PaymentIntent, amount, corr);
        record.booking_id = Some(booking_id.to_owned());
        record.customer_id = Some(f.str("customerId")?.to_owned());
        record.provider_id = Some(f.str("providerId")?.to_owned());
        record.stripe_account_id = Some(account.to_string());
        record.platform_fee = Some(fee);
        record.provider_earnings = Some(earnings);
        record.status = status.clone();
        record.charge_id = pi.latest_charge.clone();
        if let Some(err) = &pi.last_payment_error {
            record.failure_code =
                Some(err.decline_code.clone().unwrap_or_else(|| err.code.clone()));
            record.failure_message = Some(err.message.clone());
        }
        self.put_new(&record).await?;
        Ok(json!({
            "paymentIntentId": pi.id,
            "clientSecret": pi.client_secret,
            "status": pi.status.as_str(),
            "chargeId": pi.latest_charge,
            "amount": money_json(&amount),
            "currency": currency.code(),
            "platformFee": money_json(&fee),
            "providerEarnings": money_json(&earnings),
        }))
    }

    async fn await_payment(&self, f: &Fields<'_>, token: &str) -> Result<Value, HandlerError> {
        let pi_id = f.str("paymentIntentId")?;
        // refresh from Stripe: an outcome whose webhook was lost is still delivered
        match self.ports.gateway.retrieve_payment_intent(pi_id).await {
            Ok(pi) => {
                let status = stripe_status(&pi);
                update_and_deliver(&self.ports, pi_id, |r| {
                    if r.status != "succeeded" && r.status != status {
                        r.status = status.clone();
                        r.charge_id = pi.latest_charge.clone().or(r.charge_id.clone());
                        if let Some(e) = &pi.last_payment_error {
                            r.failure_code =
                                Some(e.decline_code.clone().unwrap_or_else(|| e.code.clone()));
                            r.failure_message = Some(e.message.clone());
                        }
                    }
                })
                .await?;
            }
            Err(GatewayError::Transient { .. }) => {}
            Err(e) => return Err(gateway(e)),
        }
        let r = attach_task_token(&self.ports, pi_id, token).await?;
        if !r.outcome_delivered {
            // a booking cancelled before this wait began: nothing will complete it
            if let Some(booking_id) = f.opt_str("bookingId")? {
                if let Some(b) = self.ports.bookings.get_booking(booking_id).await? {
                    if b.value.booking.status()
                        == marketplace_domain::entities::BookingStatus::Cancelled
                    {
                        let cause = json!({"bookingId": booking_id, "reason": "booking cancelled"})
                            .to_string();
                        match self
                            .ports
                            .workflows
                            .send_task_failure(token, ErrorType::BookingCancelled.as_str(), &cause)
                            .await
                        {
                            Ok(()) => {}
                            Err(e) if e.is_stale_token() => {}
                            Err(e) => return Err(e.into()),
                        }
                        return Ok(json!({"waiting": false, "status": "booking_cancelled"}));
                    }
                }
            }
        }
        Ok(json!({"waiting": !r.outcome_delivered, "status": r.status}))
    }

    async fn cancel_payment_intent(&self, f: &Fields<'_>) -> Result<Value, HandlerError> {
        let Some(pi_id) = f.opt_str("paymentIntentId")? else {
            return Ok(
                json!({"paymentIntentId": null, "status": "none", "chargeId": null, "amount": null, "currency": null}),
            );
        };
        let reason = f.opt_str("reason")?.unwrap_or("abandoned");
        let current = self
            .ports
            .gateway
            .retrieve_payment_intent(pi_id)
            .await
            .map_err(gateway)?;
        let pi = match current.status {
            PaymentIntentStatus::Succeeded | PaymentIntentStatus::Canceled => current,
            _ => match self
                .ports
                .gateway
                .cancel_payment_intent(pi_id, Some(reason), &format!("cancel-{pi_id}"))
                .await
            {
                Ok(pi) => pi,
                // it changed state meanwhile (e.g. succeeded at the last moment): report it
                Err(GatewayError::Permanent { code, .. })
                    if code == "payment_intent_unexpected_state" =>
                {
                    self.ports
                        .gateway
                        .retrieve_payment_intent(pi_id)
                        .await
                        .map_err(gateway)?
                }
                Err(e) => return Err(gateway(e)),
            },
        };
        let status = stripe_status(&pi);
        update_and_deliver(&self.ports, pi_id, |r| {
            if r.status != "succeeded" {
                r.status = status.clone();
                r.charge_id = pi.latest_charge.clone().or(r.charge_id.clone());
            }
        })
        .await?;
        let currency = pi
            .currency
            .to_ascii_uppercase()
            .parse::<Currency>()
            .map_err(|_| HandlerError::validation("currency", "unsupported"))?;
        Ok(json!({
            "paymentIntentId": pi.id,
            "status": if pi.status == PaymentIntentStatus::Succeeded { "succeeded" } else { "canceled" },
            "chargeId": pi.latest_charge,
            "amount": money_json(&money(pi.amount, currency)?),
            "currency": currency.code(),
        }))
    }

    async fn refund_payment(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let pi_id = f.str("paymentIntentId")?;
        let booking_id = f.str("bookingId")?;
        let currency = f.currency("currency")?;
        let amount = f.money("amount", currency)?;
        if amount.is_zero() {
            return Err(f.error("amount", "must be > 0"));
        }
        let reason: RefundReason = f.parse("reason")?;
        let key = f.str("idempotencyKey")?;
        let record = self.ports.payments.get_payment(pi_id).await?;
        if let Some(r) = &record {
            r.value
                .amount
                .same_currency(&amount)
                .map_err(|e| f.error("currency", e))?;
            let refundable = if r.value.status == "succeeded" {
                r.value.amount.checked_sub(&r.value.refunded)?
            } else {
                Money::zero(currency)
            };
            if amount.amount() > refundable.amount() {
                return Err(HandlerError::new(
                    ErrorType::RefundExceedsCharge,
                    format!("refund of {amount} exceeds what is still refundable of {pi_id} ({refundable})"),
                ));
            }
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("bookingId".into(), booking_id.to_owned());
        metadata.insert("reason".into(), reason.as_str().to_owned());
        metadata.insert("correlationId".into(), corr.to_owned());
        // the dispute a dispute refund settles (key `dispute-{id}-refund`), so a late
        // settlement can still be published as Refund Issued with its dispute
        if let Some(dispute) = key
            .strip_prefix("dispute-")
            .and_then(|k| k.strip_suffix("-refund"))
        {
            metadata.insert("disputeId".into(), dispute.to_owned());
        }
        let refund = self
            .ports
            .gateway
            .create_refund(&CreateRefund {
                payment_intent: pi_id.to_owned(),
                amount: Some(minor(&amount)),
                reason: Some(stripe_refund_reason(reason).to_owned()),
                metadata,
                idempotency_key: key.to_owned(),
            })
            .await
            .map_err(gateway)?;
        let refunded = money(refund.amount, currency)?;
        let mut rr = self.new_record(&refund.id, PaymentKind::Refund, refunded, corr);
        rr.booking_id = Some(booking_id.to_owned());
        rr.payment_intent_id = Some(pi_id.to_owned());
        rr.status = refund.status.clone();
        rr.failure_code = refund.failure_reason.clone();
        rr.provider_id = record.as_ref().and_then(|r| r.value.provider_id.clone());
        self.put_new(&rr).await?;
        let updated = update_and_deliver(&self.ports, pi_id, |r| {
            if let Ok(total) = r.refunded.checked_add(&refunded) {
                if total.amount() <= r.amount.amount() {
                    r.refunded = total;
                }
            }
        })
        .await?;
        // after the earnings were transferred: reverse the provider's share
        if let Some(p) = updated {
            if let (Some(transfer), Some(earnings)) =
                (p.transfer_id.as_deref(), p.provider_earnings)
            {
                let share = pro_rata(refund.amount, minor(&earnings), minor(&p.amount));
                if share > 0 {
                    self.ports
                        .gateway
                        .create_transfer_reversal(transfer, Some(share), &format!("{key}-reversal"))
                        .await
                        .map_err(gateway)?;
                }
            }
        }
        Ok(json!({
            "refundId": refund.id,
            "amount": money_json(&refunded),
            "currency": currency.code(),
            "status": refund.status,
        }))
    }

    async fn release_earnings(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let booking_id = f.str("bookingId")?;
        let provider_id = f.str("providerId")?;
        let account: StripeAccountId = f.parse("stripeAccountId")?;
        let currency = f.currency("currency")?;
        let amount = f.money("amount", currency)?;
        let pi_id = f.str("paymentIntentId")?;
        let key = f.str("idempotencyKey")?;
        if amount.is_zero() {
            return Err(f.error("amount", "must be > 0"));
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("bookingId".into(), booking_id.to_owned());
        metadata.insert("providerId".into(), provider_id.to_owned());
        let transfer = self
            .ports
            .gateway
            .create_transfer(&CreateTransfer {
                amount: minor(&amount),
                currency: currency.stripe_code(),
                destination: account.to_string(),
                transfer_group: Some(booking_id.to_owned()),
                source_transaction: f.opt_str("chargeId")?.map(str::to_owned),
                metadata,
                idempotency_key: key.to_owned(),
            })
            .await
            .map_err(gateway)?;
        let mut tr = self.new_record(&transfer.id, PaymentKind::Transfer, amount, corr);
        tr.booking_id = Some(booking_id.to_owned());
        tr.provider_id = Some(provider_id.to_owned());
        tr.stripe_account_id = Some(account.to_string());
        tr.payment_intent_id = Some(pi_id.to_owned());
        tr.status = "paid".into();
        self.put_new(&tr).await?;
        let transfer_id = transfer.id.clone();
        update_and_deliver(&self.ports, pi_id, |r| {
            r.transfer_id = Some(transfer_id.clone())
        })
        .await?;
        self.ledger(
            &format!("transfer-{}", transfer.id),
            provider_id,
            currency,
            -minor(&amount),
            minor(&amount),
            0,
            "Earnings Released",
            booking_id,
        )
        .await?;
        Ok(
            json!({"transferId": transfer.id, "amount": money_json(&amount), "currency": currency.code()}),
        )
    }

    async fn create_payout(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let provider_id = f.str("providerId")?;
        let account: StripeAccountId = f.parse("stripeAccountId")?;
        let currency = f.currency("currency")?;
        let amount = f.money("amount", currency)?;
        if amount.is_zero() {
            return Err(f.error("amount", "must be > 0"));
        }
        let key = f.str("idempotencyKey")?;
        let mut metadata = BTreeMap::new();
        metadata.insert("providerId".into(), provider_id.to_owned());
        let payout = self
            .ports
            .gateway
            .create_payout(&CreatePayout {
                amount: minor(&amount),
                currency: currency.stripe_code(),
                stripe_account: account.to_string(),
                metadata,
                idempotency_key: key.to_owned(),
            })
            .await
            .map_err(gateway)?;
        let mut pr = self.new_record(&payout.id, PaymentKind::Payout, amount, corr);
        pr.provider_id = Some(provider_id.to_owned());
        pr.stripe_account_id = Some(account.to_string());
        pr.status = payout.status.clone();
        pr.arrival_date = unix(payout.arrival_date);
        pr.failure_code = payout.failure_code.clone();
        pr.failure_message = payout.failure_message.clone();
        self.put_new(&pr).await?;
        self.ledger(
            &format!("payout-{}", payout.id),
            provider_id,
            currency,
            0,
            -minor(&amount),
            0,
            "Payout Created",
            &payout.id,
        )
        .await?;
        Ok(json!({
            "payoutId": payout.id,
            "status": payout.status,
            "amount": money_json(&amount),
            "currency": currency.code(),
            "arrivalDate": unix(payout.arrival_date).as_ref().map(time_json),
            "failureCode": payout.failure_code,
            "failureMessage": payout.failure_message,
        }))
    }

    async fn create_connected_account(
        &self,
        f: &Fields<'_>,
        corr: &str,
    ) -> Result<Value, HandlerError> {
        let provider_id: ProviderId = f.parse("providerId")?;
        let email = f.str("email")?;
        let country = f.str("country")?;
        let business_type = f.opt_str("businessType")?.unwrap_or("individual");
        let key = f.str("idempotencyKey")?;
        let existing = self
            .ports
            .providers
            .get_provider(provider_id.as_str())
            .await?;
        if let Some(p) = &existing {
            if let Some(acct) = p.value.provider.stripe_account_id() {
                return Ok(json!({
                    "stripeAccountId": acct.as_str(),
                    "created": false,
                    "chargesEnabled": p.value.charges_enabled,
                    "payoutsEnabled": p.value.payouts_enabled,
                }));
            }
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("providerId".into(), provider_id.to_string());
        let account = self
            .ports
            .gateway
            .create_account(&CreateAccount {
                country: country.to_owned(),
                email: email.to_owned(),
                business_type: business_type.to_owned(),
                metadata,
                idempotency_key: key.to_owned(),
            })
            .await
            .map_err(gateway)?;
        let acct: StripeAccountId =
            account
                .id
                .parse()
                .map_err(|e: marketplace_domain::ValidationError| {
                    HandlerError::new(
                        ErrorType::PaymentProviderError,
                        format!("Stripe returned an invalid account id: {}", e.rule),
                    )
                })?;
        let correlation = CorrelationId::new(if corr.is_empty() { "onboarding" } else { corr })
            .map_err(|e| HandlerError::validation("correlationId", e.rule))?;
        let (mut record, version) = match existing {
            Some(v) => (v.value, Some(v.version)),
            None => {
                // the provider registered through an event nobody stored: record them now
                let (provider, _) = Provider::register(
                    provider_id.clone(),
                    email,
                    email,
                    country,
                    self.now(),
                    correlation.clone(),
                )?;
                (
                    ProviderRecord {
                        provider,
                        charges_enabled: false,
                        payouts_enabled: false,
                        onboarding_url: None,
                        onboarding_url_expires_at: None,
                        correlation_id: Some(correlation.as_str().to_owned()),
                    },
                    None,
                )
            }
        };
        record.provider.start_onboarding(acct.clone(), self.now())?;
        record.charges_enabled = account.charges_enabled;
        record.payouts_enabled = account.payouts_enabled;
        match self.ports.providers.put_provider(&record, version).await {
            Ok(_) => {}
            Err(StoreError::ConditionFailed { .. }) => {
                return Err(HandlerError::transient(format!(
                    "provider {provider_id} changed meanwhile; retry"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        Ok(json!({
            "stripeAccountId": account.id,
            "created": true,
            "chargesEnabled": account.charges_enabled,
            "payoutsEnabled": account.payouts_enabled,
        }))
    }

    async fn create_account_link(&self, f: &Fields<'_>) -> Result<Value, HandlerError> {
        let account: StripeAccountId = f.parse("stripeAccountId")?;
        let link = self
            .ports
            .gateway
            .create_account_link(&CreateAccountLink {
                account: account.to_string(),
                refresh_url: f.str("refreshUrl")?.to_owned(),
                return_url: f.str("returnUrl")?.to_owned(),
            })
            .await
            .map_err(gateway)?;
        Ok(json!({"url": link.url, "expiresAt": unix(link.expires_at).as_ref().map(time_json)}))
    }

    async fn update_provider_profile(
        &self,
        f: &Fields<'_>,
        corr: &str,
    ) -> Result<Value, HandlerError> {
        let provider_id = f.str("providerId")?;
        let account: StripeAccountId = f.parse("stripeAccountId")?;
        let charges = f.bool("chargesEnabled")?;
        let payouts = f.bool("payoutsEnabled")?;
        let url = f.opt_str("onboardingUrl")?;
        let expires = match f.opt_str("onboardingUrlExpiresAt")? {
            Some(_) => Some(f.time("onboardingUrlExpiresAt")?),
            None => None,
        };
        for _ in 0..5 {
            let current = self
                .ports
                .providers
                .get_provider(provider_id)
                .await?
                .ok_or_else(|| HandlerError::not_found(format!("provider {provider_id}")))?;
            let mut r = current.value.clone();
            if r.provider.stripe_account_id() != Some(&account) {
                return Err(f.error(
                    "stripeAccountId",
                    format!("{account} is not the account of provider {provider_id}"),
                ));
            }
            r.onboarding_url = url.map(str::to_owned);
            r.onboarding_url_expires_at = expires;
            r.charges_enabled = charges;
            r.payouts_enabled = payouts;
            if charges && payouts && r.provider.status() == ProviderStatus::Onboarding {
                let correlation =
                    CorrelationId::new(if corr.is_empty() { "onboarding" } else { corr })
                        .map_err(|e| HandlerError::validation("correlationId", e.rule))?;
                r.provider.complete_onboarding(self.now(), correlation)?;
            }
            match self
                .ports
                .providers
                .put_provider(&r, Some(current.version))
                .await
            {
                Ok(_) => {
                    let status = if r.provider.status() == ProviderStatus::Active {
                        "ACTIVE"
                    } else {
                        "PENDING_VERIFICATION"
                    };
                    return Ok(json!({"onboardingStatus": status}));
                }
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(HandlerError::transient(format!(
            "provider {provider_id} kept changing; retry"
        )))
    }

    #[allow(clippy::too_many_arguments)]
    async fn ledger(
        &self,
        key: &str,
        provider_id: &str,
        currency: Currency,
        pending: i64,
        available: i64,
        paid_out: i64,
        reason: &str,
        reference: &str,
    ) -> Result<bool, HandlerError> {
        Ok(self
            .ports
            .ledger
            .append_entry(&LedgerEntry {
                event_id: key.to_owned(),
                provider_id: provider_id.to_owned(),
                currency,
                pending_delta: pending,
                available_delta: available,
                paid_out_delta: paid_out,
                reason: reason.to_owned(),
                reference: reference.to_owned(),
                at: self.now(),
            })
            .await?)
    }

    async fn handle_event(&self, payload: &Value) -> Result<Value, HandlerError> {
        let event = TargetEvent::parse(payload)?;
        let d = Fields::under(&event.detail, "detail");
        let currency = d.currency("currency")?;
        let id = event.event_id.as_str();
        let appended = match event.detail_type.as_str() {
            "Payment Succeeded" => {
                let pi = d.str("paymentIntentId")?;
                let earnings = d.money("providerEarnings", currency)?;
                let provider = self
                    .provider_of_payment(pi, d.opt_str("bookingId")?)
                    .await?;
                self.ledger(
                    id,
                    &provider,
                    currency,
                    minor(&earnings),
                    0,
                    0,
                    "Payment Succeeded",
                    pi,
                )
                .await?
            }
            "Refund Issued" => {
                let pi = d.str("paymentIntentId")?;
                let amount = d.money("amount", currency)?;
                let Some(p) = self.ports.payments.get_payment(pi).await? else {
                    return Err(HandlerError::not_found(format!("payment {pi}")));
                };
                let p = p.value;
                let provider = p.provider_id.clone().ok_or_else(|| {
                    HandlerError::not_found(format!("the provider of payment {pi}"))
                })?;
                let earnings = p.provider_earnings.map(|e| minor(&e)).unwrap_or(0);
                let share = pro_rata(minor(&amount), earnings, minor(&p.amount));
                let (pending, available) = if p.transfer_id.is_some() {
                    (0, -share)
                } else {
                    (-share, 0)
                };
                self.ledger(
                    id,
                    &provider,
                    currency,
                    pending,
                    available,
                    0,
                    "Refund Issued",
                    pi,
                )
                .await?
            }
            "Payout Completed" => {
                let amount = d.money("amount", currency)?;
                self.ledger(
                    id,
                    d.str("providerId")?,
                    currency,
                    0,
                    0,
                    minor(&amount),
                    "Payout Completed",
                    d.str("payoutId")?,
                )
                .await?
            }
            "Payout Failed" => {
                let amount = d.money("amount", currency)?;
                self.ledger(
                    id,
                    d.str("providerId")?,
                    currency,
                    0,
                    minor(&amount),
                    0,
                    "Payout Failed",
                    d.str("payoutId")?,
                )
                .await?
            }
            other => {
                return Ok(
                    json!({"handled": false, "reason": format!("no ledger entry for {other:?}")}),
                )
            }
        };
        Ok(json!({"handled": true, "appended": appended}))
    }

    async fn provider_of_payment(
        &self,
        pi: &str,
        booking: Option<&str>,
    ) -> Result<String, HandlerError> {
        if let Some(p) = self.ports.payments.get_payment(pi).await? {
            if let Some(provider) = p.value.provider_id {
                return Ok(provider);
            }
        }
        if let Some(b) = booking {
            if let Some(r) = self.ports.bookings.get_booking(b).await? {
                return Ok(r.value.booking.provider_id().to_string());
            }
        }
        Err(HandlerError::not_found(format!(
            "the provider of payment {pi}"
        )))
    }
}

/// What must not change under a refund's idempotency key.
fn refund_fingerprint(f: &Fields<'_>) -> Value {
    let v = f.value();
    json!({
        "paymentIntentId": v.get("paymentIntentId"),
        "amount": v.get("amount"),
        "currency": v.get("currency"),
        "reason": v.get("reason"),
    })
}

#[cfg(test)]
mod tests;
