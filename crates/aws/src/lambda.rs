//! What every Lambda binary shares: the ports built from the environment the CDK app
//! sets, the JSON logger and EMF metrics, and the runtime loop that maps handler errors
//! to a stable `errorType` (what Step Functions Retry/Catch match on).

use crate::cognito::CognitoDirectory;
use crate::dynamodb::{DynamoIdempotencyStore, DynamoStore};
use crate::eventbridge::EventBridgePublisher;
use crate::secrets::{secret_string, SecretError};
use crate::ses::SesNotifier;
use crate::settings::{Settings, SettingsError};
use crate::sfn::StepFunctionsClient;
use crate::unconfigured::{NoNotifier, NoPaymentGateway, NoUserDirectory};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use marketplace_ports::log::Logger;
use marketplace_ports::metrics::Metrics;
use marketplace_ports::{
    Clock, HandlerError, IdGenerator, Notifier, PaymentGateway, Ports, RandomIds, SystemClock,
    UserDirectory,
};
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The environment is incomplete.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The function needs an adapter this build does not contain.
    #[error("{0}")]
    NotBuilt(String),
}

/// A handler error as the Lambda service reports it: `errorType` is the port's stable
/// name (`TransientError`, `PaymentDeclined`, ...), `errorMessage` the message (with the
/// structured cause appended as JSON when there is one).
#[derive(Debug)]
pub struct FunctionError(pub HandlerError);

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        let message = match &e.0.cause {
            Some(cause) => format!("{} {cause}", e.0.message),
            None => e.0.message.clone(),
        };
        Diagnostic {
            error_type: e.0.error_type.as_str().to_owned(),
            error_message: message,
        }
    }
}

/// Everything a handler is built from.
pub struct Function {
    /// The environment.
    pub settings: Settings,
    /// The adapters.
    pub ports: Ports,
    /// JSON logs to standard output (level and format from `AWS_LAMBDA_LOG_LEVEL`,
    /// `AWS_LAMBDA_LOG_FORMAT`).
    pub log: Logger,
    /// EMF metrics to standard output.
    pub metrics: Metrics,
    /// The shared SDK configuration (for adapters a binary adds, such as Secrets Manager).
    pub sdk: aws_config::SdkConfig,
}

impl Function {
    /// Builds the AWS adapters of every port from the environment. `gateway` is the
    /// payment gateway for the one function that moves money; the others get one that
    /// refuses every call.
    pub async fn from_env(
        name: &str,
        gateway: Option<Arc<dyn PaymentGateway>>,
    ) -> Result<Self, StartupError> {
        let settings = Settings::from_env()?;
        let sdk = crate::load_sdk_config().await;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ids: Arc<dyn IdGenerator> = Arc::new(RandomIds::default());
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let store = Arc::new(DynamoStore::new(dynamo.clone(), settings.tables.clone()));
        let users: Arc<dyn UserDirectory> = match &settings.user_pool_id {
            Some(pool) => Arc::new(CognitoDirectory::new(
                aws_sdk_cognitoidentityprovider::Client::new(&sdk),
                pool,
            )),
            None => Arc::new(NoUserDirectory),
        };
        let notifier: Arc<dyn Notifier> = match &settings.sender_address {
            Some(from) => Arc::new(SesNotifier::new(aws_sdk_sesv2::Client::new(&sdk), from)),
            None => Arc::new(NoNotifier),
        };
        let ports = Ports {
            services: store.clone(),
            providers: store.clone(),
            bookings: store.clone(),
            payments: store.clone(),
            disputes: store.clone(),
            ledger: store,
            users,
            idempotency: Arc::new(DynamoIdempotencyStore::new(
                dynamo,
                settings.tables.idempotency.clone(),
            )),
            events: Arc::new(EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::new(&sdk),
                settings.event_bus_name.clone(),
            )),
            workflows: Arc::new(StepFunctionsClient::new(
                aws_sdk_sfn::Client::new(&sdk),
                settings.state_machines.clone(),
            )),
            gateway: gateway.unwrap_or_else(|| Arc::new(NoPaymentGateway)),
            notifier,
            clock: clock.clone(),
            ids,
        };
        let stdout =
            || -> marketplace_ports::log::LogSink { Arc::new(Mutex::new(std::io::stdout())) };
        let log = Logger::from_env(name, stdout(), clock.clone());
        let metrics = Metrics::new(&settings.metrics_namespace, name, stdout(), clock);
        Ok(Self {
            settings,
            ports,
            log,
            metrics,
            sdk,
        })
    }

    /// The signing secrets of the Stripe webhook endpoint (`STRIPE_WEBHOOK_SECRET_ARN`,
    /// comma-separated during rotation).
    pub async fn stripe_webhook_secrets(&self) -> Result<Vec<String>, StartupError> {
        let arn = self
            .settings
            .stripe_webhook_secret_arn
            .as_deref()
            .ok_or(SettingsError::Missing("STRIPE_WEBHOOK_SECRET_ARN"))?;
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk);
        let value = secret_string(&client, arn).await?;
        Ok(split_secrets(&value))
    }
}

/// The secrets of a comma-separated list, trimmed, empty ones dropped.
pub fn split_secrets(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs the Lambda runtime loop: each event's payload and request id go to `handler`;
/// its error becomes the invocation's `errorType`/`errorMessage`.
pub async fn serve<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value, String) -> Fut,
    Fut: Future<Output = Result<Value, HandlerError>>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let fut = handler(event.payload, event.context.request_id);
        async move { fut.await.map_err(FunctionError) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketplace_ports::ErrorType;
    use serde_json::json;

    #[test]
    fn handler_errors_keep_their_error_type() {
        let d: Diagnostic =
            FunctionError(HandlerError::new(ErrorType::SlotUnavailable, "taken")).into();
        assert_eq!(
            (d.error_type.as_str(), d.error_message.as_str()),
            ("Marketplace.SlotUnavailable", "taken")
        );
        let mut e = HandlerError::new(ErrorType::PaymentDeclined, "declined");
        e.cause = Some(json!({"failureCode": "card_declined"}));
        let d: Diagnostic = FunctionError(e).into();
        assert_eq!(
            d.error_message,
            r#"declined {"failureCode":"card_declined"}"#
        );
    }

    #[test]
    fn webhook_secrets_split_on_commas() {
        assert_eq!(split_secrets(" whsec_a, ,whsec_b "), ["whsec_a", "whsec_b"]);
        assert!(split_secrets("").is_empty());
    }
}
