//! notification-handler on AWS Lambda: `notify` tasks, EventBridge target inputs and SQS
//! batches (partial batch failure), sending through SES v2 with contacts from Cognito.

use marketplace_aws::lambda::{serve, Function};
use notification_handler::NotificationHandler;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let f = Function::from_env("notification-handler", None).await?;
    let handler = Arc::new(NotificationHandler::new(f.ports, f.log, f.metrics));
    serve(move |payload, request_id| {
        let handler = handler.clone();
        async move { handler.handle(payload, Some(&request_id)).await }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
