//! Number formatting: `$formatNumber`, `$formatBase`, `$formatInteger`, `$parseInteger`.

use crate::error::Error;
use crate::value::Value;

/// `$formatBase`: an integer in another radix (2..=36), lowercase digits.
pub(crate) fn to_radix(n: f64, radix: u32) -> String {
    let neg = n < 0.0;
    let mut v = n.abs();
    if v < 1.0 {
        return "0".into();
    }
    let mut digits = Vec::new();
    while v >= 1.0 {
        let d = (v % radix as f64) as u32;
        digits.push(std::char::from_digit(d, radix).unwrap_or('0'));
        v = (v / radix as f64).floor();
    }
    if neg {
        digits.push('-');
    }
    digits.iter().rev().collect()
}

pub(crate) fn format_number(_n: f64, _picture: &str, _options: &Value) -> Result<String, Error> {
    Err(Error::value("D3130", None, "formatNumber"))
}

pub(crate) fn format_integer(_n: f64, _picture: &str) -> Result<String, Error> {
    Err(Error::value("D3130", None, "formatInteger"))
}

pub(crate) fn parse_integer(_s: &str, _picture: &str) -> Result<Option<f64>, Error> {
    Err(Error::value("D3130", None, "parseInteger"))
}
