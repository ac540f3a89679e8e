//! The wire form of detail fields: one trait that decodes a field from JSON with a
//! field-naming error, encodes it back, and describes it as JSON Schema draft-04.
//!
//! Every detail struct is declared once (see [`crate::events`]) as a list of fields whose
//! types implement [`Wire`]; its decoder, encoder and schema are all derived from that one
//! list, so the checked-in schemas cannot drift from the code without a test failing.

use crate::error::ValidationError;
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::fmt;
use std::str::FromStr;

/// A type that appears as a field of an event detail.
///
/// Errors returned by `decode` have a field path relative to the value itself (empty
/// for the value, `[2]` for an element); the caller puts the field name in front.
pub trait Wire: Sized {
    /// Decodes and validates the value.
    fn decode(value: &Value) -> Result<Self, ValidationError>;
    /// Encodes the value; `decode(encode(x)) == x`.
    fn encode(&self) -> Value;
    /// The JSON Schema draft-04 of the encoded value.
    fn schema() -> Value;
    /// Whether the field may be left out (only `Option<T>`).
    const OPTIONAL: bool = false;

    /// Decodes a field that may be absent from its object.
    fn decode_field(value: Option<&Value>) -> Result<Self, ValidationError> {
        match value {
            None => Err(ValidationError::new("", "is required")),
            Some(v) => Self::decode(v),
        }
    }

    /// Encodes a field; `None` leaves it out of its object.
    fn encode_field(&self) -> Option<Value> {
        Some(self.encode())
    }
}

impl<T: Wire> Wire for Option<T> {
    const OPTIONAL: bool = true;

    fn decode(value: &Value) -> Result<Self, ValidationError> {
        if value.is_null() {
            return Err(ValidationError::new(
                "",
                "must not be null (leave the field out instead)",
            ));
        }
        T::decode(value).map(Some)
    }
    fn encode(&self) -> Value {
        self.as_ref().map_or(Value::Null, Wire::encode)
    }
    fn schema() -> Value {
        T::schema()
    }
    fn decode_field(value: Option<&Value>) -> Result<Self, ValidationError> {
        match value {
            None => Ok(None),
            Some(v) => Self::decode(v),
        }
    }
    fn encode_field(&self) -> Option<Value> {
        self.as_ref().map(Wire::encode)
    }
}

impl Wire for bool {
    fn decode(value: &Value) -> Result<Self, ValidationError> {
        value
            .as_bool()
            .ok_or_else(|| ValidationError::new("", "must be a boolean"))
    }
    fn encode(&self) -> Value {
        Value::Bool(*self)
    }
    fn schema() -> Value {
        json!({"type": "boolean"})
    }
}

/// Any JSON value (used for workflow outputs, whose shape belongs to the workflow).
impl Wire for Value {
    fn decode(value: &Value) -> Result<Self, ValidationError> {
        Ok(value.clone())
    }
    fn encode(&self) -> Value {
        self.clone()
    }
    fn schema() -> Value {
        json!({})
    }
}

/// Timestamps are RFC 3339 strings on the wire (`2026-03-01T14:00:00Z`,
/// `2026-03-01T14:00:00.250+01:00`) and UTC inside. They are written back in UTC with
/// `Z`, with as many fraction digits as needed.
impl Wire for DateTime<Utc> {
    fn decode(value: &Value) -> Result<Self, ValidationError> {
        let s = value
            .as_str()
            .ok_or_else(|| ValidationError::new("", "must be an RFC 3339 date-time string"))?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ValidationError::new(
                    "",
                    format!("must be an RFC 3339 date-time (e.g. 2026-03-01T14:00:00Z), got {s:?}"),
                )
            })
    }
    fn encode(&self) -> Value {
        Value::String(format_time(self))
    }
    fn schema() -> Value {
        json!({"type": "string", "format": "date-time"})
    }
}

/// Formats a time the way this crate writes it: UTC, `Z`, fraction only when non-zero.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Free text: 1 to `MAX` characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    /// Validates and wraps `value`.
    pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        if value.trim().is_empty() {
            return Err(ValidationError::new("", "must not be blank"));
        }
        let len = value.chars().count();
        if len > MAX {
            return Err(ValidationError::new(
                "",
                format!("must be at most {MAX} characters long (got {len})"),
            ));
        }
        Ok(Self(value))
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> Wire for Text<MAX> {
    fn decode(value: &Value) -> Result<Self, ValidationError> {
        let s = value
            .as_str()
            .ok_or_else(|| ValidationError::new("", "must be a string"))?;
        Self::new(s)
    }
    fn encode(&self) -> Value {
        Value::String(self.0.clone())
    }
    fn schema() -> Value {
        json!({"type": "string", "minLength": 1, "maxLength": MAX, "pattern": NON_BLANK_PATTERN})
    }
}

