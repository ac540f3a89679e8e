//! `marketplace bench`: throughput measurements of the embedded runtime (numbers for
//! BENCHMARKS.md), in process, on a temporary data directory.

use clap::{Args, Subcommand};
use marketplace_local::bus::{Bus, PutEntry};
use marketplace_local::clock::RuntimeClock;
use marketplace_local::functions::Functions;
use marketplace_local::metrics::Metrics;
use marketplace_local::rules::Rules;
use marketplace_local::store::Store;
use marketplace_local::workflows::{substitute, Machine, Workflows};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// PutEvents throughput with N rules and the durable archive (one transaction per call).
    PutEvents(PutArgs),
    /// Workflow executions through the durable host (every run persisted).
    Workflows(WfArgs),
    /// Complete booking lifecycles through the real handlers: start (orchestrator),
    /// validation, slot, PaymentIntent, customer payment, webhook, confirmation,
    /// notifications, completion after the service ends, earnings released.
    Bookings(BookingArgs),
}

/// Arguments of `bench bookings`.
#[derive(Args)]
pub struct BookingArgs {
    /// Bookings (one-hour slots of one provider, so at most 4000).
    #[arg(long, default_value_t = 500)]
    count: usize,
    /// Worker threads of the workflow host.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Lifecycles run first, unmeasured, in the same process (a server that has been
    /// running: its memory and caches warm).
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Customer threads: each starts and pays for its share of the bookings, as concurrent
    /// customers would.
    #[arg(long, default_value_t = 2)]
    clients: usize,
}

/// Arguments of `bench put-events`.
#[derive(Args)]
pub struct PutArgs {
    /// Number of rules (each event matches one of them).
    #[arg(long, default_value_t = 20)]
    rules: usize,
    /// Events to publish.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Entries per PutEvents call (1 to 10).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Publishing threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Data directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Arguments of `bench workflows`.
#[derive(Args)]
pub struct WfArgs {
    /// Executions to run.
    #[arg(long, default_value_t = 2_000)]
    executions: usize,
    /// Executions started before the workers drain them (executions in flight).
    #[arg(long, default_value_t = 100)]
    in_flight: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "marketplace-bench-{name}-{}-{}",
        std::process::id(),
        marketplace_local::util::random_hex(4)
    ))
}

fn rules_doc(n: usize) -> Value {
    let rules: Vec<Value> = (0..n)
        .map(|i| {
            json!({"name": format!("rule-{i}"),
                   "pattern": {"source": ["bench.app"], "detail": {"kind": [format!("k{i}")], "amount": [{"numeric": [">", 0]}]}},
                   "targets": [{"id": "t", "type": "lambda", "function": "notification-handler",
                       "retryPolicy": {"maximumRetryAttempts": 3, "maximumEventAgeInSeconds": 3600},
                       "deadLetterQueue": "q"}]})
        })
        .collect();
    json!({"eventBus": {"name": "bench"}, "deadLetterQueues": [{"name": "q"}], "rules": rules})
}

/// Runs a benchmark and prints one JSON object.
pub fn run(cmd: BenchCommand) -> anyhow::Result<i32> {
    marketplace_local::util::set_log_level("warn");
    match cmd {
        BenchCommand::PutEvents(a) => put_events(a),
        BenchCommand::Workflows(a) => workflows(a),
        BenchCommand::Bookings(a) => bookings(a),
    }
}

