//! Bookings.

use super::{EntityError, Lifecycle};
use crate::entities::service::Service;
use crate::error::ValidationError;
use crate::events::{
    BookingCancelled, BookingCompleted, BookingConfirmed, BookingCreated, BookingExpired,
    BookingUpdated, CancelledBy, ConfirmationCode, ExpiryReason,
};
use crate::ids::{BookingId, CorrelationId, CustomerId, PaymentIntentId, ProviderId, ServiceId};
use crate::money::{Money, MoneyError};
use crate::wire::{LongText, ShortText};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

wire_enum! {
    /// The status of a booking.
    BookingStatus {
        /// Created; waiting for payment (the booking lifecycle allows 15 minutes).
        PendingPayment = "PENDING_PAYMENT",
        /// Paid and confirmed.
        Confirmed = "CONFIRMED",
        /// The service was delivered.
        Completed = "COMPLETED",
        /// Cancelled by the customer, the provider or the system.
        Cancelled = "CANCELLED",
        /// Not paid or confirmed in time.
        Expired = "EXPIRED",
    }
}

lifecycle!(BookingStatus, "booking", PendingPayment, [
    PendingPayment => Confirmed,
    PendingPayment => Cancelled,
    PendingPayment => Expired,
    Confirmed => Completed,
    Confirmed => Cancelled,
]);

/// How a booking was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    /// Who cancelled.
    pub cancelled_by: CancelledBy,
    /// Why.
    pub reason: String,
    /// What the customer gets back.
    pub refund: Money,
    /// When.
    pub at: DateTime<Utc>,
}

