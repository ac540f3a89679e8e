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
#![warn(missing_docs)]

pub mod cognito;
pub mod dynamodb;
pub mod eventbridge;
pub mod lambda;
pub mod secrets;
pub mod ses;
pub mod settings;
pub mod sfn;
pub mod unconfigured;

pub use settings::{Settings, SettingsError};

use chrono::{DateTime, Utc};

/// Converts an SDK timestamp to chrono (None when out of chrono's range).
pub(crate) fn to_chrono(t: &aws_smithy_types_compat::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Converts chrono to an SDK timestamp.
pub(crate) fn from_chrono(t: DateTime<Utc>) -> aws_smithy_types_compat::DateTime {
    aws_smithy_types_compat::DateTime::from_secs_and_nanos(
        t.timestamp(),
        t.timestamp_subsec_nanos(),
    )
}

/// The SDKs re-export the one `aws-smithy-types` they share.
pub(crate) mod aws_smithy_types_compat {
    pub use aws_sdk_sfn::primitives::DateTime;
}

/// The shared SDK configuration from the environment (region, credentials and
/// `AWS_ENDPOINT_URL*` overrides: the same code runs against a local endpoint).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
