//! The runtime's clock: the machine's wall clock, or a virtual clock that moves only when
//! told (`marketplace clock advance 24h`), persisted in the data directory so a restart
//! carries on at the same virtual time.

use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const KV_VIRTUAL: &str = "virtual_clock_micros";

/// The clock of a running server. Implements [`asl::Clock`] for the workflow host: a wait
/// that is not yet due pauses the execution (it resumes when its timer fires).
#[derive(Debug)]
pub enum RuntimeClock {
    /// The machine's wall clock.
    Real,
    /// A virtual clock (microseconds since the epoch), saved on every advance.
    Virtual {
        /// Current time.
        micros: AtomicI64,
        /// Where it is saved.
        store: Arc<Store>,
    },
}

impl RuntimeClock {
    /// A virtual clock restored from the store, or started at `start` on a new data directory.
    pub fn virtual_from(store: Arc<Store>, start: DateTime<Utc>) -> Result<Self, StoreError> {
        let v = store.kv_get_or_init(KV_VIRTUAL, || start.timestamp_micros().to_string())?;
        let micros = v.parse::<i64>().map_err(|e| StoreError::Corrupt {
            table: "kv",
            message: format!("{KV_VIRTUAL}: {e}"),
        })?;
        Ok(RuntimeClock::Virtual {
            micros: AtomicI64::new(micros),
            store,
        })
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            RuntimeClock::Real => Utc::now(),
            RuntimeClock::Virtual { micros, .. } => {
                DateTime::from_timestamp_micros(micros.load(Ordering::SeqCst)).unwrap_or_default()
            }
        }
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Is this the virtual clock?
    pub fn is_virtual(&self) -> bool {
        matches!(self, RuntimeClock::Virtual { .. })
    }

    /// Advances the virtual clock by `seconds` and saves it; refused on the real clock.
    pub fn advance(&self, seconds: u64) -> Result<DateTime<Utc>, ClockError> {
        match self {
            RuntimeClock::Real => Err(ClockError::NotVirtual),
            RuntimeClock::Virtual { micros, store } => {
                let delta = i64::try_from(seconds)
                    .ok()
                    .and_then(|s| s.checked_mul(1_000_000))
                    .ok_or(ClockError::TooFar)?;
                let new = micros.fetch_add(delta, Ordering::SeqCst) + delta;
                store
                    .kv_set(KV_VIRTUAL, &new.to_string())
                    .map_err(ClockError::Store)?;
                Ok(DateTime::from_timestamp_micros(new).unwrap_or_default())
            }
        }
    }
}

/// Errors of [`RuntimeClock::advance`].
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// The server runs on the wall clock.
    #[error("the server runs on the real clock; start it with --clock virtual to advance time")]
    NotVirtual,
    /// The amount does not fit.
    #[error("the amount of time is too large")]
    TooFar,
    /// Saving failed.
    #[error(transparent)]
    Store(StoreError),
}

impl asl::Clock for RuntimeClock {
    fn now(&self) -> DateTime<Utc> {
        RuntimeClock::now(self)
    }
    fn wait_until(&self, t: DateTime<Utc>) -> bool {
        t <= RuntimeClock::now(self)
    }
}

/// Parses a duration such as `24h`, `90m`, `30s`, `7d`, `1h30m` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("duration is empty (expected e.g. 24h, 30m, 45s, 7d)".into());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "duration '{text}': unknown unit '{c}' (use s, m, h or d)"
                ))
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("duration '{text}': a number must precede '{c}'"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration '{text}' is too large"))?;
        num.clear();
    }
    if !num.is_empty() {
        let n: u64 = num
            .parse()
            .map_err(|_| format!("duration '{text}' is not valid"))?;
        total = total
            .checked_add(n)
            .ok_or_else(|| format!("duration '{text}' is too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("1h30m"), Ok(5_400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("3w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn the_virtual_clock_is_persisted() {
        let mut d = std::env::temp_dir();
        d.push(format!("mkt-clock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        {
            let store = Arc::new(Store::open_dir(&d).expect("store"));
            let c = RuntimeClock::virtual_from(store, start).expect("clock");
            c.advance(3600).expect("advance");
        }
        let store = Arc::new(Store::open_dir(&d).expect("store"));
        let c = RuntimeClock::virtual_from(store, Utc::now()).expect("clock");
        assert_eq!(c.now().timestamp(), 1_700_003_600);
        assert!(matches!(
            RuntimeClock::Real.advance(1),
            Err(ClockError::NotVirtual)
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
}