/// The draft-04 `pattern` of [`Text`]: at least one non-whitespace character.
pub const NON_BLANK_PATTERN: &str = "\\S";

/// Short text (reasons, codes, names): at most 500 characters.
pub type ShortText = Text<500>;
/// Long text (descriptions, notes): at most 5000 characters.
pub type LongText = Text<5000>;

/// Largest amount accepted on the wire, exclusive, in major units. Together with at most
/// three decimals this keeps every amount within 15 significant digits, which an IEEE
/// double (the number type of JSON consumers such as JavaScript, Step Functions and
/// AppSync) represents exactly.
pub const MAX_AMOUNT_EXCLUSIVE: i64 = 1_000_000_000_000;

/// A non-negative amount in major units (`12.50`), exact. On the wire a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Decimal);

/// A strictly positive amount in major units, exact. On the wire a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositiveAmount(Decimal);

impl Amount {
    /// Validates `value`: `>= 0`, at most 3 decimals, below [`MAX_AMOUNT_EXCLUSIVE`].
    pub fn new(value: Decimal) -> Result<Self, ValidationError> {
        check_amount(value)?;
        Ok(Self(if value.is_zero() {
            Decimal::ZERO
        } else {
            value.normalize()
        }))
    }
    /// The amount of `money` (which already keeps every rule of `Amount`).
    pub fn from_money(money: &crate::money::Money) -> Self {
        Self(money.amount().normalize())
    }
    /// The zero amount.
    pub const ZERO: Amount = Amount(Decimal::ZERO);
    /// The decimal value.
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl PositiveAmount {
    /// Validates `value`: `> 0`, at most 3 decimals, below [`MAX_AMOUNT_EXCLUSIVE`].
    pub fn new(value: Decimal) -> Result<Self, ValidationError> {
        check_amount(value)?;
        if value.is_zero() {
            return Err(ValidationError::new("", "must be > 0"));
        }
        Ok(Self(value.normalize()))
    }
    /// The decimal value.
    pub fn value(self) -> Decimal {
        self.0
    }
}

fn check_amount(value: Decimal) -> Result<(), ValidationError> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(ValidationError::new("", "must not be negative"));
    }
    if value.normalize().scale() > 3 {
        return Err(ValidationError::new(
            "",
            "must have at most 3 decimal places",
        ));
    }
    if value >= Decimal::from(MAX_AMOUNT_EXCLUSIVE) {
        return Err(ValidationError::new(
            "",
            format!("must be < {MAX_AMOUNT_EXCLUSIVE}"),
        ));
    }
    Ok(())
}

/// Reads a JSON number as an exact decimal: the number's shortest round-trip text is
/// parsed as a decimal, so `12.1` is exactly 12.1, never 12.0999999999999996.
pub fn decimal_from_json(value: &Value) -> Result<Decimal, ValidationError> {
    let n = value
        .as_number()
        .ok_or_else(|| ValidationError::new("", "must be a number"))?;
    let text = n.to_string();
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| ValidationError::new("", format!("must be a decimal number (got {text})")))
}

/// Writes an amount as a JSON number: an integer when it has no fraction, otherwise the
/// double whose shortest text is the decimal itself (exact for up to 15 significant
/// digits, which [`Amount`] guarantees).
pub fn decimal_to_json(value: Decimal) -> Value {
    let value = value.normalize();
    if value.scale() == 0 {
        if let Ok(i) = i64::try_from(value) {
            return Value::from(i);
        }
    }
    value
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or_else(|| Value::String(value.to_string()), Value::Number)
}

impl Wire for Amount {
    fn decode(value: &Value) -> Result<Self, ValidationError> {
        Self::new(decimal_from_json(value)?)
    }
    fn encode(&self) -> Value {
        decimal_to_json(self.0)
    }
    fn schema() -> Value {
        json!({"type": "number", "minimum": 0, "maximum": MAX_AMOUNT_EXCLUSIVE, "exclusiveMaximum": true})
    }
}

