//! The assembled local runtime: store, clock, bus, workflow host, functions, keys, and the
//! GraphQL resolver that AppSync would call.

use crate::auth::Caller;
use crate::bus::{Bus, PutEntry};
use crate::clock::RuntimeClock;
use crate::functions::Functions;
use crate::graphql::FieldError;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::{Store, StoreError};
use crate::util::{self, Level};
use crate::workflows::{self, WorkflowError, Workflows};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How the runtime is configured.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory.
    pub data_dir: PathBuf,
    /// A rules file instead of the embedded `infra/rules.json`.
    pub rules_file: Option<PathBuf>,
    /// A directory of definitions instead of the embedded `statemachines/`.
    pub statemachines_dir: Option<PathBuf>,
    /// Use the virtual clock.
    pub virtual_clock: bool,
    /// A fixed API key (otherwise the data directory's, generated on first start).
    pub api_key: Option<String>,
    /// Workflow worker threads.
    pub workers: usize,
}

/// Start-up errors.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Rules.
    #[error(transparent)]
    Rules(#[from] crate::rules::RulesError),
    /// Definitions.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// Another process runs on the same data directory.
    #[error("data directory {dir} is in use by another marketplace process{holder}: stop it or choose another --data-dir")]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// " (pid N)" when the lock file names it.
        holder: String,
    },
    /// The data directory's lock file could not be created or locked.
    #[error("cannot lock data directory {dir}: {source}")]
    Lock {
        /// The data directory.
        dir: PathBuf,
        /// Error.
        source: std::io::Error,
    },
}

/// The lock file of a data directory, held (an exclusive advisory lock) by the one runtime
/// using it. The operating system releases it when the process ends, however it ends.
pub const LOCK_FILE: &str = "marketplace.lock";

