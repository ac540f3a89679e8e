//! The function handler libraries (`functions/*`), wired in process on the local adapters:
//! the same code that runs in Lambda, invoked by Lambda tasks, bus targets and the
//! GraphQL endpoint.

use crate::adapters::{BusPublisher, HostWorkflowClient, SqlitePorts};
use crate::clock::RuntimeClock;
use crate::functions::{Function, InvokeError};
use crate::runtime::Runtime;
use chrono::{DateTime, Utc};
use marketplace_ports::log::Logger;
use marketplace_ports::metrics::Metrics as EmfMetrics;
use marketplace_ports::stripe_sim::SimulatedStripe;
use marketplace_ports::{HandlerError, Ports, RandomIds};
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The runtime clock as the ports' clock.
#[derive(Debug, Clone)]
pub struct PortsClock(pub Arc<RuntimeClock>);

impl marketplace_ports::Clock for PortsClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}

thread_local! {
    static EXECUTOR: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok();
}

/// Runs a handler's future to completion on this thread's executor. Callers are plain
/// threads (delivery loop, workflow workers, blocking pool), never async tasks.
fn block_on<F: Future>(f: F) -> Option<F::Output> {
    EXECUTOR.with(|rt| rt.as_ref().map(|rt| rt.block_on(f)))
}

fn to_invoke_error(e: HandlerError) -> InvokeError {
    let mut message = e.message;
    if let Some(c) = e.cause {
        message = format!("{message} ({c})");
    }
    InvokeError::new(e.error_type.as_str(), message)
}

fn no_executor() -> InvokeError {
    InvokeError::new("Lambda.ServiceException", "no executor for the handler")
}

/// Builds the ports of the local runtime.
pub fn ports(rt: &Runtime) -> Ports {
    let sql = Arc::new(SqlitePorts::new(rt.store.clone()));
    let clock: Arc<dyn marketplace_ports::Clock> = Arc::new(PortsClock(rt.clock.clone()));
    Ports {
        services: sql.clone(),
        providers: sql.clone(),
        bookings: sql.clone(),
        payments: sql.clone(),
        disputes: sql.clone(),
        ledger: sql.clone(),
        users: sql.clone(),
        idempotency: sql.clone(),
        events: Arc::new(BusPublisher::new(rt.bus.clone())),
        workflows: Arc::new(HostWorkflowClient::new(rt.workflows.clone())),
        gateway: Arc::new(SimulatedStripe::new(clock.clone())),
        notifier: sql,
        clock,
        ids: Arc::new(RandomIds::default()),
    }
}

fn plumbing(name: &str, clock: Arc<dyn marketplace_ports::Clock>) -> (Logger, EmfMetrics) {
    let log = Logger::from_env(name, Arc::new(Mutex::new(std::io::stderr())), clock.clone());
    let metrics = EmfMetrics::new(
        "Marketplace",
        name,
        Arc::new(Mutex::new(std::io::sink())),
        clock,
    );
    (log, metrics)
}

/// Registers every handler library this build contains.
pub fn register_all(rt: &Runtime) {
    let p = ports(rt);
    let (log, metrics) = plumbing("booking-manager", p.clock.clone());
    let bm = booking_manager::BookingManager::new(p.clone(), Default::default(), log, metrics);
    let f: Arc<dyn Function> = Arc::new(move |payload: Value| {
        block_on(bm.handle(payload, None))
            .ok_or_else(no_executor)?
            .map_err(to_invoke_error)
    });
    rt.functions.register("booking-manager", f);

    let (log, metrics) = plumbing("workflow-orchestrator", p.clock.clone());
    let orch = workflow_orchestrator::Orchestrator::new(p, Default::default(), log, metrics);
    let f: Arc<dyn Function> = Arc::new(move |payload: Value| {
        block_on(orch.handle(payload, None))
            .ok_or_else(no_executor)?
            .map_err(to_invoke_error)
    });
    rt.functions.register("workflow-orchestrator", f);
}
