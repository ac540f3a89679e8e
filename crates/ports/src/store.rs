//! Repositories of the marketplace's records. Every write that can race is conditional:
//! creates fail when the item exists, updates carry the version they read
//! ([`Versioned`]) and fail with [`StoreError::ConditionFailed`] when it changed. The
//! slot reservation is one transactional write of the booking and one claim per
//! 15-minute slot ([`slot_starts`]), each conditional on not existing.
//!
//! Records are plain serde structs (camelCase JSON): the SQLite adapter stores them as
//! JSON documents, the DynamoDB adapter as items (serde_dynamo).

use crate::error::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, Utc};
use marketplace_domain::entities::{Booking, Dispute, Provider, Service};
use marketplace_domain::events::DisputeType;
use marketplace_domain::{Currency, Money};
use serde::{Deserialize, Serialize};

/// A record with the version it was read at. Version 1 is the first write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The record.
    pub value: T,
    /// Incremented by every successful write.
    pub version: u64,
}

/// Length of one slot of the slot reservation.
pub const SLOT_MINUTES: i64 = 15;

/// The starts of the 15-minute slots `[start, end)` touches: from `start` rounded down to
/// the quarter hour up to (excluding) `end`. Two bookings of a provider overlap for the
/// store exactly when these sets intersect (bookings are made in quarter hours, so this
/// is exact overlap for them).
pub fn slot_starts(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let step = Duration::minutes(SLOT_MINUTES);
    let mut t = match start.duration_trunc(step) {
        Ok(t) => t,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    // bounded: bookings last at most 14 days = 1344 slots; refuse anything absurd
    while t < end && out.len() < 20_000 {
        out.push(t);
        t += step;
    }
    out
}

/// A booking as stored: the domain entity plus what the workflow attached to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingRecord {
    /// The entity (status, times, price, cancellation).
    pub booking: Booking,
    /// Platform fee of the price.
    pub platform_fee: Money,
    /// What the provider earns.
    pub provider_earnings: Money,
    /// The provider's connected account.
    pub stripe_account_id: Option<String>,
    /// The booking's PaymentIntent, once created.
    pub payment_intent_id: Option<String>,
    /// The successful charge, once paid.
    pub charge_id: Option<String>,
    /// Until when the PENDING_PAYMENT reservation holds.
    pub reserved_until: DateTime<Utc>,
    /// Whether the slot claims were deleted (expired/cancelled).
    pub slot_released: bool,
    /// The business flow.
    pub correlation_id: String,
}

