//! `marketplace.booking` events.

use super::{end_after_start, fits_currency};
use crate::error::ValidationError;
use crate::ids::{BookingId, CustomerId, PaymentIntentId, ProviderId, ServiceId};
use crate::money::{Currency, Money};
use crate::wire::{Amount, LongText, PositiveAmount, ShortText, Text};
use chrono::{DateTime, Utc};

wire_enum! {
    /// Who cancelled a booking.
    CancelledBy {
        /// The customer who booked.
        Customer = "CUSTOMER",
        /// The provider of the service.
        Provider = "PROVIDER",
        /// The platform (a workflow or an administrator).
        System = "SYSTEM",
    }
}

wire_enum! {
    /// Why a booking expired.
    ExpiryReason {
        /// The customer did not pay before the booking lifecycle's deadline.
        PaymentNotReceived = "PAYMENT_NOT_RECEIVED",
        /// The provider did not confirm before the deadline.
        ProviderDidNotConfirm = "PROVIDER_DID_NOT_CONFIRM",
        /// The booking lifecycle workflow timed out (15 minutes).
        WorkflowTimedOut = "WORKFLOW_TIMED_OUT",
    }
}

/// A confirmation code shown to the customer: 4 to 32 characters.
pub type ConfirmationCode = Text<32>;

detail! {
    /// A customer booked a provider's service for a time slot; payment is pending.
    BookingCreated = Booking, "Booking Created" {
        /// The new booking.
        booking_id: BookingId => "bookingId",
        /// The service booked.
        service_id: ServiceId => "serviceId",
        /// The customer who booked.
        customer_id: CustomerId => "customerId",
        /// The provider of the service.
        provider_id: ProviderId => "providerId",
        /// Start of the slot (RFC 3339).
        start_date_time: DateTime<Utc> => "startDateTime",
        /// End of the slot (RFC 3339), after the start.
        end_date_time: DateTime<Utc> => "endDateTime",
        /// Price to pay, in major units (> 0, with the currency's decimals).
        amount: PositiveAmount => "amount",
        /// ISO 4217 currency of the amount.
        currency: Currency => "currency",
    }
}

impl BookingCreated {
    fn rules(&self) -> Result<(), ValidationError> {
        end_after_start(
            &self.start_date_time,
            &self.end_date_time,
            "startDateTime",
            "endDateTime",
        )?;
        fits_currency(self.amount.value(), self.currency, "amount")?;
        Ok(())
    }

    /// The price as money.
    pub fn price(&self) -> Money {
        Money::new(self.amount.value(), self.currency).unwrap_or(Money::zero(self.currency))
    }
}

detail! {
    /// The booking's payment succeeded and the booking is confirmed.
    BookingConfirmed = Booking, "Booking Confirmed" {
        /// The booking.
        booking_id: BookingId => "bookingId",
        /// The Stripe PaymentIntent that paid it.
        payment_intent_id: PaymentIntentId => "paymentIntentId",
        /// The code the customer shows the provider (4 to 32 characters).
        confirmation_code: ConfirmationCode => "confirmationCode",
    }
}

impl BookingConfirmed {
    fn rules(&self) -> Result<(), ValidationError> {
        let code = self.confirmation_code.as_str();
        if code.chars().count() < 4 || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ValidationError::new(
                "confirmationCode",
                "must be 4 to 32 characters from A-Z a-z 0-9 -",
            ));
        }
        Ok(())
    }
}

detail! {
    /// A booking was cancelled; `refundAmount` is what the customer gets back (0 if none).
    BookingCancelled = Booking, "Booking Cancelled" {
        /// The booking.
        booking_id: BookingId => "bookingId",
        /// Who cancelled: CUSTOMER, PROVIDER or SYSTEM.
        cancelled_by: CancelledBy => "cancelledBy",
        /// Why, in words.
        reason: ShortText => "reason",
        /// Amount refunded to the customer, in major units (>= 0).
        refund_amount: Amount => "refundAmount",
        /// ISO 4217 currency of the refund.
        currency: Currency => "currency",
    }
}

impl BookingCancelled {
    fn rules(&self) -> Result<(), ValidationError> {
        fits_currency(self.refund_amount.value(), self.currency, "refundAmount").map(drop)
    }
}

detail! {
    /// A pending booking expired before it was paid or confirmed.
    BookingExpired = Booking, "Booking Expired" {
        /// The booking.
        booking_id: BookingId => "bookingId",
        /// The customer who booked.
        customer_id: CustomerId => "customerId",
        /// The provider of the service.
        provider_id: ProviderId => "providerId",
        /// Why it expired.
        reason: ExpiryReason => "reason",
    }
}

impl BookingExpired {
    fn rules(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

detail! {
    /// The service was delivered; the provider's earnings can be paid out.
    BookingCompleted = Booking, "Booking Completed" {
        /// The booking.
        booking_id: BookingId => "bookingId",
        /// The customer who booked.
        customer_id: CustomerId => "customerId",
        /// The provider who delivered.
        provider_id: ProviderId => "providerId",
        /// The amount the booking was paid, in major units (> 0).
        amount: PositiveAmount => "amount",
        /// ISO 4217 currency of the amount.
        currency: Currency => "currency",
    }
}

impl BookingCompleted {
    fn rules(&self) -> Result<(), ValidationError> {
        fits_currency(self.amount.value(), self.currency, "amount").map(drop)
    }
}

detail! {
    /// A booking was rescheduled or its notes changed. The new slot is given in full.
    BookingUpdated = Booking, "Booking Updated" {
        /// The booking.
        booking_id: BookingId => "bookingId",
        /// The (new) start of the slot.
        start_date_time: DateTime<Utc> => "startDateTime",
        /// The (new) end of the slot, after the start.
        end_date_time: DateTime<Utc> => "endDateTime",
        /// The slot's start before this update, when it moved.
        previous_start_date_time: Option<DateTime<Utc>> => "previousStartDateTime",
        /// The slot's end before this update, when it moved.
        previous_end_date_time: Option<DateTime<Utc>> => "previousEndDateTime",
        /// Notes for the provider, when changed.
        notes: Option<LongText> => "notes",
    }
}

impl BookingUpdated {
    fn rules(&self) -> Result<(), ValidationError> {
        end_after_start(
            &self.start_date_time,
            &self.end_date_time,
            "startDateTime",
            "endDateTime",
        )?;
        match (&self.previous_start_date_time, &self.previous_end_date_time) {
            (Some(s), Some(e)) => {
                end_after_start(s, e, "previousStartDateTime", "previousEndDateTime")
            }
            (None, None) => Ok(()),
            (Some(_), None) => Err(ValidationError::new(
                "previousEndDateTime",
                "is required when previousStartDateTime is given",
            )),
            (None, Some(_)) => Err(ValidationError::new(
                "previousStartDateTime",
                "is required when previousEndDateTime is given",
            )),
        }
    }
}
