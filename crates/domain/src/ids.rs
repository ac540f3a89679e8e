//! Typed identifiers.
//!
//! Every id is a newtype over `String` that can only be built through validation:
//! 1 to 128 characters from `A-Z a-z 0-9 _ - . :` (the characters DynamoDB keys, Stripe
//! ids, UUIDs and ULIDs use). Ids that come from Stripe also carry Stripe's prefix
//! (`pi_`, `re_`, `po_`, `acct_`), so a payout id can never be passed where a payment
//! intent id is expected, even as a string.

use crate::error::ValidationError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Longest id accepted, in characters.
pub const MAX_ID_LEN: usize = 128;

/// Checks the rules shared by every id; `prefix` is the required prefix, if any.
/// The returned error has an empty field path: callers put the field in front.
pub fn validate_id(value: &str, prefix: Option<&str>) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new("", "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ValidationError::new(
            "",
            format!("must be at most {MAX_ID_LEN} characters long"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| !is_id_char(*c)) {
        return Err(ValidationError::new(
            "",
            format!("must contain only A-Z a-z 0-9 _ - . : (found {bad:?})"),
        ));
    }
    if let Some(prefix) = prefix {
        if !value.starts_with(prefix) || value.len() == prefix.len() {
            return Err(ValidationError::new(
                "",
                format!("must start with \"{prefix}\" followed by at least one character"),
            ));
        }
    }
    Ok(())
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// The draft-04 `pattern` that [`validate_id`] enforces for ids with `prefix`.
pub fn id_pattern(prefix: Option<&str>) -> String {
    match prefix {
        Some(p) => format!("^{p}[A-Za-z0-9_.:-]+$"),
        None => "^[A-Za-z0-9_.:-]+$".to_owned(),
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Required prefix of this id, if any.
            pub const PREFIX: Option<&'static str> = $prefix;

            /// Validates `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                validate_id(&value, Self::PREFIX)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(|e| serde::de::Error::custom(e.rule))
            }
        }

        impl crate::wire::Wire for $name {
            fn decode(value: &serde_json::Value) -> Result<Self, ValidationError> {
                let s = value
                    .as_str()
                    .ok_or_else(|| ValidationError::new("", "must be a string"))?;
                Self::new(s)
            }
            fn encode(&self) -> serde_json::Value {
                serde_json::Value::String(self.0.clone())
            }
            fn schema() -> serde_json::Value {
                serde_json::json!({
                    "type": "string",
                    "minLength": Self::PREFIX.map_or(1, |p| p.len() + 1),
                    "maxLength": MAX_ID_LEN,
                    "pattern": id_pattern(Self::PREFIX),
                })
            }
        }
    };
}

typed_id!(
    /// A booking (`bookingId`).
    BookingId,
    None
);
typed_id!(
    /// A bookable service offered by a provider (`serviceId`).
    ServiceId,
    None
);
typed_id!(
    /// A customer (`customerId`).
    CustomerId,
    None
);
typed_id!(
    /// A service provider (`providerId`).
    ProviderId,
    None
);
typed_id!(
    /// A dispute (`disputeId`).
    DisputeId,
    None
);
typed_id!(
    /// A Stripe PaymentIntent (`paymentIntentId`, `pi_...`).
    PaymentIntentId,
    Some("pi_")
);
typed_id!(
    /// A Stripe Refund (`refundId`, `re_...`).
    RefundId,
    Some("re_")
);
typed_id!(
    /// A Stripe Connect payout (`payoutId`, `po_...`).
    PayoutId,
    Some("po_")
);
typed_id!(
    /// A Stripe Connect connected account (`stripeAccountId`, `acct_...`).
    StripeAccountId,
    Some("acct_")
);
typed_id!(
    /// The correlation id shared by every event, log line and workflow of one business
    /// flow (`correlationId`).
    CorrelationId,
    None
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuid_ulid_and_stripe_ids() {
        assert!(BookingId::new("b7f3c1de-2a1b-4c5d-9e8f-0a1b2c3d4e5f").is_ok());
        assert!(CorrelationId::new("01HV3K8J9QX7Z2M4N6P8R0T2V4").is_ok());
        assert_eq!(PaymentIntentId::new("pi_3Mtw").unwrap().as_str(), "pi_3Mtw");
        assert!(StripeAccountId::new("acct_1Nv0FGQ9").is_ok());
    }

    #[test]
    fn rejects_empty_long_and_odd_characters() {
        assert_eq!(BookingId::new("").unwrap_err().rule, "must not be empty");
        let long = "a".repeat(MAX_ID_LEN + 1);
        assert!(BookingId::new(long)
            .unwrap_err()
            .rule
            .contains("at most 128"));
        assert!(BookingId::new("a".repeat(MAX_ID_LEN)).is_ok());
        let e = BookingId::new("bk 1").unwrap_err();
        assert!(e.rule.contains("A-Z a-z 0-9"), "{e}");
        assert!(BookingId::new("bk/1").is_err());
        assert!(BookingId::new("bké").is_err());
    }

    #[test]
    fn stripe_ids_need_their_prefix() {
        let e = PaymentIntentId::new("po_123").unwrap_err();
        assert!(e.rule.contains("\"pi_\""), "{e}");
        assert!(PaymentIntentId::new("pi_").is_err());
        assert!(PayoutId::new("po_1").is_ok());
        assert!(RefundId::new("re_1").is_ok());
    }

    #[test]
    fn serde_validates() {
        let id: BookingId = serde_json::from_str("\"bk_1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"bk_1\"");
        assert!(serde_json::from_str::<BookingId>("\"\"").is_err());
        assert!(serde_json::from_str::<PayoutId>("\"pi_1\"").is_err());
    }
}
