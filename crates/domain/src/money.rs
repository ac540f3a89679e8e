//! Exact money: a decimal amount in an ISO 4217 currency, never a float.
//!
//! Rules (also in the crate README):
//! - an amount is `>= 0` (direction is said by the event: a refund is a positive refund
//!   amount), below 10^12 major units, and has at most as many decimals as its currency's
//!   minor unit allows (USD 2, JPY 0, KWD 3). Trailing zeros are not decimals that count:
//!   `10.50` and `10.5` are the same USD amount;
//! - amounts of different currencies never mix: adding, subtracting or comparing them is a
//!   [`MoneyError::CurrencyMismatch`];
//! - the platform fee is `amount × rate`, rounded half-up to the currency's minor unit;
//!   the provider's earnings are `amount − fee`, so the two always add up to the amount.

use crate::error::ValidationError;
use crate::wire::{decimal_from_json, decimal_to_json, Wire, MAX_AMOUNT_EXCLUSIVE};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};
use std::fmt;
use std::str::FromStr;

wire_enum! {
    /// The ISO 4217 currencies the marketplace accepts.
    Currency {
        /// US dollar (2 decimals).
        Usd = "USD",
        /// Euro (2).
        Eur = "EUR",
        /// Pound sterling (2).
        Gbp = "GBP",
        /// Japanese yen (0).
        Jpy = "JPY",
        /// Canadian dollar (2).
        Cad = "CAD",
        /// Australian dollar (2).
        Aud = "AUD",
        /// New Zealand dollar (2).
        Nzd = "NZD",
        /// Swiss franc (2).
        Chf = "CHF",
        /// Swedish krona (2).
        Sek = "SEK",
        /// Norwegian krone (2).
        Nok = "NOK",
        /// Danish krone (2).
        Dkk = "DKK",
        /// South Korean won (0).
        Krw = "KRW",
        /// Kuwaiti dinar (3).
        Kwd = "KWD",
        /// Bahraini dinar (3).
        Bhd = "BHD",
        /// Jordanian dinar (3).
        Jod = "JOD",
    }
}

impl Currency {
    /// The ISO 4217 alphabetic code (`"USD"`).
    pub fn code(self) -> &'static str {
        self.as_str()
    }

    /// The ISO 4217 minor-unit exponent: decimals of the currency (USD 2, JPY 0, KWD 3).
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Jpy | Currency::Krw => 0,
            Currency::Kwd | Currency::Bhd | Currency::Jod => 3,
            _ => 2,
        }
    }

    /// Lower-case code, the form Stripe uses (`"usd"`).
    pub fn stripe_code(self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

/// Why an amount of money was rejected. `Display` is the rule, in words; use
/// [`MoneyError::at`] to name the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not a decimal number.
    #[error("must be a decimal number (got {0:?})")]
    NotANumber(String),
    /// The currency is not one the marketplace accepts.
    #[error("{0}")]
    UnknownCurrency(String),
    /// More decimals than the currency's minor unit.
    #[error("must have at most {exponent} decimal places for {currency}")]
    TooManyDecimals {
        /// The currency.
        currency: Currency,
        /// Its minor-unit exponent.
        exponent: u32,
    },
    /// The amount is below zero.
    #[error("must not be negative")]
    Negative,
    /// The amount is 10^12 major units or more.
    #[error("must be < {MAX_AMOUNT_EXCLUSIVE}")]
    TooLarge,
    /// Two amounts of different currencies were combined.
    #[error("currency {found} does not match {expected}")]
    CurrencyMismatch {
        /// The currency required.
        expected: Currency,
        /// The currency given.
        found: Currency,
    },
    /// A fee rate outside `[0, 1]` or with more than 6 decimals.
    #[error("fee rate must be between 0 and 1 with at most 6 decimal places (got {0})")]
    InvalidFeeRate(String),
}

impl MoneyError {
    /// The error as a [`ValidationError`] of `field`.
    pub fn at(&self, field: &str) -> ValidationError {
        ValidationError::new(field, self.to_string())
    }
}

