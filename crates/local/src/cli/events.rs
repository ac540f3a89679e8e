//! `marketplace events ...`: test a pattern, match a rule set over a file of events,
//! apply an input transformer.

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use event_patterns::transform::{self, Context, InputTransformer};
use event_patterns::{Pattern, PatternError, RuleSet, TestError};
use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// EventBridge pattern commands.
#[derive(Subcommand)]
pub enum EventsCommand {
    /// Test a pattern against an event (prints true|false), or run a JSONL file of cases.
    TestPattern(TestPatternArgs),
    /// Match every event of a JSONL file (optionally .gz) against a rule set and count matches.
    Match(MatchArgs),
    /// Apply an input transformer (InputPath, or InputPathsMap + InputTemplate) to an event.
    Transform(TransformArgs),
}

/// Arguments of `events test-pattern`.
#[derive(Args)]
pub struct TestPatternArgs {
    /// The event pattern (JSON text).
    #[arg(long, conflicts_with = "cases", requires = "event")]
    pattern: Option<String>,
    /// The event (JSON text).
    #[arg(long, conflicts_with = "cases", requires = "pattern")]
    event: Option<String>,
    /// A JSONL file of {"id", "pattern", "event"} cases; one JSON result per line.
    #[arg(long)]
    cases: Option<PathBuf>,
}

/// Arguments of `events match`.
#[derive(Args)]
pub struct MatchArgs {
    /// JSON object {"rule-name": pattern, ...}.
    #[arg(long)]
    rules: PathBuf,
    /// JSONL file of events, gzip-compressed when the name ends in .gz.
    #[arg(long)]
    events: PathBuf,
    /// Number of passes over the events (matching time only is measured).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
}

/// Arguments of `events transform`.
#[derive(Args)]
pub struct TransformArgs {
    /// The event (JSON text, or @FILE).
    #[arg(long)]
    event: String,
    /// InputPath, e.g. `$.detail`.
    #[arg(long, conflicts_with_all = ["input_paths_map", "input_template"])]
    input_path: Option<String>,
    /// InputPathsMap as a JSON object {"name": "$.path", ...}.
    #[arg(long, requires = "input_template")]
    input_paths_map: Option<String>,
    /// InputTemplate text.
    #[arg(long)]
    input_template: Option<String>,
    /// Rule name for <aws.events.rule-name>.
    #[arg(long, default_value = "rule")]
    rule_name: String,
    /// Rule ARN for <aws.events.rule-arn>.
    #[arg(long, default_value = "")]
    rule_arn: String,
    /// Ingestion time for <aws.events.event.ingestion-time> (defaults to the event's `time`).
    #[arg(long)]
    ingestion_time: Option<String>,
    /// Target id used in error messages.
    #[arg(long, default_value = "target")]
    target_id: String,
}

/// Runs an `events` subcommand; returns the process exit code.
pub fn run(cmd: EventsCommand) -> anyhow::Result<i32> {
    match cmd {
        EventsCommand::TestPattern(a) => test_pattern(a),
        EventsCommand::Match(a) => match_events(a),
        EventsCommand::Transform(a) => transform_event(a),
    }
}

fn test_pattern(a: TestPatternArgs) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Some(path) = a.cases {
        run_cases(&path, &mut out)?;
        return Ok(0);
    }
    let (Some(pattern), Some(event)) = (a.pattern, a.event) else {
        bail!("give --pattern and --event, or --cases FILE");
    };
    let event: Value = serde_json::from_str(&event).context("--event is not JSON")?;
    match event_patterns::test_event_pattern(&pattern, &event) {
        Ok(m) => {
            writeln!(out, "{m}")?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("{}: {e}", e.code());
            Ok(2)
        }
    }
}

/// Runs a JSONL file of test-pattern cases, writing one JSON result line per case.
fn run_cases(path: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let case: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), n + 1))?;
        let id = case.get("id").cloned().unwrap_or(Value::Null);
        let pattern_text = match case.get("pattern") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => pattern_text(v),
            None => bail!("{} line {}: missing \"pattern\"", path.display(), n + 1),
        };
        let event = case.get("event").cloned().unwrap_or(Value::Null);
        let result = match event_patterns::test_event_pattern(&pattern_text, &event) {
            Ok(m) => json!({"id": id, "matched": m}),
            Err(e) => json!({"id": id, "error": error_json(&e)}),
        };
        writeln!(out, "{result}")?;
    }
    Ok(())
}

/// Pattern text for a pattern given as a JSON value, spaced like Python's `json.dumps`.
fn pattern_text(v: &Value) -> String {
    let mut s = String::new();
    write_spaced(v, &mut s);
    s
}

