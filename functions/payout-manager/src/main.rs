//! payout-manager on AWS Lambda: Stripe Connect money movement and the earnings ledger.
//!
//! This version contains no Stripe adapter (async-stripe) yet: the function refuses to
//! start rather than run without a payment gateway.

use marketplace_aws::lambda::{serve, Function, StartupError};
use marketplace_ports::PaymentGateway;
use payout_manager::PayoutManager;
use std::sync::Arc;

/// The Stripe gateway; none is built into this version.
fn stripe_gateway() -> Result<Arc<dyn PaymentGateway>, StartupError> {
    Err(StartupError::NotBuilt(
        "STRIPE adapter not built in this version: payout-manager moves money through Stripe Connect and cannot start without it".into(),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let gateway = stripe_gateway()?;
    let f = Function::from_env("payout-manager", Some(gateway)).await?;
    let handler = Arc::new(PayoutManager::new(f.ports, f.log, f.metrics));
    serve(move |payload, request_id| {
        let handler = handler.clone();
        async move { handler.handle(payload, Some(&request_id)).await }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
