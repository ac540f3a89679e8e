//! `marketplace demo`: starts `marketplace serve` on a virtual clock, drives the four
//! workflows through its GraphQL API and prints the event flow and the outcomes.

use anyhow::{bail, Context as _};
use clap::Args;
use marketplace_local::client::Client;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Arguments of `demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Data directory (default: a new temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const START: &str = "mutation Start($t: WorkflowType!, $i: AWSJSON!, $n: String) {
  startWorkflow(workflowType: $t, input: $i, executionName: $n) {
    success executionArn correlationId error errorType } }";
const STATUS: &str = "query S($a: String!) { getWorkflowStatus(executionArn: $a) {
  success status error errorType cause output } }";

/// Runs the demo.
pub fn run(a: DemoArgs) -> anyhow::Result<i32> {
    let dir = match a.data_dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("marketplace-demo-{}", std::process::id())),
    };
    let exe = std::env::current_exe().context("locating the marketplace binary")?;
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--port",
            "0",
            "--clock",
            "virtual",
            "--log-level",
            "warn",
            "--data-dir",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting marketplace serve")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let server = Server { child };
    let mut url = None;
    let mut key = None;
    for line in BufReader::new(stdout).lines().take(20) {
        let line = line?;
        if let Some(u) = line.strip_prefix("marketplace listening on ") {
            url = Some(u.to_string());
        }
        if let Some(k) = line.strip_prefix("api key: ") {
            key = Some(k.to_string());
        }
        if line.starts_with("ready in") {
            break;
        }
    }
    let (Some(url), Some(key)) = (url, key) else {
        bail!("the server did not start");
    };
    println!("server {url} (data in {}), virtual clock", dir.display());
    let c = Client::new(&url)?.with_header("x-api-key", &key);
    let now = c.get("/admin/clock/now")?.json()["now"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let start = chrono::DateTime::parse_from_rfc3339(&now)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let at = |d: i64, h: u32| {
        let t = (start + chrono::Duration::days(d))
            .date_naive()
            .and_hms_opt(h, 0, 0)
            .unwrap_or_default();
        marketplace_local::util::rfc3339_secs(t.and_utc())
    };
    let flows = [
        (
            "PROVIDER_ONBOARDING",
            json!({
            "providerId": "prv_demo", "email": "provider@example.com", "country": "US",
            "businessType": "individual"}),
        ),
        (
            "BOOKING_LIFECYCLE",
            json!({
            "operation": "BOOK", "serviceId": "svc_demo", "customerId": "cus_demo",
            "providerId": "prv_demo", "startDateTime": at(2, 10), "endDateTime": at(2, 11),
            "amount": 120.5, "currency": "USD"}),
        ),
        (
            "PAYMENT_PROCESSING",
            json!({
            "paymentType": "PAYOUT", "providerId": "prv_demo", "stripeAccountId": "acct_demo",
            "amount": 50, "currency": "USD"}),
        ),
        (
            "DISPUTE_RESOLUTION",
            json!({
            "disputeId": "dsp_demo", "bookingId": "bk_demo", "disputeType": "REFUND_REQUEST",
            "customerId": "cus_demo", "description": "The provider did not show up",
            "requestedRefundAmount": 120.5}),
        ),
    ];
    let mut arns = Vec::new();
    for (wt, input) in &flows {
        let r = c
            .graphql(START, json!({"t": wt, "i": input.to_string()}))?
            .json();
        let s = &r["data"]["startWorkflow"];
        if s["success"] == json!(true) {
            println!(
                "started {wt:<20} {}",
                s["executionArn"].as_str().unwrap_or("")
            );
            arns.push((
                wt.to_string(),
                s["executionArn"].as_str().unwrap_or("").to_string(),
            ));
        } else {
            println!("start of {wt} refused: {} {}", s["errorType"], s["error"]);
        }
    }
    let mut seen = 0i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    for round in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        seen = print_events(&c, seen)?;
        let mut running = 0;
        for (_, arn) in &arns {
            let st = c.graphql(STATUS, json!({"a": arn}))?.json();
            if st["data"]["getWorkflowStatus"]["status"] == json!("RUNNING") {
                running += 1;
            }
        }
        if running == 0 || Instant::now() > deadline {
            break;
        }
        if round < 9 {
            let r = c
                .post("/admin/clock/advance", &json!({"duration": "24h"}))?
                .json();
            println!(
                "-- clock advanced 24h to {}",
                r["now"].as_str().unwrap_or("?")
            );
        }
    }
    print_events(&c, seen)?;
    println!("\noutcomes:");
    let mut failures = 0;
    for (wt, arn) in &arns {
        let st = c.graphql(STATUS, json!({"a": arn}))?.json();
        let s = &st["data"]["getWorkflowStatus"];
        let status = s["status"].as_str().unwrap_or("?");
        if status != "SUCCEEDED" {
            failures += 1;
        }
        println!(
            "  {wt:<20} {status:<10} {}",
            match (s["errorType"].as_str(), s["cause"].as_str()) {
                (Some(e), Some(c)) => format!("{e}: {}", c.chars().take(160).collect::<String>()),
                (Some(e), None) => e.to_string(),
                _ => String::new(),
            }
        );
    }
    let m = c.get("/metrics")?.body;
    let interesting: Vec<&str> = m
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.starts_with("marketplace_events_published_total")
                    || l.starts_with("marketplace_dead_letters_total")
                    || l.starts_with("marketplace_executions_total"))
        })
        .collect();
    println!("\nmetrics:\n  {}", interesting.join("\n  "));
    drop(server);
    let _ = std::fs::remove_file(dir.join("server.json"));
    Ok(if failures == 0 { 0 } else { 1 })
}

fn print_events(c: &Client, after: i64) -> anyhow::Result<i64> {
    let r = c
        .get(&format!("/admin/events?after={after}&limit=500"))?
        .json();
    let mut last = after;
    for e in r["events"].as_array().cloned().unwrap_or_default() {
        last = e["seq"].as_i64().unwrap_or(last);
        let ev = &e["event"];
        let corr = ev["detail"]["correlationId"].as_str().unwrap_or("-");
        let extra: Value = if ev["source"] == json!("aws.states") {
            json!(format!(
                "{} {}",
                ev["detail"]["name"].as_str().unwrap_or(""),
                ev["detail"]["status"].as_str().unwrap_or("")
            ))
        } else {
            json!(corr)
        };
        println!(
            "  event #{last:<4} {:<22} {:<40} {}",
            ev["source"].as_str().unwrap_or(""),
            ev["detail-type"].as_str().unwrap_or(""),
            extra.as_str().unwrap_or("")
        );
    }
    Ok(last)
}
