//! `marketplace.payment` events.

use super::fits_currency;
use crate::error::ValidationError;
use crate::ids::{
    BookingId, CustomerId, DisputeId, PaymentIntentId, PayoutId, ProviderId, RefundId,
};
use crate::money::{Currency, FeeSplit, Money};
use crate::wire::{Amount, PositiveAmount, ShortText};

wire_enum! {
    /// Why a refund was issued.
    RefundReason {
        /// The booking was cancelled.
        BookingCancelled = "BOOKING_CANCELLED",
        /// A dispute was resolved in the customer's favour.
        DisputeResolved = "DISPUTE_RESOLVED",
        /// The customer asked for it (Stripe `requested_by_customer`).
        RequestedByCustomer = "REQUESTED_BY_CUSTOMER",
        /// The charge was a duplicate (Stripe `duplicate`).
        Duplicate = "DUPLICATE",
        /// The charge was fraudulent (Stripe `fraudulent`).
        Fraudulent = "FRAUDULENT",
    }
}

detail! {
    /// A Stripe PaymentIntent was created for a booking; the customer can now pay.
    PaymentIntentCreated = Payment, "Payment Intent Created" {
        /// The Stripe PaymentIntent.
        payment_intent_id: PaymentIntentId => "paymentIntentId",
        /// The booking being paid.
        booking_id: BookingId => "bookingId",
        /// The paying customer.
        customer_id: CustomerId => "customerId",
        /// The provider to be paid.
        provider_id: ProviderId => "providerId",
        /// Amount to charge, in major units (> 0).
        amount: PositiveAmount => "amount",
        /// ISO 4217 currency of the amount.
        currency: Currency => "currency",
    }
}

impl PaymentIntentCreated {
    fn rules(&self) -> Result<(), ValidationError> {
        fits_currency(self.amount.value(), self.currency, "amount").map(drop)
    }
}

detail! {
    /// A booking was paid; the amount is split into the platform fee and the provider's
    /// earnings, which add up to it.
    PaymentSucceeded = Payment, "Payment Succeeded" {
        /// The Stripe PaymentIntent.
        payment_intent_id: PaymentIntentId => "paymentIntentId",
        /// Amount charged, in major units (> 0).
        amount: PositiveAmount => "amount",
        /// The platform's fee (>= 0).
        platform_fee: Amount => "platformFee",
        /// The provider's share: amount − platformFee.
        provider_earnings: Amount => "providerEarnings",
        /// ISO 4217 currency of the three amounts.
        currency: Currency => "currency",
        /// The booking paid.
        booking_id: BookingId => "bookingId",
    }
}

impl PaymentSucceeded {
    fn rules(&self) -> Result<(), ValidationError> {
        let amount = fits_currency(self.amount.value(), self.currency, "amount")?;
        let fee = fits_currency(self.platform_fee.value(), self.currency, "platformFee")?;
        let earnings = fits_currency(
            self.provider_earnings.value(),
            self.currency,
            "providerEarnings",
        )?;
        if fee.amount() > amount.amount() {
            return Err(ValidationError::new(
                "platformFee",
                "must not exceed amount",
            ));
        }
        if fee.amount() + earnings.amount() != amount.amount() {
            return Err(ValidationError::new(
                "providerEarnings",
                format!(
                    "must equal amount - platformFee ({})",
                    amount.amount() - fee.amount()
                ),
            ));
        }
        Ok(())
    }

    /// The fee split as money.
    pub fn split(&self) -> FeeSplit {
        FeeSplit {
            platform_fee: Money::new(self.platform_fee.value(), self.currency)
                .unwrap_or(Money::zero(self.currency)),
            provider_earnings: Money::new(self.provider_earnings.value(), self.currency)
                .unwrap_or(Money::zero(self.currency)),
        }
    }
}

detail! {
    /// A payment attempt failed (card declined, authentication failed, ...).
    PaymentFailed = Payment, "Payment Failed" {
        /// The Stripe PaymentIntent.
        payment_intent_id: PaymentIntentId => "paymentIntentId",
        /// The booking being paid.
        booking_id: BookingId => "bookingId",
        /// Amount that was to be charged (> 0).
        amount: PositiveAmount => "amount",
        /// ISO 4217 currency of the amount.
        currency: Currency => "currency",
        /// Machine-readable failure code (Stripe's `code` or `decline_code`).
        failure_code: ShortText => "failureCode",
        /// Human-readable failure message.
        failure_message: ShortText => "failureMessage",
    }
}

impl PaymentFailed {
    fn rules(&self) -> Result<(), ValidationError> {
        fits_currency(self.amount.value(), self.currency, "amount").map(drop)
    }
}

detail! {
    /// Money was refunded to the customer.
    RefundIssued = Payment, "Refund Issued" {
        /// The Stripe Refund.
        refund_id: RefundId => "refundId",
        /// The PaymentIntent refunded.
        payment_intent_id: PaymentIntentId => "paymentIntentId",
        /// The booking concerned.
        booking_id: BookingId => "bookingId",
        /// Amount refunded (> 0).
        amount: PositiveAmount => "amount",
        /// ISO 4217 currency of the amount.
        currency: Currency => "currency",
        /// Why.
        reason: RefundReason => "reason",
        /// The dispute that led to the refund, when reason is DISPUTE_RESOLVED.
        dispute_id: Option<DisputeId> => "disputeId",
    }
}

impl RefundIssued {
    fn rules(&self) -> Result<(), ValidationError> {
        fits_currency(self.amount.value(), self.currency, "amount")?;
        if self.reason == RefundReason::DisputeResolved && self.dispute_id.is_none() {
            return Err(ValidationError::new(
                "disputeId",
                "is required when reason is DISPUTE_RESOLVED",
            ));
        }
        Ok(())
    }
}

detail! {
    /// A provider's earnings were paid out to their bank account.
    PayoutCompleted = Payment, "Payout Completed" {
        /// The Stripe payout.
        payout_id: PayoutId => "payoutId",
        /// The provider paid.
        provider_id: ProviderId => "providerId",
        /// Amount paid out (> 0).
        amount: PositiveAmount => "amount",
        /// ISO 4217 currency of the amount.
        currency: Currency => "currency",
    }
}

impl PayoutCompleted {
    fn rules(&self) -> Result<(), ValidationError> {
        fits_currency(self.amount.value(), self.currency, "amount").map(drop)
    }
}

detail! {
    /// A payout to a provider failed.
    PayoutFailed = Payment, "Payout Failed" {
        /// The Stripe payout.
        payout_id: PayoutId => "payoutId",
        /// The provider to be paid.
        provider_id: ProviderId => "providerId",
        /// Amount that was to be paid out (> 0).
        amount: PositiveAmount => "amount",
        /// ISO 4217 currency of the amount.
        currency: Currency => "currency",
        /// Machine-readable failure code (Stripe's payout `failure_code`).
        failure_code: ShortText => "failureCode",
        /// Human-readable failure message.
        failure_message: ShortText => "failureMessage",
    }
}

impl PayoutFailed {
    fn rules(&self) -> Result<(), ValidationError> {
        fits_currency(self.amount.value(), self.currency, "amount").map(drop)
    }
}
