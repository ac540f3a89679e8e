//! # booking-manager
//!
//! The booking rules of the Ecosystem Marketplace, called by the booking-lifecycle state
//! machine (`statemachines/README.md`, "booking-manager"): `validateBooking`,
//! `reserveSlot`, `expireBooking`, `failBooking`, `confirmBooking`, `cancelBooking`,
//! `completeBooking`. The handler depends only on ports; the Lambda binary and the local
//! runtime choose the adapters.
//!
//! Prices: a booking costs the service's price per service duration, pro rata for its
//! own length (`price × minutes / durationMinutes`, half-up to the minor unit).
//!
//! Refund policy (`cancelBooking`): provider or system cancels → 100 %; customer ≥ 24 h
//! before the start → 100 %; customer < 24 h before → 50 %; after the start → refused
//! (open a dispute); an unpaid booking refunds nothing. Refunds round half-up to the
//! minor unit and never exceed what is still refundable.
#![warn(missing_docs)]

use chrono::{DateTime, Duration, Utc};
use marketplace_domain::entities::{Booking, BookingStatus, Service};
use marketplace_domain::events::{CancelledBy, ExpiryReason};
use marketplace_domain::ids::{
    BookingId, CorrelationId, CustomerId, PaymentIntentId, ProviderId, ServiceId,
};
use marketplace_domain::{FeeRate, Money};
use marketplace_ports::fields::{money_json, time_json, Fields};
use marketplace_ports::handler::{Invocation, TaskPayload};
use marketplace_ports::idempotency::Idempotency;
use marketplace_ports::log::Logger;
use marketplace_ports::metrics::{Metrics, Unit};
use marketplace_ports::{
    BookingRecord, ErrorType, HandlerError, PaymentKind, Ports, StoreError, Versioned,
};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Settings of the booking rules.
#[derive(Debug, Clone)]
pub struct BookingConfig {
    /// The platform's share of every booking.
    pub fee_rate: FeeRate,
    /// How long an unpaid reservation holds the slot (the workflow's payment window).
    pub payment_window: Duration,
    /// Latest start, counted from now.
    pub max_advance: Duration,
    /// Longest booking.
    pub max_length: Duration,
}

impl Default for BookingConfig {
    fn default() -> Self {
        Self {
            fee_rate: FeeRate::from_basis_points(1500).unwrap_or_else(|_| unreachable_rate()),
            payment_window: Duration::minutes(15),
            max_advance: Duration::days(180),
            max_length: Duration::days(14),
        }
    }
}

#[cold]
fn unreachable_rate() -> FeeRate {
    panic!("1500 basis points is a valid fee rate")
}

/// The booking-manager function.
#[derive(Clone)]
pub struct BookingManager {
    ports: Ports,
    config: BookingConfig,
    log: Logger,
    metrics: Metrics,
    idempotency: Idempotency,
}

