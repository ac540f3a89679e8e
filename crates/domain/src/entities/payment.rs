//! Payments of bookings, with their refunds.

use super::{EntityError, Lifecycle};
use crate::entities::booking::Booking;
use crate::error::ValidationError;
use crate::events::{
    PaymentFailed, PaymentIntentCreated, PaymentSucceeded, RefundIssued, RefundReason,
};
use crate::ids::{
    BookingId, CorrelationId, CustomerId, DisputeId, PaymentIntentId, ProviderId, RefundId,
};
use crate::money::{FeeRate, FeeSplit, Money};
use crate::wire::ShortText;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

wire_enum! {
    /// The status of a payment (one Stripe PaymentIntent).
    PaymentStatus {
        /// The PaymentIntent exists; the customer has not paid yet.
        Pending = "PENDING",
        /// Paid.
        Succeeded = "SUCCEEDED",
        /// The last attempt failed; the customer may try again.
        Failed = "FAILED",
        /// Abandoned before it succeeded (booking expired or cancelled).
        Cancelled = "CANCELLED",
        /// Part of the amount was refunded.
        PartiallyRefunded = "PARTIALLY_REFUNDED",
        /// The whole amount was refunded.
        Refunded = "REFUNDED",
    }
}

lifecycle!(PaymentStatus, "payment", Pending, [
    Pending => Succeeded,
    Pending => Failed,
    Pending => Cancelled,
    Failed => Succeeded,
    Failed => Failed,
    Failed => Cancelled,
    Succeeded => PartiallyRefunded,
    Succeeded => Refunded,
    PartiallyRefunded => PartiallyRefunded,
    PartiallyRefunded => Refunded,
]);

