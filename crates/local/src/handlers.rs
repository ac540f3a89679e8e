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
pub fn block_on<F: Future>(f: F) -> Option<F::Output> {
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

/// The key under which the data directory keeps the Stripe webhook signing secret.
pub const WEBHOOK_SECRET_KEY: &str = "stripe_webhook_secret";

/// Builds the ports of the local runtime around a simulated Stripe.
pub fn ports(rt: &Runtime, gateway: Arc<SimulatedStripe>) -> Ports {
    let sql = Arc::new(SqlitePorts::with_clock(rt.store.clone(), rt.clock.clone()));
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
        gateway,
        notifier: sql,
        clock,
        ids: Arc::new(RandomIds::default()),
        pause: Arc::new(ThreadPause),
    }
}

/// [`marketplace_ports::Pause`] of the local runtime: handlers run on this thread's
/// executor, which has a timer ([`block_on`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadPause;

impl marketplace_ports::Pause for ThreadPause {
    fn pause(
        &self,
        d: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

fn plumbing(name: &str, clock: Arc<dyn marketplace_ports::Clock>) -> (Logger, EmfMetrics) {
    let log = Logger::from_env(name, Arc::new(Mutex::new(std::io::stderr())), clock.clone());
    // The local runtime has its own Prometheus metrics; EMF documents would go nowhere.
    let metrics = EmfMetrics::discarding("Marketplace", name, clock);
    (log, metrics)
}

macro_rules! register {
    ($rt:expr, $name:expr, $handler:expr) => {{
        let h = $handler;
        let f: Arc<dyn Function> = Arc::new(move |payload: Value| {
            block_on(h.handle(payload, None))
                .ok_or_else(no_executor)?
                .map_err(to_invoke_error)
        });
        $rt.functions.register($name, f);
    }};
}

/// An HTTP request event (Lambda function URL shape) carrying a signed Stripe webhook.
pub fn signed_webhook_event(secret: &str, now: i64, body: &str) -> Value {
    let sig = marketplace_ports::stripe_signature::sign_header(&[secret], now, body.as_bytes());
    serde_json::json!({
        "headers": {"stripe-signature": sig, "content-type": "application/json"},
        "body": body,
        "isBase64Encoded": false,
        "requestContext": {"http": {"method": "POST", "path": "/webhooks/stripe"}},
    })
}

/// Registers the six handler libraries and starts the thread that signs the simulated
/// Stripe's webhook events and delivers them to stripe-webhook (as Stripe would, after the
/// API call that caused them has returned), retrying failed ones with backoff for up to
/// three days without holding back later events ([`crate::webhook_sender`]).
pub fn register_all(rt: &Arc<Runtime>) -> Result<(), crate::store::StoreError> {
    let clock: Arc<dyn marketplace_ports::Clock> = Arc::new(PortsClock(rt.clock.clone()));
    // The simulated Stripe keeps its objects and undelivered webhooks in the data directory.
    let sim_store = crate::stripe_store::SqliteStripeStore::open(rt.store.clone())?;
    let stripe = Arc::new(
        SimulatedStripe::with_store(clock.clone(), Arc::new(sim_store)).map_err(|e| {
            crate::store::StoreError::Corrupt {
                table: "stripe_sim",
                message: e.to_string(),
            }
        })?,
    );
    let _ = rt.stripe.set(stripe.clone());
    let p = ports(rt, stripe.clone());
    let secret = rt.store.kv_get_or_init(WEBHOOK_SECRET_KEY, || {
        format!("whsec_{}", crate::util::random_hex(24))
    })?;

    let (log, metrics) = plumbing("booking-manager", clock.clone());
    register!(
        rt,
        "booking-manager",
        booking_manager::BookingManager::new(p.clone(), Default::default(), log, metrics)
    );
    let (log, metrics) = plumbing("payout-manager", clock.clone());
    register!(
        rt,
        "payout-manager",
        payout_manager::PayoutManager::new(p.clone(), log, metrics)
    );
    let (log, metrics) = plumbing("dispute-handler", clock.clone());
    register!(
        rt,
        "dispute-handler",
        dispute_handler::DisputeHandler::new(p.clone(), log, metrics)
    );
    let (log, metrics) = plumbing("notification-handler", clock.clone());
    register!(
        rt,
        "notification-handler",
        notification_handler::NotificationHandler::new(p.clone(), log, metrics)
    );
    let (log, metrics) = plumbing("workflow-orchestrator", clock.clone());
    register!(
        rt,
        "workflow-orchestrator",
        workflow_orchestrator::Orchestrator::new(p.clone(), Default::default(), log, metrics)
    );

    let (log, metrics) = plumbing("stripe-webhook", clock.clone());
    let webhook = stripe_webhook::StripeWebhook::new(
        p,
        stripe_webhook::WebhookConfig::new(vec![secret.clone()]),
        log,
        metrics,
    );
    let f: Arc<dyn Function> = Arc::new(move |event: Value| {
        let out = block_on(webhook.handle(event, None)).ok_or_else(no_executor)?;
        match out.get("statusCode").and_then(Value::as_i64) {
            Some(code) if code >= 500 => Err(InvokeError::new(
                "Marketplace.TransientError",
                format!(
                    "stripe-webhook answered {code}: {}",
                    out.get("body").cloned().unwrap_or_default()
                ),
            )),
            _ => Ok(out),
        }
    });
    rt.functions.register("stripe-webhook", f);

    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    stripe.set_webhook_sink(Arc::new(move |event: Value| {
        let _ = tx.send(event);
    }));
    // Webhooks emitted before the last stop and never acknowledged go out again first.
    let pending = stripe.undelivered_webhooks();
    let functions = rt.functions.clone();
    let rclock = rt.clock.clone();
    let clock = rt.clock.clone();
    let acknowledger = stripe.clone();
    let stopping = rt.stopping.clone();
    let sender = std::thread::Builder::new()
        .name("stripe-webhooks".into())
        .spawn(move || {
            // Each attempt is signed afresh: a retry hours later carries a current timestamp.
            let deliver = |id: &str, body: &str| -> Result<(), InvokeError> {
                let req = signed_webhook_event(&secret, rclock.now().timestamp(), body);
                functions.invoke("stripe-webhook", req)?;
                if let Err(e) = acknowledger.mark_webhook_delivered(id) {
                    crate::util::log(
                        crate::util::Level::Warn,
                        &format!("webhook {id} delivered but not recorded: {e}"),
                        None,
                        &[("stripeEvent", Value::String(id.to_owned()))],
                    );
                }
                Ok(())
            };
            crate::webhook_sender::run(
                pending,
                rx,
                &stopping,
                crate::webhook_sender::RetryPolicy::default(),
                move || clock.now(),
                deliver,
            );
        });
    match sender {
        Ok(h) => rt.adopt_thread(h),
        Err(e) => {
            return Err(crate::store::StoreError::Commit(format!(
                "cannot start the Stripe webhook sender: {e}"
            )))
        }
    }
    Ok(())
}
