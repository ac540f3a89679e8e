//! Criterion benches: the 14 CL2 rule kinds, and rule-set scaling (1 / 100 / 10,000 rules).
//!
//! Events: a deterministic synthetic stand-in of the citylots2 shape generated in
//! process (20,000 events), or the JSONL(.gz) file named by `CL2_EVENTS`.
//! Only matching is timed; events are pre-loaded as bytes.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use event_patterns::{Pattern, RuleSet};
use std::io::{BufRead, BufReader, Read};

const KINDS: [&str; 14] = [
    "EXACT",
    "WILDCARD",
    "PREFIX",
    "PREFIX_EQUALS_IGNORE_CASE",
    "SUFFIX",
    "SUFFIX_EQUALS_IGNORE_CASE",
    "EQUALS_IGNORE_CASE",
    "NUMERIC",
    "COMPLEX_ARRAYS",
    "ANYTHING_BUT",
    "ANYTHING_BUT_IGNORE_CASE",
    "ANYTHING_BUT_PREFIX",
    "ANYTHING_BUT_SUFFIX",
    "ANYTHING_BUT_WILDCARD",
];

/// xorshift64* — deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const STREETS: [&str; 24] = [
    "FULTON",
    "MASON",
    "JEFFERSON",
    "BEACH",
    "HYDE",
    "CHESTNUT",
    "GREENWICH",
    "ACTON",
    "BLAKE",
    "DRUMM",
    "RHODE ISLAND",
    "MISSION",
    "MARKET",
    "VALENCIA",
    "GEARY",
    "LAKE",
    "17TH",
    "CLEMENT",
    "IRVING",
    "JUDAH",
    "BUSH",
    "PINE",
    "CALIFORNIA",
    "SACRAMENTO",
];
const ST_TYPES: [&str; 7] = ["ST", "ST", "ST", "AVE", "AVE", "BLVD", "WAY"];

/// One synthetic city-lot record, serialised compactly like the shared generator does.
fn city_lot(r: &mut Rng) -> String {
    let blk = 1 + r.below(7600);
    let lot = 1 + r.below(250);
    let u = r.unit();
    let mapblklot = if u < 0.003 {
        ["1430022", "2607117", "2607218", "3745012", "VACSTWIL"][r.below(5) as usize].to_string()
    } else {
        format!("{blk:04}{lot:03}")
    };
    let from = 1 + r.below(4000);
    let street = STREETS[r.below(STREETS.len() as u64) as usize];
    let gtype = if r.unit() > 0.0006 {
        "Polygon"
    } else {
        "MultiPolygon"
    };
    let mut x0 = -122.52 + r.unit() * 0.16;
    let mut y0 = 37.70 + r.unit() * 0.11;
    if r.unit() < 0.001 {
        x0 = -122.429_163_609_223_55;
    }
    if r.unit() < 0.001 {
        y0 = 37.729_900_216_217_324;
    }
    let n = 4 + r.below(8);
    let mut pts = Vec::new();
    for k in 0..n {
        let (x, y) = if k == 0 {
            (x0, y0)
        } else {
            (x0 + (r.unit() - 0.5) * 6e-4, y0 + (r.unit() - 0.5) * 6e-4)
        };
        pts.push(format!("{{\"x\":{x},\"y\":{y},\"z\":0}}"));
    }
    format!(
        "{{\"type\":\"Feature\",\"properties\":{{\"MAPBLKLOT\":\"{mapblklot}\",\"BLKLOT\":\"{mapblklot}\",\"BLOCK_NUM\":\"{blk:04}\",\"LOT_NUM\":\"{lot:03}\",\"FROM_ST\":\"{from}\",\"TO_ST\":\"{}\",\"STREET\":\"{street}\",\"ST_TYPE\":\"{}\",\"ODD_EVEN\":\"{}\"}},\"geometry\":{{\"type\":\"{gtype}\",\"firstCoordinates\":{},\"coordinates\":[{}]}}}}",
        from + [0, 0, 2, 4, 10][r.below(5) as usize],
        ST_TYPES[r.below(ST_TYPES.len() as u64) as usize],
        if from.is_multiple_of(2) { "E" } else { "O" },
        pts[0],
        pts.join(",")
    )
}

fn load_events() -> Vec<Vec<u8>> {
    if let Ok(path) = std::env::var("CL2_EVENTS") {
        let file = std::fs::File::open(&path).expect("CL2_EVENTS file");
        let reader: Box<dyn Read> = if path.ends_with(".gz") {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        return BufReader::new(reader)
            .split(b'\n')
            .map(|l| l.expect("read"))
            .filter(|l| !l.is_empty())
            .collect();
    }
    let mut r = Rng(20_240_611);
    (0..20_000).map(|_| city_lot(&mut r).into_bytes()).collect()
}

fn rules_of(kind: &str) -> RuleSet {
    let path = format!("{}/benches/cl2/{kind}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("rule file");
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("rules");
    let mut set = RuleSet::new();
    set.extend(
        obj.iter()
            .map(|(k, v)| (k.clone(), Pattern::from_value(v).expect("valid pattern"))),
    );
    set
}

fn run(set: &RuleSet, events: &[Vec<u8>]) -> u64 {
    let mut scratch = set.scratch();
    let mut n = 0u64;
    for e in events {
        set.match_with(&mut scratch, e, |_| n += 1).expect("event");
    }
    n
}

fn cl2(c: &mut Criterion) {
    let events = load_events();
    let mut g = c.benchmark_group("cl2");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(10);
    for kind in KINDS {
        let set = rules_of(kind);
        g.bench_function(kind, |b| b.iter(|| run(&set, &events)));
    }
    g.finish();
}

/// Rule sets of `n` rules: exact MAPBLKLOT values, plus every tenth rule a prefix on
/// STREET and every tenth a numeric range on firstCoordinates.x.
fn scaled(n: usize) -> RuleSet {
    let mut r = Rng(7);
    let mut set = RuleSet::new();
    let mut rules = Vec::with_capacity(n);
    for i in 0..n {
        let text = match i % 10 {
            3 => format!(
                r#"{{"properties": {{"STREET": [{{"prefix": "{}"}}]}}}}"#,
                &STREETS[r.below(STREETS.len() as u64) as usize][..3]
            ),
            7 => {
                let lo = -122.52 + r.unit() * 0.15;
                format!(
                    r#"{{"geometry": {{"firstCoordinates": {{"x": [{{"numeric": [">", {lo:.6}, "<=", {:.6}]}}]}}}}}}"#,
                    lo + 0.001
                )
            }
            _ => format!(
                r#"{{"properties": {{"MAPBLKLOT": ["{:04}{:03}"]}}}}"#,
                1 + r.below(7600),
                1 + r.below(250)
            ),
        };
        rules.push((format!("rule-{i}"), Pattern::parse(&text).expect("valid")));
    }
    set.extend(rules);
    set
}

fn scaling(c: &mut Criterion) {
    let events = load_events();
    let mut g = c.benchmark_group("scaling");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(10);
    for n in [1usize, 100, 10_000] {
        let set = scaled(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| run(set, &events))
        });
    }
    g.finish();
}

criterion_group!(benches, cl2, scaling);
criterion_main!(benches);
