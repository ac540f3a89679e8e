//! Typed events, entities, state rules and exact money of the Ecosystem Marketplace.
//!
//! No I/O and no async: everything here is pure data and rules.
