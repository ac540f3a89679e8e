//! Prometheus metrics of the local runtime (`GET /metrics`, text exposition format).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Help text and type of each metric family.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "marketplace_events_published_total",
        "counter",
        "Events accepted by PutEvents and archived, by source.",
    ),
    (
        "marketplace_events_rejected_total",
        "counter",
        "PutEvents entries refused, by error code.",
    ),
    (
        "marketplace_rule_matches_total",
        "counter",
        "Events matched by a rule.",
    ),
    (
        "marketplace_deliveries_total",
        "counter",
        "Target invocations, by rule, target and outcome.",
    ),
    (
        "marketplace_delivery_retries_total",
        "counter",
        "Deliveries scheduled for another attempt.",
    ),
    (
        "marketplace_dead_letters_total",
        "counter",
        "Deliveries moved to a dead-letter queue.",
    ),
    (
        "marketplace_executions_total",
        "counter",
        "Executions that reached a status, by workflow and status.",
    ),
    (
        "marketplace_executions_started_total",
        "counter",
        "Executions started, by workflow.",
    ),
    (
        "marketplace_execution_duration_seconds",
        "summary",
        "Duration of finished executions (clock time), by workflow.",
    ),
    (
        "marketplace_graphql_requests_total",
        "counter",
        "GraphQL requests, by field and outcome.",
    ),
    (
        "marketplace_http_requests_total",
        "counter",
        "HTTP requests, by path and status.",
    ),
];

/// A thread-safe metric registry.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(&'static str, String), f64>>,
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{v}\"");
    }
    s
}

impl Metrics {
    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, pairs: &[(&str, &str)], by: f64) {
        let mut m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((name, labels(pairs))).or_insert(0.0) += by;
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, pairs: &[(&str, &str)]) {
        self.add(name, pairs, 1.0);
    }

    /// Records one observation of a summary (its `_sum` and `_count`).
    pub fn observe(&self, name: &'static str, pairs: &[(&str, &str)], value: f64) {
        let l = labels(pairs);
        let mut m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((name, format!("sum|{l}"))).or_insert(0.0) += value;
        *m.entry((name, format!("count|{l}"))).or_insert(0.0) += 1.0;
    }

    /// The current value of a counter (tests and the CLI).
    pub fn get(&self, name: &'static str, pairs: &[(&str, &str)]) -> f64 {
        let m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&(name, labels(pairs))).copied().unwrap_or(0.0)
    }

    /// Renders the Prometheus text format; `gauges` are added as they are (current values).
    pub fn render(&self, gauges: &[(&str, &str, String, f64)]) -> String {
        let m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (family, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            for ((name, l), v) in m.range((*family, String::new())..) {
                if name != family {
                    break;
                }
                let (suffix, l) = match l.split_once('|') {
                    Some(("sum", rest)) => ("_sum", rest),
                    Some(("count", rest)) => ("_count", rest),
                    _ => ("", l.as_str()),
                };
                if l.is_empty() {
                    let _ = writeln!(out, "{name}{suffix} {v}");
                } else {
                    let _ = writeln!(out, "{name}{suffix}{{{l}}} {v}");
                }
            }
        }
        let mut last = "";
        for (name, help, l, v) in gauges {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                last = name;
            }
            if l.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{l}}} {v}");
            }
        }
        out
    }
}

/// Formats label pairs for a gauge passed to [`Metrics::render`].
pub fn gauge_labels(pairs: &[(&str, &str)]) -> String {
    labels(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_summaries() {
        let m = Metrics::default();
        m.inc(
            "marketplace_events_published_total",
            &[("source", "marketplace.booking")],
        );
        m.inc(
            "marketplace_events_published_total",
            &[("source", "marketplace.booking")],
        );
        m.observe(
            "marketplace_execution_duration_seconds",
            &[("workflow", "w")],
            1.5,
        );
        let text = m.render(&[(
            "marketplace_pending_deliveries",
            "Pending.",
            String::new(),
            3.0,
        )]);
        assert!(
            text.contains("marketplace_events_published_total{source=\"marketplace.booking\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("marketplace_execution_duration_seconds_sum{workflow=\"w\"} 1.5"),
            "{text}"
        );
        assert!(
            text.contains("marketplace_execution_duration_seconds_count{workflow=\"w\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "# TYPE marketplace_pending_deliveries gauge\nmarketplace_pending_deliveries 3"
        ));
    }
}
