//! The event bus: EventBridge's PutEvents, archive, rule matching, asynchronous
//! at-least-once delivery with retries and dead letters, replay and redrive.
//!
//! An accepted event and one pending delivery per matching (rule, target) are written in
//! the same SQLite transaction before PutEvents answers, so an acknowledged event is never
//! lost and never left undelivered: the delivery worker picks pending rows up (also after a
//! restart), invokes the target's function with the transformed input, and on failure
//! retries with exponential backoff and jitter until the target's
//! `maximumRetryAttempts` or `maximumEventAgeInSeconds` is exhausted; then the delivery
//! moves to the target's dead-letter queue with the last error.

use crate::clock::RuntimeClock;
use crate::functions::Functions;
use crate::metrics::Metrics;
use crate::rules::{Rules, Target};
use crate::store::{Store, StoreError};
use crate::util::{self, Level};
use event_patterns::transform::Context;
use event_patterns::Pattern;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// At most this many entries per PutEvents call.
pub const MAX_ENTRIES: usize = 10;
/// At most this many bytes per PutEvents call (sum of the entries' sizes).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Longest delay between two delivery attempts.
pub const MAX_BACKOFF_MS: i64 = 300_000;

/// A request-level PutEvents error (no entry was accepted).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// More than 10 entries.
    #[error("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to {MAX_ENTRIES} (got {0})")]
    TooManyEntries(usize),
    /// No entries.
    #[error("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length greater than or equal to 1")]
    NoEntries,
    /// Over 256 KiB.
    #[error("Total size of the entries in the request is over the limit ({0} bytes > {MAX_REQUEST_BYTES})")]
    TooLarge(usize),
    /// Storage failed: nothing was accepted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A dead letter or event does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Invalid argument of replay/redrive.
    #[error("{0}")]
    Invalid(String),
}

impl BusError {
    /// The AWS error code.
    pub fn code(&self) -> &'static str {
        match self {
            BusError::TooManyEntries(_) | BusError::NoEntries | BusError::Invalid(_) => {
                "ValidationException"
            }
            BusError::TooLarge(_) => "ValidationException",
            BusError::Store(_) => "InternalException",
            BusError::NotFound(_) => "ResourceNotFoundException",
        }
    }
}

impl From<rusqlite::Error> for BusError {
    fn from(e: rusqlite::Error) -> Self {
        BusError::Store(StoreError::from(e))
    }
}

/// One PutEvents request entry (AWS field names).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEntry {
    /// `Source`.
    #[serde(default)]
    pub source: Option<String>,
    /// `DetailType`.
    #[serde(default)]
    pub detail_type: Option<String>,
    /// `Detail`: a JSON object as text.
    #[serde(default)]
    pub detail: Option<String>,
    /// `Resources`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// `Time` (RFC 3339); the ingestion time when absent.
    #[serde(default)]
    pub time: Option<String>,
    /// `EventBusName` (name or ARN); the marketplace bus when absent.
    #[serde(default)]
    pub event_bus_name: Option<String>,
    /// `TraceHeader` (accepted, not used).
    #[serde(default)]
    pub trace_header: Option<String>,
}

impl PutEntry {
    /// EventBridge's entry size: source, detail-type, detail, resources (+ 14 for a time).
    pub fn size(&self) -> usize {
        self.source.as_deref().map_or(0, str::len)
            + self.detail_type.as_deref().map_or(0, str::len)
            + self.detail.as_deref().map_or(0, str::len)
            + self.resources.iter().map(String::len).sum::<usize>()
            + if self.time.is_some() { 14 } else { 0 }
    }
}

/// One PutEvents result entry: an event id, or an error code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutResultEntry {
    /// The id of the accepted event.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_id: Option<String>,
    /// Why the entry was refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_code: Option<String>,
    /// Details, naming the field and the rule.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_message: Option<String>,
}

/// The PutEvents answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsOutput {
    /// Number of refused entries.
    pub failed_entry_count: usize,
    /// One result per request entry, in order.
    pub entries: Vec<PutResultEntry>,
}

/// A dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Id in the store (for redrive).
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// Rule.
    pub rule: String,
    /// Target id.
    pub target: String,
    /// Event id.
    pub event_id: String,
    /// Last error.
    pub error: String,
    /// Attempts made.
    pub attempts: i64,
    /// When it was dead-lettered.
    pub failed_at: String,
    /// The event.
    pub event: Value,
}

/// Counts of the archive and deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BusStats {
    /// Archived events.
    pub archived: i64,
    /// Deliveries waiting for an attempt.
    pub pending: i64,
    /// Deliveries done.
    pub delivered: i64,
    /// Deliveries dead-lettered (not redriven).
    pub dead: i64,
    /// Pending deliveries never attempted yet.
    pub unattempted: i64,
}