/// A customer's booking of a service for a time slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    id: BookingId,
    service_id: ServiceId,
    customer_id: CustomerId,
    provider_id: ProviderId,
    start_date_time: DateTime<Utc>,
    end_date_time: DateTime<Utc>,
    price: Money,
    status: BookingStatus,
    payment_intent_id: Option<PaymentIntentId>,
    confirmation_code: Option<String>,
    cancellation: Option<Cancellation>,
    notes: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Booking {
    /// Books `service` for `customer_id` from `start`; the slot lasts the service's
    /// duration and costs its price. The service must be active and the start after `now`.
    /// Returns the booking and its `Booking Created` detail.
    pub fn create(
        id: BookingId,
        service: &Service,
        customer_id: CustomerId,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<(Self, BookingCreated), EntityError> {
        if !service.active {
            return Err(ValidationError::new(
                "serviceId",
                format!("service {} is not active", service.id),
            )
            .into());
        }
        if start <= now {
            return Err(ValidationError::new("startDateTime", "must be in the future").into());
        }
        let end = start + service.duration();
        let booking = Self {
            id,
            service_id: service.id.clone(),
            customer_id,
            provider_id: service.provider_id.clone(),
            start_date_time: start,
            end_date_time: end,
            price: service.price,
            status: BookingStatus::INITIAL,
            payment_intent_id: None,
            confirmation_code: None,
            cancellation: None,
            notes: None,
            created_at: now,
            updated_at: now,
        };
        let event = BookingCreated {
            booking_id: booking.id.clone(),
            service_id: booking.service_id.clone(),
            customer_id: booking.customer_id.clone(),
            provider_id: booking.provider_id.clone(),
            start_date_time: start,
            end_date_time: end,
            amount: booking
                .price
                .to_positive_amount()
                .map_err(|e| e.under("price"))?,
            currency: booking.price.currency(),
            timestamp: now,
            correlation_id,
        };
        Ok((booking, event))
    }

    /// The booking a `Booking Created` event describes, checked against its service:
    /// same provider, same currency, same price.
    pub fn from_created(event: &BookingCreated, service: &Service) -> Result<Self, EntityError> {
        if event.service_id != service.id {
            return Err(
                ValidationError::new("serviceId", format!("must be {}", service.id)).into(),
            );
        }
        if event.provider_id != service.provider_id {
            return Err(ValidationError::new(
                "providerId",
                format!("must be the service's provider {}", service.provider_id),
            )
            .into());
        }
        if event.currency != service.price.currency() {
            let e = MoneyError::CurrencyMismatch {
                expected: service.price.currency(),
                found: event.currency,
            };
            return Err(e.at("currency").into());
        }
        let price = Money::new(event.amount.value(), event.currency).map_err(|e| e.at("amount"))?;
        if price != service.price {
            return Err(ValidationError::new(
                "amount",
                format!("must be the service's price {}", service.price),
            )
            .into());
        }
        Ok(Self {
            id: event.booking_id.clone(),
            service_id: event.service_id.clone(),
            customer_id: event.customer_id.clone(),
            provider_id: event.provider_id.clone(),
            start_date_time: event.start_date_time,
            end_date_time: event.end_date_time,
            price,
            status: BookingStatus::INITIAL,
            payment_intent_id: None,
            confirmation_code: None,
            cancellation: None,
            notes: None,
            created_at: event.timestamp,
            updated_at: event.timestamp,
        })
    }

    fn set_status(&mut self, next: BookingStatus, at: DateTime<Utc>) -> Result<(), EntityError> {
        self.status = self.status.transition(self.id.as_str(), next)?;
        self.updated_at = at;
        Ok(())
    }

    /// PENDING_PAYMENT → CONFIRMED once `payment_intent_id` succeeded.
    pub fn confirm(
        &mut self,
        payment_intent_id: PaymentIntentId,
        confirmation_code: &str,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<BookingConfirmed, EntityError> {
        let code =
            ConfirmationCode::new(confirmation_code).map_err(|e| e.under("confirmationCode"))?;
        let event = BookingConfirmed {
            booking_id: self.id.clone(),
            payment_intent_id: payment_intent_id.clone(),
            confirmation_code: code,
            timestamp: at,
            correlation_id,
        };
        // the event's own rules check the code's characters
        crate::events::Detail::check(&event)?;
        self.set_status(BookingStatus::Confirmed, at)?;
        self.payment_intent_id = Some(payment_intent_id);
        self.confirmation_code = Some(confirmation_code.to_owned());
        Ok(event)
    }

    /// PENDING_PAYMENT or CONFIRMED → CANCELLED with `refund` back to the customer
    /// (same currency, at most the price; zero when nothing was paid).
    pub fn cancel(
        &mut self,
        by: CancelledBy,
        reason: &str,
        refund: Money,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<BookingCancelled, EntityError> {
        let reason_text = ShortText::new(reason).map_err(|e| e.under("reason"))?;
        self.price
            .same_currency(&refund)
            .map_err(|e| e.at("refundAmount"))?;
        if refund.amount() > self.price.amount() {
            return Err(ValidationError::new(
                "refundAmount",
                format!("must not exceed the price {}", self.price),
            )
            .into());
        }
        if self.status == BookingStatus::PendingPayment && !refund.is_zero() {
            return Err(
                ValidationError::new("refundAmount", "must be 0 for an unpaid booking").into(),
            );
        }
        self.set_status(BookingStatus::Cancelled, at)?;
        self.cancellation = Some(Cancellation {
            cancelled_by: by,
            reason: reason.to_owned(),
            refund,
            at,
        });
        Ok(BookingCancelled {
            booking_id: self.id.clone(),
            cancelled_by: by,
            reason: reason_text,
            refund_amount: refund.to_amount(),
            currency: refund.currency(),
            timestamp: at,
            correlation_id,
        })
    }

    /// PENDING_PAYMENT → EXPIRED.
    pub fn expire(
        &mut self,
        reason: ExpiryReason,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<BookingExpired, EntityError> {
        self.set_status(BookingStatus::Expired, at)?;
        Ok(BookingExpired {
            booking_id: self.id.clone(),
            customer_id: self.customer_id.clone(),
            provider_id: self.provider_id.clone(),
            reason,
            timestamp: at,
            correlation_id,
        })
    }

    /// CONFIRMED → COMPLETED, not before the slot ends.
    pub fn complete(
        &mut self,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<BookingCompleted, EntityError> {
        if at < self.end_date_time {
            return Err(ValidationError::new("timestamp", "must not be before endDateTime").into());
        }
        self.set_status(BookingStatus::Completed, at)?;
        Ok(BookingCompleted {
            booking_id: self.id.clone(),
            customer_id: self.customer_id.clone(),
            provider_id: self.provider_id.clone(),
            amount: self.price.to_positive_amount()?,
            currency: self.price.currency(),
            timestamp: at,
            correlation_id,
        })
    }

    /// Moves a PENDING_PAYMENT or CONFIRMED booking to a new slot of the same length
    /// starting after `at`, and/or changes its notes. The status does not change.
    pub fn reschedule(
        &mut self,
        start: DateTime<Utc>,
        notes: Option<&str>,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<BookingUpdated, EntityError> {
        if !matches!(
            self.status,
            BookingStatus::PendingPayment | BookingStatus::Confirmed
        ) {
            return Err(ValidationError::new(
                "status",
                format!("a {} booking cannot be updated", self.status),
            )
            .into());
        }
        if start <= at {
            return Err(ValidationError::new("startDateTime", "must be in the future").into());
        }
        let notes = notes
            .map(LongText::new)
            .transpose()
            .map_err(|e| e.under("notes"))?;
        let length = self.end_date_time - self.start_date_time;
        let (prev_start, prev_end) = (self.start_date_time, self.end_date_time);
        let moved = start != prev_start;
        self.start_date_time = start;
        self.end_date_time = start + length;
        if let Some(n) = &notes {
            self.notes = Some(n.as_str().to_owned());
        }
        self.updated_at = at;
        Ok(BookingUpdated {
            booking_id: self.id.clone(),
            start_date_time: self.start_date_time,
            end_date_time: self.end_date_time,
            previous_start_date_time: moved.then_some(prev_start),
            previous_end_date_time: moved.then_some(prev_end),
            notes,
            timestamp: at,
            correlation_id,
        })
    }

    /// The booking's id.
    pub fn id(&self) -> &BookingId {
        &self.id
    }
    /// Its status.
    pub fn status(&self) -> BookingStatus {
        self.status
    }
    /// The service booked.
    pub fn service_id(&self) -> &ServiceId {
        &self.service_id
    }
    /// The customer.
    pub fn customer_id(&self) -> &CustomerId {
        &self.customer_id
    }
    /// The provider.
    pub fn provider_id(&self) -> &ProviderId {
        &self.provider_id
    }
    /// Start of the slot.
    pub fn start_date_time(&self) -> DateTime<Utc> {
        self.start_date_time
    }
    /// End of the slot.
    pub fn end_date_time(&self) -> DateTime<Utc> {
        self.end_date_time
    }
    /// The price.
    pub fn price(&self) -> Money {
        self.price
    }
    /// The PaymentIntent that paid it, once confirmed.
    pub fn payment_intent_id(&self) -> Option<&PaymentIntentId> {
        self.payment_intent_id.as_ref()
    }
    /// The confirmation code, once confirmed.
    pub fn confirmation_code(&self) -> Option<&str> {
        self.confirmation_code.as_deref()
    }
    /// How it was cancelled, if it was.
    pub fn cancellation(&self) -> Option<&Cancellation> {
        self.cancellation.as_ref()
    }
    /// Notes for the provider.
    pub fn notes(&self) -> Option<&str> {
        self.notes.as_deref()
    }
    /// When it was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// When it last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, h, 0, 0).unwrap()
    }
    fn corr() -> CorrelationId {
        CorrelationId::new("corr-1").unwrap()
    }
    fn service() -> Service {
        Service::new(
            "svc_1".parse().unwrap(),
            "prv_1".parse().unwrap(),
            "Yoga",
            Money::parse("150", Currency::Usd).unwrap(),
            60,
        )
        .unwrap()
    }
    fn booking() -> Booking {
        Booking::create(
            "bk_1".parse().unwrap(),
            &service(),
            "cus_1".parse().unwrap(),
            t(9),
            t(1),
            corr(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn create_takes_price_and_duration_from_the_service() {
        let (b, ev) = Booking::create(
            "bk_1".parse().unwrap(),
            &service(),
            "cus_1".parse().unwrap(),
            t(9),
            t(1),
            corr(),
        )
        .unwrap();
        assert_eq!(b.status(), BookingStatus::PendingPayment);
        assert_eq!(b.end_date_time(), t(10));
        assert_eq!(ev.amount.value(), b.price().amount());
        assert_eq!(Booking::from_created(&ev, &service()).unwrap(), b);
        let e = Booking::create(
            "bk_1".parse().unwrap(),
            &service(),
            "cus_1".parse().unwrap(),
            t(1),
            t(1),
            corr(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "startDateTime: must be in the future");
        let mut inactive = service();
        inactive.active = false;
        assert!(Booking::create(
            "bk_1".parse().unwrap(),
            &inactive,
            "cus_1".parse().unwrap(),
            t(9),
            t(1),
            corr()
        )
        .is_err());
    }

    #[test]
    fn created_event_must_match_the_service_currency() {
        let (_, mut ev) = Booking::create(
            "bk_1".parse().unwrap(),
            &service(),
            "cus_1".parse().unwrap(),
            t(9),
            t(1),
            corr(),
        )
        .unwrap();
        ev.currency = Currency::Eur;
        assert_eq!(
            Booking::from_created(&ev, &service())
                .unwrap_err()
                .to_string(),
            "currency: currency EUR does not match USD"
        );
    }

    #[test]
    fn happy_path_and_illegal_transitions() {
        let mut b = booking();
        b.confirm("pi_1".parse().unwrap(), "CONF-1", t(2), corr())
            .unwrap();
        assert_eq!(b.status(), BookingStatus::Confirmed);
        let e = b
            .confirm("pi_1".parse().unwrap(), "CONF-1", t(2), corr())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "booking bk_1 cannot go from CONFIRMED to CONFIRMED"
        );
        let e = b
            .expire(ExpiryReason::WorkflowTimedOut, t(3), corr())
            .unwrap_err();
        assert!(matches!(
            e,
            EntityError::IllegalTransition {
                from: "CONFIRMED",
                to: "EXPIRED",
                ..
            }
        ));
        assert_eq!(
            b.complete(t(9), corr()).unwrap_err().to_string(),
            "timestamp: must not be before endDateTime"
        );
        let ev = b.complete(t(11), corr()).unwrap();
        assert_eq!(ev.amount.value(), b.price().amount());
        assert!(b.status().is_terminal());
        assert!(b
            .cancel(
                CancelledBy::Customer,
                "late",
                Money::zero(Currency::Usd),
                t(12),
                corr()
            )
            .is_err());
    }

    #[test]
    fn cancellation_rules() {
        let mut b = booking();
        let usd = |s| Money::parse(s, Currency::Usd).unwrap();
        assert_eq!(
            b.cancel(CancelledBy::Customer, "x", usd("1"), t(2), corr())
                .unwrap_err()
                .to_string(),
            "refundAmount: must be 0 for an unpaid booking"
        );
        b.confirm("pi_1".parse().unwrap(), "CONF-1", t(2), corr())
            .unwrap();
        assert_eq!(
            b.cancel(CancelledBy::Customer, "x", usd("151"), t(3), corr())
                .unwrap_err()
                .to_string(),
            "refundAmount: must not exceed the price 150.00 USD"
        );
        let eur = Money::parse("10", Currency::Eur).unwrap();
        assert_eq!(
            b.cancel(CancelledBy::Customer, "x", eur, t(3), corr())
                .unwrap_err()
                .to_string(),
            "refundAmount: currency EUR does not match USD"
        );
        let ev = b
            .cancel(CancelledBy::Provider, "ill", usd("150"), t(3), corr())
            .unwrap();
        assert_eq!(ev.refund_amount.value(), usd("150").amount());
        assert_eq!(b.status(), BookingStatus::Cancelled);
    }

    #[test]
    fn reschedule_keeps_length_and_status() {
        let mut b = booking();
        let ev = b
            .reschedule(t(13), Some("bring a mat"), t(2), corr())
            .unwrap();
        assert_eq!(b.end_date_time(), t(14));
        assert_eq!(ev.previous_start_date_time, Some(t(9)));
        assert_eq!(b.status(), BookingStatus::PendingPayment);
        b.expire(ExpiryReason::PaymentNotReceived, t(3), corr())
            .unwrap();
        assert!(b.reschedule(t(15), None, t(4), corr()).is_err());
    }

    #[test]
    fn bad_confirmation_code() {
        let mut b = booking();
        let e = b
            .confirm("pi_1".parse().unwrap(), "a b", t(2), corr())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "confirmationCode: must be 4 to 32 characters from A-Z a-z 0-9 -"
        );
        assert_eq!(b.status(), BookingStatus::PendingPayment);
    }

    #[test]
    fn serde_round_trip() {
        let b = booking();
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["status"], "PENDING_PAYMENT");
        assert_eq!(
            v["price"],
            serde_json::json!({"amount": 150, "currency": "USD"})
        );
        assert_eq!(serde_json::from_value::<Booking>(v).unwrap(), b);
    }
}
