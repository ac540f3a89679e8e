//! Reliability: kill -9 under load loses no acknowledged event, and a running workflow
//! resumes after the restart; an acknowledgement is sent only once its writes are committed.

mod common;

use common::{Server, TempDir};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn kill_9_under_load_loses_no_acknowledged_event_and_workflows_resume() {
    let dir = TempDir::new("kill9");
    let sm = dir.path().join("sm");
    std::fs::create_dir_all(&sm).expect("dir");
    common::write_machines(&sm, &common::timer_machine());
    let data = dir.path().join("data");
    // The repository's rules: Provider Account Updated goes to notification-handler, whose
    // side effect is one e-mail in the outbox per event.
    let args = ["--statemachines", sm.to_str().unwrap_or("")];
    let s = Server::start(&data, &args);
    s.admin_post(
        "/admin/seed",
        json!({"users": [{"userId": "prv_load", "email": "load@example.com", "displayName": "Load"}]}),
    );

    let started = s.admin_post(
        "/admin/workflows/start",
        json!({"workflowType": "BOOKING_LIFECYCLE", "name": "survivor", "input": {"k": 1}}),
    );
    let arn = started["executionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The execution reaches its Wait state (paused on a timer) before the crash.
    s.wait_for(10, || {
        let d = s.admin_get(&format!(
            "/admin/workflows/history?executionArn={}",
            arn.replace(':', "%3A")
        ));
        d["events"].as_array().and_then(|e| {
            e.iter()
                .any(|x| x["type"] == "WaitStateEntered")
                .then_some(())
        })
    });

    // Four clients publish batches of 10 until the server dies.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let c = s.admin();
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let entries: Vec<Value> = (0..10)
                        .map(|i| {
                            let detail = json!({"providerId": "prv_load", "stripeAccountId": "acct_load",
                                "chargesEnabled": true, "payoutsEnabled": true, "detailsSubmitted": true,
                                "timestamp": "2026-02-01T09:19:00Z", "correlationId": format!("corr-{t}-{n}-{i}")});
                            json!({"Source": "marketplace.provider", "DetailType": "Provider Account Updated", "Detail": detail.to_string()})
                        })
                        .collect();
                    n += 1;
                    match c.post("/admin/publish", &json!({"Entries": entries})) {
                        Ok(r) if r.status == 200 => {
                            let v = r.json();
                            let mut a = acked.lock().unwrap_or_else(|p| p.into_inner());
                            for e in v["Entries"].as_array().cloned().unwrap_or_default() {
                                if let Some(id) = e["EventId"].as_str() {
                                    a.push(id.to_string());
                                }
                            }
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap_or_else(|p| p.into_inner()).len() < 400 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    s.kill9();
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    let acked: Vec<String> = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        acked.len() >= 400,
        "only {} events acknowledged",
        acked.len()
    );

    let s = Server::start(&data, &args);
    let archive = s.archive();
    let mut seen = HashSet::new();
    for e in &archive {
        assert!(
            seen.insert(e["id"].as_str().unwrap_or_default().to_string()),
            "event archived twice: {e}"
        );
    }
    for id in &acked {
        assert!(
            seen.contains(id),
            "acknowledged event {id} is missing after kill -9"
        );
    }
    // Every acknowledged event is delivered at least once after the restart, and its side
    // effect happens exactly once: one outbox message per event id.
    let loads: Vec<String> = archive
        .iter()
        .filter(|e| e["detail-type"] == "Provider Account Updated")
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect();
    // A handler killed mid-invocation left an IN_PROGRESS idempotency record: its retry
    // waits until that lock expires (60 s), so the virtual clock is moved on as time would.
    let mut polls = 0;
    let outbox = s.wait_for(120, || {
        let st = s.admin_get("/admin/stats");
        let drained = st["bus"]["pending"] == 0;
        let o = s.admin_get("/admin/outbox");
        let n = o["messages"].as_array().map_or(0, Vec::len);
        polls += 1;
        if !drained && polls % 40 == 0 {
            s.admin_post("/admin/clock/advance", json!({"duration": "1m"}));
        }
        (drained && n >= loads.len()).then_some(o)
    });
    let keys: Vec<String> = outbox["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| m["key"].as_str().unwrap_or_default().to_string())
        .collect();
    for id in &acked {
        let n = keys.iter().filter(|k| k.contains(id.as_str())).count();
        assert_eq!(n, 1, "event {id}: {n} notifications");
    }
    assert_eq!(
        keys.len(),
        loads.len(),
        "one notification per archived event"
    );
    let stats = s.admin_get("/admin/stats");
    assert_eq!(stats["bus"]["dead"], 0, "{stats}");
    // The waiting execution resumes when its timer fires and completes exactly once.
    s.admin_post("/admin/clock/advance", json!({"duration": "2h"}));
    let d = s.wait_for(20, || {
        let d = s.admin_get(&format!(
            "/admin/workflows/status?executionArn={}",
            arn.replace(':', "%3A")
        ));
        (d["status"] != "RUNNING").then_some(d)
    });
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let resumed: Vec<Value> = s
        .archive()
        .into_iter()
        .filter(|e| e["source"] == "test.resumed")
        .collect();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0]["detail"]["name"], "survivor");
    let metrics = s.anon().get("/metrics").expect("metrics").body;
    assert!(
        metrics.contains("marketplace_executions_total{workflow=\"ecosystem-booking-lifecycle\",status=\"SUCCEEDED\"} 1"),
        "{metrics}"
    );
}

#[test]
fn failed_deliveries_are_retried_on_the_clock_then_dead_lettered_and_redriven() {
    let dir = TempDir::new("dlq");
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, common::load_rules().to_string()).expect("rules");
    let data = dir.path().join("data");
    let s = Server::start(&data, &["--rules", rules.to_str().unwrap_or("")]);
    let o = s.cli(&[
        "publish",
        "--source",
        "test.load",
        "--detail-type",
        "Load",
        "--detail",
        "{\"n\":1}",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The raw event is not a notification-handler input: every attempt fails; the retry
    // policy allows 3 retries, each after a backoff on the (virtual) clock.
    s.wait_for(10, || {
        let st = s.admin_get("/admin/stats");
        (st["bus"]["unattempted"] == 0).then_some(())
    });
    for _ in 0..4 {
        let o = s.cli(&["clock", "advance", "10m"]);
        assert!(o.status.success());
        std::thread::sleep(Duration::from_millis(150));
    }
    let dl = s.wait_for(10, || {
        let o = s.cli(&["dlq", "list"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        (v["deadLetters"].as_array().map_or(0, Vec::len) == 1).then_some(v)
    });
    let d = &dl["deadLetters"][0];
    assert_eq!(d["queue"], "q");
    assert_eq!(d["rule"], "load-to-notifications");
    assert_eq!(d["attempts"], 4);
    assert!(
        d["error"]
            .as_str()
            .unwrap_or("")
            .contains("Marketplace.ValidationError"),
        "{d}"
    );
    let metrics = s.anon().get("/metrics").expect("metrics").body;
    assert!(
        metrics.contains("marketplace_dead_letters_total{queue=\"q\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("marketplace_delivery_retries_total"),
        "{metrics}"
    );
    let o = s.cli(&["dlq", "redrive", "--id", &d["id"].to_string()]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["redriven"], 1);
    let o = s.cli(&["dlq", "list"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["deadLetters"].as_array().map_or(0, Vec::len), 0);
    let o = s.cli(&["dlq", "redrive", "--id", "999"]);
    assert!(!o.status.success());
}

#[test]
fn an_acknowledged_event_is_already_committed_when_the_answer_arrives() {
    // The store commits its open group before any HTTP response (the barrier): another
    // connection to the database file sees every acknowledged event, with its deliveries,
    // at the moment the acknowledgement arrives (without the barrier this fails at once:
    // the flusher commits only 40 ms later).
    let dir = TempDir::new("barrier");
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]);
    let reader = rusqlite::Connection::open_with_flags(
        data.join("marketplace.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("a second connection");
    let c = s.admin();
    for n in 0..50 {
        let detail = json!({"providerId": "prv_b", "stripeAccountId": "acct_b",
            "chargesEnabled": true, "payoutsEnabled": true, "detailsSubmitted": true,
            "timestamp": "2026-02-01T09:19:00Z", "correlationId": format!("corr-barrier-{n}")});
        let r = c
            .post(
                "/admin/publish",
                &json!({"Entries": [{"Source": "marketplace.provider",
                    "DetailType": "Provider Account Updated", "Detail": detail.to_string()}]}),
            )
            .expect("publish");
        assert_eq!(r.status, 200, "{}", r.body);
        let id = r.json()["Entries"][0]["EventId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (events, deliveries): (i64, i64) = reader
            .query_row(
                "SELECT (SELECT COUNT(*) FROM events WHERE id = ?1),
                        (SELECT COUNT(*) FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE e.id = ?1)",
                [&id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("read");
        assert_eq!(events, 1, "event {n} ({id}) acknowledged but not committed");
        assert!(
            deliveries >= 1,
            "event {n}: its deliveries are committed with it"
        );
    }
}
