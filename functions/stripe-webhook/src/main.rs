//! stripe-webhook on AWS Lambda: Function URL requests verified by `Stripe-Signature`
//! against the secrets in Secrets Manager (`STRIPE_WEBHOOK_SECRET_ARN`, comma-separated
//! during rotation), answered with an HTTP response object.

use marketplace_aws::lambda::{serve, Function};
use std::sync::Arc;
use stripe_webhook::{StripeWebhook, WebhookConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let f = Function::from_env("stripe-webhook", None).await?;
    let secrets = f.stripe_webhook_secrets().await?;
    let config = WebhookConfig {
        event_bus_name: f.settings.event_bus_name.clone(),
        ..WebhookConfig::new(secrets)
    };
    let handler = Arc::new(StripeWebhook::new(f.ports, config, f.log, f.metrics));
    serve(move |event, request_id| {
        let handler = handler.clone();
        async move { Ok(handler.handle(event, Some(&request_id)).await) }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
