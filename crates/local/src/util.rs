//! Small shared pieces: random ids, JSON log lines, time formatting.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU8, Ordering};

/// A random `u64` from the operating system's generator (falls back to a time-seeded mix
/// if the generator is unavailable, which only affects jitter and ids' randomness).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        return t.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (std::process::id() as u64);
    }
    u64::from_le_bytes(b)
}

thread_local! {
    static FAST: std::cell::Cell<u64> = std::cell::Cell::new(random_u64() | 1);
}

/// A fast per-thread generator (SplitMix64) seeded from the operating system: for ids,
/// where a system call per id would dominate.
pub fn fast_u64() -> u64 {
    FAST.with(|s| {
        let mut z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A random UUID (version 4), as EventBridge uses for event ids.
pub fn uuid_v4() -> String {
    let a = fast_u64();
    let b = fast_u64();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut h = String::with_capacity(32);
    for x in bytes {
        h.push(HEX[(x >> 4) as usize] as char);
        h.push(HEX[(x & 15) as usize] as char);
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut out = String::with_capacity(n * 2);
    while out.len() < n * 2 {
        for byte in random_u64().to_le_bytes() {
            if out.len() < n * 2 {
                out.push_str(&format!("{byte:02x}"));
            }
        }
    }
    out
}

/// A JSON value's compact text, as `Value::to_string` gives it, written straight into a
/// byte buffer rather than through the formatter (which costs a call per small piece).
pub fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// RFC 3339 with seconds and `Z`, as EventBridge writes `time`.
pub fn rfc3339_secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with milliseconds and `Z`.
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Millisecond timestamp to a time.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Errors.
    Error = 0,
    /// Warnings.
    Warn = 1,
    /// Normal operation.
    Info = 2,
    /// Per-event detail.
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the log level from a name (`error`, `warn`, `info`, `debug`); unknown names keep info.
pub fn set_log_level(name: &str) {
    let l = match name.to_ascii_lowercase().as_str() {
        "error" => Level::Error,
        "warn" | "warning" => Level::Warn,
        "debug" | "trace" => Level::Debug,
        _ => Level::Info,
    };
    LEVEL.store(l as u8, Ordering::Relaxed);
}

/// Is `level` logged?
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one JSON log line to stderr: timestamp, level, message, correlationId and fields.
pub fn log(level: Level, message: &str, correlation_id: Option<&str>, fields: &[(&str, Value)]) {
    if !enabled(level) {
        return;
    }
    let mut m = Map::new();
    m.insert("timestamp".into(), Value::String(rfc3339_ms(Utc::now())));
    let lv = match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
    };
    m.insert("level".into(), Value::String(lv.into()));
    m.insert("message".into(), Value::String(message.into()));
    m.insert(
        "correlationId".into(),
        correlation_id.map_or(Value::Null, |c| Value::String(c.into())),
    );
    for (k, v) in fields {
        m.insert((*k).into(), v.clone());
    }
    // eprintln! (not a raw stderr handle) so that test harnesses capture it.
    eprintln!("{}", Value::Object(m));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_the_v4_shape_and_differ() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(random_hex(16).len(), 32);
    }
}
