//! Sub-commands of the `marketplace` binary, one module each.

pub mod events;
pub mod states;
