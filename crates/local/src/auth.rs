//! AppSync-style authorization: the API key (`x-api-key`) and bearer JWTs (HS256, signed
//! with the data directory's local key) carrying `sub` and `cognito:groups`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The issuer written into local tokens.
pub const ISSUER: &str = "marketplace-local";

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// A trusted client with the API key (AppSync's identity is `null`).
    ApiKey,
    /// A signed-in user.
    User {
        /// `sub`.
        sub: String,
        /// `cognito:groups`.
        groups: Vec<String>,
        /// All claims.
        claims: Value,
    },
}

impl Caller {
    /// Is the caller an administrator (`admin` group)?
    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::User { groups, .. } if groups.iter().any(|g| g == "admin"))
    }

    /// The AppSync `identity` object (null for the API key; Cognito user pools shape otherwise).
    pub fn identity(&self, source_ip: &str) -> Value {
        match self {
            Caller::ApiKey => Value::Null,
            Caller::User {
                sub,
                groups,
                claims,
            } => json!({
                "sub": sub,
                "username": claims.get("cognito:username").cloned().unwrap_or_else(|| json!(sub)),
                "groups": groups,
                "claims": claims,
                "issuer": claims.get("iss").cloned().unwrap_or(Value::Null),
                "sourceIp": [source_ip],
                "defaultAuthStrategy": "ALLOW",
            }),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials.
    #[error("missing credentials: send the x-api-key header or Authorization: Bearer <token>")]
    Missing,
    /// Wrong API key.
    #[error("the API key is not valid")]
    BadApiKey,
    /// A token that is malformed, badly signed or expired.
    #[error("the token is not valid: {0}")]
    BadToken(String),
}

/// Signs a token for `sub` with `groups`, valid for `ttl_seconds` from `now` (Unix seconds).
pub fn mint(key: &[u8], sub: &str, groups: &[String], now: i64, ttl_seconds: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = json!({
        "sub": sub,
        "cognito:groups": groups,
        "cognito:username": sub,
        "iss": ISSUER,
        "token_use": "id",
        "iat": now,
        "exp": now + ttl_seconds,
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let sig = sign(key, signing_input.as_bytes());
    format!("{signing_input}.{sig}")
}

fn sign(key: &[u8], data: &[u8]) -> String {
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(data);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Verifies a token and returns the caller; `now` is Unix seconds.
pub fn verify(key: &[u8], token: &str, now: i64) -> Result<Caller, AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::BadToken(
            "expected three dot-separated parts".into(),
        ));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| AuthError::BadToken("header is not base64url JSON".into()))?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(AuthError::BadToken("alg must be HS256".into()));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AuthError::BadToken("signature is not base64url".into()))?;
    let mut mac = HmacSha256::new_from_slice(key)
        .map_err(|_| AuthError::BadToken("no signing key".into()))?;
    mac.update(format!("{h}.{p}").as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| AuthError::BadToken("bad signature".into()))?;
    let claims: Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| AuthError::BadToken("payload is not base64url JSON".into()))?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| AuthError::BadToken("exp is missing".into()))?;
    if exp <= now {
        return Err(AuthError::BadToken("expired".into()));
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AuthError::BadToken("sub is missing".into()))?
        .to_string();
    let groups = claims
        .get("cognito:groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Caller::User {
        sub,
        groups,
        claims,
    })
}

/// Compares two secrets in constant time.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authenticates a request from its `x-api-key` and `Authorization` headers.
pub fn authenticate(
    api_key: &str,
    signing_key: &[u8],
    x_api_key: Option<&str>,
    authorization: Option<&str>,
    now: i64,
) -> Result<Caller, AuthError> {
    if let Some(a) = authorization {
        let token = a.strip_prefix("Bearer ").unwrap_or(a).trim();
        return verify(signing_key, token, now);
    }
    match x_api_key {
        Some(k) if secrets_equal(k, api_key) => Ok(Caller::ApiKey),
        Some(_) => Err(AuthError::BadApiKey),
        None => Err(AuthError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_tampering_is_detected() {
        let key = b"k3y";
        let t = mint(key, "user-1", &["admin".to_string()], 1000, 3600);
        let c = verify(key, &t, 1001).expect("valid");
        assert!(c.is_admin());
        assert_eq!(c.identity("127.0.0.1")["sub"], "user-1");
        assert!(matches!(verify(key, &t, 5000), Err(AuthError::BadToken(m)) if m == "expired"));
        assert!(verify(b"other", &t, 1001).is_err());
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged =
            URL_SAFE_NO_PAD.encode(r#"{"sub":"x","exp":99999,"cognito:groups":["admin"]}"#);
        parts[1] = &forged;
        assert!(verify(key, &parts.join("."), 1001).is_err());
        assert!(verify(key, "a.b", 1).is_err());
    }

    #[test]
    fn api_key_and_bearer_headers() {
        assert_eq!(
            authenticate("k", b"s", Some("k"), None, 0),
            Ok(Caller::ApiKey)
        );
        assert_eq!(
            authenticate("k", b"s", Some("x"), None, 0),
            Err(AuthError::BadApiKey)
        );
        assert_eq!(
            authenticate("k", b"s", None, None, 0),
            Err(AuthError::Missing)
        );
        let t = mint(b"s", "u", &[], 0, 60);
        let c = authenticate("k", b"s", None, Some(&format!("Bearer {t}")), 1).expect("user");
        assert!(!c.is_admin());
    }
}