/// The bus.
pub struct Bus {
    store: Arc<Store>,
    rules: Arc<Rules>,
    clock: Arc<RuntimeClock>,
    metrics: Arc<Metrics>,
    functions: Arc<Functions>,
    wake: (Mutex<bool>, Condvar),
    stop: AtomicBool,
    /// Deliveries being attempted by a delivery thread right now (in memory only: after a
    /// crash they are simply pending again, so delivery stays at least once).
    inflight: Mutex<std::collections::HashSet<i64>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("bus", &self.rules.bus_name)
            .finish()
    }
}

struct Accepted {
    id: String,
    source: String,
    detail_type: String,
    time_ms: i64,
    body: String,
    matches: Vec<(String, String)>,
}

fn entry_error(code: &str, message: impl Into<String>) -> PutResultEntry {
    PutResultEntry {
        event_id: None,
        error_code: Some(code.to_string()),
        error_message: Some(message.into()),
    }
}

impl Bus {
    /// A bus over a store with a validated rule set.
    pub fn new(
        store: Arc<Store>,
        rules: Arc<Rules>,
        clock: Arc<RuntimeClock>,
        metrics: Arc<Metrics>,
        functions: Arc<Functions>,
    ) -> Bus {
        Bus {
            store,
            rules,
            clock,
            metrics,
            functions,
            wake: (Mutex::new(false), Condvar::new()),
            stop: AtomicBool::new(false),
            inflight: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The rules in effect.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The bus's ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:events:{}:{}:event-bus/{}",
            crate::REGION,
            crate::ACCOUNT,
            self.rules.bus_name
        )
    }

