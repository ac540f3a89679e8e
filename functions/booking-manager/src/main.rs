//! booking-manager on AWS Lambda: the booking-lifecycle tasks (Step Functions payloads)
//! over the DynamoDB, EventBridge and Step Functions adapters.

use booking_manager::{BookingConfig, BookingManager};
use marketplace_aws::lambda::{serve, Function};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let f = Function::from_env("booking-manager", None).await?;
    let handler = Arc::new(BookingManager::new(
        f.ports,
        BookingConfig::default(),
        f.log,
        f.metrics,
    ));
    serve(move |payload, request_id| {
        let handler = handler.clone();
        async move { handler.handle(payload, Some(&request_id)).await }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