/// The confirmation code of a booking: 8 characters from an unambiguous alphabet,
/// derived from the booking id (so a retried confirmation gives the same code).
pub fn confirmation_code(booking_id: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    Sha256::digest(booking_id.as_bytes())
        .iter()
        .take(8)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// The refund percentage of the policy for a cancellation by `by` at `now` of a paid
/// booking starting at `start` (None: refused, the service started).
pub fn refund_percent(by: CancelledBy, now: DateTime<Utc>, start: DateTime<Utc>) -> Option<u32> {
    if now >= start {
        return None;
    }
    Some(match by {
        CancelledBy::Provider | CancelledBy::System => 100,
        CancelledBy::Customer if start - now >= Duration::hours(24) => 100,
        CancelledBy::Customer => 50,
    })
}

/// `percent` % of `amount`, half-up to the minor unit.
pub fn percent_of(amount: Money, percent: u32) -> Money {
    let value = (amount.amount() * Decimal::from(percent) / Decimal::from(100))
        .round_dp_with_strategy(
            amount.currency().exponent(),
            RoundingStrategy::MidpointAwayFromZero,
        );
    Money::new(value, amount.currency()).unwrap_or(amount)
}

/// The price of `service` for a booking of `minutes`: pro rata, half-up.
pub fn price_for(service: &Service, minutes: i64) -> Result<Money, HandlerError> {
    let price = service.price;
    let value = (price.amount() * Decimal::from(minutes)
        / Decimal::from(service.duration_minutes.max(1)))
    .round_dp_with_strategy(
        price.currency().exponent(),
        RoundingStrategy::MidpointAwayFromZero,
    );
    Money::new(value, price.currency()).map_err(|e| HandlerError::validation("amount", e))
}

fn parse_id<T: std::str::FromStr>(f: &Fields<'_>, field: &str) -> Result<T, HandlerError>
where
    T::Err: std::fmt::Display,
{
    f.parse::<T>(field)
}

fn concurrent(e: StoreError) -> HandlerError {
    match e {
        StoreError::ConditionFailed { entity, id, .. } => HandlerError::transient(format!(
            "{entity} {id} changed while it was being updated; retry"
        )),
        other => other.into(),
    }
}

impl BookingManager {
    /// A booking manager over `ports`.
    pub fn new(ports: Ports, config: BookingConfig, log: Logger, metrics: Metrics) -> Self {
        let idempotency = Idempotency::new(
            ports.idempotency.clone(),
            ports.clock.clone(),
            "booking-manager",
            24 * 3600,
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

    /// Handles one task payload (`{"action": ..., ...}`); `request_id` is the Lambda
    /// request id for the logs.
    pub async fn handle(
        &self,
        payload: Value,
        request_id: Option<&str>,
    ) -> Result<Value, HandlerError> {
        let inv = Invocation::new(&payload, request_id, self.log.clone(), self.metrics.clone());
        let result = self.dispatch(&payload).await;
        let action = payload
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        inv.metrics.add_dimension("action", action);
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
                inv.log_error(action, e);
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
            "validateBooking" => self.validate_booking(&f).await,
            "reserveSlot" => self.reserve_slot(&f, &corr).await,
            "expireBooking" => self.expire_booking(&f, &corr).await,
            "failBooking" => self.fail_booking(&f, &corr).await,
            "confirmBooking" => self.confirm_booking(&f, &corr).await,
            "cancelBooking" => {
                let key = format!(
                    "cancelBooking:{}:{}",
                    f.str("bookingId")?,
                    task.execution_arn.unwrap_or("")
                );
                let (v, _) = self
                    .idempotency
                    .run(&key, payload, || self.cancel_booking(&f, &corr))
                    .await?;
                Ok(v)
            }
            "completeBooking" => {
                let key = format!(
                    "completeBooking:{}:{}",
                    f.str("bookingId")?,
                    task.execution_arn.unwrap_or("")
                );
                let (v, _) = self
                    .idempotency
                    .run(&key, payload, || self.complete_booking(&f, &corr))
                    .await?;
                Ok(v)
            }
            other => Err(HandlerError::validation(
                "action",
                format!("{other:?} is not an action of booking-manager"),
            )),
        }
    }

    fn correlation(
        &self,
        corr: &str,
        record: Option<&BookingRecord>,
    ) -> Result<CorrelationId, HandlerError> {
        let text = if corr.is_empty() {
            record
                .map(|r| r.correlation_id.as_str())
                .unwrap_or("unknown")
        } else {
            corr
        };
        CorrelationId::new(text).map_err(|e| HandlerError::validation("correlationId", e.rule))
    }

    async fn load(&self, booking_id: &str) -> Result<Versioned<BookingRecord>, HandlerError> {
        self.ports
            .bookings
            .get_booking(booking_id)
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("booking {booking_id}")))
    }

    async fn validate_booking(&self, f: &Fields<'_>) -> Result<Value, HandlerError> {
        let booking_id: BookingId = parse_id(f, "bookingId")?;
        let service_id: ServiceId = parse_id(f, "serviceId")?;
        let customer_id: CustomerId = parse_id(f, "customerId")?;
        let provider_id: ProviderId = parse_id(f, "providerId")?;
        let start = f.time("startDateTime")?;
        let end = f.time("endDateTime")?;
        let now = f.time("now")?;
        let currency = f.currency("currency")?;
        let amount = f.money("amount", currency)?;
        if start <= now {
            return Err(f.error("startDateTime", "must be after now"));
        }
        if end <= start {
            return Err(f.error("endDateTime", "must be after startDateTime"));
        }
        if start > now + self.config.max_advance {
            return Err(f.error(
                "startDateTime",
                format!(
                    "must be at most {} days ahead",
                    self.config.max_advance.num_days()
                ),
            ));
        }
        if end - start > self.config.max_length {
            return Err(f.error(
                "endDateTime",
                format!(
                    "the booking must last at most {} days",
                    self.config.max_length.num_days()
                ),
            ));
        }
        let service = self
            .ports
            .services
            .get_service(service_id.as_str())
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("service {service_id}")))?;
        if service.provider_id != provider_id {
            return Err(f.error(
                "providerId",
                format!("must be the service's provider {}", service.provider_id),
            ));
        }
        if !service.active {
            return Err(HandlerError::new(
                ErrorType::ServiceUnavailable,
                format!("service {service_id} is not active"),
            ));
        }
        let provider = self
            .ports
            .providers
            .get_provider(provider_id.as_str())
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("provider {provider_id}")))?;
        let account = match provider.value.provider.stripe_account_id() {
            Some(a) if provider.value.charges_enabled => a.to_string(),
            _ => {
                return Err(HandlerError::new(
                    ErrorType::ProviderNotOnboarded,
                    format!("provider {provider_id} cannot take charges yet (Stripe onboarding not complete)"),
                ))
            }
        };
        if currency != service.price.currency() {
            return Err(f.error(
                "currency",
                format!(
                    "must be the service's currency {}",
                    service.price.currency()
                ),
            ));
        }
        let minutes = (end - start).num_minutes();
        let price = price_for(&service, minutes)?;
        if price != amount {
            return Err(f.error(
                "amount",
                format!("must be {price}, the service's price for {minutes} minutes"),
            ));
        }
        let split = price.split_fee(self.config.fee_rate);
        Ok(json!({
            "bookingId": booking_id.as_str(),
            "serviceId": service_id.as_str(),
            "customerId": customer_id.as_str(),
            "providerId": provider_id.as_str(),
            "startDateTime": time_json(&start),
            "endDateTime": time_json(&end),
            "amount": money_json(&price),
            "currency": currency.code(),
            "platformFee": money_json(&split.platform_fee),
            "providerEarnings": money_json(&split.provider_earnings),
            "stripeAccountId": account,
        }))
    }

    async fn reserve_slot(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let booking_id: BookingId = parse_id(f, "bookingId")?;
        let service_id: ServiceId = parse_id(f, "serviceId")?;
        let customer_id: CustomerId = parse_id(f, "customerId")?;
        let provider_id: ProviderId = parse_id(f, "providerId")?;
        let start = f.time("startDateTime")?;
        let end = f.time("endDateTime")?;
        let currency = f.currency("currency")?;
        let amount = f.money("amount", currency)?;
        let platform_fee = f.money("platformFee", currency)?;
        let provider_earnings = f.money("providerEarnings", currency)?;
        if platform_fee.checked_add(&provider_earnings).ok() != Some(amount) {
            return Err(f.error(
                "providerEarnings",
                format!("platformFee + providerEarnings must equal amount ({amount})"),
            ));
        }
        if let Some(existing) = self.ports.bookings.get_booking(booking_id.as_str()).await? {
            return self.same_reservation(
                f,
                &existing.value,
                &service_id,
                &customer_id,
                start,
                end,
            );
        }
        let service = self
            .ports
            .services
            .get_service(service_id.as_str())
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("service {service_id}")))?;
        if service.provider_id != provider_id {
            return Err(f.error(
                "providerId",
                format!("must be the service's provider {}", service.provider_id),
            ));
        }
        let minutes = (end - start).num_minutes();
        // the booking entity takes its price and length from the service: book a copy
        // priced and sized for this slot
        let slot_service = Service {
            price: amount,
            duration_minutes: u32::try_from(minutes)
                .map_err(|_| f.error("endDateTime", "the booking is too long"))?,
            ..service
        };
        let now = self.ports.clock.now();
        let correlation = self.correlation(corr, None)?;
        let (booking, _) = Booking::create(
            booking_id.clone(),
            &slot_service,
            customer_id,
            start,
            now,
            correlation.clone(),
        )?;
        if booking.end_date_time() != end {
            return Err(f.error(
                "endDateTime",
                "must be a whole number of minutes after startDateTime",
            ));
        }
        let record = BookingRecord {
            booking,
            platform_fee,
            provider_earnings,
            stripe_account_id: f.opt_str("stripeAccountId")?.map(str::to_owned),
            payment_intent_id: None,
            charge_id: None,
            reserved_until: now + self.config.payment_window,
            slot_released: false,
            correlation_id: correlation.as_str().to_owned(),
        };
        match self.ports.bookings.reserve_booking(&record).await {
            Ok(_) => Ok(json!({
                "status": BookingStatus::PendingPayment.as_str(),
                "reservedUntil": time_json(&record.reserved_until),
            })),
            Err(StoreError::ConditionFailed { .. }) => {
                // a concurrent retry of the same task won the race
                let existing = self.load(booking_id.as_str()).await?;
                self.same_reservation(
                    f,
                    &existing.value,
                    &service_id,
                    &record.booking.customer_id().clone(),
                    start,
                    end,
                )
            }
            Err(e) => Err(e.into()),
        }
    }

    fn same_reservation(
        &self,
        f: &Fields<'_>,
        existing: &BookingRecord,
        service_id: &ServiceId,
        customer_id: &CustomerId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Value, HandlerError> {
        let b = &existing.booking;
        if b.service_id() != service_id
            || b.customer_id() != customer_id
            || b.start_date_time() != start
            || b.end_date_time() != end
        {
            return Err(f.error(
                "bookingId",
                format!("{} is already used by a different booking", b.id()),
            ));
        }
        Ok(json!({
            "status": b.status().as_str(),
            "reservedUntil": time_json(&existing.reserved_until),
        }))
    }

    async fn expire_booking(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let booking_id: BookingId = parse_id(f, "bookingId")?;
        let reason: ExpiryReason = f.parse("reason")?;
        let current = self.load(booking_id.as_str()).await?;
        let mut record = current.value.clone();
        match record.booking.status() {
            BookingStatus::PendingPayment => {
                let correlation = self.correlation(corr, Some(&record))?;
                record
                    .booking
                    .expire(reason, self.ports.clock.now(), correlation)?;
                record.slot_released = true;
                self.ports
                    .bookings
                    .update_booking(&record, current.version, true)
                    .await
                    .map_err(concurrent)?;
                Ok(json!({"status": "EXPIRED", "slotReleased": true}))
            }
            BookingStatus::Expired | BookingStatus::Cancelled | BookingStatus::Completed => {
                Ok(json!({
                    "status": record.booking.status().as_str(),
                    "slotReleased": record.slot_released,
                }))
            }
            BookingStatus::Confirmed => Err(HandlerError::new(
                ErrorType::InvalidTransition,
                format!("booking {booking_id} is CONFIRMED and cannot expire"),
            )),
        }
    }

    async fn refunded_so_far(&self, record: &BookingRecord) -> Result<Money, HandlerError> {
        let currency = record.booking.price().currency();
        let mut total = Money::zero(currency);
        for p in self
            .ports
            .payments
            .list_payments_by_booking(record.booking.id().as_str())
            .await?
        {
            if p.kind == PaymentKind::Refund && p.status != "failed" && p.status != "canceled" {
                total = total.checked_add(&p.amount)?;
            }
        }
        Ok(total)
    }

    async fn fail_booking(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let booking_id: BookingId = parse_id(f, "bookingId")?;
        let reason = f.str("reason")?;
        let Some(current) = self.ports.bookings.get_booking(booking_id.as_str()).await? else {
            return Ok(json!({"status": "CANCELLED", "slotReleased": false}));
        };
        let mut record = current.value.clone();
        match record.booking.status() {
            BookingStatus::PendingPayment | BookingStatus::Confirmed => {
                let refund = if record.booking.status() == BookingStatus::Confirmed {
                    let r = self.refunded_so_far(&record).await?;
                    if r.amount() > record.booking.price().amount() {
                        record.booking.price()
                    } else {
                        r
                    }
                } else {
                    Money::zero(record.booking.price().currency())
                };
                let correlation = self.correlation(corr, Some(&record))?;
                record.booking.cancel(
                    CancelledBy::System,
                    reason,
                    refund,
                    self.ports.clock.now(),
                    correlation,
                )?;
                record.slot_released = true;
                self.ports
                    .bookings
                    .update_booking(&record, current.version, true)
                    .await
                    .map_err(concurrent)?;
                Ok(json!({"status": "CANCELLED", "slotReleased": true}))
            }
            BookingStatus::Cancelled | BookingStatus::Expired => Ok(json!({
                "status": record.booking.status().as_str(),
                "slotReleased": record.slot_released,
            })),
            BookingStatus::Completed => Err(HandlerError::new(
                ErrorType::InvalidTransition,
                format!("booking {booking_id} is COMPLETED and cannot be failed"),
            )),
        }
    }

    async fn confirm_booking(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let booking_id: BookingId = parse_id(f, "bookingId")?;
        let pi: PaymentIntentId = parse_id(f, "paymentIntentId")?;
        let charge_id = f.opt_str("chargeId")?;
        let current = self.load(booking_id.as_str()).await?;
        let mut record = current.value.clone();
        let code = confirmation_code(booking_id.as_str());
        match record.booking.status() {
            BookingStatus::PendingPayment => {
                let correlation = self.correlation(corr, Some(&record))?;
                record
                    .booking
                    .confirm(pi.clone(), &code, self.ports.clock.now(), correlation)?;
                record.payment_intent_id = Some(pi.to_string());
                record.charge_id = charge_id.map(str::to_owned);
                self.ports
                    .bookings
                    .update_booking(&record, current.version, false)
                    .await
                    .map_err(concurrent)?;
                Ok(json!({"status": "CONFIRMED", "confirmationCode": code}))
            }
            BookingStatus::Confirmed | BookingStatus::Completed
                if record.booking.payment_intent_id() == Some(&pi) =>
            {
                Ok(json!({"status": record.booking.status().as_str(), "confirmationCode": code}))
            }
            BookingStatus::Cancelled => Err(HandlerError::new(
                ErrorType::BookingCancelled,
                format!("booking {booking_id} was cancelled while waiting for payment"),
            )),
            other => Err(HandlerError::new(
                ErrorType::InvalidTransition,
                format!("booking {booking_id} is {other} and cannot be confirmed with {pi}"),
            )),
        }
    }

    async fn cancel_booking(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let booking_id: BookingId = parse_id(f, "bookingId")?;
        let by: CancelledBy = f.parse("cancelledBy")?;
        let reason = f.str("reason")?;
        let requested_by = f.opt_str("requestedBy")?;
        let now = f.time("now")?;
        let current = self.load(booking_id.as_str()).await?;
        let mut record = current.value.clone();
        let previous = record.booking.status();
        if !matches!(
            previous,
            BookingStatus::PendingPayment | BookingStatus::Confirmed
        ) {
            return Err(HandlerError::new(
                ErrorType::InvalidTransition,
                format!("booking {booking_id} is {previous} and cannot be cancelled"),
            ));
        }
        match (by, requested_by) {
            (CancelledBy::Customer, Some(r)) if r != record.booking.customer_id().as_str() => {
                return Err(f.error(
                    "requestedBy",
                    "must be the booking's customer when cancelledBy is CUSTOMER",
                ))
            }
            (CancelledBy::Provider, Some(r)) if r != record.booking.provider_id().as_str() => {
                return Err(f.error(
                    "requestedBy",
                    "must be the booking's provider when cancelledBy is PROVIDER",
                ))
            }
            _ => {}
        }
        let start = record.booking.start_date_time();
        let price = record.booking.price();
        let (percent, refund) = if previous == BookingStatus::PendingPayment {
            if now >= start {
                return Err(f.error(
                    "now",
                    "the service has already started: open a dispute instead",
                ));
            }
            (0, Money::zero(price.currency()))
        } else {
            let percent = refund_percent(by, now, start).ok_or_else(|| {
                f.error(
                    "now",
                    "the service has already started: open a dispute instead",
                )
            })?;
            let wanted = percent_of(price, percent);
            let left = price
                .checked_sub(&self.refunded_so_far(&record).await?)
                .unwrap_or(Money::zero(price.currency()));
            (
                percent,
                if wanted.amount() > left.amount() {
                    left
                } else {
                    wanted
                },
            )
        };
        let correlation = self.correlation(corr, Some(&record))?;
        record
            .booking
            .cancel(by, reason, refund, now, correlation)?;
        record.slot_released = true;
        self.ports
            .bookings
            .update_booking(&record, current.version, true)
            .await
            .map_err(concurrent)?;
        if previous == BookingStatus::PendingPayment {
            self.fail_payment_wait(&record).await?;
        }
        let pi = record
            .booking
            .payment_intent_id()
            .map(|p| p.to_string())
            .or(record.payment_intent_id.clone());
        Ok(json!({
            "bookingId": booking_id.as_str(),
            "previousStatus": previous.as_str(),
            "customerId": record.booking.customer_id().as_str(),
            "providerId": record.booking.provider_id().as_str(),
            "paymentIntentId": pi,
            "refundRequired": !refund.is_zero(),
            "refundAmount": money_json(&refund),
            "refundPercent": percent,
            "currency": price.currency().code(),
            "cancelledBy": by.as_str(),
        }))
    }

    /// Fails the payment-wait token of a booking cancelled while unpaid, once.
    async fn fail_payment_wait(&self, record: &BookingRecord) -> Result<(), HandlerError> {
        let Some(pi) = record.payment_intent_id.as_deref() else {
            return Ok(());
        };
        let Some(mut payment) = self.ports.payments.get_payment(pi).await? else {
            return Ok(());
        };
        let (Some(token), false) = (
            payment.value.task_token.clone(),
            payment.value.outcome_delivered,
        ) else {
            return Ok(());
        };
        payment.value.outcome_delivered = true;
        payment.value.updated_at = self.ports.clock.now();
        match self
            .ports
            .payments
            .put_payment(&payment.value, Some(payment.version))
            .await
        {
            Ok(_) => {}
            // someone else delivered an outcome meanwhile
            Err(StoreError::ConditionFailed { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let cause =
            json!({"bookingId": record.booking.id().as_str(), "reason": "booking cancelled"})
                .to_string();
        match self
            .ports
            .workflows
            .send_task_failure(&token, ErrorType::BookingCancelled.as_str(), &cause)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_stale_token() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn complete_booking(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let booking_id: BookingId = parse_id(f, "bookingId")?;
        let now = f.time("now")?;
        let current = self.load(booking_id.as_str()).await?;
        let mut record = current.value.clone();
        if record.booking.status() != BookingStatus::Confirmed {
            return Ok(json!({"completed": false, "status": record.booking.status().as_str()}));
        }
        let correlation = self.correlation(corr, Some(&record))?;
        record.booking.complete(now, correlation)?;
        self.ports
            .bookings
            .update_booking(&record, current.version, false)
            .await
            .map_err(concurrent)?;
        Ok(json!({"completed": true, "status": "COMPLETED"}))
    }
}

#[cfg(test)]
mod tests;
