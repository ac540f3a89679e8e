//! `marketplace.dispute` events.

use super::fits_currency;
use crate::error::ValidationError;
use crate::ids::{BookingId, CustomerId, DisputeId, ProviderId};
use crate::money::Currency;
use crate::wire::{Amount, LongText, ShortText};

wire_enum! {
    /// What a dispute is about.
    DisputeType {
        /// The customer asks for money back.
        RefundRequest = "REFUND_REQUEST",
        /// The customer complains about the service.
        ServiceComplaint = "SERVICE_COMPLAINT",
    }
}

wire_enum! {
    /// How a dispute ended.
    DisputeResolution {
        /// Fully refunded.
        Refunded = "REFUNDED",
        /// Partly refunded.
        PartiallyRefunded = "PARTIALLY_REFUNDED",
        /// Rejected: no refund.
        Rejected = "REJECTED",
    }
}

wire_enum! {
    /// Why a dispute was escalated to an administrator.
    EscalationReason {
        /// The provider did not answer in time (the dispute workflow waits 7 days).
        ProviderNoResponse = "PROVIDER_NO_RESPONSE",
        /// Customer and provider did not agree.
        NoAgreement = "NO_AGREEMENT",
        /// Escalated by hand.
        Manual = "MANUAL",
    }
}

detail! {
    /// A customer opened a dispute about a booking.
    DisputeCreated = Dispute, "Dispute Created" {
        /// The new dispute.
        dispute_id: DisputeId => "disputeId",
        /// The booking disputed.
        booking_id: BookingId => "bookingId",
        /// REFUND_REQUEST or SERVICE_COMPLAINT.
        dispute_type: DisputeType => "disputeType",
        /// The customer who opened it.
        customer_id: CustomerId => "customerId",
        /// The provider concerned.
        provider_id: ProviderId => "providerId",
        /// The customer's account of the problem.
        description: LongText => "description",
    }
}

impl DisputeCreated {
    fn rules(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

detail! {
    /// A dispute was escalated to an administrator for a decision.
    DisputeEscalated = Dispute, "Dispute Escalated" {
        /// The dispute.
        dispute_id: DisputeId => "disputeId",
        /// The booking disputed.
        booking_id: BookingId => "bookingId",
        /// Why it was escalated.
        reason: EscalationReason => "reason",
        /// Extra context for the administrator.
        notes: Option<LongText> => "notes",
    }
}

impl DisputeEscalated {
    fn rules(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

detail! {
    /// A dispute was decided. REFUNDED and PARTIALLY_REFUNDED carry a refund amount > 0,
    /// REJECTED carries 0.
    DisputeResolved = Dispute, "Dispute Resolved" {
        /// The dispute.
        dispute_id: DisputeId => "disputeId",
        /// The booking disputed.
        booking_id: BookingId => "bookingId",
        /// REFUNDED, PARTIALLY_REFUNDED or REJECTED.
        resolution: DisputeResolution => "resolution",
        /// Amount refunded to the customer (>= 0).
        refund_amount: Amount => "refundAmount",
        /// ISO 4217 currency of the refund.
        currency: Currency => "currency",
        /// Who decided (an administrator's user name, or SYSTEM).
        resolved_by: Option<ShortText> => "resolvedBy",
        /// The decision's reasons.
        notes: Option<LongText> => "notes",
    }
}

impl DisputeResolved {
    fn rules(&self) -> Result<(), ValidationError> {
        let refund = fits_currency(self.refund_amount.value(), self.currency, "refundAmount")?;
        match self.resolution {
            DisputeResolution::Rejected if !refund.is_zero() => Err(ValidationError::new(
                "refundAmount",
                "must be 0 when resolution is REJECTED",
            )),
            DisputeResolution::Refunded | DisputeResolution::PartiallyRefunded
                if refund.is_zero() =>
            {
                Err(ValidationError::new(
                    "refundAmount",
                    format!("must be > 0 when resolution is {}", self.resolution),
                ))
            }
            _ => Ok(()),
        }
    }
}
