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
    let mut admin_key = None;
    for line in BufReader::new(stdout).lines().take(20) {
        let line = line?;
        if let Some(u) = line.strip_prefix("marketplace listening on ") {
            url = Some(u.to_string());
        }
        if let Some(k) = line.strip_prefix("api key: ") {
            key = Some(k.to_string());
        }
        if let Some(k) = line.strip_prefix("admin key: ") {
            admin_key = Some(k.to_string());
        }
        if line.starts_with("ready in") {
            break;
        }
    }
    let (Some(url), Some(key), Some(admin_key)) = (url, key, admin_key) else {
        bail!("the server did not start");
    };
    println!("server {url} (data in {}), virtual clock", dir.display());
    // The API key opens GraphQL, the admin key the admin API (seeding, the simulated
    // Stripe's customer actions, the virtual clock): each endpoint reads its own header.
    let c = Client::new(&url)?
        .with_header("x-api-key", &key)
        .with_header("x-admin-key", &admin_key);
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
    let mut seen = 0i64;
    let mut outcomes: Vec<(String, String)> = Vec::new();
    let admin = |path: &str, body: Value| -> anyhow::Result<Value> {
        let r = c.post(path, &body)?;
        if r.status != 200 {
            bail!("{path}: {} {}", r.status, r.body);
        }
        Ok(r.json())
    };
    admin(
        "/admin/seed",
        json!({
        "services": [{"id": "svc_demo", "providerId": "prv_demo", "name": "Deep-tissue massage",
                      "price": 120.5, "currency": "USD", "durationMinutes": 60, "active": true}],
        "users": [
            {"userId": "prv_demo", "email": "provider@example.com", "displayName": "Pat Provider"},
            {"userId": "cus_demo", "email": "customer@example.com", "displayName": "Casey Customer"},
            {"userId": "adm_demo", "email": "ops@example.com", "displayName": "Ops", "groups": ["admin"]}
        ]}),
    )?;
    println!("seeded a service, a provider, a customer and an admin");

    // 1. Provider onboarding, then the provider finishes Stripe's onboarding form.
    let onboarding = start_flow(
        &c,
        "PROVIDER_ONBOARDING",
        json!({
        "providerId": "prv_demo", "email": "provider@example.com", "country": "US",
        "businessType": "individual"}),
    )?;
    let st = wait_done(&c, &onboarding, &mut seen)?;
    outcomes.push(("PROVIDER_ONBOARDING".into(), describe(&st)));
    if let Err(e) = admin(
        "/admin/stripe/complete-onboarding",
        json!({"providerId": "prv_demo"}),
    ) {
        println!("  (onboarding could not be completed: {e})");
    }
    std::thread::sleep(Duration::from_millis(500));
    seen = print_events(&c, seen)?;

    // 2. A booking: payment confirmed by the customer, the service happens, completion.
    let booking = start_flow(
        &c,
        "BOOKING_LIFECYCLE",
        json!({
        "operation": "BOOK", "serviceId": "svc_demo", "customerId": "cus_demo",
        "providerId": "prv_demo", "startDateTime": at(2, 10), "endDateTime": at(2, 11),
        "amount": 120.5, "currency": "USD"}),
    )?;
    let booking_id = booking
        .rsplit(':')
        .next()
        .unwrap_or("")
        .trim_start_matches("booking-")
        .to_string();
    let mut confirmed = false;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        if admin(
            "/admin/stripe/confirm",
            json!({"bookingId": booking_id, "paymentMethod": "pm_card_visa"}),
        )
        .is_ok()
        {
            println!("  customer paid booking {booking_id} with pm_card_visa");
            confirmed = true;
            break;
        }
        if status(&c, &booking)? != "RUNNING" {
            break;
        }
    }
    if !confirmed {
        println!("  (no PaymentIntent to confirm for {booking_id})");
    }
    std::thread::sleep(Duration::from_millis(500));
    seen = print_events(&c, seen)?;
    advance(&c, "3d")?;
    let st = wait_done(&c, &booking, &mut seen)?;
    outcomes.push(("BOOKING_LIFECYCLE".into(), describe(&st)));

    // 3. A payout of the provider's available earnings.
    let account = c
        .get(&format!(
            "/admin/workflows/status?executionArn={}",
            onboarding.replace(':', "%3A")
        ))?
        .json()["output"]["account"]["stripeAccountId"]
        .as_str()
        .unwrap_or("acct_unknown")
        .to_string();
    let payout = start_flow(
        &c,
        "PAYMENT_PROCESSING",
        json!({
        "paymentType": "PAYOUT", "providerId": "prv_demo", "stripeAccountId": account,
        "amount": 10, "currency": "USD"}),
    )?;
    // The bank takes its time: once the workflow waits for the payout webhook, let the
    // 8-minute wait run out on the virtual clock (the payout stays in transit).
    let path = format!(
        "/admin/workflows/status?executionArn={}",
        payout.replace(':', "%3A")
    );
    for _ in 0..50 {
        let d = c.get(&path)?.json();
        if !d["waitingForToken"].is_null() || d["status"] != json!("RUNNING") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    seen = print_events(&c, seen)?;
    advance(&c, "9m")?;
    let st = wait_done(&c, &payout, &mut seen)?;
    outcomes.push(("PAYMENT_PROCESSING".into(), describe(&st)));

    // 4. A dispute about the booking; the provider does not answer within 24 h.
    let dispute = start_flow(
        &c,
        "DISPUTE_RESOLUTION",
        json!({
        "disputeId": "dsp_demo", "bookingId": booking_id, "disputeType": "REFUND_REQUEST",
        "customerId": "cus_demo", "description": "The provider did not show up",
        "requestedRefundAmount": 120.5}),
    )?;
    // The provider's 24-hour window starts when the workflow waits for the response.
    wait_for_token(&c, &dispute)?;
    seen = print_events(&c, seen)?;
    advance(&c, "25h")?;
    seen = print_events(&c, seen)?;
    if status(&c, &dispute)? == "RUNNING" {
        // Escalated: an administrator decides through GraphQL.
        let token = c
            .post(
                "/admin/token/mint",
                &json!({"sub": "adm_demo", "groups": ["admin"]}),
            )?
            .json()["token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let admin_client =
            Client::new(c.url())?.with_header("authorization", &format!("Bearer {token}"));
        // The decision is taken as soon as the dispute is escalated (until then it is
        // refused as not escalated yet): ask again for a few seconds.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = admin_client
                .graphql(
                    "mutation { resolveDispute(disputeId: \"dsp_demo\", resolution: REFUNDED, refundAmount: 120.5, notes: \"No-show confirmed\") { success error errorType refundAmount currency } }",
                    json!({}),
                )?
                .json();
            let answer = r["data"]["resolveDispute"].clone();
            if answer["success"] == json!(true)
                || Instant::now() > deadline
                || status(&c, &dispute)? != "RUNNING"
            {
                println!("  admin resolveDispute: {answer}");
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let st = wait_done(&c, &dispute, &mut seen)?;
    outcomes.push(("DISPUTE_RESOLUTION".into(), describe(&st)));

    print_events(&c, seen)?;
    println!("\noutcomes:");
    let mut failures = 0;
    for (wt, o) in &outcomes {
        if !o.starts_with("SUCCEEDED") {
            failures += 1;
        }
        println!("  {wt:<20} {o}");
    }
    let outbox = c.get("/admin/outbox")?.json();
    println!(
        "\nnotifications in the outbox: {}",
        outbox["messages"].as_array().map_or(0, Vec::len)
    );
    for m in outbox["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .take(12)
    {
        println!(
            "  to {:<24} {}",
            m["to"][0].as_str().unwrap_or(""),
            m["subject"].as_str().unwrap_or("")
        );
    }
    let m = c.get("/metrics")?.body;
    let failures = failures;
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

fn start_flow(c: &Client, wt: &str, input: Value) -> anyhow::Result<String> {
    let r = c
        .graphql(START, json!({"t": wt, "i": input.to_string()}))?
        .json();
    let s = &r["data"]["startWorkflow"];
    if s["success"] != json!(true) {
        bail!("start of {wt} refused: {} {}", s["errorType"], s["error"]);
    }
    let arn = s["executionArn"].as_str().unwrap_or("").to_string();
    println!("\nstarted {wt} {arn}");
    Ok(arn)
}

fn status(c: &Client, arn: &str) -> anyhow::Result<String> {
    let st = c.graphql(STATUS, json!({"a": arn}))?.json();
    Ok(st["data"]["getWorkflowStatus"]["status"]
        .as_str()
        .unwrap_or("?")
        .to_string())
}

fn advance(c: &Client, d: &str) -> anyhow::Result<()> {
    let r = c
        .post("/admin/clock/advance", &json!({"duration": d}))?
        .json();
    println!(
        "  -- clock advanced {d} to {}",
        r["now"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Waits (up to 15 s) until the execution waits for a task token or has ended. A step
/// retried after a passing failure (see [`wait_done`]) waits on the clock: after 2 s
/// without reaching the token, the virtual clock is moved on a minute.
fn wait_for_token(c: &Client, arn: &str) -> anyhow::Result<()> {
    let path = format!(
        "/admin/workflows/status?executionArn={}",
        arn.replace(':', "%3A")
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut idle_since = Instant::now();
    while Instant::now() < deadline {
        let d = c.get(&path)?.json();
        if !d["waitingForToken"].is_null() || d["status"] != json!("RUNNING") {
            break;
        }
        if idle_since.elapsed() > Duration::from_secs(2) {
            let _ = c.post("/admin/clock/advance", &json!({"duration": "1m"}));
            idle_since = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Waits (up to 30 s) until the execution has ended. A step that failed for a passing
/// reason (two deliveries of one notification racing for its idempotency key) waits for
/// its Retry on the clock: while the execution neither ends nor waits for a token, a
/// virtual clock is moved on a minute at a time so that such retries come due (a real
/// clock refuses the advance, which is ignored).
fn wait_done(c: &Client, arn: &str, seen: &mut i64) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = format!(
        "/admin/workflows/status?executionArn={}",
        arn.replace(':', "%3A")
    );
    let mut idle_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(150));
        *seen = print_events(c, *seen)?;
        let st = c.graphql(STATUS, json!({"a": arn}))?.json();
        let s = st["data"]["getWorkflowStatus"].clone();
        if s["status"] != json!("RUNNING") || Instant::now() > deadline {
            return Ok(s);
        }
        let d = c.get(&path)?.json();
        if !d["waitingForToken"].is_null() {
            idle_since = Instant::now();
        } else if idle_since.elapsed() > Duration::from_secs(2) {
            let _ = c.post("/admin/clock/advance", &json!({"duration": "1m"}));
            idle_since = Instant::now();
        }
    }
}

fn describe(s: &Value) -> String {
    let status = s["status"].as_str().unwrap_or("?");
    match (s["errorType"].as_str(), s["cause"].as_str()) {
        (Some(e), Some(c)) => format!(
            "{status:<10} {e}: {}",
            c.chars().take(140).collect::<String>()
        ),
        (Some(e), None) => format!("{status:<10} {e}"),
        _ => status.to_string(),
    }
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