/// The payment of one booking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    payment_intent_id: PaymentIntentId,
    booking_id: BookingId,
    customer_id: CustomerId,
    provider_id: ProviderId,
    amount: Money,
    status: PaymentStatus,
    platform_fee: Option<Money>,
    provider_earnings: Option<Money>,
    refunded: Money,
    last_failure: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Payment {
    /// A PENDING payment of `booking`'s price through `payment_intent_id`.
    pub fn create(
        payment_intent_id: PaymentIntentId,
        booking: &Booking,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<(Self, PaymentIntentCreated), EntityError> {
        let amount = booking.price();
        let payment = Self {
            payment_intent_id,
            booking_id: booking.id().clone(),
            customer_id: booking.customer_id().clone(),
            provider_id: booking.provider_id().clone(),
            amount,
            status: PaymentStatus::INITIAL,
            platform_fee: None,
            provider_earnings: None,
            refunded: Money::zero(amount.currency()),
            last_failure: None,
            created_at: at,
            updated_at: at,
        };
        let event = PaymentIntentCreated {
            payment_intent_id: payment.payment_intent_id.clone(),
            booking_id: payment.booking_id.clone(),
            customer_id: payment.customer_id.clone(),
            provider_id: payment.provider_id.clone(),
            amount: amount.to_positive_amount().map_err(|e| e.under("amount"))?,
            currency: amount.currency(),
            timestamp: at,
            correlation_id,
        };
        Ok((payment, event))
    }

    fn set_status(&mut self, next: PaymentStatus, at: DateTime<Utc>) -> Result<(), EntityError> {
        self.status = self
            .status
            .transition(self.payment_intent_id.as_str(), next)?;
        self.updated_at = at;
        Ok(())
    }

    /// PENDING or FAILED → SUCCEEDED; splits the amount with the platform's `rate`.
    pub fn succeed(
        &mut self,
        rate: FeeRate,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<PaymentSucceeded, EntityError> {
        self.set_status(PaymentStatus::Succeeded, at)?;
        let FeeSplit {
            platform_fee,
            provider_earnings,
        } = self.amount.split_fee(rate);
        self.platform_fee = Some(platform_fee);
        self.provider_earnings = Some(provider_earnings);
        Ok(PaymentSucceeded {
            payment_intent_id: self.payment_intent_id.clone(),
            amount: self.amount.to_positive_amount()?,
            platform_fee: platform_fee.to_amount(),
            provider_earnings: provider_earnings.to_amount(),
            currency: self.amount.currency(),
            booking_id: self.booking_id.clone(),
            timestamp: at,
            correlation_id,
        })
    }

    /// PENDING or FAILED → FAILED.
    pub fn fail(
        &mut self,
        failure_code: &str,
        failure_message: &str,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<PaymentFailed, EntityError> {
        let code = ShortText::new(failure_code).map_err(|e| e.under("failureCode"))?;
        let message = ShortText::new(failure_message).map_err(|e| e.under("failureMessage"))?;
        self.set_status(PaymentStatus::Failed, at)?;
        self.last_failure = Some(failure_code.to_owned());
        Ok(PaymentFailed {
            payment_intent_id: self.payment_intent_id.clone(),
            booking_id: self.booking_id.clone(),
            amount: self.amount.to_positive_amount()?,
            currency: self.amount.currency(),
            failure_code: code,
            failure_message: message,
            timestamp: at,
            correlation_id,
        })
    }

    /// PENDING or FAILED → CANCELLED.
    pub fn cancel(&mut self, at: DateTime<Utc>) -> Result<(), EntityError> {
        self.set_status(PaymentStatus::Cancelled, at)
    }

    /// Refunds `amount` (> 0, same currency, at most what is left) of a paid payment:
    /// → PARTIALLY_REFUNDED, or REFUNDED once everything is refunded.
    #[allow(clippy::too_many_arguments)]
    pub fn refund(
        &mut self,
        refund_id: RefundId,
        amount: Money,
        reason: RefundReason,
        dispute_id: Option<DisputeId>,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<RefundIssued, EntityError> {
        self.amount
            .same_currency(&amount)
            .map_err(|e| e.at("amount"))?;
        if amount.is_zero() {
            return Err(ValidationError::new("amount", "must be > 0").into());
        }
        let left = self.refundable();
        if amount.amount() > left.amount() {
            return Err(ValidationError::new(
                "amount",
                format!("must not exceed the refundable {left}"),
            )
            .into());
        }
        if reason == RefundReason::DisputeResolved && dispute_id.is_none() {
            return Err(ValidationError::new(
                "disputeId",
                "is required when reason is DISPUTE_RESOLVED",
            )
            .into());
        }
        let total = self
            .refunded
            .checked_add(&amount)
            .map_err(|e| e.at("amount"))?;
        let next = if total == self.amount {
            PaymentStatus::Refunded
        } else {
            PaymentStatus::PartiallyRefunded
        };
        self.set_status(next, at)?;
        self.refunded = total;
        Ok(RefundIssued {
            refund_id,
            payment_intent_id: self.payment_intent_id.clone(),
            booking_id: self.booking_id.clone(),
            amount: amount.to_positive_amount()?,
            currency: amount.currency(),
            reason,
            dispute_id,
            timestamp: at,
            correlation_id,
        })
    }

    /// What can still be refunded: amount − refunded so far (zero unless paid).
    pub fn refundable(&self) -> Money {
        match self.status {
            PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded => self
                .amount
                .checked_sub(&self.refunded)
                .unwrap_or(Money::zero(self.amount.currency())),
            _ => Money::zero(self.amount.currency()),
        }
    }

    /// The PaymentIntent.
    pub fn payment_intent_id(&self) -> &PaymentIntentId {
        &self.payment_intent_id
    }
    /// The booking paid.
    pub fn booking_id(&self) -> &BookingId {
        &self.booking_id
    }
    /// The provider to be paid.
    pub fn provider_id(&self) -> &ProviderId {
        &self.provider_id
    }
    /// Amount charged.
    pub fn amount(&self) -> Money {
        self.amount
    }
    /// Its status.
    pub fn status(&self) -> PaymentStatus {
        self.status
    }
    /// The fee split, once paid.
    pub fn split(&self) -> Option<FeeSplit> {
        Some(FeeSplit {
            platform_fee: self.platform_fee?,
            provider_earnings: self.provider_earnings?,
        })
    }
    /// Refunded so far.
    pub fn refunded(&self) -> Money {
        self.refunded
    }
    /// The code of the last failed attempt.
    pub fn last_failure(&self) -> Option<&str> {
        self.last_failure.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::Service;
    use crate::money::Currency;
    use chrono::TimeZone;

    fn t(m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 14, m, 0).unwrap()
    }
    fn corr() -> CorrelationId {
        CorrelationId::new("corr-1").unwrap()
    }
    fn usd(s: &str) -> Money {
        Money::parse(s, Currency::Usd).unwrap()
    }
    fn payment() -> Payment {
        let s = Service::new(
            "svc".parse().unwrap(),
            "prv".parse().unwrap(),
            "Yoga",
            usd("100.05"),
            60,
        )
        .unwrap();
        let start = Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
        let (b, _) = Booking::create(
            "bk".parse().unwrap(),
            &s,
            "cus".parse().unwrap(),
            start,
            t(0),
            corr(),
        )
        .unwrap();
        Payment::create("pi_1".parse().unwrap(), &b, t(0), corr())
            .unwrap()
            .0
    }

    #[test]
    fn success_splits_the_fee() {
        let mut p = payment();
        let ev = p.succeed("0.15".parse().unwrap(), t(1), corr()).unwrap();
        // 100.05 × 0.15 = 15.0075 -> 15.01
        assert_eq!(ev.platform_fee.value(), usd("15.01").amount());
        assert_eq!(ev.provider_earnings.value(), usd("85.04").amount());
        assert_eq!(p.split().unwrap().platform_fee, usd("15.01"));
        assert!(p.succeed("0.15".parse().unwrap(), t(2), corr()).is_err());
    }

    #[test]
    fn failure_then_retry() {
        let mut p = payment();
        p.fail("card_declined", "Declined", t(1), corr()).unwrap();
        p.fail("card_declined", "Declined", t(2), corr()).unwrap();
        assert_eq!(p.refundable(), usd("0"));
        p.succeed(FeeRate::from_basis_points(1000).unwrap(), t(3), corr())
            .unwrap();
        assert_eq!(p.status(), PaymentStatus::Succeeded);
        assert_eq!(
            p.cancel(t(4)).unwrap_err().to_string(),
            "payment pi_1 cannot go from SUCCEEDED to CANCELLED"
        );
    }

    #[test]
    fn refunds_add_up_and_never_exceed_the_amount() {
        let mut p = payment();
        let re = |n: &str| RefundId::new(format!("re_{n}")).unwrap();
        assert!(matches!(
            p.refund(
                re("0"),
                usd("1"),
                RefundReason::RequestedByCustomer,
                None,
                t(1),
                corr()
            ),
            Err(EntityError::Invalid(_))
        ));
        p.succeed("0.1".parse().unwrap(), t(1), corr()).unwrap();
        let eur = Money::parse("1", Currency::Eur).unwrap();
        assert_eq!(
            p.refund(
                re("1"),
                eur,
                RefundReason::RequestedByCustomer,
                None,
                t(2),
                corr()
            )
            .unwrap_err()
            .to_string(),
            "amount: currency EUR does not match USD"
        );
        assert_eq!(
            p.refund(
                re("1"),
                usd("50"),
                RefundReason::DisputeResolved,
                None,
                t(2),
                corr()
            )
            .unwrap_err()
            .to_string(),
            "disputeId: is required when reason is DISPUTE_RESOLVED"
        );
        p.refund(
            re("1"),
            usd("50"),
            RefundReason::RequestedByCustomer,
            None,
            t(2),
            corr(),
        )
        .unwrap();
        assert_eq!(p.status(), PaymentStatus::PartiallyRefunded);
        assert_eq!(
            p.refund(
                re("2"),
                usd("50.06"),
                RefundReason::RequestedByCustomer,
                None,
                t(3),
                corr()
            )
            .unwrap_err()
            .to_string(),
            "amount: must not exceed the refundable 50.05 USD"
        );
        p.refund(
            re("2"),
            usd("50.05"),
            RefundReason::RequestedByCustomer,
            None,
            t(3),
            corr(),
        )
        .unwrap();
        assert_eq!(p.status(), PaymentStatus::Refunded);
        assert_eq!(p.refunded(), usd("100.05"));
        assert!(p.status().is_terminal());
    }
}
