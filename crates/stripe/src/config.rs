//! How the adapter reaches Stripe: the secret key, the API base (Stripe itself unless a
//! test points it elsewhere), and the retry policy for transient failures.

use std::time::Duration;

/// The default number of attempts of one call (the first one included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The default pause before the first retry; it doubles for each further retry.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// The longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// The default time one HTTP attempt may take (connect, send, read the whole answer).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(7);
/// The most attempts a configuration may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 5;

/// A configuration the adapter refuses. Messages never contain the secret key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The secret key is empty or is not a Stripe secret or restricted key.
    #[error("Stripe secret key: {0}")]
    InvalidSecretKey(&'static str),
    /// The API base is not an absolute http(s) URL.
    #[error("Stripe API base {url:?}: {rule}")]
    InvalidApiBase {
        /// The URL given.
        url: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The number of attempts is out of range.
    #[error("maxAttempts {0}: must be between 1 and {MAX_ATTEMPTS_LIMIT}")]
    InvalidAttempts(u32),
    /// An environment variable holds something that cannot be read.
    #[error("environment variable {name}: {rule}")]
    InvalidVariable {
        /// The variable.
        name: &'static str,
        /// The rule its value breaks.
        rule: String,
    },
    /// The HTTP client could not be built (e.g. no usable system root certificates).
    #[error("Stripe client: {0}")]
    Client(String),
}

/// Everything the adapter needs to call Stripe.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeConfig {
    /// `sk_live_…`, `sk_test_…` or a restricted key `rk_…`.
    pub secret_key: String,
    /// The API base, `https://api.stripe.com/` when `None`. Tests point it at a local fake.
    pub api_base: Option<String>,
    /// Attempts of one call, the first included (1–5). Only transient failures (429, 409,
    /// 5xx, network, timeouts) are retried, always with the same idempotency key.
    pub max_attempts: u32,
    /// The pause before the first retry; doubled for each further one, at most [`MAX_BACKOFF`].
    pub initial_backoff: Duration,
    /// How long one HTTP attempt may take.
    pub attempt_timeout: Duration,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &redact(&self.secret_key))
            .field("api_base", &self.api_base)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish()
    }
}

/// `sk_test_…` → `sk_test_****`: the mode stays visible, the secret does not.
fn redact(key: &str) -> String {
    let prefix: String = key.splitn(3, '_').take(2).collect::<Vec<_>>().join("_");
    format!("{prefix}_****")
}

impl StripeConfig {
    /// A configuration with the defaults for `secret_key`.
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            secret_key: secret_key.into(),
            api_base: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
        }
    }

    /// The defaults for `secret_key`, overridden by the optional variables read through
    /// `get`: `STRIPE_API_BASE` (a URL) and `STRIPE_MAX_ATTEMPTS` (1–5).
    pub fn from_lookup(
        secret_key: impl Into<String>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::new(secret_key);
        let optional = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(base) = optional("STRIPE_API_BASE") {
            config.api_base = Some(base.trim().to_owned());
        }
        if let Some(n) = optional("STRIPE_MAX_ATTEMPTS") {
            config.max_attempts = n.trim().parse().map_err(|_| ConfigError::InvalidVariable {
                name: "STRIPE_MAX_ATTEMPTS",
                rule: format!("{n:?} is not a whole number"),
            })?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = self.secret_key.as_str();
        if key.is_empty() {
            return Err(ConfigError::InvalidSecretKey("is empty"));
        }
        if !(key.starts_with("sk_") || key.starts_with("rk_")) {
            return Err(ConfigError::InvalidSecretKey(
                "must be a secret key (sk_…) or a restricted key (rk_…); a publishable key (pk_…) cannot move money",
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::InvalidSecretKey(
                "must not contain spaces, line breaks or non-ASCII characters",
            ));
        }
        if let Some(url) = &self.api_base {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            match rest {
                None => {
                    return Err(ConfigError::InvalidApiBase {
                        url: url.clone(),
                        rule: "must start with https:// or http://",
                    })
                }
                Some(host) if host.trim_end_matches('/').is_empty() => {
                    return Err(ConfigError::InvalidApiBase {
                        url: url.clone(),
                        rule: "must name a host",
                    })
                }
                Some(_) => {}
            }
        }
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err(ConfigError::InvalidAttempts(self.max_attempts));
        }
        Ok(())
    }

    /// The API base with exactly one trailing slash (the client appends `v1/...`).
    pub(crate) fn normalized_api_base(&self) -> Option<String> {
        self.api_base
            .as_ref()
            .map(|u| format!("{}/", u.trim_end_matches('/')))
    }

    /// The pause after failed attempt number `attempt` (1-based).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_the_optional_variables() {
        let env: HashMap<&str, &str> = [
            ("STRIPE_API_BASE", "http://127.0.0.1:12111"),
            ("STRIPE_MAX_ATTEMPTS", " 2 "),
        ]
        .into();
        let c = StripeConfig::from_lookup("sk_test_abc", |k| env.get(k).map(|v| v.to_string()))
            .expect("valid");
        assert_eq!(c.api_base.as_deref(), Some("http://127.0.0.1:12111"));
        assert_eq!(
            c.normalized_api_base().as_deref(),
            Some("http://127.0.0.1:12111/")
        );
        assert_eq!(c.max_attempts, 2);
        let d = StripeConfig::from_lookup("sk_test_abc", |_| None).expect("defaults");
        assert_eq!(d, StripeConfig::new("sk_test_abc"));
        assert_eq!(d.api_base, None);
    }

    #[test]
    fn refuses_bad_keys_urls_and_attempts_naming_the_rule() {
        let err = |c: StripeConfig| c.validate().unwrap_err().to_string();
        assert_eq!(err(StripeConfig::new("")), "Stripe secret key: is empty");
        assert!(err(StripeConfig::new("pk_test_123")).contains("publishable key"));
        assert!(err(StripeConfig::new("sk_test_1 2")).contains("spaces"));
        let mut c = StripeConfig::new("rk_live_x");
        c.api_base = Some("ftp://x".into());
        assert!(err(c.clone()).contains("must start with https://"));
        c.api_base = Some("https:///".into());
        assert!(err(c.clone()).contains("must name a host"));
        c.api_base = None;
        c.max_attempts = 0;
        assert_eq!(err(c), "maxAttempts 0: must be between 1 and 5");
        let bad = StripeConfig::from_lookup("sk_test_x", |k| {
            (k == "STRIPE_MAX_ATTEMPTS").then(|| "three".to_owned())
        })
        .unwrap_err();
        assert!(bad.to_string().contains("STRIPE_MAX_ATTEMPTS"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", StripeConfig::new("sk_live_supersecret"));
        assert!(shown.contains("sk_live_****"));
        assert!(!shown.contains("supersecret"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = StripeConfig::new("sk_test_x");
        assert_eq!(c.backoff(1), Duration::from_millis(250));
        assert_eq!(c.backoff(2), Duration::from_millis(500));
        assert_eq!(c.backoff(3), Duration::from_secs(1));
        assert_eq!(c.backoff(40), MAX_BACKOFF);
    }
}
