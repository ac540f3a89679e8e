//! AppSync-style authorization: the API key (`x-api-key`) and bearer JWTs (HS256, signed
//! with the data directory's local key) carrying `sub` and `cognito:groups`; and the
//! separate credential of the admin API ([`authenticate_admin`]): the admin key
//! (`x-admin-key`) or a token of the [`ADMIN_GROUP`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The issuer written into local tokens.
pub const ISSUER: &str = "marketplace-local";

/// The Cognito group of administrators (the schema's `cognito_groups: ["admin"]`).
pub const ADMIN_GROUP: &str = "admin";

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
        matches!(self, Caller::User { groups, .. } if groups.iter().any(|g| g == ADMIN_GROUP))
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

/// The secrets the admin API checks against.
#[derive(Debug, Clone, Copy)]
pub struct AdminKeys<'a> {
    /// The admin key.
    pub admin_key: &'a str,
    /// The GraphQL API key (recognised, to say why it is refused).
    pub api_key: &'a str,
    /// The token signing key.
    pub signing_key: &'a [u8],
}

/// The credential headers of an admin request.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminHeaders<'a> {
    /// `x-admin-key`.
    pub x_admin_key: Option<&'a str>,
    /// `Authorization`.
    pub authorization: Option<&'a str>,
    /// `x-api-key`.
    pub x_api_key: Option<&'a str>,
}

/// Who called the admin API.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminCaller {
    /// The holder of the admin key (the operator of this server).
    AdminKey,
    /// A signed-in member of the admin group.
    User {
        /// `sub`.
        sub: String,
    },
}

/// Why the admin API refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminAuthError {
    /// No credentials at all (401).
    #[error("missing credentials: the admin API needs the x-admin-key header (the admin key printed by `marketplace serve` and kept in DATA_DIR/admin.key) or Authorization: Bearer <token of the '{ADMIN_GROUP}' group>")]
    Missing,
    /// A wrong admin key (401).
    #[error("the admin key is not valid")]
    BadAdminKey,
    /// A token that is malformed, badly signed or expired (401).
    #[error("the token is not valid: {0}")]
    BadToken(String),
    /// A valid token without the admin group (403).
    #[error("user '{0}' is not in the '{ADMIN_GROUP}' group: the admin API is for administrators")]
    NotAdmin(String),
    /// The GraphQL API key (403): it opens the GraphQL API only.
    #[error("the API key opens the GraphQL API only: the admin API needs the x-admin-key header or a token of the '{ADMIN_GROUP}' group")]
    ApiKeyNotAdmin,
    /// An API key that is not valid either (401).
    #[error("the API key is not valid (and the admin API needs the admin key or an admin token)")]
    BadApiKey,
}

impl AdminAuthError {
    /// Authenticated, but not allowed (403) rather than not authenticated (401).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            AdminAuthError::NotAdmin(_) | AdminAuthError::ApiKeyNotAdmin
        )
    }
}

/// Authenticates a request to the admin API. `x-admin-key` wins when present; otherwise a
/// bearer token must carry the admin group; the API key alone is refused with 403.
pub fn authenticate_admin(
    keys: &AdminKeys<'_>,
    headers: &AdminHeaders<'_>,
    now: i64,
) -> Result<AdminCaller, AdminAuthError> {
    if let Some(k) = headers.x_admin_key {
        return if !keys.admin_key.is_empty() && secrets_equal(k.trim(), keys.admin_key) {
            Ok(AdminCaller::AdminKey)
        } else {
            Err(AdminAuthError::BadAdminKey)
        };
    }
    if let Some(a) = headers.authorization {
        let token = a.strip_prefix("Bearer ").unwrap_or(a).trim();
        return match verify(keys.signing_key, token, now) {
            Ok(c) if c.is_admin() => match c {
                Caller::User { sub, .. } => Ok(AdminCaller::User { sub }),
                Caller::ApiKey => Err(AdminAuthError::Missing),
            },
            Ok(Caller::User { sub, .. }) => Err(AdminAuthError::NotAdmin(sub)),
            Ok(Caller::ApiKey) => Err(AdminAuthError::Missing),
            Err(AuthError::BadToken(m)) => Err(AdminAuthError::BadToken(m)),
            Err(_) => Err(AdminAuthError::Missing),
        };
    }
    match headers.x_api_key {
        Some(k) if secrets_equal(k, keys.api_key) => Err(AdminAuthError::ApiKeyNotAdmin),
        Some(_) => Err(AdminAuthError::BadApiKey),
        None => Err(AdminAuthError::Missing),
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

    #[test]
    fn the_admin_api_takes_the_admin_key_or_an_admin_token_only() {
        let keys = AdminKeys {
            admin_key: "adm",
            api_key: "api",
            signing_key: b"s",
        };
        let check = |h: AdminHeaders<'_>| authenticate_admin(&keys, &h, 10);
        assert_eq!(
            check(AdminHeaders {
                x_admin_key: Some("adm"),
                ..Default::default()
            }),
            Ok(AdminCaller::AdminKey)
        );
        let wrong = check(AdminHeaders {
            x_admin_key: Some("api"),
            x_api_key: Some("api"),
            ..Default::default()
        });
        assert_eq!(wrong, Err(AdminAuthError::BadAdminKey));
        assert!(!AdminAuthError::BadAdminKey.is_forbidden());
        let api = check(AdminHeaders {
            x_api_key: Some("api"),
            ..Default::default()
        });
        assert_eq!(api, Err(AdminAuthError::ApiKeyNotAdmin));
        assert!(api.unwrap_err().is_forbidden());
        assert_eq!(
            check(AdminHeaders {
                x_api_key: Some("nope"),
                ..Default::default()
            }),
            Err(AdminAuthError::BadApiKey)
        );
        assert_eq!(check(AdminHeaders::default()), Err(AdminAuthError::Missing));
        let admin = format!("Bearer {}", mint(b"s", "ops", &["admin".into()], 0, 60));
        assert_eq!(
            check(AdminHeaders {
                authorization: Some(&admin),
                ..Default::default()
            }),
            Ok(AdminCaller::User { sub: "ops".into() })
        );
        let user = format!("Bearer {}", mint(b"s", "cus", &["customers".into()], 0, 60));
        let refused = check(AdminHeaders {
            authorization: Some(&user),
            x_api_key: Some("api"),
            ..Default::default()
        });
        assert_eq!(refused, Err(AdminAuthError::NotAdmin("cus".into())));
        let expired = format!("Bearer {}", mint(b"s", "ops", &["admin".into()], 0, 5));
        assert!(matches!(
            check(AdminHeaders {
                authorization: Some(&expired),
                ..Default::default()
            }),
            Err(AdminAuthError::BadToken(_))
        ));
        // An empty configured admin key never matches.
        let none = AdminKeys {
            admin_key: "",
            ..keys
        };
        assert_eq!(
            authenticate_admin(
                &none,
                &AdminHeaders {
                    x_admin_key: Some(""),
                    ..Default::default()
                },
                0
            ),
            Err(AdminAuthError::BadAdminKey)
        );
    }
}
