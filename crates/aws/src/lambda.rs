//! What every Lambda binary shares: the ports built from the environment the CDK app
//! sets, the JSON logger and EMF metrics, and the runtime loop that maps handler errors
//! to a stable `errorType` (what Step Functions Retry/Catch match on).

use crate::dynamodb::{DynamoIdempotencyStore, DynamoStore};
use crate::secrets::SecretError;
use crate::settings::{Settings, SettingsError};
use crate::unconfigured::{NoNotifier, NoPaymentGateway, NoUserDirectory};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use marketplace_ports::log::Logger;
use marketplace_ports::metrics::Metrics;
use marketplace_ports::{
    Clock, EventPublisher, HandlerError, IdGenerator, Notifier, PaymentGateway, Ports, RandomIds,
    SystemClock, UserDirectory, WorkflowClient,
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
    /// refuses every call. Only the SDK clients this build contains (the crate's
    /// features) are created; the other ports get [`crate::unconfigured`] adapters.
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
        let ports = Ports {
            services: store.clone(),
            providers: store.clone(),
            bookings: store.clone(),
            payments: store.clone(),
            disputes: store.clone(),
            ledger: store,
            users: user_directory(&sdk, &settings),
            idempotency: Arc::new(DynamoIdempotencyStore::new(
                dynamo,
                settings.tables.idempotency.clone(),
            )),
            events: event_publisher(&sdk, &settings),
            workflows: workflow_client(&sdk, &settings),
            gateway: gateway.unwrap_or_else(|| Arc::new(NoPaymentGateway)),
            notifier: notifier(&sdk, &settings),
            clock: clock.clone(),
            ids,
            pause: Arc::new(TokioPause),
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
    #[cfg(feature = "secrets")]
    pub async fn stripe_webhook_secrets(&self) -> Result<Vec<String>, StartupError> {
        let arn = self
            .settings
            .stripe_webhook_secret_arn
            .as_deref()
            .ok_or(SettingsError::Missing("STRIPE_WEBHOOK_SECRET_ARN"))?;
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk);
        let value = crate::secrets::secret_string(&client, arn).await?;
        Ok(split_secrets(&value))
    }
}

/// The Cognito directory when the build has the client and `USER_POOL_ID` is set.
fn user_directory(sdk: &aws_config::SdkConfig, settings: &Settings) -> Arc<dyn UserDirectory> {
    match &settings.user_pool_id {
        #[cfg(feature = "cognito")]
        Some(pool) => Arc::new(crate::cognito::CognitoDirectory::new(
            aws_sdk_cognitoidentityprovider::Client::new(sdk),
            pool,
        )),
        #[cfg(not(feature = "cognito"))]
        Some(_) => {
            let _ = sdk;
            Arc::new(NoUserDirectory::not_built())
        }
        None => Arc::new(NoUserDirectory::default()),
    }
}

/// The SES notifier when the build has the client and `SENDER_ADDRESS` is set.
fn notifier(sdk: &aws_config::SdkConfig, settings: &Settings) -> Arc<dyn Notifier> {
    match &settings.sender_address {
        #[cfg(feature = "ses")]
        Some(from) => Arc::new(crate::ses::SesNotifier::new(
            aws_sdk_sesv2::Client::new(sdk),
            from,
        )),
        #[cfg(not(feature = "ses"))]
        Some(_) => {
            let _ = sdk;
            Arc::new(NoNotifier::not_built())
        }
        None => Arc::new(NoNotifier::default()),
    }
}

/// EventBridge on `EVENT_BUS_NAME` when the build has the client.
fn event_publisher(sdk: &aws_config::SdkConfig, settings: &Settings) -> Arc<dyn EventPublisher> {
    #[cfg(feature = "eventbridge")]
    {
        Arc::new(crate::eventbridge::EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(sdk),
            settings.event_bus_name.clone(),
        ))
    }
    #[cfg(not(feature = "eventbridge"))]
    {
        let _ = (sdk, settings);
        Arc::new(crate::unconfigured::NoEventPublisher(
            crate::unconfigured::EVENTBRIDGE_NOT_BUILT,
        ))
    }
}

/// Step Functions with the state machines of the environment when the build has the client.
fn workflow_client(sdk: &aws_config::SdkConfig, settings: &Settings) -> Arc<dyn WorkflowClient> {
    #[cfg(feature = "sfn")]
    {
        Arc::new(crate::sfn::StepFunctionsClient::new(
            aws_sdk_sfn::Client::new(sdk),
            settings.state_machines.clone(),
        ))
    }
    #[cfg(not(feature = "sfn"))]
    {
        let _ = (sdk, settings);
        Arc::new(crate::unconfigured::NoWorkflowClient(
            crate::unconfigured::SFN_NOT_BUILT,
        ))
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

/// [`marketplace_ports::Pause`] on the Lambda runtime's tokio timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioPause;

impl marketplace_ports::Pause for TokioPause {
    fn pause(
        &self,
        d: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
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
