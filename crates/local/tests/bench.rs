//! `marketplace bench bookings` runs real booking lifecycles end to end and reports them.

use serde_json::Value;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_marketplace"))
        .args(["bench", "bookings"])
        .args(args)
        .env("AWS_LAMBDA_LOG_LEVEL", "ERROR")
        .output()
        .expect("bench runs")
}

/// The result line of a successful run.
fn result(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().expect("a result line")).expect("JSON result")
}

#[test]
fn bench_bookings_runs_every_lifecycle_to_success_and_reports_cpu() {
    let r = result(&bench(&["--count", "20", "--clients", "2"]));
    assert_eq!(r["bookings"], 20);
    assert_eq!(r["succeeded"], 20, "{r}");
    assert!(r["lifecycles_per_second"].as_f64().unwrap_or(0.0) > 0.0);
    // At least nine archived events per lifecycle (booking and payment events, the
    // execution's status changes).
    assert_eq!(
        r["events_archived"].as_u64().map(|n| n >= 9 * 20),
        Some(true),
        "{r}"
    );
    // The measured time includes the lifecycles' last deliveries.
    assert_eq!(r["deliveriesPending"], 0, "{r}");
    if cfg!(target_os = "linux") {
        assert!(r["cpuMsPerLifecycle"].as_f64().is_some(), "{r}");
    }
}

#[test]
fn a_warmed_up_bench_measures_its_own_round_only() {
    let r = result(&bench(&["--count", "10", "--warmup", "6"]));
    assert_eq!(
        (r["bookings"].clone(), r["succeeded"].clone()),
        (10.into(), 10.into()),
        "{r}"
    );
    assert_eq!(r["warmup"], 6);
    // Both rounds ran through the bus: at least nine events for each of the 16 lifecycles.
    assert!(r["events_archived"].as_u64().unwrap_or(0) >= 9 * 16, "{r}");
    // Bad arguments are refused with the rule broken.
    let bad = bench(&["--count", "10", "--warmup", "5000"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--warmup must be 0 to 4000"));
}
