//! workflow-orchestrator on AWS Lambda: the AppSync direct resolver (single events and
//! BatchInvoke arrays) and the EventBridge target of the auto-trigger rule.

use marketplace_aws::lambda::{serve, Function};
use std::sync::Arc;
use workflow_orchestrator::{Orchestrator, OrchestratorConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let f = Function::from_env("workflow-orchestrator", None).await?;
    let config = OrchestratorConfig {
        event_bus_name: f.settings.event_bus_name.clone(),
        ..OrchestratorConfig::default()
    };
    let handler = Arc::new(Orchestrator::new(f.ports, config, f.log, f.metrics));
    serve(move |event, request_id| {
        let handler = handler.clone();
        async move { handler.handle(event, Some(&request_id)).await }
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
