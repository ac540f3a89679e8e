//! Date/time: ISO 8601 parsing and XPath-style picture strings.

use crate::error::Error;

pub(crate) fn parse_iso(_s: &str) -> Option<i64> {
    None
}

pub(crate) fn parse_datetime(_s: &str, _picture: &str) -> Result<Option<i64>, Error> {
    Ok(None)
}

pub(crate) fn format_datetime(
    _ms: i64,
    _picture: Option<&str>,
    _tz: Option<&str>,
) -> Result<String, Error> {
    Ok(String::new())
}