impl Wire for PositiveAmount {
    fn decode(value: &Value) -> Result<Self, ValidationError> {
        Self::new(decimal_from_json(value)?)
    }
    fn encode(&self) -> Value {
        decimal_to_json(self.0)
    }
    fn schema() -> Value {
        json!({"type": "number", "minimum": 0, "exclusiveMinimum": true,
               "maximum": MAX_AMOUNT_EXCLUSIVE, "exclusiveMaximum": true})
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for PositiveAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<PositiveAmount> for Amount {
    fn from(p: PositiveAmount) -> Self {
        Amount(p.0)
    }
}

/// Declares a string enum with its wire names: `as_str`, `FromStr` (the error lists the
/// allowed values), `Display`, serde, [`Wire`] and `ALL`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }

            /// The rule text used when a value is not one of [`Self::ALL`].
            pub fn rule() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                format!("must be one of {}", names.join(", "))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $wire => Ok($name::$variant), )+
                    _ => Err($crate::error::ValidationError::new(
                        "",
                        format!("{} (got {:?})", Self::rule(), s),
                    )),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e: $crate::error::ValidationError| {
                    <D::Error as ::serde::de::Error>::custom(e.rule)
                })
            }
        }

        impl $crate::wire::Wire for $name {
            fn decode(value: &::serde_json::Value) -> Result<Self, $crate::error::ValidationError> {
                match value.as_str() {
                    Some(s) => s.parse(),
                    None => Err($crate::error::ValidationError::new("", Self::rule())),
                }
            }
            fn encode(&self) -> ::serde_json::Value {
                ::serde_json::Value::String(self.as_str().to_owned())
            }
            fn schema() -> ::serde_json::Value {
                ::serde_json::json!({"type": "string", "enum": [$($wire),+]})
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_exactly_from_json_numbers() {
        let a = Amount::decode(&json!(12.1)).unwrap();
        assert_eq!(a.value(), Decimal::from_str("12.1").unwrap());
        let a = Amount::decode(&json!(0.3)).unwrap();
        assert_eq!(a.value(), Decimal::from_str("0.3").unwrap());
        let a = Amount::decode(&json!(999_999_999_999.999)).unwrap();
        assert_eq!(a.value(), Decimal::from_str("999999999999.999").unwrap());
        assert_eq!(a.encode(), json!(999_999_999_999.999));
        assert_eq!(Amount::decode(&json!(150)).unwrap().encode(), json!(150));
        assert_eq!(Amount::decode(&json!(150.0)).unwrap().encode(), json!(150));
        assert_eq!(
            Amount::decode(&json!(19.99)).unwrap().encode(),
            json!(19.99)
        );
    }

    #[test]
    fn amount_rules() {
        assert_eq!(
            Amount::decode(&json!(-1)).unwrap_err().rule,
            "must not be negative"
        );
        assert_eq!(
            PositiveAmount::decode(&json!(0)).unwrap_err().rule,
            "must be > 0"
        );
        assert!(Amount::decode(&json!(0)).is_ok());
        assert_eq!(Amount::decode(&json!(-0.0)).unwrap().encode(), json!(0));
        assert_eq!(
            Amount::decode(&json!("12")).unwrap_err().rule,
            "must be a number"
        );
        assert!(Amount::decode(&json!(1.2345))
            .unwrap_err()
            .rule
            .contains("3 decimal"));
        assert!(Amount::decode(&json!(1e12))
            .unwrap_err()
            .rule
            .contains("< 1000000000000"));
        assert!(Amount::decode(&json!(1e30)).is_err());
    }

    #[test]
    fn times_parse_rfc3339_and_write_utc() {
        let t = DateTime::<Utc>::decode(&json!("2026-03-01T15:00:00+01:00")).unwrap();
        assert_eq!(t.encode(), json!("2026-03-01T14:00:00Z"));
        let t = DateTime::<Utc>::decode(&json!("2026-03-01T14:00:00.250Z")).unwrap();
        assert_eq!(t.encode(), json!("2026-03-01T14:00:00.250Z"));
        let e = DateTime::<Utc>::decode(&json!("yesterday")).unwrap_err();
        assert!(e.rule.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn text_rules() {
        assert_eq!(
            ShortText::decode(&json!("  ")).unwrap_err().rule,
            "must not be blank"
        );
        assert!(Text::<3>::decode(&json!("abcd"))
            .unwrap_err()
            .rule
            .contains("at most 3"));
        assert_eq!(Text::<3>::decode(&json!("äöü")).unwrap().as_str(), "äöü");
        assert_eq!(
            ShortText::decode(&json!(1)).unwrap_err().rule,
            "must be a string"
        );
    }

    #[test]
    fn optional_fields() {
        assert_eq!(Option::<bool>::decode_field(None).unwrap(), None);
        assert!(Option::<bool>::decode_field(Some(&Value::Null)).is_err());
        assert_eq!(bool::decode_field(None).unwrap_err().rule, "is required");
        assert_eq!(Some(true).encode_field(), Some(json!(true)));
        assert_eq!(None::<bool>.encode_field(), None);
    }
}
