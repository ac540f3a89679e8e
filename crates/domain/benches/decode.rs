//! How fast events are decoded and encoded: every fixture envelope, from JSON text to a
//! typed `MarketplaceEvent` (what a Lambda or the local bus does per delivery), and back
//! to a PutEvents entry.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use marketplace_domain::{EventEnvelope, MarketplaceEvent};
use std::hint::black_box;

fn fixtures() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root).expect("fixtures").flatten() {
        for file in std::fs::read_dir(dir.path()).expect("source dir").flatten() {
            out.push(std::fs::read_to_string(file.path()).expect("fixture"));
        }
    }
    out.sort();
    out
}

fn bench(c: &mut Criterion) {
    let texts = fixtures();
    let events: Vec<MarketplaceEvent> = texts
        .iter()
        .map(|t| {
            EventEnvelope::decode_event(&serde_json::from_str(t).expect("json")).expect("valid")
        })
        .collect();

    let mut group = c.benchmark_group("catalogue");
    group.throughput(Throughput::Elements(texts.len() as u64));
    group.bench_function("decode_envelope_text", |b| {
        b.iter(|| {
            for t in &texts {
                let v: serde_json::Value = serde_json::from_str(black_box(t)).expect("json");
                black_box(EventEnvelope::decode_event(&v).expect("valid"));
            }
        })
    });
    group.bench_function("to_put_events_entry", |b| {
        b.iter(|| {
            for e in &events {
                black_box(black_box(e).to_put_events_entry(Some("marketplace")));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