fn write_spaced(v: &Value, out: &mut String) {
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_spaced(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_spaced(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn error_json(e: &TestError) -> Value {
    json!({"code": e.code(), "message": e.to_string()})
}

fn read_events(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut events = Vec::new();
    for line in BufReader::with_capacity(1 << 20, reader).split(b'\n') {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.iter().any(|c| !c.is_ascii_whitespace()) {
            events.push(line);
        }
    }
    Ok(events)
}

fn match_events(a: MatchArgs) -> anyhow::Result<i32> {
    println!("{}", match_summary(&a)?);
    Ok(0)
}

/// Loads rules and events, matches (timing only the matching), and returns the summary.
fn match_summary(a: &MatchArgs) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(&a.rules)
        .with_context(|| format!("reading {}", a.rules.display()))?;
    let rules_json: Map<String, Value> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON object of rule-name: pattern",
            a.rules.display()
        )
    })?;
    let mut patterns = Vec::with_capacity(rules_json.len());
    for (name, p) in &rules_json {
        let text = match p {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let pattern = Pattern::parse(&text).map_err(|e: PatternError| {
            anyhow::anyhow!("rule {name:?} in {}: {e}", a.rules.display())
        })?;
        patterns.push((name.clone(), pattern));
    }
    let mut set = RuleSet::new();
    set.extend(patterns);
    let events = read_events(&a.events)?;
    let repeat = a.repeat.max(1);
    let mut counts = vec![0u64; set.len()];
    let mut scratch = set.scratch();
    let start = Instant::now();
    for _ in 0..repeat {
        for (n, e) in events.iter().enumerate() {
            set.match_with(&mut scratch, e, |r| counts[r] += 1)
                .with_context(|| format!("{} event {}", a.events.display(), n + 1))?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let total = events.len() as u64 * u64::from(repeat);
    let mut matches = Map::new();
    for (i, name) in set.names().enumerate() {
        matches.insert(name.to_string(), json!(counts[i] / u64::from(repeat)));
    }
    let eps = if seconds > 0.0 {
        total as f64 / seconds
    } else {
        0.0
    };
    Ok(
        json!({"events": total, "rules": set.len(), "seconds": seconds,
              "events_per_second": eps, "matches": matches}),
    )
}

fn read_arg(text: &str) -> anyhow::Result<String> {
    match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}")),
        None => Ok(text.to_string()),
    }
}

fn transform_event(a: TransformArgs) -> anyhow::Result<i32> {
    let event: Value = serde_json::from_str(&read_arg(&a.event)?).context("--event is not JSON")?;
    let result = if let Some(path) = a.input_path {
        match transform::input_path(&path, &event) {
            Ok(v) => v.unwrap_or(Value::Null),
            Err(e) => {
                eprintln!("ValidationException: {e}");
                return Ok(2);
            }
        }
    } else if let Some(template) = a.input_template {
        let map: Vec<(String, String)> = match a.input_paths_map {
            Some(m) => {
                let obj: Map<String, Value> = serde_json::from_str(&read_arg(&m)?)
                    .context("--input-paths-map is not a JSON object")?;
                obj.into_iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k, s)),
                        _ => bail!("--input-paths-map: value of {k:?} must be a string"),
                    })
                    .collect::<anyhow::Result<_>>()?
            }
            None => Vec::new(),
        };
        let ctx = Context {
            rule_name: a.rule_name,
            rule_arn: a.rule_arn,
            ingestion_time: a
                .ingestion_time
                .or_else(|| {
                    event
                        .get("time")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default(),
            target_id: a.target_id.clone(),
        };
        let t = match InputTransformer::new(&map, &template, &a.target_id) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("ValidationException: {e}");
                return Ok(2);
            }
        };
        match t.apply(&event, &ctx) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{e}");
                return Ok(3);
            }
        }
    } else {
        bail!("give --input-path, or --input-template (with --input-paths-map)");
    };
    match result {
        // string templates: print the text the target receives
        Value::String(s) => println!("{s}"),
        v => println!("{v}"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mp-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }

    #[test]
    fn cases_file_gives_one_result_per_case() {
        let env = json!({"id": "1", "source": "s", "detail-type": "d", "account": "1", "region": "r", "time": "t"});
        let cases = [
            json!({"id": "a", "pattern": {"source": ["s"]}, "event": env}),
            json!({"id": "b", "pattern": "{\"source\": [\"x\"]}", "event": env}),
            json!({"id": "c", "pattern": {"source": []}, "event": env}),
            json!({"id": "d", "pattern": {"source": ["s"]}, "event": {"testEvent": 1}}),
        ];
        let text: String = cases.iter().map(|c| format!("{c}\n\n")).collect();
        let path = temp("cases.jsonl", &text);
        let mut out = Vec::new();
        run_cases(&path, &mut out).expect("runs");
        let lines: Vec<Value> = String::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], json!({"id": "a", "matched": true}));
        assert_eq!(lines[1], json!({"id": "b", "matched": false}));
        assert_eq!(
            lines[2],
            json!({"id": "c", "error": {"code": "InvalidEventPatternException",
                   "message": "Event pattern is not valid. Reason: Empty arrays are not allowed"}})
        );
        assert_eq!(
            lines[3],
            json!({"id": "d", "error": {"code": "ValidationException", "message": "Parameter Event is not valid."}})
        );
    }

    #[test]
    fn match_counts_per_rule() {
        let rules = temp(
            "rules.json",
            r#"{"ec2": {"source": ["aws.ec2"]}, "big": {"detail": {"n": [{"numeric": [">", 10]}]}}}"#,
        );
        let events = temp(
            "events.jsonl",
            "{\"source\": \"aws.ec2\", \"detail\": {\"n\": 5}}\n\n{\"source\": \"x\", \"detail\": {\"n\": 50}}\n{\"source\": \"aws.ec2\", \"detail\": {\"n\": 11}}\n",
        );
        let s = match_summary(&MatchArgs {
            rules,
            events,
            repeat: 3,
        })
        .expect("runs");
        assert_eq!(s["events"], json!(9));
        assert_eq!(s["rules"], json!(2));
        assert_eq!(s["matches"], json!({"ec2": 2, "big": 2}));
        assert!(s["events_per_second"].as_f64().is_some_and(|x| x > 0.0));
    }

    #[test]
    fn pattern_text_is_spaced_like_python() {
        assert_eq!(
            pattern_text(&json!({"a": [1, {"b": "c"}]})),
            r#"{"a": [1, {"b": "c"}]}"#
        );
    }
}