fn put_events(a: PutArgs) -> anyhow::Result<i32> {
    anyhow::ensure!((1..=10).contains(&a.batch), "--batch must be 1 to 10");
    anyhow::ensure!(a.rules >= 1, "--rules must be at least 1");
    let (dir, remove) = match a.data_dir {
        Some(d) => (d, false),
        None => (temp_dir("put"), true),
    };
    let store = Arc::new(Store::open_dir(&dir)?);
    let rules = Arc::new(Rules::parse(&rules_doc(a.rules).to_string())?);
    let bus = Arc::new(Bus::new(
        store.clone(),
        rules,
        Arc::new(RuntimeClock::Real),
        Arc::new(Metrics::default()),
        Arc::new(Functions::default()),
    ));
    let per_thread = a.events / a.threads.max(1);
    let started = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..a.threads.max(1))
            .map(|t| {
                let bus = bus.clone();
                let store = store.clone();
                let (batch, rules) = (a.batch, a.rules);
                s.spawn(move || -> anyhow::Result<()> {
                    let mut i = 0;
                    while i < per_thread {
                        let n = batch.min(per_thread - i);
                        let entries: Vec<PutEntry> = (0..n)
                            .map(|k| PutEntry {
                                source: Some("bench.app".into()),
                                detail_type: Some("Bench".into()),
                                detail: Some(
                                    json!({"kind": format!("k{}", (i + k) % rules), "amount": 10, "thread": t, "n": i + k})
                                        .to_string(),
                                ),
                                ..PutEntry::default()
                            })
                            .collect();
                        let out = bus.put_events(&entries)?;
                        anyhow::ensure!(out.failed_entry_count == 0, "entries failed: {:?}", out.entries);
                        // The acknowledgement (an HTTP response in `serve`) waits for the commit.
                        store.sync()?;
                        i += n;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
        }
        Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    let stats = bus.stats()?;
    let total = per_thread * a.threads.max(1);
    println!(
        "{}",
        json!({"rules": a.rules, "events": total, "batch": a.batch, "threads": a.threads,
               "seconds": secs, "events_per_second": total as f64 / secs,
               "archived": stats.archived, "deliveries_written": stats.pending})
    );
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(0)
}

fn workflows(a: WfArgs) -> anyhow::Result<i32> {
    let dir = temp_dir("wf");
    let store = Arc::new(Store::open_dir(&dir)?);
    let clock = Arc::new(RuntimeClock::Real);
    let metrics = Arc::new(Metrics::default());
    let functions = Arc::new(Functions::default());
    let bus = Arc::new(Bus::new(
        store.clone(),
        Arc::new(Rules::parse(&rules_doc(1).to_string())?),
        clock.clone(),
        metrics.clone(),
        functions.clone(),
    ));
    // A small business-like flow: input shaping, a published event, a choice, a result.
    let def = json!({
        "StartAt": "Shape",
        "States": {
            "Shape": {"Type": "Pass", "Parameters": {"id.$": "$.id", "amount.$": "$.amount", "fee.$": "States.MathAdd($.amount, -1)"}, "Next": "Publish"},
            "Publish": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
                "Parameters": {"Entries": [{"Source": "bench.wf", "DetailType": "Step", "Detail": {"id.$": "$.id"}, "EventBusName": "${EventBusName}"}]},
                "ResultPath": "$.published", "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.amount", "NumericGreaterThan": 0, "Next": "Done"}], "Default": "Bad"},
            "Bad": {"Type": "Fail", "Error": "Bench.Bad"},
            "Done": {"Type": "Succeed"}
        }
    });
    let text = substitute("bench", &def.to_string(), "bench")?;
    let machine = Machine {
        name: "ecosystem-bench".into(),
        workflow_type: "BENCH".into(),
        definition: asl::parse_definition_text(&text)?,
    };
    let host = Arc::new(Workflows::new(
        store,
        clock,
        metrics,
        functions,
        bus.clone(),
        vec![machine],
    ));
    let workers: Vec<_> = (0..a.workers.max(1))
        .map(|_| {
            let h = host.clone();
            std::thread::spawn(move || h.run_worker())
        })
        .collect();
    let started = Instant::now();
    let mut done = 0;
    let mut n = 0;
    while done < a.executions {
        let k = a.in_flight.max(1).min(a.executions - done);
        let mut arns = Vec::with_capacity(k);
        for _ in 0..k {
            let s = host.start(
                "BENCH",
                Some(&format!("e-{n}")),
                json!({"id": n, "amount": 10}),
                None,
            )?;
            arns.push(s.execution_arn);
            n += 1;
        }
        // Wait until this wave is finished.
        let deadline = Instant::now() + std::time::Duration::from_secs(600);
        for arn in &arns {
            loop {
                if host.describe(arn)?.status != "RUNNING" {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "executions did not finish in time"
                );
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        done += k;
    }
    let secs = started.elapsed().as_secs_f64();
    host.shutdown();
    for w in workers {
        let _ = w.join();
    }
    let succeeded = host
        .list(Some("BENCH"), Some("SUCCEEDED"), 1_000_000, 0)?
        .len();
    let transitions = 5.0;
    println!(
        "{}",
        json!({"executions": a.executions, "in_flight": a.in_flight, "workers": a.workers,
               "succeeded": succeeded, "seconds": secs,
               "executions_per_second": a.executions as f64 / secs,
               "state_transitions_per_second": a.executions as f64 * transitions / secs,
               "events_published": bus.stats()?.archived})
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(0)
}

fn start_event(workflow_type: &str, input: &Value) -> Value {
    json!({
        "arguments": {"workflowType": workflow_type, "input": input.to_string()},
        "identity": null,
        "source": null,
        "request": {"headers": {}},
        "info": {"fieldName": "startWorkflow", "parentTypeName": "Mutation", "variables": {}, "selectionSetList": []},
        "prev": null,
        "stash": {},
    })
}

/// The longest stretch of virtual time [`settle`] lets pass at once (retry intervals of
/// the workflows are at most a minute).
const MAX_SKIP_MS: i64 = 300_000;

/// Waits until `f` holds. When nothing has run for a while (no execution queued) while
/// executions rest on timers of the virtual clock — a retry interval after a transient
/// task error, say — time passes to the next such timer, as it would on the real clock.
/// (Task-token waits are never hurried: their timeouts are part of what is measured.)
fn settle(
    rt: &marketplace_local::runtime::Runtime,
    secs: u64,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(secs);
    let mut idle_since = Instant::now();
    let mut last_done = rt.workflows.runs_done();
    while !f()? {
        anyhow::ensure!(Instant::now() < deadline, "not reached within {secs} s");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let done = rt.workflows.runs_done();
        if done != last_done || rt.workflows.queued() > 0 {
            last_done = done;
            idle_since = Instant::now();
        } else if idle_since.elapsed() > std::time::Duration::from_millis(250) {
            let now = rt.clock.now_ms();
            // Retry intervals are short; a later timer (a booking's service end) is left
            // to the measured flow.
            if let Some(wake) = rt
                .workflows
                .next_timer_ms()?
                .filter(|w| *w - now <= MAX_SKIP_MS)
            {
                if wake > now {
                    rt.clock
                        .advance(((wake - now) as u64).div_ceil(1000))
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                rt.workflows.enqueue_due(false)?;
            }
            idle_since = Instant::now();
        }
    }
    Ok(())
}

/// Describes why a wait did not end: how many executions are in which state, and the
/// first few that are still running with where they rest.
fn stuck(
    rt: &marketplace_local::runtime::Runtime,
    arns: &[String],
    e: anyhow::Error,
) -> anyhow::Error {
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    let mut running = Vec::new();
    for arn in arns {
        match rt.workflows.describe(arn) {
            Ok(d) => {
                *by_status.entry(d.status.clone()).or_default() += 1;
                if d.status == "RUNNING" && running.len() < 5 {
                    let last = rt
                        .workflows
                        .history(arn)
                        .ok()
                        .and_then(|h| h.last().map(|l| l["type"].clone()));
                    running.push(
                        json!({"arn": arn, "waitingState": d.waiting_state, "lastEvent": last}),
                    );
                }
            }
            Err(err) => *by_status.entry(format!("error: {err}")).or_default() += 1,
        }
    }
    anyhow::anyhow!(
        "{e}: executions by status {by_status:?}; queued {}; next timer at {:?} (clock {}); first running: {}",
        rt.workflows.queued(),
        rt.workflows.next_timer_ms().ok().flatten(),
        rt.clock.now_ms(),
        Value::Array(running)
    )
}

/// CPU seconds (user + system) the process used so far, from `/proc/self/stat` (clock
/// ticks of 10 ms); `None` where that file does not exist.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// What one measured round of `bench bookings` saw.
struct Round {
    succeeded: usize,
    secs: f64,
    cpu: Option<f64>,
    t_started: f64,
    t_paid: f64,
    t_rest: f64,
}

/// Runs `count` booking lifecycles (ids `bk_b{round}x{i}`, one-hour slots from the next
/// day on) to completion and measures them.
fn round(
    rt: &marketplace_local::runtime::Runtime,
    sim: &marketplace_ports::stripe_sim::SimulatedStripe,
    count: usize,
    clients: usize,
    round: usize,
) -> anyhow::Result<Round> {
    use marketplace_local::handlers::block_on;
    use marketplace_ports::payments::PaymentGateway;
    let day0 = (rt.clock.now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let started = Instant::now();
    let cpu0 = process_cpu_seconds();
    // Customer k books slots k, k + clients, … and pays for them as soon as each
    // PaymentIntent exists (all bookings of a customer first, then the payments).
    let shares: Vec<Vec<usize>> = (0..clients)
        .map(|k| (k..count).step_by(clients).collect())
        .collect();
    let t_started = std::sync::Mutex::new(0.0_f64);
    let results: Vec<anyhow::Result<Vec<(usize, String)>>> = std::thread::scope(|sc| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| {
                let (rt, sim, t_started) = (rt, sim, &t_started);
                sc.spawn(move || -> anyhow::Result<Vec<(usize, String)>> {
                    let mut mine = Vec::with_capacity(share.len());
                    for &i in share {
                        let start = day0 + chrono::Duration::hours(i as i64);
                        let input = json!({"operation": "BOOK", "bookingId": format!("bk_b{round}x{i}"), "serviceId": "svc_b",
                            "customerId": "cus_b", "providerId": "prv_b",
                            "startDateTime": marketplace_local::util::rfc3339_secs(start),
                            "endDateTime": marketplace_local::util::rfc3339_secs(start + chrono::Duration::hours(1)),
                            "amount": 100, "currency": "USD"});
                        let out = rt
                            .functions
                            .invoke(
                                "workflow-orchestrator",
                                start_event("BOOKING_LIFECYCLE", &input),
                            )
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        anyhow::ensure!(out["success"] == json!(true), "start refused: {out}");
                        mine.push((i, out["executionArn"].as_str().unwrap_or_default().to_string()));
                    }
                    {
                        let mut t = t_started.lock().unwrap_or_else(|p| p.into_inner());
                        *t = t.max(started.elapsed().as_secs_f64());
                    }
                    // The customer pays as soon as the PaymentIntent exists.
                    for &i in share {
                        let booking = format!("bk_b{round}x{i}");
                        let mut pi = None;
                        // (The id alone, as the customer's app would get it from the
                        // booking response; the repository would parse the whole record.)
                        settle(rt, 120, || {
                            use rusqlite::OptionalExtension;
                            pi = rt
                                .store
                                .lock()
                                .prepare_cached(
                                    "SELECT id FROM records WHERE kind = 'payment' AND k1 = ?1 LIMIT 1",
                                )?
                                .query_row([&booking], |r| r.get::<_, String>(0))
                                .optional()?;
                            Ok(pi.is_some())
                        })?;
                        let pi = pi.unwrap_or_default();
                        block_on(sim.confirm_payment_intent(&pi, Some("pm_card_visa"), &format!("bench-{pi}")))
                            .ok_or_else(|| anyhow::anyhow!("executor"))?
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    Ok(mine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a customer thread panicked")))
            })
            .collect()
    });
    let mut arns = vec![String::new(); count];
    for r in results {
        for (i, arn) in r? {
            arns[i] = arn;
        }
    }
    let t_started = *t_started.lock().unwrap_or_else(|p| p.into_inner());
    let t_paid = started.elapsed().as_secs_f64();
    // Every booking is confirmed and waits for its service to end; then time passes.
    // (Executions are checked in order from the first one not yet seen at rest.)
    let mut next = 0;
    settle(rt, 300, || {
        while next < arns.len() {
            let (status, waits_for_token) = rt.workflows.status(&arns[next])?;
            if status == "RUNNING" && waits_for_token {
                return Ok(false);
            }
            next += 1;
        }
        Ok(true)
    })
    .map_err(|e| stuck(rt, &arns, e))?;
    let t_rest = started.elapsed().as_secs_f64();
    rt.clock
        .advance(((count as u64) + 48) * 3600)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    rt.workflows.enqueue_due(false)?;
    let mut next = 0;
    settle(rt, 600, || {
        while next < arns.len() {
            if rt.workflows.status(&arns[next])?.0 == "RUNNING" {
                return Ok(false);
            }
            next += 1;
        }
        Ok(true)
    })
    .map_err(|e| stuck(rt, &arns, e))?;
    // The lifecycles' last events (the booking's completion notice, the workflow's
    // status change) are delivered too before the clock stops.
    settle(rt, 120, || {
        Ok(rt.workflows.queued() == 0 && !rt.bus.has_due().map_err(|e| anyhow::anyhow!("{e}"))?)
    })
    .map_err(|e| e.context("deliveries still due"))?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let succeeded = arns
        .iter()
        .filter(|arn| {
            rt.workflows
                .describe(arn)
                .map(|d| d.status == "SUCCEEDED")
                .unwrap_or(false)
        })
        .count();
    Ok(Round {
        succeeded,
        secs,
        cpu,
        t_started,
        t_paid,
        t_rest,
    })
}

fn bookings(a: BookingArgs) -> anyhow::Result<i32> {
    use marketplace_local::handlers::block_on;
    use marketplace_ports::store::{ProviderRepository, ServiceRepository};
    anyhow::ensure!((1..=4000).contains(&a.count), "--count must be 1 to 4000");
    anyhow::ensure!(a.warmup <= 4000, "--warmup must be 0 to 4000");
    // Handlers log at WARN during the measurement (set before any thread starts).
    if std::env::var_os("AWS_LAMBDA_LOG_LEVEL").is_none() {
        std::env::set_var("AWS_LAMBDA_LOG_LEVEL", "WARN");
    }
    let dir = temp_dir("bookings");
    let rt = marketplace_local::runtime::Runtime::open(&marketplace_local::runtime::Config {
        data_dir: dir.clone(),
        rules_file: None,
        statemachines_dir: None,
        virtual_clock: true,
        api_key: Some("bench".into()),
        workers: a.workers,
    })?;
    rt.start(a.workers)?;
    let ports = marketplace_local::adapters::SqlitePorts::new(rt.store.clone());
    let sim = rt
        .stripe
        .get()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no simulated Stripe"))?;
    let service: marketplace_domain::entities::Service = serde_json::from_value(json!({
        "id": "svc_b", "providerId": "prv_b", "name": "Bench", "price": 100, "currency": "USD",
        "durationMinutes": 60, "active": true}))?;
    block_on(ports.put_service(&service)).ok_or_else(|| anyhow::anyhow!("executor"))??;
    for (id, email) in [("prv_b", "p@example.com"), ("cus_b", "c@example.com")] {
        ports.put_user(
            &marketplace_ports::store::UserContact {
                user_id: id.into(),
                email: email.into(),
                display_name: id.into(),
            },
            &[],
        )?;
    }
    // Onboard the provider and let Stripe enable charges.
    let onboarding = rt
        .functions
        .invoke(
            "workflow-orchestrator",
            start_event(
                "PROVIDER_ONBOARDING",
                &json!({"providerId": "prv_b", "email": "p@example.com", "country": "US"}),
            ),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let onboarding = vec![onboarding["executionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string()];
    let account = {
        let mut acct = None;
        settle(&rt, 30, || {
            acct = block_on(ports.get_provider("prv_b"))
                .and_then(|r| r.ok())
                .flatten()
                .and_then(|p| {
                    p.value
                        .provider
                        .stripe_account_id()
                        .map(|a| a.as_str().to_string())
                });
            Ok(acct.is_some())
        })
        .map_err(|e| stuck(&rt, &onboarding, e.context("the provider's Stripe account")))?;
        acct.unwrap_or_default()
    };
    sim.complete_onboarding(&account)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    settle(&rt, 30, || {
        Ok(block_on(ports.get_provider("prv_b"))
            .and_then(|r| r.ok())
            .flatten()
            .is_some_and(|p| p.value.charges_enabled))
    })
    .map_err(|e| {
        let undelivered = sim.undelivered_webhooks().len();
        stuck(
            &rt,
            &onboarding,
            e.context(format!(
                "charges enabled ({undelivered} webhooks undelivered)"
            )),
        )
    })?;
    let clients = a.clients.clamp(1, 16);
    if a.warmup > 0 {
        // Unmeasured: the process reaches the memory and caches of a running server.
        round(&rt, &sim, a.warmup, clients, 0)?;
    }
    let r = round(&rt, &sim, a.count, clients, 1)?;
    let stats = rt.bus.stats()?;
    println!(
        "{}",
        json!({"bookings": a.count, "succeeded": r.succeeded, "seconds": r.secs,
               "lifecycles_per_second": r.succeeded as f64 / r.secs,
               "workers": a.workers, "clients": clients, "warmup": a.warmup,
               "phases": {"lastCustomerDoneStarting": r.t_started, "allPaid": r.t_paid, "allAtRest": r.t_rest},
               "commits": rt.store.commits(),
               "workflowRuns": rt.workflows.runs_done(),
               "cpuSeconds": r.cpu,
               "cpuMsPerLifecycle": r.cpu.map(|c| 1000.0 * c / a.count as f64),
               "events_archived": stats.archived, "deliveries": stats.delivered + stats.pending + stats.dead,
               "deliveriesPending": stats.pending})
    );
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(0)
}