/// A PaymentIntent, refund, payout or transfer as stored, with the task token of the
/// workflow that waits for its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRecord {
    /// Stripe's id (`pi_`, `re_`, `po_`, `tr_`): the key.
    pub id: String,
    /// What kind of money movement.
    pub kind: PaymentKind,
    /// The booking, when it concerns one.
    pub booking_id: Option<String>,
    /// The customer, for payments.
    pub customer_id: Option<String>,
    /// The provider.
    pub provider_id: Option<String>,
    /// The provider's connected account.
    pub stripe_account_id: Option<String>,
    /// For refunds: the PaymentIntent refunded.
    pub payment_intent_id: Option<String>,
    /// The amount.
    pub amount: Money,
    /// For payments: the platform's fee.
    pub platform_fee: Option<Money>,
    /// For payments: the provider's part.
    pub provider_earnings: Option<Money>,
    /// For payments: what was refunded so far.
    pub refunded: Money,
    /// Stripe's status (`requires_action`, `succeeded`, `pending`, `paid`, `failed`, ...).
    pub status: String,
    /// For payments: the successful charge.
    pub charge_id: Option<String>,
    /// For payments: the transfer of the earnings, once released.
    pub transfer_id: Option<String>,
    /// Failure code, when it failed.
    pub failure_code: Option<String>,
    /// Failure message, when it failed.
    pub failure_message: Option<String>,
    /// For payouts: expected arrival (RFC 3339).
    pub arrival_date: Option<DateTime<Utc>>,
    /// The task token of the execution waiting for the outcome.
    pub task_token: Option<String>,
    /// Whether the outcome was already delivered to the token (so it is sent once).
    pub outcome_delivered: bool,
    /// The business flow.
    pub correlation_id: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The kinds of [`PaymentRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentKind {
    /// A PaymentIntent (`pi_`).
    PaymentIntent,
    /// A refund (`re_`).
    Refund,
    /// A payout (`po_`).
    Payout,
    /// A transfer to a connected account (`tr_`).
    Transfer,
}

/// An answer given through GraphQL (an administrator's decision, the provider's response) for
/// one of the dispute workflow's task-token waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedAnswer {
    /// The task output that completes the wait: a JSON object as text, as SendTaskSuccess
    /// takes it.
    pub output: String,
    /// Who answered (the administrator, the provider).
    pub answered_by: String,
    /// When the answer was accepted.
    pub answered_at: DateTime<Utc>,
    /// `false` while the answer waits for the workflow to arm its wait (the waiting task then
    /// completes its own token with it); `true` once it was sent to the workflow.
    pub delivered: bool,
}

/// A dispute as stored: the entity plus the workflow's bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisputeRecord {
    /// The entity (status, resolution, refund).
    pub dispute: Dispute,
    /// The disputed booking.
    pub booking_id: String,
    /// REFUND_REQUEST or SERVICE_COMPLAINT.
    pub dispute_type: DisputeType,
    /// The customer who opened it.
    pub customer_id: String,
    /// The booking's provider.
    pub provider_id: String,
    /// The booking's PaymentIntent.
    pub payment_intent_id: Option<String>,
    /// What the customer paid.
    pub amount_paid: Money,
    /// What is still refundable when the dispute opened.
    pub refundable_amount: Money,
    /// What the customer asks back, if a number.
    pub requested_refund_amount: Option<Money>,
    /// The customer's text.
    pub description: String,
    /// End of the provider's review window (opened + 24 h).
    pub review_deadline: DateTime<Utc>,
    /// End of the whole dispute (opened + 7 days).
    pub resolution_deadline: DateTime<Utc>,
    /// Token of the provider-response wait.
    pub provider_task_token: Option<String>,
    /// Token of the admin-decision wait.
    pub admin_task_token: Option<String>,
    /// `MANUAL_REVIEW` or `FINAL` once escalated.
    pub escalation_level: Option<String>,
    /// The provider's response given through GraphQL: pending while the workflow has not
    /// armed its wait yet (`awaitProviderResponse` then completes its own token with it),
    /// delivered once sent to the workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_response: Option<RecordedAnswer>,
    /// The administrator's decision of the current manual review, pending or delivered like
    /// `provider_response` (`awaitAdminDecision`); a new escalation starts a new review and
    /// clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_decision: Option<RecordedAnswer>,
    /// Whether the record is closed (RESOLVED) — kept for the one-open-per-booking rule.
    pub open: bool,
    /// The business flow.
    pub correlation_id: String,
}

/// A provider as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRecord {
    /// The entity (status, account).
    pub provider: Provider,
    /// Whether Stripe enabled charges.
    pub charges_enabled: bool,
    /// Whether Stripe enabled payouts.
    pub payouts_enabled: bool,
    /// The current onboarding link.
    pub onboarding_url: Option<String>,
    /// When that link expires.
    pub onboarding_url_expires_at: Option<DateTime<Utc>>,
    /// The business flow of the onboarding.
    pub correlation_id: Option<String>,
}

/// One entry of a provider's earnings ledger, keyed by the event that caused it.
/// Deltas are signed integer minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// The EventBridge event id: one entry per event.
    pub event_id: String,
    /// The provider.
    pub provider_id: String,
    /// The currency of the deltas.
    pub currency: Currency,
    /// Change of earnings not yet released.
    pub pending_delta: i64,
    /// Change of earnings released and not paid out.
    pub available_delta: i64,
    /// Change of earnings paid out.
    pub paid_out_delta: i64,
    /// What caused it (`Payment Succeeded`, ...).
    pub reason: String,
    /// The booking, payout or refund concerned.
    pub reference: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A provider's balance in one currency, summed from the ledger (minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerBalance {
    /// Not yet released.
    pub pending: i64,
    /// Released, not paid out.
    pub available: i64,
    /// Paid out.
    pub paid_out: i64,
}

/// Services (the catalogue).
#[async_trait]
pub trait ServiceRepository: Send + Sync {
    /// The service, if it exists.
    async fn get_service(&self, id: &str) -> Result<Option<Service>, StoreError>;
    /// Creates or replaces a service.
    async fn put_service(&self, service: &Service) -> Result<(), StoreError>;
    /// The services of a provider.
    async fn list_services_by_provider(
        &self,
        provider_id: &str,
    ) -> Result<Vec<Service>, StoreError>;
}

/// Providers.
#[async_trait]
pub trait ProviderRepository: Send + Sync {
    /// The provider, if it exists.
    async fn get_provider(&self, id: &str)
        -> Result<Option<Versioned<ProviderRecord>>, StoreError>;
    /// Creates (`expected_version` None: fails if it exists) or updates (fails unless the
    /// stored version is `expected_version`). Returns the new version.
    async fn put_provider(
        &self,
        record: &ProviderRecord,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError>;
    /// The provider owning a connected account.
    async fn find_provider_by_account(
        &self,
        stripe_account_id: &str,
    ) -> Result<Option<Versioned<ProviderRecord>>, StoreError>;
}

/// Bookings and their slot claims.
#[async_trait]
pub trait BookingRepository: Send + Sync {
    /// The booking, if it exists.
    async fn get_booking(&self, id: &str) -> Result<Option<Versioned<BookingRecord>>, StoreError>;
    /// One transaction: the booking (must not exist: `ConditionFailed`) and a claim of
    /// each of its provider's [`slot_starts`] (must not exist: `SlotUnavailable` naming
    /// the holder). Nothing is written when any condition fails. Returns version 1.
    async fn reserve_booking(&self, record: &BookingRecord) -> Result<u64, StoreError>;
    /// Updates the booking if its version is still `expected_version`; when
    /// `release_slot` is true the booking's slot claims are deleted in the same write.
    async fn update_booking(
        &self,
        record: &BookingRecord,
        expected_version: u64,
        release_slot: bool,
    ) -> Result<u64, StoreError>;
    /// A customer's bookings, newest start first.
    async fn list_bookings_by_customer(
        &self,
        customer_id: &str,
    ) -> Result<Vec<BookingRecord>, StoreError>;
    /// A provider's bookings, newest start first.
    async fn list_bookings_by_provider(
        &self,
        provider_id: &str,
    ) -> Result<Vec<BookingRecord>, StoreError>;
}

/// Payments, refunds, payouts and transfers.
#[async_trait]
pub trait PaymentRepository: Send + Sync {
    /// The record with Stripe id `id`.
    async fn get_payment(&self, id: &str) -> Result<Option<Versioned<PaymentRecord>>, StoreError>;
    /// Create (`None`: fails if it exists) or conditional update. Returns the new version.
    async fn put_payment(
        &self,
        record: &PaymentRecord,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError>;
    /// Every record of a booking (its PaymentIntents, refunds, transfer), oldest first.
    async fn list_payments_by_booking(
        &self,
        booking_id: &str,
    ) -> Result<Vec<PaymentRecord>, StoreError>;
}

/// Disputes.
#[async_trait]
pub trait DisputeRepository: Send + Sync {
    /// The dispute, if it exists.
    async fn get_dispute(&self, id: &str) -> Result<Option<Versioned<DisputeRecord>>, StoreError>;
    /// Creates the dispute; fails with `ConditionFailed` if it exists or if the booking
    /// has another open dispute (one open dispute per booking, checked atomically).
    async fn create_dispute(&self, record: &DisputeRecord) -> Result<u64, StoreError>;
    /// Conditional update.
    async fn update_dispute(
        &self,
        record: &DisputeRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError>;
    /// The disputes of a booking, oldest first.
    async fn list_disputes_by_booking(
        &self,
        booking_id: &str,
    ) -> Result<Vec<DisputeRecord>, StoreError>;
}

/// The providers' earnings ledger.
#[async_trait]
pub trait LedgerRepository: Send + Sync {
    /// Appends `entry` unless an entry with its `event_id` exists; returns whether it was
    /// appended (false = duplicate delivery, nothing changed).
    async fn append_entry(&self, entry: &LedgerEntry) -> Result<bool, StoreError>;
    /// The provider's balance in `currency`.
    async fn balance(
        &self,
        provider_id: &str,
        currency: Currency,
    ) -> Result<LedgerBalance, StoreError>;
    /// The provider's entries, oldest first.
    async fn list_entries(&self, provider_id: &str) -> Result<Vec<LedgerEntry>, StoreError>;
}

/// Who a user is, for notifications: Cognito on AWS, a table locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserContact {
    /// The user id (Cognito `sub`, customer id or provider id).
    pub user_id: String,
    /// Where to send e-mail.
    pub email: String,
    /// How to greet them.
    pub display_name: String,
}

/// Looks up contacts of customers, providers and the admin group.
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// The contact of a user, if known.
    async fn get_user(&self, user_id: &str) -> Result<Option<UserContact>, StoreError>;
    /// The members of a group (`admin`).
    async fn group_members(&self, group: &str) -> Result<Vec<UserContact>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).unwrap()
    }

    #[test]
    fn slots_cover_the_booking_in_quarter_hours() {
        assert_eq!(
            slot_starts(t(9, 0), t(10, 0)),
            vec![t(9, 0), t(9, 15), t(9, 30), t(9, 45)]
        );
        // adjacent bookings share no slot
        let a = slot_starts(t(9, 0), t(10, 0));
        let b = slot_starts(t(10, 0), t(11, 0));
        assert!(a.iter().all(|s| !b.contains(s)));
        // an unaligned start claims the quarter it starts in
        assert_eq!(slot_starts(t(9, 10), t(9, 20)), vec![t(9, 0), t(9, 15)]);
        assert!(slot_starts(t(10, 0), t(9, 0)).is_empty());
    }
}
