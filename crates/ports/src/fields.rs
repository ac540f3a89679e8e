//! Reading a handler's JSON input with errors that name the field and the rule, and
//! writing amounts back as exact JSON numbers.

use crate::error::HandlerError;
use chrono::{DateTime, Utc};
use marketplace_domain::wire::{decimal_from_json, decimal_to_json};
use marketplace_domain::{Currency, Money};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use std::str::FromStr;

/// A JSON object being read (a task payload, resolver arguments, an event detail).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    value: &'a Value,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    /// Reads `value`; errors name fields as they are.
    pub fn new(value: &'a Value) -> Self {
        Self { value, prefix: "" }
    }

    /// Reads `value`; errors name fields `prefix.field`.
    pub fn under(value: &'a Value, prefix: &'a str) -> Self {
        Self { value, prefix }
    }

    fn name(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }

    /// An error naming `field` and `rule`.
    pub fn error(&self, field: &str, rule: impl std::fmt::Display) -> HandlerError {
        HandlerError::validation(&self.name(field), rule)
    }

    /// The raw value of `field` (None when absent or null).
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        match self.value.get(field) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A required non-empty string.
    pub fn str(&self, field: &str) -> Result<&'a str, HandlerError> {
        match self.get(field) {
            None => Err(self.error(field, "is required")),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
            Some(Value::String(_)) => Err(self.error(field, "must not be empty")),
            Some(_) => Err(self.error(field, "must be a string")),
        }
    }

    /// An optional string (absent, null or empty → None).
    pub fn opt_str(&self, field: &str) -> Result<Option<&'a str>, HandlerError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.error(field, "must be a string")),
        }
    }

    /// A required value parsed with `FromStr` (typed ids, enums).
    pub fn parse<T: FromStr>(&self, field: &str) -> Result<T, HandlerError>
    where
        T::Err: std::fmt::Display,
    {
        let s = self.str(field)?;
        s.parse::<T>().map_err(|e| {
            let text = e.to_string();
            let rule = text.strip_prefix(": ").unwrap_or(&text).to_owned();
            self.error(field, rule)
        })
    }

    /// An optional value parsed with `FromStr`.
    pub fn opt_parse<T: FromStr>(&self, field: &str) -> Result<Option<T>, HandlerError>
    where
        T::Err: std::fmt::Display,
    {
        match self.opt_str(field)? {
            None => Ok(None),
            Some(_) => self.parse(field).map(Some),
        }
    }

    /// A required RFC 3339 time, in UTC.
    pub fn time(&self, field: &str) -> Result<DateTime<Utc>, HandlerError> {
        let s = self.str(field)?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| self.error(field, format!("must be an RFC 3339 date-time (got {s:?})")))
    }

    /// A required boolean.
    pub fn bool(&self, field: &str) -> Result<bool, HandlerError> {
        match self.get(field) {
            Some(Value::Bool(b)) => Ok(*b),
            None => Err(self.error(field, "is required")),
            Some(_) => Err(self.error(field, "must be a boolean")),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, HandlerError> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.bool(field).map(Some),
        }
    }

    /// A required exact decimal (JSON number, or a numeric string).
    pub fn decimal(&self, field: &str) -> Result<Decimal, HandlerError> {
        match self.get(field) {
            None => Err(self.error(field, "is required")),
            Some(Value::String(s)) => Decimal::from_str(s.trim())
                .map_err(|_| self.error(field, format!("must be a number (got {s:?})"))),
            Some(v) => decimal_from_json(v).map_err(|e| self.error(field, e.rule)),
        }
    }

    /// A required amount ≥ 0 in `currency`, rounded half-up to its minor unit.
    pub fn money(&self, field: &str, currency: Currency) -> Result<Money, HandlerError> {
        let d = self.decimal(field)?;
        if d.is_sign_negative() && !d.is_zero() {
            return Err(self.error(field, "must be >= 0"));
        }
        let rounded =
            d.round_dp_with_strategy(currency.exponent(), RoundingStrategy::MidpointAwayFromZero);
        Money::new(rounded, currency).map_err(|e| self.error(field, e))
    }

    /// An optional amount.
    pub fn opt_money(
        &self,
        field: &str,
        currency: Currency,
    ) -> Result<Option<Money>, HandlerError> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.money(field, currency).map(Some),
        }
    }

    /// A required currency code (any case).
    pub fn currency(&self, field: &str) -> Result<Currency, HandlerError> {
        let s = self.str(field)?;
        s.to_ascii_uppercase().parse::<Currency>().map_err(|_| {
            self.error(
                field,
                format!("must be a supported ISO 4217 code (got {s:?})"),
            )
        })
    }

    /// A nested object.
    pub fn object(&self, field: &str) -> Result<Fields<'a>, HandlerError> {
        match self.get(field) {
            Some(v @ Value::Object(_)) => Ok(Fields {
                value: v,
                prefix: "",
            }),
            None => Err(self.error(field, "is required")),
            Some(_) => Err(self.error(field, "must be an object")),
        }
    }

    /// The object read.
    pub fn value(&self) -> &'a Value {
        self.value
    }
}

/// An amount as an exact JSON number in major units.
pub fn money_json(m: &Money) -> Value {
    decimal_to_json(m.amount())
}

/// A time as RFC 3339 UTC with `Z`.
pub fn time_json(t: &DateTime<Utc>) -> Value {
    Value::String(marketplace_domain::wire::format_time(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field_and_rule() {
        let v = json!({"a": "", "n": "x", "t": "yesterday", "amt": -1, "cur": "XYZ", "b": 1});
        let f = Fields::new(&v);
        assert_eq!(
            f.str("missing").unwrap_err().message,
            "missing: is required"
        );
        assert_eq!(f.str("a").unwrap_err().message, "a: must not be empty");
        assert_eq!(
            f.time("t").unwrap_err().message,
            "t: must be an RFC 3339 date-time (got \"yesterday\")"
        );
        assert_eq!(
            f.money("amt", Currency::Usd).unwrap_err().message,
            "amt: must be >= 0"
        );
        assert!(f
            .currency("cur")
            .unwrap_err()
            .message
            .starts_with("cur: must be a supported"));
        assert_eq!(f.bool("b").unwrap_err().message, "b: must be a boolean");
        let nested = json!({"x": 1});
        assert_eq!(
            Fields::under(&nested, "input")
                .str("y")
                .unwrap_err()
                .message,
            "input.y: is required"
        );
    }

    #[test]
    fn amounts_are_exact_and_round_half_up() {
        let v = json!({"a": 120.5, "b": 0.125, "c": "10.005", "jpy": 100.5});
        let f = Fields::new(&v);
        assert_eq!(f.money("a", Currency::Usd).unwrap().to_minor(), 12_050);
        assert_eq!(f.money("b", Currency::Usd).unwrap().to_minor(), 13);
        assert_eq!(f.money("c", Currency::Usd).unwrap().to_minor(), 1_001);
        assert_eq!(f.money("jpy", Currency::Jpy).unwrap().to_minor(), 101);
        assert_eq!(
            money_json(&f.money("a", Currency::Usd).unwrap()),
            json!(120.5)
        );
    }
}
