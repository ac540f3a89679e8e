//! Typed events, entities, state rules and exact money of the Ecosystem Marketplace.
//!
//! No I/O and no async: everything here is pure data and rules. See the crate README for
//! the event catalogue, the state diagrams and the money rules.

#[macro_use]
pub mod wire;
pub mod error;
pub mod ids;
pub mod money;

pub use error::ValidationError;
pub use money::{Currency, FeeRate, FeeSplit, Money, MoneyError};
pub mod workflow;

pub use workflow::{ExecutionArn, ExecutionName, ExecutionStatus, WorkflowType};
pub mod envelope;
pub mod events;

pub use envelope::{EventEnvelope, PutEventsEntry};
pub use events::{Detail, EventError, HasCorrelationId, MarketplaceEvent, Source, CATALOGUE};
pub mod schema;