/// A non-negative amount of money in one currency, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Validates `amount` in `currency` (see the module rules). The amount is kept with
    /// exactly the currency's number of decimals (`10.5` USD is held as `10.50`).
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(MoneyError::Negative);
        }
        let exponent = currency.exponent();
        if amount.normalize().scale() > exponent {
            return Err(MoneyError::TooManyDecimals { currency, exponent });
        }
        if amount >= Decimal::from(MAX_AMOUNT_EXCLUSIVE) {
            return Err(MoneyError::TooLarge);
        }
        // `-0` is zero: keep no sign
        let mut amount = if amount.is_zero() {
            Decimal::ZERO
        } else {
            amount.normalize()
        };
        amount.rescale(exponent);
        Ok(Self { amount, currency })
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.exponent());
        Self { amount, currency }
    }

    /// Parses a decimal text (`"12.50"`) in `currency`.
    pub fn parse(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let trimmed = text.trim();
        let amount =
            Decimal::from_str(trimmed).map_err(|_| MoneyError::NotANumber(text.to_owned()))?;
        Self::new(amount, currency)
    }

    /// From integer minor units (cents for USD, yen for JPY), the form Stripe uses.
    pub fn from_minor(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative);
        }
        Self::new(Decimal::new(minor, currency.exponent()), currency)
    }

    /// The amount in integer minor units (`12.50` USD is `1250`). Always fits: amounts are
    /// below 10^15 minor units.
    pub fn to_minor(&self) -> i64 {
        let minor = self.amount * Decimal::from(10i64.pow(self.currency.exponent()));
        // Invariant of `new`: 0 <= minor < 10^15, an integer.
        i64::try_from(minor.trunc()).unwrap_or(i64::MAX)
    }

    /// The exact decimal amount, in major units.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount as an event field (`refundAmount`); always valid.
    pub fn to_amount(&self) -> crate::wire::Amount {
        crate::wire::Amount::from_money(self)
    }

    /// The amount as a strictly positive event field (`amount`); fails when zero.
    pub fn to_positive_amount(&self) -> Result<crate::wire::PositiveAmount, ValidationError> {
        crate::wire::PositiveAmount::new(self.amount)
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Fails with [`MoneyError::CurrencyMismatch`] unless `other` is in this currency.
    pub fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                expected: self.currency,
                found: other.currency,
            })
        }
    }

    /// `self + other`, in the same currency.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Money::new(self.amount + other.amount, self.currency)
    }

    /// `self − other`, in the same currency; fails when the result would be negative.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Money::new(self.amount - other.amount, self.currency)
    }

    /// Compares two amounts of the same currency.
    pub fn try_cmp(&self, other: &Money) -> Result<std::cmp::Ordering, MoneyError> {
        self.same_currency(other)?;
        Ok(self.amount.cmp(&other.amount))
    }

    /// Splits this amount into the platform fee and the provider's earnings.
    pub fn split_fee(&self, rate: FeeRate) -> FeeSplit {
        let exponent = self.currency.exponent();
        // amount < 10^12 with <= 3 decimals, rate <= 1 with <= 6 decimals: the product has
        // at most 21 significant digits, well inside Decimal's 28, so it is exact.
        let fee = (self.amount * rate.0)
            .round_dp_with_strategy(exponent, RoundingStrategy::MidpointAwayFromZero);
        let mut fee_amount = fee;
        fee_amount.rescale(exponent);
        let mut earnings = self.amount - fee_amount;
        earnings.rescale(exponent);
        FeeSplit {
            platform_fee: Money {
                amount: fee_amount,
                currency: self.currency,
            },
            provider_earnings: Money {
                amount: earnings,
                currency: self.currency,
            },
        }
    }
}

impl fmt::Display for Money {
    /// `12.50 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    /// Parses `"12.50 USD"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (amount, code) = s
            .trim()
            .rsplit_once(' ')
            .ok_or_else(|| MoneyError::NotANumber(s.to_owned()))?;
        let currency =
            Currency::from_str(code.trim()).map_err(|e| MoneyError::UnknownCurrency(e.rule))?;
        Money::parse(amount, currency)
    }
}

/// Money is `{"amount": 12.5, "currency": "USD"}` in JSON (entities, workflow inputs).
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json!({"amount": decimal_to_json(self.amount), "currency": self.currency.as_str()})
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Money::decode(&v).map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}

impl Wire for Money {
    fn decode(value: &Value) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new("", "must be an object"))?;
        if let Some(k) = obj.keys().find(|k| *k != "amount" && *k != "currency") {
            return Err(ValidationError::new(k.clone(), "is not a field of money"));
        }
        let currency =
            Currency::decode_field(obj.get("currency")).map_err(|e| e.under("currency"))?;
        let amount = match obj.get("amount") {
            None => return Err(ValidationError::new("amount", "is required")),
            Some(v) => decimal_from_json(v).map_err(|e| e.under("amount"))?,
        };
        Money::new(amount, currency).map_err(|e| e.at("amount"))
    }
    fn encode(&self) -> Value {
        json!({"amount": decimal_to_json(self.amount), "currency": self.currency.as_str()})
    }
    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {"amount": crate::wire::Amount::schema(), "currency": Currency::schema()},
            "required": ["amount", "currency"],
            "additionalProperties": false
        })
    }
}

/// A platform fee rate in `[0, 1]` with at most 6 decimals (`0.15` is 15 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeeRate(Decimal);

