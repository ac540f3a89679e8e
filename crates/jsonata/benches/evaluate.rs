//! Parse and evaluate a typical Step Functions JSONata expression.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use jsonata::{Environment, Expression};
use serde_json::json;

const EXPR: &str = r#"$states.input.order.items[price > 10].{"sku": sku, "total": price * qty}"#;

fn input() -> serde_json::Value {
    json!({
        "order": {
            "id": "o-1",
            "items": (0..20).map(|i| json!({"sku": format!("sku-{i}"), "price": i * 3, "qty": i % 4 + 1})).collect::<Vec<_>>()
        }
    })
}

fn bench(c: &mut Criterion) {
    c.bench_function("parse", |b| {
        b.iter(|| Expression::parse(black_box(EXPR)).expect("parses"))
    });
    let expr = Expression::parse(EXPR).expect("parses");
    let mut env = Environment::new();
    env.bind("states", json!({ "input": input() }));
    let empty = json!({});
    c.bench_function("evaluate", |b| {
        b.iter(|| expr.evaluate(black_box(&empty), &env).expect("evaluates"))
    });
    c.bench_function("parse_and_evaluate", |b| {
        b.iter(|| {
            let e = Expression::parse(black_box(EXPR)).expect("parses");
            e.evaluate(&empty, &env).expect("evaluates")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