    fn check_entry(&self, e: &PutEntry, internal: bool) -> Result<String, PutResultEntry> {
        if let Some(b) = e.event_bus_name.as_deref() {
            if b != self.rules.bus_name && b != self.arn() && b != "default" {
                return Err(entry_error(
                    "ResourceNotFoundException",
                    format!("Event bus {b} does not exist."),
                ));
            }
        }
        let source = match e.source.as_deref() {
            Some(s) if !s.is_empty() => s,
            _ => {
                return Err(entry_error(
                    "InvalidArgument",
                    "Parameter Source is not valid. Reason: Source is a required argument.",
                ))
            }
        };
        let detail_type =
            match e.detail_type.as_deref() {
                Some(s) if !s.is_empty() => s,
                _ => return Err(entry_error(
                    "InvalidArgument",
                    "Parameter DetailType is not valid. Reason: DetailType is a required argument.",
                )),
            };
        let detail_text = match e.detail.as_deref() {
            Some(s) if !s.is_empty() => s,
            _ => {
                return Err(entry_error(
                    "InvalidArgument",
                    "Parameter Detail is not valid. Reason: Detail is a required argument.",
                ))
            }
        };
        if !internal && source.starts_with("aws.") {
            return Err(entry_error(
                "NotAuthorizedForSourceException",
                format!("Not authorized for the source {source}."),
            ));
        }
        let catalogue = source.parse::<marketplace_domain::Source>().is_ok();
        if !detail_text.trim_start().starts_with('{') {
            return Err(entry_error("MalformedDetail", "Detail is malformed."));
        }
        if !catalogue {
            if serde_json::from_str::<serde::de::IgnoredAny>(detail_text).is_err() {
                return Err(entry_error("MalformedDetail", "Detail is malformed."));
            }
            return Ok(source.to_string());
        }
        let detail: Value = match serde_json::from_str(detail_text) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(entry_error("MalformedDetail", "Detail is malformed.")),
        };
        // The catalogue's sources (marketplace.booking, ...) carry typed details: an unknown
        // detail-type or an invalid detail is refused naming the field and the rule.
        if let Err(err) = marketplace_domain::MarketplaceEvent::decode(source, detail_type, &detail)
        {
            return Err(entry_error(
                "InvalidArgument",
                format!("Parameter Detail is not valid. Reason: {err}"),
            ));
        }
        Ok(source.to_string())
    }

    /// PutEvents: validates each entry, archives the accepted ones with their pending
    /// deliveries in one transaction, and answers per entry (partial success).
    pub fn put_events(&self, entries: &[PutEntry]) -> Result<PutEventsOutput, BusError> {
        self.put_events_inner(entries, false)
    }

    /// PutEvents for the runtime's own service events (`aws.states`): the `aws.` prefix
    /// is allowed.
    pub fn put_service_events(&self, entries: &[PutEntry]) -> Result<PutEventsOutput, BusError> {
        self.put_events_inner(entries, true)
    }

    fn put_events_inner(
        &self,
        entries: &[PutEntry],
        internal: bool,
    ) -> Result<PutEventsOutput, BusError> {
        if entries.is_empty() {
            return Err(BusError::NoEntries);
        }
        if entries.len() > MAX_ENTRIES {
            return Err(BusError::TooManyEntries(entries.len()));
        }
        let total: usize = entries.iter().map(PutEntry::size).sum();
        if total > MAX_REQUEST_BYTES {
            return Err(BusError::TooLarge(total));
        }
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let mut results = Vec::with_capacity(entries.len());
        let mut accepted = Vec::new();
        for e in entries {
            match self.check_entry(e, internal) {
                Err(r) => {
                    self.metrics.inc(
                        "marketplace_events_rejected_total",
                        &[("code", r.error_code.as_deref().unwrap_or(""))],
                    );
                    results.push(r);
                }
                Ok(source) => {
                    let time = match e.time.as_deref() {
                        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
                            Ok(t) => t.with_timezone(&chrono::Utc),
                            Err(_) => {
                                results.push(entry_error(
                                    "InvalidArgument",
                                    "Parameter Time is not valid. Reason: Time must be an RFC 3339 timestamp.",
                                ));
                                continue;
                            }
                        },
                        None => now,
                    };
                    let id = util::uuid_v4();
                    let detail_type = e.detail_type.clone().unwrap_or_default();
                    // The envelope is written around the detail text as given (already
                    // checked to be a JSON object): no re-serialisation.
                    let detail_text = e.detail.as_deref().unwrap_or("{}").trim();
                    let q = |t: &str| serde_json::to_string(t).unwrap_or_else(|_| "\"\"".into());
                    let resources =
                        serde_json::to_string(&e.resources).unwrap_or_else(|_| "[]".into());
                    let body = format!(
                        "{{\"version\":\"0\",\"id\":\"{id}\",\"detail-type\":{},\"source\":{},\"account\":\"{}\",\"time\":\"{}\",\"region\":\"{}\",\"resources\":{resources},\"detail\":{detail_text}}}",
                        q(&detail_type),
                        q(&source),
                        crate::ACCOUNT,
                        util::rfc3339_secs(time),
                        crate::REGION,
                    );
                    let mut matches = Vec::new();
                    if let Ok(names) = self.rules.matcher.matches(body.as_bytes()) {
                        for n in names {
                            if let Some(rule) = self.rules.rules.get(n) {
                                for t in &rule.targets {
                                    matches.push((rule.name.clone(), t.id.clone()));
                                }
                            }
                        }
                    }
                    results.push(PutResultEntry {
                        event_id: Some(id.clone()),
                        error_code: None,
                        error_message: None,
                    });
                    accepted.push(Accepted {
                        id,
                        source,
                        detail_type,
                        time_ms: time.timestamp_millis(),
                        body,
                        matches,
                    });
                }
            }
        }
        if !accepted.is_empty() {
            // Checks come before the writes, which fail only on I/O: no savepoint.
            self.store.tx_unguarded(|tx| -> Result<(), BusError> {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO events (id, source, detail_type, time_ms, ingested_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                let mut del = tx.prepare_cached(
                    "INSERT INTO deliveries (event_seq, rule, target, next_ms) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for a in &accepted {
                    ins.execute(params![a.id, a.source, a.detail_type, a.time_ms, now_ms, a.body])?;
                    let seq = tx.last_insert_rowid();
                    for (rule, target) in &a.matches {
                        del.execute(params![seq, rule, target, now_ms])?;
                    }
                }
                Ok(())
            })?;
            let mut any = false;
            let mut per_source: Vec<(&str, f64)> = Vec::new();
            let mut per_rule: Vec<(&str, f64)> = Vec::new();
            for a in &accepted {
                match per_source.iter_mut().find(|(s, _)| *s == a.source) {
                    Some((_, n)) => *n += 1.0,
                    None => per_source.push((&a.source, 1.0)),
                }
                let mut last = "";
                for (rule, _) in &a.matches {
                    any = true;
                    if rule == last {
                        continue;
                    }
                    last = rule;
                    match per_rule.iter_mut().find(|(r, _)| *r == rule.as_str()) {
                        Some((_, n)) => *n += 1.0,
                        None => per_rule.push((rule, 1.0)),
                    }
                }
                if util::enabled(Level::Debug) {
                    let corr = serde_json::from_str::<Value>(&a.body).ok().and_then(|v| {
                        v.pointer("/detail/correlationId")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    });
                    util::log(
                        Level::Debug,
                        "event accepted",
                        corr.as_deref(),
                        &[
                            ("eventId", json!(a.id)),
                            ("source", json!(a.source)),
                            ("detailType", json!(a.detail_type)),
                            ("rules", json!(a.matches.len())),
                        ],
                    );
                }
            }
            for (src, n) in per_source {
                self.metrics
                    .add("marketplace_events_published_total", &[("source", src)], n);
            }
            for (rule, n) in per_rule {
                self.metrics
                    .add("marketplace_rule_matches_total", &[("rule", rule)], n);
            }
            if any {
                self.notify();
            }
        }
        let failed = results.iter().filter(|r| r.error_code.is_some()).count();
        Ok(PutEventsOutput {
            failed_entry_count: failed,
            entries: results,
        })
    }

    /// Wakes the delivery worker.
    pub fn notify(&self) {
        let (m, c) = &self.wake;
        let mut w = m.lock().unwrap_or_else(|p| p.into_inner());
        *w = true;
        c.notify_all();
    }

    /// Asks the delivery worker to stop.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notify();
    }

    fn find_target(&self, rule: &str, target: &str) -> Option<&Target> {
        self.rules
            .rules
            .get(rule)
            .and_then(|r| r.targets.iter().find(|t| t.id == target))
    }

    /// Runs the delivery loop until [`Bus::shutdown`]; call on a dedicated thread.
    pub fn run_deliveries(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            match self.deliver_due(32) {
                Ok(0) => {
                    let (m, c) = &self.wake;
                    let mut w = m.lock().unwrap_or_else(|p| p.into_inner());
                    if !*w {
                        w = c
                            .wait_timeout(w, Duration::from_millis(100))
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0);
                    }
                    *w = false;
                }
                Ok(_) => {}
                Err(e) => {
                    util::log(Level::Error, &format!("delivery loop: {e}"), None, &[]);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Attempts every due delivery (at most `limit`); returns how many were attempted.
    pub fn deliver_due(&self, limit: usize) -> Result<usize, BusError> {
        let now_ms = self.clock.now_ms();
        // Claim up to `limit` due deliveries no other delivery thread is attempting.
        let due: Vec<DueRow> = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            let c = self.store.lock();
            let mut st = c.prepare_cached(
                "SELECT d.id, d.rule, d.target, d.attempts, e.body, e.ingested_ms, d.replay_name, d.event_seq
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq
                 WHERE d.status = 'pending' AND d.next_ms <= ?1 ORDER BY d.next_ms, d.id LIMIT ?2",
            )?;
            let rows = st.query_map(params![now_ms, (limit + inflight.len()) as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })?;
            let mut out: Vec<DueRow> = Vec::new();
            for row in rows {
                let row: DueRow = row?;
                if out.len() < limit && inflight.insert(row.0) {
                    out.push(row);
                }
            }
            out
        };
        let n = due.len();
        let ids: Vec<i64> = due.iter().map(|d| d.0).collect();
        let mut result = Ok(());
        // Successful attempts are marked delivered together, in one transaction after the
        // batch (a crash before that redelivers them: delivery is at least once and the
        // targets are idempotent).
        let mut delivered = Vec::with_capacity(n);
        for (id, rule, target, attempts, body, ingested_ms, replay, seq) in due {
            if result.is_ok() {
                result = self.deliver_one(
                    id,
                    &rule,
                    &target,
                    attempts,
                    &body,
                    ingested_ms,
                    replay,
                    seq,
                    &mut delivered,
                );
            }
        }
        let marked = if delivered.is_empty() {
            Ok(())
        } else {
            // Checks come before the writes, which fail only on I/O: no savepoint.
            self.store.tx_unguarded(|tx| -> Result<(), BusError> {
                let mut st = tx.prepare_cached(
                    "UPDATE deliveries SET status = 'delivered', attempts = ?2, last_error = NULL WHERE id = ?1",
                )?;
                for (id, attempts) in &delivered {
                    st.execute(params![id, attempts])?;
                }
                Ok(())
            })
        };
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            for id in ids {
                inflight.remove(&id);
            }
        }
        result.and(marked).map(|()| n)
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_one(
        &self,
        id: i64,
        rule: &str,
        target_id: &str,
        attempts: i64,
        body: &str,
        ingested_ms: i64,
        replay: Option<String>,
        seq: i64,
        delivered: &mut Vec<(i64, i64)>,
    ) -> Result<(), BusError> {
        let mut event: Value = serde_json::from_str(body).map_err(|e| {
            BusError::Store(StoreError::Corrupt {
                table: "events",
                message: e.to_string(),
            })
        })?;
        if let (Some(name), Some(obj)) = (replay, event.as_object_mut()) {
            obj.insert("replay-name".into(), Value::String(name));
        }
        let corr = event
            .pointer("/detail/correlationId")
            .and_then(Value::as_str)
            .map(str::to_string);
        let now_ms = self.clock.now_ms();
        let result = match self.find_target(rule, target_id) {
            None => Err((
                format!("rule {rule} has no target {target_id} any more (rules changed)"),
                None,
            )),
            Some(target) => {
                let input = match &target.transformer {
                    None => Ok(event.clone()),
                    Some(t) => t
                        .apply(
                            &event,
                            &Context {
                                rule_name: rule.to_string(),
                                rule_arn: format!(
                                    "arn:aws:events:{}:{}:rule/{}/{rule}",
                                    crate::REGION,
                                    crate::ACCOUNT,
                                    self.rules.bus_name
                                ),
                                ingestion_time: util::rfc3339_secs(util::from_ms(ingested_ms)),
                                target_id: target_id.to_string(),
                            },
                        )
                        .map_err(|e| format!("input transformer: {e}")),
                };
                match input {
                    Err(e) => Err((e, Some(target))),
                    Ok(input) => match self.functions.invoke(&target.function, input) {
                        Ok(_) => Ok(()),
                        Err(e) => Err((e.to_string(), Some(target))),
                    },
                }
            }
        };
        let attempts = attempts + 1;
        match result {
            Ok(()) => {
                delivered.push((id, attempts));
                self.metrics.inc(
                    "marketplace_deliveries_total",
                    &[
                        ("rule", rule),
                        ("target", target_id),
                        ("outcome", "success"),
                    ],
                );
            }
            Err((error, target)) => {
                self.metrics.inc(
                    "marketplace_deliveries_total",
                    &[("rule", rule), ("target", target_id), ("outcome", "error")],
                );
                let (max_retries, max_age_ms, queue) = match target {
                    Some(t) => (
                        i64::from(t.retry.maximum_retry_attempts),
                        (t.retry.maximum_event_age_seconds as i64) * 1000,
                        t.dead_letter_queue.clone(),
                    ),
                    None => (0, 0, "unrouted".to_string()),
                };
                let retries_done = attempts - 1;
                let next_ms = now_ms + backoff_ms(attempts);
                if retries_done >= max_retries || next_ms - ingested_ms > max_age_ms {
                    let event_id = event.get("id").and_then(Value::as_str).unwrap_or("");
                    self.store.tx(|tx| -> Result<(), BusError> {
                        tx.execute(
                            "UPDATE deliveries SET status = 'dead', attempts = ?2, last_error = ?3 WHERE id = ?1",
                            params![id, attempts, error],
                        )?;
                        tx.execute(
                            "INSERT INTO dead_letters (delivery_id, queue, rule, target, event_id, event_seq, error, attempts, failed_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                            params![id, queue, rule, target_id, event_id, seq, error, attempts, now_ms],
                        )?;
                        Ok(())
                    })?;
                    self.metrics.inc(
                        "marketplace_dead_letters_total",
                        &[("queue", &queue), ("rule", rule), ("target", target_id)],
                    );
                    util::log(
                        Level::Warn,
                        "delivery dead-lettered",
                        corr.as_deref(),
                        &[
                            ("eventId", json!(event_id)),
                            ("rule", json!(rule)),
                            ("target", json!(target_id)),
                            ("attempts", json!(attempts)),
                            ("error", json!(error)),
                            ("queue", json!(queue)),
                        ],
                    );
                } else {
                    // Checks come before the writes, which fail only on I/O: no savepoint.
                    self.store.tx_unguarded(|c| -> Result<usize, BusError> {
                        Ok(c.prepare_cached(
                            "UPDATE deliveries SET attempts = ?2, last_error = ?3, next_ms = ?4 WHERE id = ?1",
                        )?
                        .execute(params![id, attempts, error, next_ms])?)
                    })?;
                    self.metrics.inc(
                        "marketplace_delivery_retries_total",
                        &[("rule", rule), ("target", target_id)],
                    );
                    util::log(
                        Level::Info,
                        "delivery failed; will retry",
                        corr.as_deref(),
                        &[
                            ("rule", json!(rule)),
                            ("target", json!(target_id)),
                            ("attempts", json!(attempts)),
                            ("error", json!(error)),
                            ("retryInMs", json!(next_ms - now_ms)),
                        ],
                    );
                }
            }
        }
        Ok(())
    }

    /// Replays archived events whose time lies in `[start_ms, end_ms)` (optionally only
    /// those `filter` matches) to the rules that match them now; deliveries carry
    /// `replay-name`. Returns the number of events replayed.
    pub fn replay(
        &self,
        name: &str,
        start_ms: i64,
        end_ms: i64,
        filter: Option<&Pattern>,
    ) -> Result<usize, BusError> {
        if end_ms <= start_ms {
            return Err(BusError::Invalid(
                "replay: the end time must be after the start time".into(),
            ));
        }
        let now_ms = self.clock.now_ms();
        let n = self.store.tx(|tx| -> Result<usize, BusError> {
            let rows: Vec<(i64, String)> = {
                let mut st = tx.prepare(
                    "SELECT seq, body FROM events WHERE time_ms >= ?1 AND time_ms < ?2 ORDER BY seq",
                )?;
                let it = st.query_map(params![start_ms, end_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
                it.collect::<Result<_, _>>()?
            };
            let mut ins = tx.prepare_cached(
                "INSERT INTO deliveries (event_seq, rule, target, next_ms, replay_name) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut count = 0;
            for (seq, body) in rows {
                if let Some(p) = filter {
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    if !p.matches(&v) {
                        continue;
                    }
                }
                count += 1;
                if let Ok(names) = self.rules.matcher.matches(body.as_bytes()) {
                    for r in names {
                        if let Some(rule) = self.rules.rules.get(r) {
                            for t in &rule.targets {
                                ins.execute(params![seq, rule.name, t.id, now_ms, name])?;
                            }
                        }
                    }
                }
            }
            Ok(count)
        })?;
        self.notify();
        Ok(n)
    }

    /// Dead letters not yet redriven, oldest first (optionally of one queue).
    pub fn dead_letters(
        &self,
        queue: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let c = self.store.lock();
        let mut st = c.prepare(
            "SELECT d.id, d.queue, d.rule, d.target, d.event_id, d.error, d.attempts, d.failed_ms, e.body
             FROM dead_letters d JOIN events e ON e.seq = d.event_seq
             WHERE d.redriven_ms IS NULL AND (?1 IS NULL OR d.queue = ?1) ORDER BY d.id LIMIT ?2",
        )?;
        let rows = st.query_map(params![queue, limit as i64], |r| {
            let body: String = r.get(8)?;
            Ok(DeadLetter {
                id: r.get(0)?,
                queue: r.get(1)?,
                rule: r.get(2)?,
                target: r.get(3)?,
                event_id: r.get(4)?,
                error: r.get(5)?,
                attempts: r.get(6)?,
                failed_at: util::rfc3339_ms(util::from_ms(r.get(7)?)),
                event: serde_json::from_str(&body).unwrap_or(Value::Null),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sends dead letters back to their targets (fresh retry budget). `ids` empty means
    /// every dead letter (of `queue` when given). Returns how many were redriven.
    pub fn redrive(&self, ids: &[i64], queue: Option<&str>) -> Result<usize, BusError> {
        let now_ms = self.clock.now_ms();
        let n = self.store.tx(|tx| -> Result<usize, BusError> {
            let rows: Vec<(i64, i64, String, String)> = {
                let mut st = tx.prepare(
                    "SELECT id, event_seq, rule, target FROM dead_letters
                     WHERE redriven_ms IS NULL AND (?1 IS NULL OR queue = ?1) ORDER BY id",
                )?;
                let it = st.query_map(params![queue], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                it.collect::<Result<_, _>>()?
            };
            for id in ids {
                if !rows.iter().any(|r| r.0 == *id) {
                    return Err(BusError::NotFound(format!(
                        "dead letter {id} does not exist or was already redriven"
                    )));
                }
            }
            let mut count = 0;
            for (id, seq, rule, target) in rows {
                if !ids.is_empty() && !ids.contains(&id) {
                    continue;
                }
                tx.execute(
                    "INSERT INTO deliveries (event_seq, rule, target, next_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![seq, rule, target, now_ms],
                )?;
                tx.execute(
                    "UPDATE dead_letters SET redriven_ms = ?2 WHERE id = ?1",
                    params![id, now_ms],
                )?;
                count += 1;
            }
            Ok(count)
        })?;
        self.notify();
        Ok(n)
    }

    /// Whether a delivery is due now (pending, its next attempt not in the future): the
    /// bus still has work to do at this instant.
    pub fn has_due(&self) -> Result<bool, BusError> {
        let now_ms = self.clock.now_ms();
        let c = self.store.lock();
        let due: bool = c
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending' AND next_ms <= ?1)",
            )?
            .query_row([now_ms], |r| r.get(0))?;
        Ok(due)
    }

    /// Archive and delivery counts.
    pub fn stats(&self) -> Result<BusStats, BusError> {
        let c = self.store.lock();
        let archived: i64 = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        let mut st = c.prepare_cached("SELECT status, COUNT(*) FROM deliveries GROUP BY status")?;
        let unattempted: i64 = c.query_row(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND attempts = 0",
            [],
            |r| r.get(0),
        )?;
        let mut s = BusStats {
            archived,
            pending: 0,
            delivered: 0,
            dead: 0,
            unattempted,
        };
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (k, n) = row?;
            match k.as_str() {
                "pending" => s.pending = n,
                "delivered" => s.delivered = n,
                "dead" => s.dead = n,
                _ => {}
            }
        }
        Ok(s)
    }

    /// An archived event by id.
    pub fn archived_event(&self, id: &str) -> Result<Option<Value>, BusError> {
        let c = self.store.lock();
        let body: Option<String> = c
            .query_row("SELECT body FROM events WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }

    /// Archived events after sequence number `after` (oldest first, at most `limit`),
    /// with their sequence numbers: the event flow the demo prints.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, Value)>, BusError> {
        let c = self.store.lock();
        let mut st =
            c.prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![after, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body) = row?;
            out.push((seq, serde_json::from_str(&body).unwrap_or(Value::Null)));
        }
        Ok(out)
    }
}

/// A due delivery: id, rule, target, attempts, event body, ingested ms, replay name, event seq.
type DueRow = (i64, String, String, i64, String, i64, Option<String>, i64);

/// The delay before attempt `attempts + 1`: exponential (1 s × 2^(n-1), at most 5 min)
/// with jitter in [50 %, 100 %].
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 20) - 1;
    let base = (1000i64 << exp).min(MAX_BACKOFF_MS);
    let half = base / 2;
    half + (util::random_u64() % (half as u64 + 1)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::InvokeError;
    use std::sync::atomic::AtomicUsize;

    const RULES: &str = r#"{"eventBus":{"name":"bus"},"deadLetterQueues":[{"name":"dlq"}],"rules":[
      {"name":"to-notify","pattern":{"source":["test.app"]},"targets":[{"id":"n","type":"lambda","function":"notification-handler",
        "inputTransformer":{"inputPathsMap":{"id":"$.id","d":"$.detail"},"inputTemplate":"{\"eventId\": <id>, \"detail\": <d>, \"rule\": \"<aws.events.rule-name>\"}"},
        "retryPolicy":{"maximumRetryAttempts":2,"maximumEventAgeInSeconds":3600},"deadLetterQueue":"dlq"}]}]}"#;

    struct Fixture {
        bus: Bus,
        dir: std::path::PathBuf,
        clock: Arc<RuntimeClock>,
        functions: Arc<Functions>,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(name: &str) -> Fixture {
        let mut dir = std::env::temp_dir();
        dir.push(format!("mkt-bus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Store::open_dir(&dir).expect("store"));
        let clock = Arc::new(
            RuntimeClock::virtual_from(store.clone(), util::from_ms(1_700_000_000_000))
                .expect("clock"),
        );
        let functions = Arc::new(Functions::default());
        let bus = Bus::new(
            store,
            Arc::new(Rules::parse(RULES).expect("rules")),
            clock.clone(),
            Arc::new(Metrics::default()),
            functions.clone(),
        );
        Fixture {
            bus,
            dir,
            clock,
            functions,
        }
    }

    fn entry(source: &str, dt: &str, detail: &str) -> PutEntry {
        PutEntry {
            source: Some(source.into()),
            detail_type: Some(dt.into()),
            detail: Some(detail.into()),
            ..PutEntry::default()
        }
    }

    #[test]
    fn partial_success_reports_each_entry() {
        let f = fixture("partial");
        let out = f
            .bus
            .put_events(&[
                entry("test.app", "Thing", r#"{"a":1}"#),
                entry("test.app", "Thing", "not json"),
                entry("aws.states", "X", "{}"),
                PutEntry::default(),
                entry("marketplace.booking", "No Such Type", "{}"),
            ])
            .expect("put");
        assert_eq!(out.failed_entry_count, 4);
        assert!(out.entries[0].event_id.is_some());
        assert_eq!(
            out.entries[1].error_code.as_deref(),
            Some("MalformedDetail")
        );
        assert_eq!(
            out.entries[2].error_code.as_deref(),
            Some("NotAuthorizedForSourceException")
        );
        assert!(out.entries[3]
            .error_message
            .as_deref()
            .unwrap_or("")
            .contains("Source is a required argument"));
        assert!(out.entries[4]
            .error_message
            .as_deref()
            .unwrap_or("")
            .contains("detail-type"));
        assert_eq!(f.bus.stats().expect("stats").archived, 1);
    }

    #[test]
    fn request_limits_are_enforced() {
        let f = fixture("limits");
        let many = vec![entry("test.app", "T", "{}"); 11];
        assert!(matches!(
            f.bus.put_events(&many),
            Err(BusError::TooManyEntries(11))
        ));
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_REQUEST_BYTES));
        assert!(matches!(
            f.bus.put_events(&[entry("test.app", "T", &big)]),
            Err(BusError::TooLarge(_))
        ));
        assert!(matches!(f.bus.put_events(&[]), Err(BusError::NoEntries)));
    }

    #[test]
    fn delivers_transformed_input_once() {
        let f = fixture("deliver");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        f.functions.register(
            "notification-handler",
            Arc::new(move |v: Value| {
                s2.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                Ok(Value::Null)
            }),
        );
        let out = f
            .bus
            .put_events(&[
                entry("test.app", "T", r#"{"k":"v"}"#),
                entry("other", "T", "{}"),
            ])
            .expect("put");
        assert_eq!(f.bus.deliver_due(100).expect("deliver"), 1);
        assert_eq!(f.bus.deliver_due(100).expect("deliver"), 0);
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0]["eventId"], json!(out.entries[0].event_id));
        assert_eq!(seen[0]["detail"], json!({"k": "v"}));
        assert_eq!(seen[0]["rule"], json!("to-notify"));
        let st = f.bus.stats().expect("stats");
        assert_eq!((st.archived, st.delivered, st.pending), (2, 1, 0));
    }

    #[test]
    fn failures_are_retried_with_backoff_then_dead_lettered_and_redriven() {
        let f = fixture("retry");
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        f.functions.register(
            "notification-handler",
            Arc::new(move |_v: Value| {
                c2.fetch_add(1, Ordering::SeqCst);
                Err(InvokeError::new("Marketplace.TransientError", "down"))
            }),
        );
        assert!(!f.bus.has_due().expect("due"));
        f.bus
            .put_events(&[entry("test.app", "T", "{}")])
            .expect("put");
        assert!(f.bus.has_due().expect("due"));
        assert_eq!(f.bus.deliver_due(10).expect("1st"), 1);
        // Not due before the backoff elapses.
        assert!(!f.bus.has_due().expect("due"));
        assert_eq!(f.bus.deliver_due(10).expect("early"), 0);
        for _ in 0..2 {
            f.clock.advance(600).expect("advance");
            assert!(f.bus.has_due().expect("due"));
            assert_eq!(f.bus.deliver_due(10).expect("retry"), 1);
        }
        assert!(!f.bus.has_due().expect("due"), "dead-lettered");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let dl = f.bus.dead_letters(None, 10).expect("dlq");
        assert_eq!(dl.len(), 1);
        assert_eq!(dl[0].queue, "dlq");
        assert_eq!(dl[0].attempts, 3);
        assert!(dl[0].error.contains("Marketplace.TransientError: down"));
        f.functions.register(
            "notification-handler",
            Arc::new(|_v: Value| Ok(Value::Null)),
        );
        assert_eq!(f.bus.redrive(&[], None).expect("redrive"), 1);
        assert_eq!(f.bus.deliver_due(10).expect("redriven"), 1);
        assert!(f.bus.dead_letters(None, 10).expect("dlq").is_empty());
        assert!(f.bus.redrive(&[dl[0].id], None).is_err());
    }

    #[test]
    fn replay_redelivers_a_window_filtered_by_a_pattern() {
        let f = fixture("replay");
        let seen = Arc::new(AtomicUsize::new(0));
        let s2 = seen.clone();
        f.functions.register(
            "notification-handler",
            Arc::new(move |v: Value| {
                if v["detail"]["n"] == json!(2) {
                    s2.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Value::Null)
            }),
        );
        f.bus
            .put_events(&[
                entry("test.app", "T", r#"{"n":1}"#),
                entry("test.app", "T", r#"{"n":2}"#),
            ])
            .expect("put");
        f.bus.deliver_due(10).expect("deliver");
        let now = f.clock.now_ms();
        let p = Pattern::parse(r#"{"detail":{"n":[2]}}"#).expect("pattern");
        assert_eq!(
            f.bus
                .replay("r1", now - 1000, now + 1000, Some(&p))
                .expect("replay"),
            1
        );
        assert_eq!(f.bus.deliver_due(10).expect("deliver"), 1);
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        assert_eq!(
            f.bus
                .replay("r2", now + 1000, now + 2000, None)
                .expect("empty"),
            0
        );
        assert!(f.bus.replay("r3", now, now, None).is_err());
    }

    #[test]
    fn concurrent_delivery_threads_never_attempt_a_delivery_twice() {
        let f = fixture("concurrent");
        let seen = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
        let s2 = seen.clone();
        f.functions.register(
            "notification-handler",
            Arc::new(move |v: Value| {
                std::thread::sleep(Duration::from_millis(1));
                let id = v["eventId"].as_str().unwrap_or_default().to_string();
                *s2.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(id)
                    .or_default() += 1;
                Ok(Value::Null)
            }),
        );
        for _ in 0..6 {
            let batch: Vec<PutEntry> = (0..10)
                .map(|i| entry("test.app", "T", &format!(r#"{{"i":{i}}}"#)))
                .collect();
            f.bus.put_events(&batch).expect("put");
        }
        std::thread::scope(|sc| {
            for _ in 0..3 {
                sc.spawn(|| {
                    for _ in 0..200 {
                        if f.bus.stats().expect("stats").pending == 0 {
                            break;
                        }
                        f.bus.deliver_due(4).expect("deliver");
                    }
                });
            }
        });
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(seen.len(), 60);
        assert!(seen.values().all(|n| *n == 1), "{seen:?}");
        assert_eq!(f.bus.stats().expect("stats").delivered, 60);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..50 {
            let b1 = backoff_ms(1);
            assert!((500..=1000).contains(&b1));
            let b3 = backoff_ms(3);
            assert!((2000..=4000).contains(&b3));
            assert!(backoff_ms(40) <= MAX_BACKOFF_MS);
        }
    }
}