/// Takes the data directory's lock, writing this process's id into the lock file.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, StartError> {
    use std::io::{Read, Seek, Write};
    let err = |source| StartError::Lock {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
        .map_err(err)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(StartError::InUse {
                dir: dir.to_path_buf(),
                holder: if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    f.set_len(0).map_err(err)?;
    f.rewind().map_err(err)?;
    write!(f, "{}", std::process::id()).map_err(err)?;
    Ok(f)
}

/// The running system.
pub struct Runtime {
    /// Storage.
    pub store: Arc<Store>,
    /// Clock.
    pub clock: Arc<RuntimeClock>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Functions.
    pub functions: Arc<Functions>,
    /// Bus.
    pub bus: Arc<Bus>,
    /// Workflows.
    pub workflows: Arc<Workflows>,
    /// The API key.
    pub api_key: String,
    /// The JWT signing key.
    pub signing_key: Vec<u8>,
    /// Set once start-up recovery is done.
    pub ready: AtomicBool,
    /// The simulated Stripe account the handlers use.
    pub stripe: std::sync::OnceLock<Arc<marketplace_ports::stripe_sim::SimulatedStripe>>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Set by [`Runtime::shutdown`] for the runtime's own threads that have no other stop
    /// (the Stripe webhook sender).
    pub(crate) stopping: Arc<AtomicBool>,
    /// The data directory's lock (released when the runtime is dropped).
    _lock: std::fs::File,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("store", &self.store)
            .finish()
    }
}

/// Reads the signing key of a data directory (creating it on first use).
pub fn signing_key(store: &Store) -> Result<Vec<u8>, StoreError> {
    Ok(store
        .kv_get_or_init("jwt_signing_key", || util::random_hex(32))?
        .into_bytes())
}

impl Runtime {
    /// Opens the data directory, validates rules and definitions, and assembles the runtime
    /// (no thread runs until [`Runtime::start`]).
    pub fn open(cfg: &Config) -> Result<Arc<Runtime>, StartError> {
        let rules_text = match &cfg.rules_file {
            Some(p) => std::fs::read_to_string(p).map_err(|source| StartError::Read {
                path: p.clone(),
                source,
            })?,
            None => crate::rules::EMBEDDED_RULES.to_string(),
        };
        let rules = Arc::new(Rules::parse(&rules_text)?);
        let machines = workflows::load_machines(cfg.statemachines_dir.as_deref(), &rules.bus_name)?;
        let lock = lock_data_dir(&cfg.data_dir)?;
        let store = Arc::new(Store::open_dir(&cfg.data_dir)?);
        let clock = Arc::new(if cfg.virtual_clock {
            RuntimeClock::virtual_from(store.clone(), chrono::Utc::now())?
        } else {
            RuntimeClock::Real
        });
        let api_key = match &cfg.api_key {
            Some(k) => k.clone(),
            None => store.kv_get_or_init("api_key", || format!("da2-{}", util::random_hex(16)))?,
        };
        let signing_key = signing_key(&store)?;
        let metrics = Arc::new(Metrics::default());
        let functions = Arc::new(Functions::default());
        let bus = Arc::new(Bus::new(
            store.clone(),
            rules,
            clock.clone(),
            metrics.clone(),
            functions.clone(),
        ));
        let workflows = Arc::new(Workflows::new(
            store.clone(),
            clock.clone(),
            metrics.clone(),
            functions.clone(),
            bus.clone(),
            machines,
        ));
        let rt = Arc::new(Runtime {
            store,
            clock,
            metrics,
            functions,
            bus,
            workflows,
            api_key,
            signing_key,
            ready: AtomicBool::new(false),
            stripe: std::sync::OnceLock::new(),
            threads: std::sync::Mutex::new(Vec::new()),
            stopping: Arc::new(AtomicBool::new(false)),
            _lock: lock,
        });
        crate::handlers::register_all(&rt)?;
        Ok(rt)
    }

    /// Starts the delivery loop, the workflow workers and the timer loop, and queues every
    /// execution that was running when the last process stopped.
    pub fn start(self: &Arc<Self>, workers: usize) -> Result<usize, WorkflowError> {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        // Deliveries run on half as many threads as the workflow host (at least one): on
        // two cores a second delivery thread only contended for the store (alternating
        // `bench bookings` runs, 8 each: +10 % lifecycles/s and -10 % CPU with one).
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| {
                    WorkflowError::Store(crate::store::StoreError::Commit(format!(
                        "cannot start a thread: {e}"
                    )))
                })
        };
        for i in 0..workers.div_ceil(2).max(1) {
            let bus = self.bus.clone();
            threads.push(spawn(
                format!("bus-delivery-{i}"),
                Box::new(move || bus.run_deliveries()),
            )?);
        }
        for i in 0..workers.max(1) {
            let wf = self.workflows.clone();
            threads.push(spawn(
                format!("workflow-worker-{i}"),
                Box::new(move || wf.run_worker()),
            )?);
        }
        let wf = self.workflows.clone();
        threads.push(spawn(
            "workflow-timers".into(),
            Box::new(move || wf.run_timers(Duration::from_millis(50))),
        )?);
        let resumed = self.workflows.enqueue_due(true)?;
        self.bus.notify();
        self.ready.store(true, Ordering::SeqCst);
        Ok(resumed)
    }

    /// Stops the background threads and waits for them.
    pub fn shutdown(&self) {
        self.bus.shutdown();
        self.workflows.shutdown();
        self.stopping.store(true, Ordering::Release);
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        for t in threads.drain(..) {
            let _ = t.join();
        }
        if let Err(e) = self.store.sync() {
            crate::util::log(
                crate::util::Level::Error,
                &format!("last writes not committed at shutdown: {e}"),
                None,
                &[],
            );
        }
    }

    /// Joins `t` at [`Runtime::shutdown`] (it must end once `stopping` is set).
    pub(crate) fn adopt_thread(&self, t: std::thread::JoinHandle<()>) {
        self.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(t);
    }

    /// The data directory's database path.
    pub fn db_path(&self) -> &Path {
        self.store.path()
    }

    /// Resolves one GraphQL root field from its AppSync event: through the
    /// workflow-orchestrator function when one is registered (the Lambda resolver's own
    /// code), otherwise with the built-in resolver over the local host.
    pub fn resolve(&self, field: &str, event: Value, caller: &Caller) -> Result<Value, FieldError> {
        if self.functions.has("workflow-orchestrator") {
            return self
                .functions
                .invoke("workflow-orchestrator", event)
                .map_err(|e| FieldError {
                    error_type: e.error_type,
                    message: e.message,
                });
        }
        Ok(self.builtin_resolve(field, &event["arguments"], caller))
    }

    fn owner_ok(&self, arn: &str, caller: &Caller) -> bool {
        match caller {
            Caller::ApiKey => true,
            c if c.is_admin() => true,
            Caller::User { sub, .. } => {
                self.store
                    .kv_get(&format!("owner:{arn}"))
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some(sub.as_str())
            }
        }
    }

    fn builtin_resolve(&self, field: &str, args: &Value, caller: &Caller) -> Value {
        let s = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
        let fail = |error_type: &str, message: String| json!({"success": false, "error": message, "errorType": error_type});
        let wf_fail = |e: WorkflowError| fail(e.code(), e.to_string());
        let denied = || {
            fail(
                "AccessDeniedException",
                "the caller may not access this execution".to_string(),
            )
        };
        match field {
            "startWorkflow" => {
                let wt = s("workflowType").unwrap_or_default();
                let input: Value = match serde_json::from_str(&s("input").unwrap_or_default()) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => return fail("ValidationException", "input: must be a JSON object".into()),
                };
                let mut input = input;
                let corr = match input.get("correlationId").and_then(Value::as_str) {
                    Some(c) => c.to_string(),
                    None => {
                        let c = util::uuid_v4();
                        input["correlationId"] = json!(c);
                        c
                    }
                };
                let name = s("executionName");
                match self.workflows.start(&wt, name.as_deref(), input, None) {
                    Ok(st) => {
                        if let Caller::User { sub, .. } = caller {
                            let _ = self
                                .store
                                .kv_set(&format!("owner:{}", st.execution_arn), sub);
                        }
                        json!({"success": true, "executionArn": st.execution_arn, "executionName": st.name,
                               "workflowType": wt, "status": "RUNNING", "startDate": st.start_date,
                               "correlationId": corr})
                    }
                    Err(e) => wf_fail(e),
                }
            }
            "getWorkflowStatus" => {
                let arn = s("executionArn").unwrap_or_default();
                if !self.owner_ok(&arn, caller) {
                    return denied();
                }
                match self.workflows.describe(&arn) {
                    Ok(d) => {
                        json!({"success": true, "executionArn": d.execution_arn, "executionName": d.name,
                        "workflowType": d.workflow_type, "status": d.status, "input": d.input.to_string(),
                        "output": d.output.map(|o| o.to_string()), "startDate": d.start_date,
                        "stopDate": d.stop_date, "error": d.cause.clone().or(d.error.clone()),
                        "errorType": d.error, "cause": d.cause})
                    }
                    Err(e) => wf_fail(e),
                }
            }
            "listWorkflowExecutions" => {
                let limit = args.get("limit").and_then(Value::as_i64).unwrap_or(100);
                if !(1..=1000).contains(&limit) {
                    return json!({"success": false, "executions": [], "errorType": "ValidationException",
                                  "error": "limit: must be between 1 and 1000"});
                }
                let offset = match s("nextToken") {
                    None => 0,
                    Some(t) => match t.parse::<usize>() {
                        Ok(n) => n,
                        Err(_) => {
                            return json!({"success": false, "executions": [], "errorType": "InvalidToken",
                                          "error": "nextToken: not a token this API returned"})
                        }
                    },
                };
                let wt = s("workflowType");
                let status = s("status");
                match self.workflows.list(
                    wt.as_deref(),
                    status.as_deref(),
                    limit as usize + 1,
                    offset,
                ) {
                    Ok(mut rows) => {
                        let more = rows.len() > limit as usize;
                        rows.truncate(limit as usize);
                        let rows: Vec<_> = rows
                            .into_iter()
                            .filter(|r| self.owner_ok(&r.execution_arn, caller))
                            .map(|r| {
                                json!({"executionArn": r.execution_arn, "name": r.name,
                                "workflowType": r.workflow_type, "status": r.status,
                                "startDate": r.start_date, "stopDate": r.stop_date})
                            })
                            .collect();
                        json!({"success": true, "executions": rows,
                               "nextToken": more.then(|| (offset + limit as usize).to_string())})
                    }
                    Err(e) => {
                        json!({"success": false, "executions": [], "errorType": e.code(), "error": e.to_string()})
                    }
                }
            }
            "getExecutionHistory" => {
                let arn = s("executionArn").unwrap_or_default();
                if !self.owner_ok(&arn, caller) {
                    return json!({"success": false, "events": [], "errorType": "AccessDeniedException",
                                  "error": "the caller may not access this execution"});
                }
                let limit = args
                    .get("limit")
                    .and_then(Value::as_i64)
                    .unwrap_or(100)
                    .clamp(1, 1000) as usize;
                let offset = s("nextToken")
                    .and_then(|t| t.parse::<usize>().ok())
                    .unwrap_or(0);
                match self.workflows.history(&arn) {
                    Ok(mut h) => {
                        if args.get("reverseOrder").and_then(Value::as_bool) == Some(true) {
                            h.reverse();
                        }
                        let total = h.len();
                        let page: Vec<Value> = h
                            .into_iter()
                            .skip(offset)
                            .take(limit)
                            .map(|e| {
                                let details = e.as_object().and_then(|o| {
                                    o.iter().find(|(k, _)| k.ends_with("EventDetails")).map(|(_, v)| v.clone())
                                });
                                json!({"id": e["id"], "previousEventId": e["previousEventId"],
                                       "type": e["type"], "timestamp": e["timestamp"], "details": details})
                            })
                            .collect();
                        let next = (offset + limit < total).then(|| (offset + limit).to_string());
                        json!({"success": true, "events": page, "nextToken": next})
                    }
                    Err(e) => {
                        json!({"success": false, "events": [], "errorType": e.code(), "error": e.to_string()})
                    }
                }
            }
            "stopWorkflow" => {
                let arn = s("executionArn").unwrap_or_default();
                match self.workflows.stop(&arn, s("error"), s("cause")) {
                    Ok(d) => {
                        json!({"success": true, "executionArn": arn, "status": d.status, "stopDate": d.stop_date})
                    }
                    Err(e) => wf_fail(e),
                }
            }
            "publishEvent" => {
                if matches!(caller, Caller::User { .. }) && !caller.is_admin() {
                    return fail(
                        "AccessDeniedException",
                        "only administrators may publish arbitrary events".into(),
                    );
                }
                let entry = PutEntry {
                    source: s("source"),
                    detail_type: s("detailType"),
                    detail: s("detail"),
                    ..PutEntry::default()
                };
                match self.bus.put_events(&[entry]) {
                    Ok(out) => match out.entries.into_iter().next() {
                        Some(e) if e.error_code.is_none() => {
                            json!({"success": true, "eventId": e.event_id})
                        }
                        Some(e) => {
                            json!({"success": false, "errorType": e.error_code, "error": e.error_message})
                        }
                        None => fail("InternalException", "no result entry".into()),
                    },
                    Err(e) => fail(e.code(), e.to_string()),
                }
            }
            "sendTaskSuccess" => {
                let output: Value = match serde_json::from_str(&s("output").unwrap_or_default()) {
                    Ok(v) => v,
                    Err(e) => return fail("InvalidOutput", format!("output: not JSON: {e}")),
                };
                match self
                    .workflows
                    .send_task_success(&s("taskToken").unwrap_or_default(), output)
                {
                    Ok(()) => json!({"success": true}),
                    Err(e) => wf_fail(e),
                }
            }
            "sendTaskFailure" => {
                match self.workflows.send_task_failure(
                    &s("taskToken").unwrap_or_default(),
                    s("error"),
                    s("cause"),
                ) {
                    Ok(()) => json!({"success": true}),
                    Err(e) => wf_fail(e),
                }
            }
            "resolveDispute" => {
                let payload = json!({"action": "resolveDispute", "disputeId": args["disputeId"],
                    "resolution": args["resolution"], "refundAmount": args["refundAmount"], "notes": args["notes"]});
                match self.functions.invoke("dispute-handler", payload) {
                    Ok(v) => {
                        let mut v = v;
                        if let Some(o) = v.as_object_mut() {
                            o.entry("success").or_insert(json!(true));
                        }
                        v
                    }
                    Err(e) => fail(&e.error_type, e.message),
                }
            }
            other => fail("UnknownField", format!("no resolver for field {other}")),
        }
    }

    /// Logs a start-up summary.
    pub fn log_ready(&self, url: &str, resumed: usize) {
        let stats = self.bus.stats().ok();
        util::log(
            Level::Info,
            "marketplace serve ready",
            None,
            &[
                ("url", json!(url)),
                (
                    "dataDir",
                    json!(self.store.path().parent().map(|p| p.display().to_string())),
                ),
                (
                    "clock",
                    json!(if self.clock.is_virtual() {
                        "virtual"
                    } else {
                        "real"
                    }),
                ),
                ("rules", json!(self.bus.rules().rules.len())),
                ("workflows", json!(self.workflows.machines().len())),
                ("resumedExecutions", json!(resumed)),
                ("archivedEvents", json!(stats.map(|s| s.archived))),
                ("pendingDeliveries", json!(stats.map(|s| s.pending))),
            ],
        );
    }
}
