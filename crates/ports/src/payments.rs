//! The payment gateway port: the Stripe Connect operations of the contract, in Stripe's
//! terms — amounts in integer minor units, lowercase currency codes, an idempotency key
//! on every mutating call, and the `Stripe-Account` header (`stripe_account`) for calls
//! made on a connected account.

use crate::error::GatewayError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /v1/payment_intents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePaymentIntent {
    /// Minor units.
    pub amount: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// `customer` (a Stripe customer id), if any.
    pub customer: Option<String>,
    /// `payment_method` (e.g. `pm_card_visa`).
    pub payment_method: Option<String>,
    /// Confirm at once.
    pub confirm: bool,
    /// `transfer_group` (the booking id: separate charges and transfers).
    pub transfer_group: Option<String>,
    /// `application_fee_amount` (destination charges only).
    pub application_fee_amount: Option<i64>,
    /// `transfer_data[destination]` (destination charges only).
    pub transfer_destination: Option<String>,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
    /// `Idempotency-Key` header.
    pub idempotency_key: String,
}

/// PaymentIntent statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentIntentStatus {
    /// Needs a payment method (also after a decline).
    RequiresPaymentMethod,
    /// Needs confirmation.
    RequiresConfirmation,
    /// Needs customer action (3-D Secure).
    RequiresAction,
    /// Being processed.
    Processing,
    /// Authorized, not captured.
    RequiresCapture,
    /// Canceled.
    Canceled,
    /// Paid.
    Succeeded,
}

impl PaymentIntentStatus {
    /// Stripe's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresAction => "requires_action",
            Self::Processing => "processing",
            Self::RequiresCapture => "requires_capture",
            Self::Canceled => "canceled",
            Self::Succeeded => "succeeded",
        }
    }
}

/// The last payment error of a PaymentIntent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentError {
    /// `card_declined`, ...
    pub code: String,
    /// `insufficient_funds`, `generic_decline`, ...
    pub decline_code: Option<String>,
    /// Human text.
    pub message: String,
}

/// A PaymentIntent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    /// `pi_...`.
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// What was received (minor units).
    pub amount_received: i64,
    /// Lowercase code.
    pub currency: String,
    /// Status.
    pub status: PaymentIntentStatus,
    /// For the client to confirm.
    pub client_secret: String,
    /// The latest charge (`ch_...`).
    pub latest_charge: Option<String>,
    /// The last decline.
    pub last_payment_error: Option<PaymentError>,
    /// The payment method attached.
    pub payment_method: Option<String>,
    /// `transfer_group`.
    pub transfer_group: Option<String>,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
}

/// `POST /v1/refunds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRefund {
    /// The PaymentIntent to refund.
    pub payment_intent: String,
    /// Minor units; None = everything left.
    pub amount: Option<i64>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
    /// `Idempotency-Key`.
    pub idempotency_key: String,
}

/// A refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// `re_...`.
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// Lowercase code.
    pub currency: String,
    /// The PaymentIntent refunded.
    pub payment_intent: String,
    /// `pending`, `succeeded`, `failed`, `canceled`, `requires_action`.
    pub status: String,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
}

/// `POST /v1/transfers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTransfer {
    /// Minor units.
    pub amount: i64,
    /// Lowercase code.
    pub currency: String,
    /// The connected account (`acct_...`).
    pub destination: String,
    /// `transfer_group` (the booking id).
    pub transfer_group: Option<String>,
    /// `source_transaction` (the charge it is funded by).
    pub source_transaction: Option<String>,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
    /// `Idempotency-Key`.
    pub idempotency_key: String,
}

/// A transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// `tr_...`.
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// What was reversed so far.
    pub amount_reversed: i64,
    /// Lowercase code.
    pub currency: String,
    /// The connected account.
    pub destination: String,
    /// `transfer_group`.
    pub transfer_group: Option<String>,
}

/// A transfer reversal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReversal {
    /// `trr_...`.
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// The transfer.
    pub transfer: String,
}

