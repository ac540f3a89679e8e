//! Costs of the per-invocation plumbing: signature verification, an idempotent replay,
//! a JSON log line, an EMF flush.

use criterion::{criterion_group, criterion_main, Criterion};
use marketplace_ports::clock::ManualClock;
use marketplace_ports::idempotency::Idempotency;
use marketplace_ports::log::{LogContext, Logger};
use marketplace_ports::memory::MemoryIdempotencyStore;
use marketplace_ports::metrics::{Metrics, Unit};
use marketplace_ports::stripe_signature::{sign_header, verify};
use serde_json::json;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

fn plumbing(c: &mut Criterion) {
    let clock = Arc::new(ManualClock::new(marketplace_ports::fixtures::t0()));
    let now = marketplace_ports::fixtures::t0();
    let body = json!({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1", "amount": 12000, "metadata": {"bookingId": "bk_1", "pad": "x".repeat(800)}}}}).to_string();
    let header = sign_header(
        &["whsec_old", "whsec_new"],
        now.timestamp(),
        body.as_bytes(),
    );
    let secrets = vec!["whsec_other".to_owned(), "whsec_new".to_owned()];
    c.bench_function("stripe_signature_verify_1KiB_2v1_2secrets", |b| {
        b.iter(|| {
            verify(
                Some(black_box(&header)),
                black_box(body.as_bytes()),
                &secrets,
                now,
                300,
            )
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let idem = Idempotency::new(
        Arc::new(MemoryIdempotencyStore::new()),
        clock.clone(),
        "bench",
        3600,
        60,
    );
    let payload = json!({"paymentIntentId": "pi_1", "amount": 120, "currency": "USD", "reason": "BOOKING_CANCELLED"});
    rt.block_on(idem.run("k", &payload, || async { Ok(json!({"refundId": "re_1"})) }))
        .expect("first run");
    c.bench_function("idempotency_replay_memory_store", |b| {
        b.iter(|| rt.block_on(idem.run("k", black_box(&payload), || async { Ok(json!(null)) })))
    });

    let sink: marketplace_ports::log::LogSink = Arc::new(Mutex::new(std::io::sink()));
    let log = Logger::from_lookup("bench", sink.clone(), clock.clone(), |_| None);
    let ctx = LogContext {
        correlation_id: Some("corr-1".into()),
        workflow_type: Some("BOOKING_LIFECYCLE".into()),
        execution_arn: Some("arn:aws:states:us-east-1:123456789012:execution:ecosystem-booking-lifecycle:booking-bk_1".into()),
        request_id: Some("req-1".into()),
    };
    c.bench_function("json_log_line", |b| {
        b.iter(|| log.info(&ctx, "reserveSlot done", &[("bookingId", json!("bk_1"))]))
    });
    let metrics = Metrics::new("EcosystemMarketplace", "bench", sink, clock);
    c.bench_function("emf_three_metrics_flush", |b| {
        b.iter(|| {
            metrics.add_dimension("workflowType", "BOOKING_LIFECYCLE");
            metrics.add("WorkflowStarted", Unit::Count, 1.0);
            metrics.add("StartDuration", Unit::Milliseconds, 12.0);
            metrics.add("CircuitBreakerOpen", Unit::Count, 0.0);
            metrics.flush();
        })
    });
}

criterion_group!(benches, plumbing);
criterion_main!(benches);
