//! dispute-handler on AWS Lambda: the dispute-resolution tasks (Step Functions payloads).

use dispute_handler::DisputeHandler;
use marketplace_aws::lambda::{serve, Function};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let f = Function::from_env("dispute-handler", None).await?;
    let handler = Arc::new(DisputeHandler::new(f.ports, f.log, f.metrics));
    serve(move |payload, request_id| {
        let handler = handler.clone();
        async move { handler.handle(payload, Some(&request_id)).await }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