/// `POST /v1/payouts` on a connected account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePayout {
    /// Minor units.
    pub amount: i64,
    /// Lowercase code.
    pub currency: String,
    /// `Stripe-Account` header.
    pub stripe_account: String,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
    /// `Idempotency-Key`.
    pub idempotency_key: String,
}

/// A payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// `po_...`.
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// Lowercase code.
    pub currency: String,
    /// `paid`, `pending`, `in_transit`, `canceled`, `failed`.
    pub status: String,
    /// Expected arrival (unix seconds).
    pub arrival_date: i64,
    /// Failure code.
    pub failure_code: Option<String>,
    /// Failure message.
    pub failure_message: Option<String>,
    /// The connected account it belongs to.
    pub stripe_account: String,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
}

/// `POST /v1/accounts` (Express).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAccount {
    /// Two-letter country.
    pub country: String,
    /// E-mail of the account holder.
    pub email: String,
    /// `individual`, `company`, `non_profit`, `government_entity`.
    pub business_type: String,
    /// `metadata` (providerId).
    pub metadata: BTreeMap<String, String>,
    /// `Idempotency-Key`.
    pub idempotency_key: String,
}

/// A connected account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// `acct_...`.
    pub id: String,
    /// Country.
    pub country: String,
    /// E-mail.
    pub email: String,
    /// Whether it can take charges.
    pub charges_enabled: bool,
    /// Whether it can be paid out.
    pub payouts_enabled: bool,
    /// Whether the holder finished onboarding.
    pub details_submitted: bool,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
}

/// `POST /v1/account_links`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAccountLink {
    /// The account.
    pub account: String,
    /// Where Stripe sends an expired link.
    pub refresh_url: String,
    /// Where Stripe sends a finished onboarding.
    pub return_url: String,
}

/// An account link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLink {
    /// The onboarding URL.
    pub url: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The Stripe Connect operations the marketplace needs.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Creates (and, with `confirm`, confirms) a PaymentIntent. A declined confirmation
    /// is not an error: the intent comes back `requires_payment_method` with
    /// `last_payment_error` (Stripe answers 402 with the intent attached; adapters map it).
    async fn create_payment_intent(
        &self,
        request: &CreatePaymentIntent,
    ) -> Result<PaymentIntent, GatewayError>;
    /// Confirms a PaymentIntent with `payment_method`.
    async fn confirm_payment_intent(
        &self,
        id: &str,
        payment_method: Option<&str>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, GatewayError>;
    /// Retrieves a PaymentIntent.
    async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, GatewayError>;
    /// Cancels a PaymentIntent (`reason`: `abandoned`, `requested_by_customer`, ...).
    /// Canceling a succeeded intent is a permanent error (`payment_intent_unexpected_state`).
    async fn cancel_payment_intent(
        &self,
        id: &str,
        reason: Option<&str>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, GatewayError>;
    /// Refunds (part of) a PaymentIntent's charge. More than what is left is a permanent
    /// error with code `charge_already_refunded` or `amount_too_large`.
    async fn create_refund(&self, request: &CreateRefund) -> Result<Refund, GatewayError>;
    /// Transfers to a connected account.
    async fn create_transfer(&self, request: &CreateTransfer) -> Result<Transfer, GatewayError>;
    /// Reverses (part of) a transfer.
    async fn create_transfer_reversal(
        &self,
        transfer_id: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<TransferReversal, GatewayError>;
    /// Pays out from a connected account's balance. Not enough balance is a permanent
    /// error with code `balance_insufficient`.
    async fn create_payout(&self, request: &CreatePayout) -> Result<Payout, GatewayError>;
    /// Creates an Express connected account.
    async fn create_account(&self, request: &CreateAccount) -> Result<Account, GatewayError>;
    /// Retrieves a connected account.
    async fn retrieve_account(&self, id: &str) -> Result<Account, GatewayError>;
    /// Creates an `account_onboarding` link.
    async fn create_account_link(
        &self,
        request: &CreateAccountLink,
    ) -> Result<AccountLink, GatewayError>;
}
