//! Secrets Manager: the Stripe keys the CDK app stores (`STRIPE_*_SECRET_ARN`).

#[cfg(feature = "secrets")]
use aws_sdk_secretsmanager::{error::ProvideErrorMetadata, Client};

/// Why a secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The secret has no string value yet (the operator sets it after the first deploy).
    #[error("secret {0} has no value yet: set it with `aws secretsmanager put-secret-value`")]
    Empty(String),
    /// Secrets Manager refused or failed.
    #[error("secret {id}: {code}: {message}")]
    Service {
        /// The secret.
        id: String,
        /// The AWS error code.
        code: String,
        /// Its message.
        message: String,
    },
}

/// The current string value of secret `id` (name or ARN).
#[cfg(feature = "secrets")]
pub async fn secret_string(client: &Client, id: &str) -> Result<String, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| SecretError::Service {
            id: id.to_owned(),
            code: e.code().unwrap_or("Unknown").to_owned(),
            message: e
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string()),
        })?;
    out.secret_string
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| SecretError::Empty(id.to_owned()))
}
