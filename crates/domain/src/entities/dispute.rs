//! Disputes about bookings.

use super::{EntityError, Lifecycle};
use crate::entities::booking::{Booking, BookingStatus};
use crate::error::ValidationError;
use crate::events::{
    DisputeCreated, DisputeEscalated, DisputeResolution, DisputeResolved, DisputeType,
    EscalationReason,
};
use crate::ids::{BookingId, CorrelationId, CustomerId, DisputeId, ProviderId};
use crate::money::Money;
use crate::wire::{LongText, ShortText};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

wire_enum! {
    /// The status of a dispute.
    DisputeStatus {
        /// Opened by the customer; waiting for the provider (up to 7 days).
        Open = "OPEN",
        /// The provider answered; being reviewed.
        UnderReview = "UNDER_REVIEW",
        /// Handed to an administrator.
        Escalated = "ESCALATED",
        /// Decided.
        Resolved = "RESOLVED",
    }
}

lifecycle!(DisputeStatus, "dispute", Open, [
    Open => UnderReview,
    Open => Escalated,
    Open => Resolved,
    UnderReview => Escalated,
    UnderReview => Resolved,
    Escalated => Resolved,
]);

/// A customer's dispute about a booking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispute {
    id: DisputeId,
    booking_id: BookingId,
    customer_id: CustomerId,
    provider_id: ProviderId,
    dispute_type: DisputeType,
    description: String,
    /// What the customer paid: the most a resolution can refund.
    paid: Money,
    status: DisputeStatus,
    resolution: Option<DisputeResolution>,
    refund: Option<Money>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Dispute {
    /// Opens a dispute about a CONFIRMED or COMPLETED booking.
    pub fn open(
        id: DisputeId,
        booking: &Booking,
        dispute_type: DisputeType,
        description: &str,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<(Self, DisputeCreated), EntityError> {
        if !matches!(
            booking.status(),
            BookingStatus::Confirmed | BookingStatus::Completed
        ) {
            return Err(ValidationError::new(
                "bookingId",
                format!(
                    "booking {} is {}; only CONFIRMED or COMPLETED bookings can be disputed",
                    booking.id(),
                    booking.status()
                ),
            )
            .into());
        }
        let text = LongText::new(description).map_err(|e| e.under("description"))?;
        let dispute = Self {
            id,
            booking_id: booking.id().clone(),
            customer_id: booking.customer_id().clone(),
            provider_id: booking.provider_id().clone(),
            dispute_type,
            description: description.to_owned(),
            paid: booking.price(),
            status: DisputeStatus::INITIAL,
            resolution: None,
            refund: None,
            created_at: at,
            updated_at: at,
        };
        let event = DisputeCreated {
            dispute_id: dispute.id.clone(),
            booking_id: dispute.booking_id.clone(),
            dispute_type,
            customer_id: dispute.customer_id.clone(),
            provider_id: dispute.provider_id.clone(),
            description: text,
            timestamp: at,
            correlation_id,
        };
        Ok((dispute, event))
    }

    fn set_status(&mut self, next: DisputeStatus, at: DateTime<Utc>) -> Result<(), EntityError> {
        self.status = self.status.transition(self.id.as_str(), next)?;
        self.updated_at = at;
        Ok(())
    }

    /// OPEN → UNDER_REVIEW: the provider answered.
    pub fn provider_responded(&mut self, at: DateTime<Utc>) -> Result<(), EntityError> {
        self.set_status(DisputeStatus::UnderReview, at)
    }

    /// OPEN or UNDER_REVIEW → ESCALATED.
    pub fn escalate(
        &mut self,
        reason: EscalationReason,
        notes: Option<&str>,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<DisputeEscalated, EntityError> {
        let notes = notes
            .map(LongText::new)
            .transpose()
            .map_err(|e| e.under("notes"))?;
        self.set_status(DisputeStatus::Escalated, at)?;
        Ok(DisputeEscalated {
            dispute_id: self.id.clone(),
            booking_id: self.booking_id.clone(),
            reason,
            notes,
            timestamp: at,
            correlation_id,
        })
    }

    /// → RESOLVED. REFUNDED refunds exactly what was paid, PARTIALLY_REFUNDED more than 0
    /// and less than that, REJECTED nothing; always in the booking's currency.
    #[allow(clippy::too_many_arguments)]
    pub fn resolve(
        &mut self,
        resolution: DisputeResolution,
        refund: Money,
        resolved_by: Option<&str>,
        notes: Option<&str>,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<DisputeResolved, EntityError> {
        self.paid
            .same_currency(&refund)
            .map_err(|e| e.at("refundAmount"))?;
        let rule = match resolution {
            DisputeResolution::Refunded if refund != self.paid => Some(format!(
                "must be the amount paid ({}) when resolution is REFUNDED",
                self.paid
            )),
            DisputeResolution::PartiallyRefunded
                if refund.is_zero() || refund.amount() >= self.paid.amount() =>
            {
                Some(format!(
                    "must be > 0 and < the amount paid ({}) when resolution is PARTIALLY_REFUNDED",
                    self.paid
                ))
            }
            DisputeResolution::Rejected if !refund.is_zero() => {
                Some("must be 0 when resolution is REJECTED".to_owned())
            }
            _ => None,
        };
        if let Some(rule) = rule {
            return Err(ValidationError::new("refundAmount", rule).into());
        }
        let resolved_by = resolved_by
            .map(ShortText::new)
            .transpose()
            .map_err(|e| e.under("resolvedBy"))?;
        let notes = notes
            .map(LongText::new)
            .transpose()
            .map_err(|e| e.under("notes"))?;
        self.set_status(DisputeStatus::Resolved, at)?;
        self.resolution = Some(resolution);
        self.refund = Some(refund);
        Ok(DisputeResolved {
            dispute_id: self.id.clone(),
            booking_id: self.booking_id.clone(),
            resolution,
            refund_amount: refund.to_amount(),
            currency: refund.currency(),
            resolved_by,
            notes,
            timestamp: at,
            correlation_id,
        })
    }

    /// The dispute's id.
    pub fn id(&self) -> &DisputeId {
        &self.id
    }
    /// The booking disputed.
    pub fn booking_id(&self) -> &BookingId {
        &self.booking_id
    }
    /// What it is about.
    pub fn dispute_type(&self) -> DisputeType {
        self.dispute_type
    }
    /// Its status.
    pub fn status(&self) -> DisputeStatus {
        self.status
    }
    /// The decision, once resolved.
    pub fn resolution(&self) -> Option<DisputeResolution> {
        self.resolution
    }
    /// The refund decided, once resolved.
    pub fn refund(&self) -> Option<Money> {
        self.refund
    }
    /// The most a resolution can refund.
    pub fn paid(&self) -> Money {
        self.paid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::Service;
    use crate::money::Currency;
    use chrono::TimeZone;

    fn t(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap()
    }
    fn corr() -> CorrelationId {
        CorrelationId::new("corr-1").unwrap()
    }
    fn usd(s: &str) -> Money {
        Money::parse(s, Currency::Usd).unwrap()
    }
    fn booking(confirm: bool) -> Booking {
        let s = Service::new(
            "svc".parse().unwrap(),
            "prv".parse().unwrap(),
            "Yoga",
            usd("150"),
            60,
        )
        .unwrap();
        let (mut b, _) = Booking::create(
            "bk".parse().unwrap(),
            &s,
            "cus".parse().unwrap(),
            t(10),
            t(1),
            corr(),
        )
        .unwrap();
        if confirm {
            b.confirm("pi_1".parse().unwrap(), "CONF-1", t(2), corr())
                .unwrap();
        }
        b
    }
    fn dispute() -> Dispute {
        Dispute::open(
            "dsp".parse().unwrap(),
            &booking(true),
            DisputeType::RefundRequest,
            "short",
            t(11),
            corr(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn only_paid_bookings_can_be_disputed() {
        let e = Dispute::open(
            "dsp".parse().unwrap(),
            &booking(false),
            DisputeType::RefundRequest,
            "x",
            t(11),
            corr(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("bookingId: booking bk is PENDING_PAYMENT"),
            "{e}"
        );
    }

    #[test]
    fn resolution_amount_rules() {
        let mut d = dispute();
        let by = Some("admin");
        assert_eq!(
            d.resolve(
                DisputeResolution::Rejected,
                usd("1"),
                by,
                None,
                t(12),
                corr()
            )
            .unwrap_err()
            .to_string(),
            "refundAmount: must be 0 when resolution is REJECTED"
        );
        assert!(d
            .resolve(
                DisputeResolution::Refunded,
                usd("100"),
                by,
                None,
                t(12),
                corr()
            )
            .is_err());
        assert!(d
            .resolve(
                DisputeResolution::PartiallyRefunded,
                usd("150"),
                by,
                None,
                t(12),
                corr()
            )
            .is_err());
        let eur = Money::parse("10", Currency::Eur).unwrap();
        assert_eq!(
            d.resolve(
                DisputeResolution::PartiallyRefunded,
                eur,
                by,
                None,
                t(12),
                corr()
            )
            .unwrap_err()
            .to_string(),
            "refundAmount: currency EUR does not match USD"
        );
        let ev = d
            .resolve(
                DisputeResolution::PartiallyRefunded,
                usd("75"),
                by,
                Some("half"),
                t(12),
                corr(),
            )
            .unwrap();
        assert_eq!(ev.refund_amount.value(), usd("75").amount());
        assert_eq!(d.status(), DisputeStatus::Resolved);
        assert_eq!(
            d.escalate(EscalationReason::Manual, None, t(13), corr())
                .unwrap_err()
                .to_string(),
            "dispute dsp cannot go from RESOLVED to ESCALATED"
        );
    }

    #[test]
    fn review_and_escalation() {
        let mut d = dispute();
        d.provider_responded(t(12)).unwrap();
        assert!(d.provider_responded(t(12)).is_err());
        d.escalate(EscalationReason::NoAgreement, Some("stuck"), t(13), corr())
            .unwrap();
        d.resolve(
            DisputeResolution::Refunded,
            usd("150"),
            None,
            None,
            t(14),
            corr(),
        )
        .unwrap();
        assert_eq!(d.refund(), Some(usd("150")));
    }
}
