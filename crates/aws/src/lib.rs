//! # marketplace-aws
//!
//! Adapters of the [`marketplace_ports`] traits on the AWS SDKs. Only the Lambda binaries
//! (`functions/*/src/main.rs`) link this crate; handlers depend on the ports alone and the
//! `marketplace` binary (crates/local) never links the SDKs.
//!
//! | port | adapter | AWS API |
//! |---|---|---|
//! | repositories | [`dynamodb::DynamoStore`] | DynamoDB (`TransactWriteItems` for the slot reservation) |
//! | idempotency | [`dynamodb::DynamoIdempotencyStore`] | DynamoDB conditional `PutItem`, TTL on `expiration` |
//! | events | [`eventbridge::EventBridgePublisher`] | EventBridge `PutEvents` |
//! | workflows | [`sfn::StepFunctionsClient`] | Step Functions |
//! | notifier | [`ses::SesNotifier`] | SES v2 `SendEmail` |
//! | users | [`cognito::CognitoDirectory`] | Cognito `AdminGetUser`, `ListUsersInGroup` |
//!
//! Table, index and attribute names are those of the CDK app (`infra/lib/tables.ts`);
//! [`settings::Settings`] reads the environment variables the CDK app sets.
//!
//! ## Features: one per SDK client
//!
//! DynamoDB is always built (every function keeps its records and idempotency there).
//! `eventbridge`, `sfn`, `ses`, `cognito` and `secrets` add the other clients (all are on
//! by default; the functions turn the defaults off and name what their handlers call).
//! [`lambda::Function::from_env`] wires a port whose client is not built to an adapter
//! of [`unconfigured`] that fails every call naming the missing feature, so a function
//! built without a client it needs fails loudly on its first call, never silently.
//!
//! Every client shares one HTTPS client ([`http_client`]): hyper with rustls on *ring*
//! (the SDKs' default is rustls on aws-lc-rs, a C library that makes the binaries larger
//! and needs a C cross-compiler for arm64).
#![warn(missing_docs)]

#[cfg(feature = "cognito")]
pub mod cognito;
pub mod dynamodb;
#[cfg(feature = "eventbridge")]
pub mod eventbridge;
pub mod lambda;
pub mod secrets;
#[cfg(feature = "ses")]
pub mod ses;
pub mod settings;
#[cfg(feature = "sfn")]
pub mod sfn;
pub mod unconfigured;

pub use settings::{Settings, SettingsError};

/// Converts an SDK timestamp to chrono (None when out of chrono's range).
#[cfg(feature = "sfn")]
pub(crate) fn to_chrono(
    t: &aws_smithy_types_compat::DateTime,
) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Converts chrono to an SDK timestamp.
#[cfg(feature = "eventbridge")]
pub(crate) fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> aws_smithy_types_compat::DateTime {
    aws_smithy_types_compat::DateTime::from_secs_and_nanos(
        t.timestamp(),
        t.timestamp_subsec_nanos(),
    )
}

/// The SDKs re-export the one `aws-smithy-types` they share.
#[cfg(any(feature = "sfn", feature = "eventbridge"))]
pub(crate) mod aws_smithy_types_compat {
    pub use aws_sdk_dynamodb::primitives::DateTime;
}

/// The HTTPS client every SDK client uses: hyper with rustls on *ring*, the platform's
/// root certificates (read on the first connection, not at start-up).
pub fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The loader of the SDK configuration with [`http_client`]: region, credentials and
/// `AWS_ENDPOINT_URL*` overrides from the environment (the same code runs against a local
/// endpoint). Tests add their own endpoint and credentials to it.
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client())
}

/// The shared SDK configuration from the environment ([`sdk_config_loader`]).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    sdk_config_loader().load().await
}
