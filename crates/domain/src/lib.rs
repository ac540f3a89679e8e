#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[macro_use]
pub mod wire;
pub mod docs;
pub mod entities;
pub mod envelope;
pub mod error;
pub mod events;
pub mod ids;
pub mod money;
pub mod schema;
pub mod workflow;

pub use entities::{EntityError, Lifecycle};
pub use envelope::{EventEnvelope, PutEventsEntry};
pub use error::ValidationError;
pub use events::{Detail, EventError, HasCorrelationId, MarketplaceEvent, Source, CATALOGUE};
pub use money::{Currency, FeeRate, FeeSplit, Money, MoneyError};
pub use workflow::{ExecutionArn, ExecutionName, ExecutionStatus, WorkflowType};
