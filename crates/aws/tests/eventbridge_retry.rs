//! PutEvents partial failures against a small local fake of the EventBridge JSON
//! protocol on 127.0.0.1: only the failed retryable entries are sent again, permanent
//! failures are not, and results stay in request order.

use aws_config::Region;
use aws_sdk_eventbridge::config::Credentials;
use marketplace_aws::eventbridge::EventBridgePublisher;
use marketplace_domain::PutEventsEntry;
use marketplace_ports::events::EventPublisher;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers each PutEvents call with `answer(call_index, entries)`; records the entries.
fn fake(answer: fn(usize, &[Value]) -> Value) -> (SocketAddr, Arc<Mutex<Vec<Vec<Value>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let calls: Arc<Mutex<Vec<Vec<Value>>>> = Arc::default();
    let seen = calls.clone();
    std::thread::spawn(move || {
        // bounded: a test makes at most a handful of connections
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut writer = stream;
                // keep-alive: several requests per connection, at most 16
                for _ in 0..16 {
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
                    let index = {
                        let mut calls = seen.lock().expect("lock");
                        calls.push(entries.clone());
                        calls.len() - 1
                    };
                    let out = answer(index, &entries).to_string();
                    let _ = write!(
                        writer,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{out}",
                        out.len()
                    );
                }
            });
        }
    });
    (addr, calls)
}

async fn publisher(addr: SocketAddr) -> EventBridgePublisher {
    let config = marketplace_aws::sdk_config_loader()
        .endpoint_url(format!("http://{addr}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "fake"))
        .load()
        .await;
    EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), "bus")
        .with_retry(3, Duration::from_millis(1))
}

fn entry(n: u32) -> PutEventsEntry {
    PutEventsEntry {
        source: "marketplace.test".into(),
        detail_type: "Test".into(),
        detail: format!(r#"{{"n":{n}}}"#),
        event_bus_name: None,
        resources: Vec::new(),
        time: None,
        trace_header: None,
    }
}

fn n_of(e: &Value) -> i64 {
    let detail: Value =
        serde_json::from_str(e["Detail"].as_str().unwrap_or("{}")).unwrap_or_default();
    detail["n"].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn only_failed_retryable_entries_are_sent_again() {
    // call 0: n=1 throttled, n=2 malformed (permanent); call 1: everything accepted
    let (addr, calls) = fake(|call, entries| {
        let results: Vec<Value> = entries
            .iter()
            .map(|e| match (call, n_of(e)) {
                (0, 1) => json!({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}),
                (0, 2) => json!({"ErrorCode": "MalformedDetail", "ErrorMessage": "bad"}),
                (_, n) => json!({"EventId": format!("id-{n}-{call}")}),
            })
            .collect();
        let failed = results
            .iter()
            .filter(|r| r.get("ErrorCode").is_some())
            .count();
        json!({"FailedEntryCount": failed, "Entries": results})
    });
    let p = publisher(addr).await;
    let results = p
        .put_events(&[entry(0), entry(1), entry(2), entry(3)])
        .await
        .expect("put_events");
    assert_eq!(results[0].event_id.as_deref(), Some("id-0-0"));
    assert_eq!(
        results[1].event_id.as_deref(),
        Some("id-1-1"),
        "the throttled entry succeeded on the retry"
    );
    assert_eq!(results[2].error_code.as_deref(), Some("MalformedDetail"));
    assert_eq!(results[3].event_id.as_deref(), Some("id-3-0"));
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].len(), 4);
    assert_eq!(
        calls[1].iter().map(n_of).collect::<Vec<_>>(),
        [1],
        "only the throttled entry is resent"
    );
    assert_eq!(
        calls[0][0]["EventBusName"], "bus",
        "entries without a bus go to the configured bus"
    );
}

#[tokio::test]
async fn retries_stop_after_the_attempt_limit() {
    let (addr, calls) = fake(|_, entries| {
        let results: Vec<Value> = entries
            .iter()
            .map(|_| json!({"ErrorCode": "InternalFailure", "ErrorMessage": "try later"}))
            .collect();
        json!({"FailedEntryCount": results.len(), "Entries": results})
    });
    let p = publisher(addr).await;
    let results = p.put_events(&[entry(7)]).await.expect("put_events");
    assert_eq!(results[0].error_code.as_deref(), Some("InternalFailure"));
    assert_eq!(calls.lock().expect("lock").len(), 3, "three calls in all");
}
