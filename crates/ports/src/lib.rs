//! # marketplace-ports
//!
//! The traits the marketplace's handlers depend on (hexagonal "ports"), so that the same
//! handler code runs in AWS Lambda (adapters on DynamoDB, EventBridge, Step Functions,
//! Stripe, SES) and in `marketplace serve` (SQLite, the embedded bus and workflow host,
//! a simulated Stripe, an outbox).
//!
//! - [`store`] — repositories (services, providers, bookings with the slot reservation,
//!   payments with task tokens, disputes, the earnings ledger, a user directory);
//! - [`idempotency_store`] — idempotency records with conditional puts;
//! - [`events`] — PutEvents with per-entry results;
//! - [`workflow`] — Step Functions operations;
//! - [`payments`] — Stripe Connect operations;
//! - [`notify`] — e-mail;
//! - [`clock`] — time and ids.
//!
//! Every port error maps to a stable `errorType` ([`error::ErrorType`],
//! [`error::HasErrorType`]), the names Step Functions Retry/Catch match on.
//!
//! All traits are object safe (`Arc<dyn BookingRepository>`); adapters are chosen only
//! by binaries. [`Ports`] bundles one of each for handlers.
#![warn(missing_docs)]

pub mod breaker;
pub mod callbacks;
pub mod clock;
pub mod contract;
pub mod error;
pub mod events;
pub mod fields;
pub mod fixtures;
pub mod handler;
pub mod idempotency;
pub mod idempotency_store;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod payments;
pub mod store;
pub mod stripe_signature;
pub mod stripe_sim;
pub mod workflow;

pub use clock::{
    Clock, IdGenerator, ManualClock, NoPause, Pause, RandomIds, SequentialIds, SystemClock,
};
pub use error::{
    ErrorType, GatewayError, HandlerError, HasErrorType, NotifyError, PublishError, StoreError,
    WorkflowError,
};
pub use events::{publish_all, EventPublisher, PutEventsResultEntry};
pub use idempotency_store::{
    IdempotencyPutError, IdempotencyRecord, IdempotencyStatus, IdempotencyStore,
};
pub use notify::{EmailMessage, Notifier};
pub use payments::PaymentGateway;
pub use store::{
    BookingRecord, BookingRepository, DisputeRecord, DisputeRepository, LedgerBalance, LedgerEntry,
    LedgerRepository, PaymentKind, PaymentRecord, PaymentRepository, ProviderRecord,
    ProviderRepository, ServiceRepository, UserContact, UserDirectory, Versioned,
};
pub use workflow::WorkflowClient;

use std::sync::Arc;

/// One adapter of every port: what a handler is built from.
#[derive(Clone)]
pub struct Ports {
    /// Services.
    pub services: Arc<dyn ServiceRepository>,
    /// Providers.
    pub providers: Arc<dyn ProviderRepository>,
    /// Bookings.
    pub bookings: Arc<dyn BookingRepository>,
    /// Payments.
    pub payments: Arc<dyn PaymentRepository>,
    /// Disputes.
    pub disputes: Arc<dyn DisputeRepository>,
    /// The earnings ledger.
    pub ledger: Arc<dyn LedgerRepository>,
    /// Contacts.
    pub users: Arc<dyn UserDirectory>,
    /// Idempotency records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The bus.
    pub events: Arc<dyn EventPublisher>,
    /// Step Functions.
    pub workflows: Arc<dyn WorkflowClient>,
    /// Stripe.
    pub gateway: Arc<dyn PaymentGateway>,
    /// E-mail.
    pub notifier: Arc<dyn Notifier>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Short real-time waits (for a concurrent invocation holding an idempotency key).
    pub pause: Arc<dyn Pause>,
}
