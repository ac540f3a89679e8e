//! Cross-checks the compiled matcher against the reference evaluator on a CL2 events
//! file: for every rule kind in `benches/cl2/`, both must count the same matches.
//!
//! ```text
//! cargo run --release -p event-patterns --example cl2_crosscheck -- /tmp/synthetic-cl2.jsonl.gz
//! ```
//! Exits with status 1 on any disagreement.

use event_patterns::{reference, Pattern, RuleSet};
use std::io::{BufRead, BufReader, Read};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: cl2_crosscheck EVENTS.jsonl[.gz]");
        std::process::exit(2);
    };
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let reader: Box<dyn Read> = if path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let events: Vec<Vec<u8>> = BufReader::new(reader)
        .split(b'\n')
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .collect();
    let values: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::from_slice(e).expect("event is JSON"))
        .collect();
    let dir = format!("{}/benches/cl2", env!("CARGO_MANIFEST_DIR"));
    let mut kinds: Vec<_> = std::fs::read_dir(&dir)
        .expect("rules dir")
        .filter_map(Result::ok)
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    kinds.sort();
    let mut ok = true;
    for kind in kinds {
        let rules: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&kind).expect("read")).expect("rules");
        let patterns: Vec<(String, Pattern)> = rules
            .iter()
            .map(|(n, p)| (n.clone(), Pattern::from_value(p).expect("valid")))
            .collect();
        let mut set = RuleSet::new();
        set.extend(patterns.clone());
        let mut scratch = set.scratch();
        let mut compiled = vec![0u64; patterns.len()];
        for e in &events {
            set.match_with(&mut scratch, e, |r| compiled[r] += 1)
                .expect("event");
        }
        let reference: Vec<u64> = patterns
            .iter()
            .map(|(_, p)| values.iter().filter(|v| reference::matches(p, v)).count() as u64)
            .collect();
        let same = compiled == reference;
        ok &= same;
        println!(
            "{:<28} {} compiled {:?} reference {:?}",
            kind.file_stem().and_then(|s| s.to_str()).unwrap_or("?"),
            if same { "same" } else { "DIFFERENT" },
            compiled,
            reference
        );
    }
    std::process::exit(if ok { 0 } else { 1 });
}
