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
        store,
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
