//! Helpers of the end-to-end tests: spawn `marketplace serve` on 127.0.0.1 with a free
//! port and a temporary data directory, talk to it over HTTP, stop it.
#![allow(dead_code)]

use marketplace_local::client::Client;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_marketplace");

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let mut d = std::env::temp_dir();
        d.push(format!(
            "mkt-e2e-{name}-{}-{}",
            std::process::id(),
            marketplace_local::util::random_hex(4)
        ));
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub api_key: String,
    pub admin_key: String,
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts `serve --port 0 --data-dir DIR --clock virtual` plus `extra` arguments and
    /// waits (at most 20 s) for /health.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
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
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn marketplace serve");
        let out = child.stdout.take().expect("stdout");
        let mut url = String::new();
        let mut api_key = String::new();
        let mut admin_key = String::new();
        for line in BufReader::new(out).lines().take(10) {
            let line = line.expect("line");
            if let Some(u) = line.strip_prefix("marketplace listening on ") {
                url = u.to_string();
            }
            if let Some(k) = line.strip_prefix("api key: ") {
                api_key = k.to_string();
            }
            if let Some(k) = line.strip_prefix("admin key: ") {
                admin_key = k.to_string();
            }
            if line.starts_with("ready in") {
                break;
            }
        }
        assert!(!url.is_empty(), "the server did not print its URL");
        let s = Server {
            child,
            url,
            api_key,
            admin_key,
            data_dir: data_dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = s.anon().get("/health") {
                if r.status == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "server not healthy in time");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// A client without credentials.
    pub fn anon(&self) -> Client {
        Client::new(&self.url).expect("client")
    }

    /// A client with the API key.
    pub fn client(&self) -> Client {
        self.anon().with_header("x-api-key", &self.api_key)
    }

    /// A client of the admin API (the admin key).
    pub fn admin(&self) -> Client {
        self.anon().with_header("x-admin-key", &self.admin_key)
    }

    /// A client with a bearer token.
    pub fn with_token(&self, token: &str) -> Client {
        self.anon()
            .with_header("authorization", &format!("Bearer {token}"))
    }

    /// kill -9.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args([
                "--url",
                &self.url,
                "--api-key",
                &self.api_key,
                "--admin-key",
                &self.admin_key,
            ])
            .output()
            .expect("run marketplace")
    }

    /// Polls `f` until it returns Some (at most `secs` seconds).
    pub fn wait_for<T>(&self, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "condition not reached in {secs} s"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Like [`Server::wait_for`], but lets time pass while waiting: after the first second,
    /// the virtual clock moves 2 s every half second, so a task retried with backoff (e.g.
    /// after a transient conflict between two deliveries) runs as it would on a real clock.
    /// At most 4 virtual minutes pass in 60 s of waiting: no business timer (15 min and
    /// more) is reached by it.
    pub fn wait_timed<T>(&self, secs: u64, f: impl FnMut() -> Option<T>) -> T {
        match self.poll_timed(secs, f) {
            Some(v) => v,
            None => panic!("condition not reached in {secs} s"),
        }
    }

    /// [`Server::wait_timed`] returning None at the deadline.
    pub fn poll_timed<T>(&self, secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(secs);
        let mut last_nudge = start + Duration::from_millis(500);
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            if now.duration_since(last_nudge) >= Duration::from_millis(500) {
                let r = self
                    .admin()
                    .post("/admin/clock/advance", &json!({"duration": "2s"}))
                    .expect("advance");
                assert_eq!(r.status, 200, "{}", r.body);
                last_nudge = now;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// An admin GET returning JSON.
    pub fn admin_get(&self, path: &str) -> Value {
        let r = self.admin().get(path).expect("admin get");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }

    /// An admin POST returning JSON.
    pub fn admin_post(&self, path: &str, body: Value) -> Value {
        let r = self.admin().post(path, &body).expect("admin post");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }

    /// Every archived event.
    pub fn archive(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.admin_get(&format!("/admin/events?after={after}&limit=1000"));
            let items = page["events"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return out;
            }
            for e in items {
                after = e["seq"].as_i64().unwrap_or(after);
                out.push(e["event"].clone());
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the four state machine files (all the same definition) into `dir`.
pub fn write_machines(dir: &Path, definition: &Value) {
    for f in [
        "booking-lifecycle.asl.json",
        "payment-processing.asl.json",
        "dispute-resolution.asl.json",
        "provider-onboarding.asl.json",
    ] {
        std::fs::write(dir.join(f), definition.to_string()).expect("write machine");
    }
}

/// A machine that waits an hour, then publishes `test.resumed` / `Resumed`.
pub fn timer_machine() -> Value {
    json!({
        "StartAt": "Sleep",
        "States": {
            "Sleep": {"Type": "Wait", "Seconds": 3600, "Next": "Publish"},
            "Publish": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
                "Parameters": {"Entries": [{"Source": "test.resumed", "DetailType": "Resumed",
                    "Detail": {"name.$": "$$.Execution.Name"}, "EventBusName": "${EventBusName}"}]},
                "ResultPath": null, "End": true}
        }
    })
}

/// A rules file routing `test.load` events to the notification handler.
pub fn load_rules() -> Value {
    json!({
        "eventBus": {"name": "ecosystem-marketplace-events"},
        "deadLetterQueues": [{"name": "q"}],
        "rules": [{
            "name": "load-to-notifications",
            "pattern": {"source": ["test.load"]},
            "targets": [{"id": "n", "type": "lambda", "function": "notification-handler",
                "retryPolicy": {"maximumRetryAttempts": 3, "maximumEventAgeInSeconds": 3600},
                "deadLetterQueue": "q"}]
        }]
    })
}

/// The GraphQL mutation starting a workflow.
pub const START_WORKFLOW: &str = "mutation($t: WorkflowType!, $i: AWSJSON!, $n: String) {
  startWorkflow(workflowType: $t, input: $i, executionName: $n) { success executionArn executionName status correlationId errorType error } }";

/// The GraphQL query of an execution's status.
pub const WORKFLOW_STATUS: &str = "query($a: String!) { getWorkflowStatus(executionArn: $a) {
  success status error errorType cause output } }";

impl Server {
    /// Starts a workflow over GraphQL with the API key; returns (executionArn, correlationId).
    pub fn start_workflow(&self, wt: &str, input: Value) -> (String, String) {
        let r = self
            .client()
            .graphql(START_WORKFLOW, json!({"t": wt, "i": input.to_string()}))
            .expect("startWorkflow")
            .json();
        let s = &r["data"]["startWorkflow"];
        assert_eq!(s["success"], true, "start {wt}: {r}");
        (
            s["executionArn"].as_str().unwrap_or_default().to_string(),
            s["correlationId"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// getWorkflowStatus over GraphQL.
    pub fn status(&self, arn: &str) -> Value {
        let r = self
            .client()
            .graphql(WORKFLOW_STATUS, json!({"a": arn}))
            .expect("getWorkflowStatus")
            .json();
        r["data"]["getWorkflowStatus"].clone()
    }

    /// Waits (at most 50 s of real time, letting time pass) until the execution is no
    /// longer RUNNING.
    pub fn wait_done(&self, arn: &str) -> Value {
        let found = self.poll_timed(50, || {
            let s = self.status(arn);
            (s["status"] != json!("RUNNING")).then_some(s)
        });
        found.unwrap_or_else(|| panic!("{arn} still RUNNING after 50 s: {}", self.diagnose(arn)))
    }

    /// Waits (at most 50 s, letting time pass) until the execution waits for a task token;
    /// on timeout the panic shows the execution and its last history events.
    pub fn wait_token(&self, arn: &str) -> String {
        let found = self.poll_timed(50, || {
            self.describe(arn)["waitingForToken"]
                .as_str()
                .map(str::to_string)
        });
        found.unwrap_or_else(|| {
            panic!(
                "{arn} not waiting for a token after 50 s: {}",
                self.diagnose(arn)
            )
        })
    }

    /// The execution's description and its last six history events, for failure messages.
    pub fn diagnose(&self, arn: &str) -> String {
        let h = self.admin_get(&format!(
            "/admin/workflows/history?executionArn={}",
            arn.replace(':', "%3A")
        ));
        let events = h["events"].as_array().cloned().unwrap_or_default();
        let tail: Vec<&Value> = events.iter().rev().take(6).collect();
        format!("{}\nlast history events: {tail:?}", self.describe(arn))
    }

    /// The admin description of an execution (includes `waitingForToken`).
    pub fn describe(&self, arn: &str) -> Value {
        self.admin_get(&format!(
            "/admin/workflows/status?executionArn={}",
            arn.replace(':', "%3A")
        ))
    }

    /// Advances the virtual clock through the CLI.
    pub fn advance(&self, d: &str) {
        let o = self.cli(&["clock", "advance", d]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// The virtual clock's current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let v = self.admin_get("/admin/clock/now");
        chrono::DateTime::parse_from_rfc3339(v["now"].as_str().unwrap_or_default())
            .expect("clock time")
            .with_timezone(&chrono::Utc)
    }

    /// The notifications sent (the outbox).
    pub fn outbox(&self) -> Vec<Value> {
        self.admin_get("/admin/outbox")["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Archived events of the marketplace (not the Step Functions status changes).
    pub fn business_events(&self) -> Vec<Value> {
        self.archive()
            .into_iter()
            .filter(|e| {
                e["source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("marketplace.") && s != "marketplace.workflow")
            })
            .collect()
    }

    /// Waits until an archived event with `detail_type` satisfies `f`.
    pub fn wait_event(&self, detail_type: &str, f: impl Fn(&Value) -> bool) -> Value {
        self.wait_timed(60, || {
            self.archive()
                .into_iter()
                .find(|e| e["detail-type"] == json!(detail_type) && f(e))
        })
    }
}

/// Mints a bearer token with `marketplace token mint` for a data directory.
pub fn mint(dir: &std::path::Path, sub: &str, groups: &str) -> String {
    let o = Command::new(BIN)
        .args([
            "token",
            "mint",
            "--sub",
            sub,
            "--groups",
            groups,
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .expect("mint");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
