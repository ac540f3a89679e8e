//! Entities and their lifecycles. Each status enum lists its legal transitions in one
//! table ([`Lifecycle::TRANSITIONS`]); entities change status only through methods that
//! check the table, and return the event detail to publish for the change. The crate
//! README draws the same tables as state diagrams (a test keeps them in step).

use crate::error::ValidationError;
use std::fmt;

/// Why an operation on an entity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityError {
    /// The status change is not in the entity's transition table.
    #[error("{entity} {id} cannot go from {from} to {to}")]
    IllegalTransition {
        /// `booking`, `payment`, `dispute` or `provider`.
        entity: &'static str,
        /// The entity's id.
        id: String,
        /// Its status.
        from: &'static str,
        /// The status asked for.
        to: &'static str,
    },
    /// An argument broke a rule; the error names it.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// A status enum with its transition table.
pub trait Lifecycle: Copy + Eq + fmt::Display + fmt::Debug + 'static {
    /// The entity's name in errors (`booking`).
    const ENTITY: &'static str;
    /// The status a new entity starts in.
    const INITIAL: Self;
    /// Every legal `(from, to)` pair.
    const TRANSITIONS: &'static [(Self, Self)];
    /// Every status.
    fn all() -> &'static [Self];
    /// The wire name.
    fn name(self) -> &'static str;

    /// Whether `self -> next` is legal.
    fn can_become(self, next: Self) -> bool {
        Self::TRANSITIONS.contains(&(self, next))
    }

    /// Whether no transition leaves this status.
    fn is_terminal(self) -> bool {
        !Self::TRANSITIONS.iter().any(|(from, _)| *from == self)
    }

    /// `next` when `self -> next` is legal, else [`EntityError::IllegalTransition`].
    fn transition(self, id: &str, next: Self) -> Result<Self, EntityError> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(EntityError::IllegalTransition {
                entity: Self::ENTITY,
                id: id.to_owned(),
                from: self.name(),
                to: next.name(),
            })
        }
    }
}

macro_rules! lifecycle {
    ($status:ident, $entity:literal, $initial:ident, [$( $from:ident => $to:ident ),+ $(,)?]) => {
        impl $crate::entities::Lifecycle for $status {
            const ENTITY: &'static str = $entity;
            const INITIAL: Self = $status::$initial;
            const TRANSITIONS: &'static [(Self, Self)] = &[$( ($status::$from, $status::$to) ),+];
            fn all() -> &'static [Self] {
                $status::ALL
            }
            fn name(self) -> &'static str {
                self.as_str()
            }
        }
    };
}

pub mod booking;
pub mod dispute;
pub mod payment;
pub mod provider;
pub mod service;

pub use booking::{Booking, BookingStatus, Cancellation};
pub use dispute::{Dispute, DisputeStatus};
pub use payment::{Payment, PaymentStatus};
pub use provider::{Provider, ProviderStatus};
pub use service::Service;

/// Renders a lifecycle as a Mermaid `stateDiagram-v2` (used by the README).
pub fn mermaid<S: Lifecycle>() -> String {
    let mut out = String::from("stateDiagram-v2\n");
    out.push_str(&format!("    [*] --> {}\n", S::INITIAL.name()));
    for (from, to) in S::TRANSITIONS {
        out.push_str(&format!("    {} --> {}\n", from.name(), to.name()));
    }
    for s in S::all() {
        if s.is_terminal() {
            out.push_str(&format!("    {} --> [*]\n", s.name()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_table<S: Lifecycle>() {
        // every pair outside the table is refused with a typed error, every pair in it passes
        for from in S::all() {
            for to in S::all() {
                let r = from.transition("x", *to);
                if S::TRANSITIONS.contains(&(*from, *to)) {
                    assert_eq!(r, Ok(*to));
                } else {
                    assert_eq!(
                        r,
                        Err(EntityError::IllegalTransition {
                            entity: S::ENTITY,
                            id: "x".into(),
                            from: from.name(),
                            to: to.name()
                        })
                    );
                }
            }
        }
        // every status is reachable from the initial one
        let mut seen = vec![S::INITIAL];
        let mut i = 0;
        while i < seen.len() {
            for (f, t) in S::TRANSITIONS {
                if *f == seen[i] && !seen.contains(t) {
                    seen.push(*t);
                }
            }
            i += 1;
        }
        assert_eq!(
            seen.len(),
            S::all().len(),
            "{}: unreachable statuses",
            S::ENTITY
        );
        // and some status ends the lifecycle, except where it is a cycle by design
        assert!(S::all().iter().any(|s| s.is_terminal()) || S::ENTITY == "provider");
    }

    #[test]
    fn transition_tables_are_enforced_and_connected() {
        check_table::<BookingStatus>();
        check_table::<PaymentStatus>();
        check_table::<DisputeStatus>();
        check_table::<ProviderStatus>();
    }

    #[test]
    fn terminal_statuses() {
        assert!(BookingStatus::Cancelled.is_terminal());
        assert!(!BookingStatus::Confirmed.is_terminal());
        assert!(PaymentStatus::Refunded.is_terminal());
        assert!(DisputeStatus::Resolved.is_terminal());
        assert!(!ProviderStatus::Active.is_terminal());
    }
}
