//! payout-manager on AWS Lambda: Stripe Connect money movement and the earnings ledger.
//!
//! The payment gateway is the Stripe adapter (`marketplace-stripe`, on async-stripe). Its
//! secret key is read once at start from Secrets Manager (`STRIPE_API_KEY_SECRET_ARN`, set
//! by the CDK app); `STRIPE_API_BASE` and `STRIPE_MAX_ATTEMPTS` optionally point it at
//! another endpoint and bound its retries. The function refuses to start without a usable
//! key rather than run without a payment gateway.

use anyhow::Context;
use marketplace_aws::lambda::{serve, Function, StartupError};
use marketplace_aws::secrets::secret_string;
use marketplace_aws::SettingsError;
use marketplace_stripe::{StripeConfig, StripeGateway};
use payout_manager::PayoutManager;
use std::sync::Arc;

/// The Stripe gateway, with the key from Secrets Manager.
async fn stripe_gateway(f: &Function) -> anyhow::Result<StripeGateway> {
    let arn = f
        .settings
        .stripe_api_key_secret_arn
        .as_deref()
        .ok_or(StartupError::Settings(SettingsError::Missing(
            "STRIPE_API_KEY_SECRET_ARN",
        )))?;
    let client = aws_sdk_secretsmanager::Client::new(&f.sdk);
    let key = secret_string(&client, arn)
        .await
        .map_err(StartupError::Secret)?;
    let config = StripeConfig::from_lookup(key.trim(), |k| std::env::var(k).ok())
        .with_context(|| format!("the Stripe key in {arn}"))?;
    Ok(StripeGateway::new(config)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut f = Function::from_env("payout-manager", None).await?;
    f.ports.gateway = Arc::new(stripe_gateway(&f).await?);
    let handler = Arc::new(PayoutManager::new(f.ports, f.log, f.metrics));
    serve(move |payload, request_id| {
        let handler = handler.clone();
        async move { handler.handle(payload, Some(&request_id)).await }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
