//! The Ecosystem Marketplace on one machine: the embedded runtime behind `marketplace serve`.
//!
//! * [`store`]: SQLite (WAL, versioned migrations) holding everything durable.
//! * [`bus`]: EventBridge's PutEvents, archive, delivery with retries and dead letters,
//!   replay and redrive, over the rules of `infra/rules.json` ([`rules`]).
//! * [`workflows`]: the durable host of the state machines in `statemachines/`.
//! * [`server`]: the HTTP server (`/health`, `/metrics`, `/graphql`, admin API).
//! * [`client`]: the small HTTP client the CLI's client commands use.
//! * [`stripe_store`]: the simulated Stripe's state, kept in the same SQLite file.
//! * [`webhook_sender`]: delivers its webhook events, retrying failures as Stripe does.

#![warn(missing_docs)]

pub mod adapters;
pub mod auth;
pub mod bus;
pub mod client;

pub mod clock;
pub mod functions;
pub mod graphql;
pub mod handlers;

pub mod metrics;
pub mod rowcache;
pub mod rules;
pub mod runtime;
pub mod server;

pub mod store;
pub mod stripe_store;
pub mod util;
pub mod webhook_sender;
pub mod workflows;

/// The account id in local ARNs.
pub const ACCOUNT: &str = "000000000000";
/// The region in local ARNs.
pub const REGION: &str = "us-east-1";
