//! `Stripe-Signature` webhook signatures: `t=<unix>,v1=<hex hmac>[,v1=...][,v0=...]`, where
//! each `v1` is HMAC-SHA256 over `"{t}.{raw_body}"` with an endpoint secret. During secret
//! rotation Stripe sends one `v1` per active secret: a payload is authentic when ANY `v1`
//! matches ANY of our secrets, and fresh when `t` is within the tolerance of now.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Stripe's default tolerance: 300 seconds.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("Stripe-Signature header is missing")]
    Missing,
    /// The header has no valid `t=`.
    #[error("Stripe-Signature header has no valid timestamp (t=)")]
    NoTimestamp,
    /// The header has no `v1=` signature.
    #[error("Stripe-Signature header has no v1 signature")]
    NoSignature,
    /// The timestamp is older (or further in the future) than the tolerance.
    #[error("timestamp {timestamp} is {age_seconds} s away from now; tolerance is {tolerance_seconds} s")]
    OutsideTolerance {
        /// `t`.
        timestamp: i64,
        /// |now − t|.
        age_seconds: i64,
        /// The tolerance.
        tolerance_seconds: i64,
    },
    /// No `v1` matches any secret.
    #[error("no v1 signature matches the payload")]
    Mismatch,
    /// No secret is configured.
    #[error("no webhook secret is configured")]
    NoSecret,
}

fn mac(secret: &str, timestamp: i64, payload: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: new_from_slice cannot fail for it
    let mut m = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    m
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC accepts keys of every length")
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The `v1` signature of `payload` at `timestamp` with `secret` (hex).
pub fn compute_signature(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    hex(&mac(secret, timestamp, payload).finalize().into_bytes())
}

/// A `Stripe-Signature` header value signing `payload` with every secret in `secrets`.
pub fn sign_header(secrets: &[&str], timestamp: i64, payload: &[u8]) -> String {
    let mut h = format!("t={timestamp}");
    for s in secrets {
        h.push_str(",v1=");
        h.push_str(&compute_signature(s, timestamp, payload));
    }
    h
}

/// Verifies `header` for the raw `payload` against every secret, with `tolerance_seconds`
/// around `now`. Returns the timestamp on success.
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[String],
    now: DateTime<Utc>,
    tolerance_seconds: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => timestamp = v.parse::<i64>().ok(),
            "v1" => {
                if let Some(bytes) = unhex(v) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::NoTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    let matched = secrets.iter().any(|secret| {
        signatures
            .iter()
            .any(|sig| mac(secret, timestamp, payload).verify_slice(sig).is_ok())
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let age = (now.timestamp() - timestamp).abs();
    if tolerance_seconds > 0 && age > tolerance_seconds {
        return Err(SignatureError::OutsideTolerance {
            timestamp,
            age_seconds: age,
            tolerance_seconds,
        });
    }
    Ok(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_770_000_000, 0).unwrap()
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256(key="whsec_test", "1770000000.{BODY}") computed with Python's hmac
        assert_eq!(
            compute_signature("whsec_test", 1_770_000_000, BODY),
            "b75912453c5514e6a1755b784dc219b4418503a3c67e49975ee8c8b2104d3d2e"
        );
    }

    #[test]
    fn valid_expired_rotated_tampered() {
        let secrets = vec!["whsec_new".to_owned()];
        let t = now().timestamp();
        let h = sign_header(&["whsec_new"], t, BODY);
        assert_eq!(verify(Some(&h), BODY, &secrets, now(), 300), Ok(t));
        // 301 s later: expired
        let later = now() + chrono::Duration::seconds(301);
        assert!(matches!(
            verify(Some(&h), BODY, &secrets, later, 300),
            Err(SignatureError::OutsideTolerance {
                age_seconds: 301,
                ..
            })
        ));
        // rotation: the header carries the old secret's v1 first, then the new one
        let rotated = sign_header(&["whsec_old", "whsec_new"], t, BODY);
        assert_eq!(verify(Some(&rotated), BODY, &secrets, now(), 300), Ok(t));
        // and an endpoint that still has only the old secret accepts it too
        assert_eq!(
            verify(Some(&rotated), BODY, &["whsec_old".to_owned()], now(), 300),
            Ok(t)
        );
        // tampered body
        let tampered = br#"{"id":"evt_1","type":"payment_intent.payment_failed"}"#;
        assert_eq!(
            verify(Some(&h), tampered, &secrets, now(), 300),
            Err(SignatureError::Mismatch)
        );
        // wrong secret
        assert_eq!(
            verify(Some(&h), BODY, &["whsec_other".to_owned()], now(), 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers() {
        let s = vec!["k".to_owned()];
        assert_eq!(
            verify(None, BODY, &s, now(), 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("v1=abcd"), BODY, &s, now(), 300),
            Err(SignatureError::NoTimestamp)
        );
        assert_eq!(
            verify(Some("t=1770000000,v0=abcd"), BODY, &s, now(), 300),
            Err(SignatureError::NoSignature)
        );
        assert_eq!(
            verify(Some("t=1770000000,v1=zz"), BODY, &s, now(), 300),
            Err(SignatureError::NoSignature)
        );
        assert_eq!(
            verify(Some("t=1770000000,v1=00"), BODY, &[], now(), 300),
            Err(SignatureError::NoSecret)
        );
    }
}