impl FeeRate {
    /// Validates `rate`.
    pub fn new(rate: Decimal) -> Result<Self, MoneyError> {
        if rate.is_sign_negative() && !rate.is_zero()
            || rate > Decimal::ONE
            || rate.normalize().scale() > 6
        {
            return Err(MoneyError::InvalidFeeRate(rate.to_string()));
        }
        Ok(Self(rate.normalize()))
    }

    /// A rate from basis points (`1500` is 15 %); at most 10000.
    pub fn from_basis_points(bps: u32) -> Result<Self, MoneyError> {
        Self::new(Decimal::new(i64::from(bps), 4))
    }

    /// The rate as a decimal fraction.
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl FromStr for FeeRate {
    type Err = MoneyError;
    /// Parses `"0.15"` or `"15%"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let rate = if let Some(pct) = t.strip_suffix('%') {
            Decimal::from_str(pct.trim()).map(|d| d / Decimal::from(100))
        } else {
            Decimal::from_str(t)
        }
        .map_err(|_| MoneyError::InvalidFeeRate(s.to_owned()))?;
        Self::new(rate)
    }
}

impl fmt::Display for FeeRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The platform fee and the provider's earnings of one payment; they add up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeSplit {
    /// `amount × rate`, rounded half-up to the minor unit.
    pub platform_fee: Money,
    /// `amount − platform_fee`.
    pub provider_earnings: Money,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd(s: &str) -> Money {
        Money::parse(s, Currency::Usd).unwrap()
    }

    fn rate(s: &str) -> FeeRate {
        s.parse().unwrap()
    }

    #[test]
    fn exponents() {
        assert_eq!(Currency::Usd.exponent(), 2);
        assert_eq!(Currency::Jpy.exponent(), 0);
        assert_eq!(Currency::Kwd.exponent(), 3);
        assert_eq!(Currency::Bhd.exponent(), 3);
        assert_eq!(Currency::Chf.stripe_code(), "chf");
    }

    #[test]
    fn parsing_rejects_extra_decimals_and_negatives() {
        assert_eq!(usd("10.5").to_string(), "10.50 USD");
        assert_eq!(usd("10.500").to_string(), "10.50 USD");
        assert_eq!(
            Money::parse("10.505", Currency::Usd)
                .unwrap_err()
                .to_string(),
            "must have at most 2 decimal places for USD"
        );
        assert_eq!(
            Money::parse("100.5", Currency::Jpy).unwrap_err(),
            MoneyError::TooManyDecimals {
                currency: Currency::Jpy,
                exponent: 0
            }
        );
        assert!(Money::parse("1.005", Currency::Kwd).is_ok());
        assert!(Money::parse("1.0005", Currency::Kwd).is_err());
        assert_eq!(
            Money::parse("-1", Currency::Usd).unwrap_err(),
            MoneyError::Negative
        );
        assert!(matches!(
            Money::parse("ten", Currency::Usd),
            Err(MoneyError::NotANumber(_))
        ));
        assert_eq!(
            Money::parse("1000000000000", Currency::Usd).unwrap_err(),
            MoneyError::TooLarge
        );
        assert_eq!(
            "12.5 EUR".parse::<Money>().unwrap().to_string(),
            "12.50 EUR"
        );
        assert!(matches!(
            "12.5 XXX".parse::<Money>(),
            Err(MoneyError::UnknownCurrency(_))
        ));
    }

    #[test]
    fn minor_units_both_ways() {
        assert_eq!(usd("12.34").to_minor(), 1234);
        assert_eq!(
            Money::from_minor(1234, Currency::Usd).unwrap(),
            usd("12.34")
        );
        assert_eq!(
            Money::from_minor(500, Currency::Jpy).unwrap().to_string(),
            "500 JPY"
        );
        assert_eq!(
            Money::from_minor(1005, Currency::Kwd).unwrap().to_string(),
            "1.005 KWD"
        );
        assert_eq!(
            Money::from_minor(-1, Currency::Usd).unwrap_err(),
            MoneyError::Negative
        );
        assert_eq!(
            Money::parse("999999999999.999", Currency::Kwd)
                .unwrap()
                .to_minor(),
            999_999_999_999_999
        );
    }

    #[test]
    fn arithmetic_keeps_currencies_apart() {
        let eur = Money::parse("1", Currency::Eur).unwrap();
        assert_eq!(
            usd("1").checked_add(&eur).unwrap_err().to_string(),
            "currency EUR does not match USD"
        );
        assert_eq!(usd("1.10").checked_add(&usd("2.20")).unwrap(), usd("3.30"));
        assert_eq!(
            usd("1").checked_sub(&usd("2")).unwrap_err(),
            MoneyError::Negative
        );
        assert!(usd("1").try_cmp(&eur).is_err());
        assert_eq!(
            usd("2").try_cmp(&usd("1")).unwrap(),
            std::cmp::Ordering::Greater
        );
    }

    #[test]
    fn fee_rounds_half_up_to_the_minor_unit() {
        // 10.05 × 0.10 = 1.005 -> 1.01 (half-up), earnings 9.04
        let s = usd("10.05").split_fee(rate("0.10"));
        assert_eq!(s.platform_fee, usd("1.01"));
        assert_eq!(s.provider_earnings, usd("9.04"));
        // 10.04 × 0.10 = 1.004 -> 1.00
        assert_eq!(
            usd("10.04").split_fee(rate("0.10")).platform_fee,
            usd("1.00")
        );
        // JPY has no minor unit: 1005 × 0.15 = 150.75 -> 151
        let s = Money::parse("1005", Currency::Jpy)
            .unwrap()
            .split_fee(rate("15%"));
        assert_eq!(s.platform_fee.to_string(), "151 JPY");
        assert_eq!(s.provider_earnings.to_string(), "854 JPY");
        // KWD keeps three decimals: 1.001 × 0.5 = 0.5005 -> 0.501
        let s = Money::parse("1.001", Currency::Kwd)
            .unwrap()
            .split_fee(rate("0.5"));
        assert_eq!(s.platform_fee.to_string(), "0.501 KWD");
        assert_eq!(s.provider_earnings.to_string(), "0.500 KWD");
        // 0 % and 100 %
        assert_eq!(
            usd("150").split_fee(rate("0")).provider_earnings,
            usd("150")
        );
        assert_eq!(usd("150").split_fee(rate("1")).platform_fee, usd("150"));
    }

    #[test]
    fn fee_rates() {
        assert_eq!(FeeRate::from_basis_points(1500).unwrap(), rate("0.15"));
        assert!(FeeRate::from_basis_points(10_001).is_err());
        assert!("1.5".parse::<FeeRate>().is_err());
        assert!("-0.1".parse::<FeeRate>().is_err());
        assert!("0.0000001".parse::<FeeRate>().is_err());
        assert!("abc".parse::<FeeRate>().is_err());
    }

    #[test]
    fn money_json() {
        let m = usd("12.5");
        let v = serde_json::to_value(m).unwrap();
        assert_eq!(v, json!({"amount": 12.5, "currency": "USD"}));
        assert_eq!(serde_json::from_value::<Money>(v).unwrap(), m);
        let e =
            serde_json::from_value::<Money>(json!({"amount": 1.5, "currency": "JPY"})).unwrap_err();
        assert!(
            e.to_string()
                .contains("amount: must have at most 0 decimal places for JPY"),
            "{e}"
        );
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn fee_and_earnings_add_up(minor in 0i64..1_000_000_000_000_000, ppm in 0u32..=1_000_000, cur in any_currency()) {
            let max_minor = MAX_AMOUNT_EXCLUSIVE as i128 * 10i128.pow(cur.exponent());
            let minor = (i128::from(minor) % max_minor) as i64;
            let amount = Money::from_minor(minor, cur).unwrap();
            let rate = FeeRate::new(Decimal::new(i64::from(ppm), 6)).unwrap();
            let s = amount.split_fee(rate);
            // they add up, exactly
            prop_assert_eq!(s.platform_fee.checked_add(&s.provider_earnings).unwrap(), amount);
            prop_assert_eq!(s.platform_fee.to_minor() + s.provider_earnings.to_minor(), minor);
            // fee within [0, amount]
            prop_assert!(s.platform_fee.to_minor() >= 0 && s.platform_fee.to_minor() <= minor);
            // half-up, checked with integers: fee = floor((2·minor·ppm + 10^6) / (2·10^6))
            let expected = (2 * i128::from(minor) * i128::from(ppm) + 1_000_000) / 2_000_000;
            prop_assert_eq!(i128::from(s.platform_fee.to_minor()), expected);
        }

        #[test]
        fn minor_units_round_trip(minor in 0i64..1_000_000_000_000_000, cur in any_currency()) {
            let max_minor = MAX_AMOUNT_EXCLUSIVE as i128 * 10i128.pow(cur.exponent());
            let minor = (i128::from(minor) % max_minor) as i64;
            let m = Money::from_minor(minor, cur).unwrap();
            prop_assert_eq!(m.to_minor(), minor);
            prop_assert_eq!(Money::parse(&m.amount().to_string(), cur).unwrap(), m);
            // and through JSON, via the double every JSON consumer uses
            let back: Money = serde_json::from_value(serde_json::to_value(m).unwrap()).unwrap();
            prop_assert_eq!(back, m);
        }
    }
}
