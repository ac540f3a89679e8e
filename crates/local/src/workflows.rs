//! The durable workflow host: runs the state machines of `statemachines/` with `crates/asl`.
//!
//! An execution is an [`asl::ExecutionState`] (input, journal of task outcomes and waits,
//! history) saved in the `executions` table after every run. Within a run every task
//! outcome is written to `execution_tasks` as soon as the task returns, so after a kill -9
//! a restarted server replays the saved state and takes the outcomes of tasks that already
//! ran from that log instead of invoking them again: no completed transition is lost and no
//! task runs twice. Executions that were running, waiting on a timer or paused on a task
//! token are picked up again when the server starts.
//!
//! Task resources: `arn:aws:states:::lambda:invoke` (and `.waitForTaskToken`) call the
//! function handlers in process; `arn:aws:states:::events:putEvents` publishes on the local
//! bus; `arn:aws:states:::states:startExecution` (and `.sync`, `.sync:2`) start child
//! executions. Timers (Wait states, retry intervals, task timeouts) fire on the runtime
//! clock, real or virtual.

use crate::bus::{Bus, PutEntry};
use crate::clock::RuntimeClock;
use crate::functions::Functions;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::util::{self, Level};
use asl::{
    Execution, ExecutionInfo, ExecutionState, JournalEntry, StateMachine, Status, TaskHandler,
    TaskOutcome, TaskRequest, Waiting,
};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The workflow files compiled into the binary: (file name, state machine name, workflow type, text).
pub const EMBEDDED: &[(&str, &str, &str, &str)] = &[
    (
        "booking-lifecycle.asl.json",
        "ecosystem-booking-lifecycle",
        "BOOKING_LIFECYCLE",
        include_str!("../../../statemachines/booking-lifecycle.asl.json"),
    ),
    (
        "payment-processing.asl.json",
        "ecosystem-payment-processing",
        "PAYMENT_PROCESSING",
        include_str!("../../../statemachines/payment-processing.asl.json"),
    ),
    (
        "dispute-resolution.asl.json",
        "ecosystem-dispute-resolution",
        "DISPUTE_RESOLUTION",
        include_str!("../../../statemachines/dispute-resolution.asl.json"),
    ),
    (
        "provider-onboarding.asl.json",
        "ecosystem-provider-onboarding",
        "PROVIDER_ONBOARDING",
        include_str!("../../../statemachines/provider-onboarding.asl.json"),
    ),
];

/// The IAM role reported in executions.
pub const ROLE_ARN: &str = "arn:aws:iam::000000000000:role/marketplace-local-workflows";

/// Workflow host errors, with the Step Functions error name ([`WorkflowError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// A definition file is invalid.
    #[error("InvalidDefinition: {file}: {message}")]
    InvalidDefinition {
        /// File.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// No such state machine.
    #[error("State Machine Does Not Exist: '{0}'")]
    StateMachineDoesNotExist(String),
    /// No such execution.
    #[error("Execution Does Not Exist: '{0}'")]
    ExecutionDoesNotExist(String),
    /// The name is taken.
    #[error("Execution Already Exists: '{0}'")]
    ExecutionAlreadyExists(String),
    /// A bad name, input or argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// The token is unknown or no longer expected.
    #[error("Invalid Token: '{0}'")]
    TaskDoesNotExist(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for WorkflowError {
    fn from(e: rusqlite::Error) -> Self {
        WorkflowError::Store(StoreError::from(e))
    }
}

impl WorkflowError {
    /// The AWS error name.
    pub fn code(&self) -> &'static str {
        match self {
            WorkflowError::InvalidDefinition { .. } => "InvalidDefinition",
            WorkflowError::StateMachineDoesNotExist(_) => "StateMachineDoesNotExist",
            WorkflowError::ExecutionDoesNotExist(_) => "ExecutionDoesNotExist",
            WorkflowError::ExecutionAlreadyExists(_) => "ExecutionAlreadyExists",
            WorkflowError::InvalidArgument(_) => "ValidationException",
            WorkflowError::TaskDoesNotExist(_) => "TaskDoesNotExist",
            WorkflowError::Store(_) => "InternalError",
        }
    }
}

/// One loaded state machine.
#[derive(Debug)]
pub struct Machine {
    /// `ecosystem-booking-lifecycle`, ...
    pub name: String,
    /// `BOOKING_LIFECYCLE`, ...
    pub workflow_type: String,
    /// The parsed definition.
    pub definition: StateMachine,
}

/// Replaces the `${...}` placeholders of a definition with local ARNs; an unknown
/// placeholder is an error naming it.
pub fn substitute(file: &str, text: &str, bus_name: &str) -> Result<String, WorkflowError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(WorkflowError::InvalidDefinition {
                file: file.into(),
                message: "unterminated ${ placeholder".into(),
            });
        };
        let key = &after[..end];
        let value = if key == "EventBusName" {
            bus_name.to_string()
        } else if key == "EventBusArn" {
            format!(
                "arn:aws:events:{}:{}:event-bus/{bus_name}",
                crate::REGION,
                crate::ACCOUNT
            )
        } else if let Some(f) = key.strip_suffix("FunctionArn") {
            let name = kebab(f);
            if !crate::rules::KNOWN_FUNCTIONS.contains(&name.as_str()) {
                return Err(WorkflowError::InvalidDefinition {
                    file: file.into(),
                    message: format!("unknown placeholder ${{{key}}}: no function '{name}'"),
                });
            }
            crate::functions::function_arn(&name)
        } else if let Some(sm) = key.strip_suffix("StateMachineArn") {
            format!(
                "arn:aws:states:{}:{}:stateMachine:ecosystem-{}",
                crate::REGION,
                crate::ACCOUNT,
                kebab(sm)
            )
        } else {
            return Err(WorkflowError::InvalidDefinition {
                file: file.into(),
                message: format!("unknown placeholder ${{{key}}}"),
            });
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn kebab(camel: &str) -> String {
    let mut s = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('-');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// Loads the four workflows: from `dir` when given (files named as in [`EMBEDDED`]),
/// otherwise the definitions compiled into the binary.
pub fn load_machines(dir: Option<&Path>, bus_name: &str) -> Result<Vec<Machine>, WorkflowError> {
    let mut out = Vec::new();
    for (file, name, wt, embedded) in EMBEDDED {
        let text = match dir {
            Some(d) => {
                let p = d.join(file);
                std::fs::read_to_string(&p).map_err(|e| WorkflowError::InvalidDefinition {
                    file: p.display().to_string(),
                    message: format!("cannot read: {e}"),
                })?
            }
            None => (*embedded).to_string(),
        };
        let text = substitute(file, &text, bus_name)?;
        let definition =
            asl::parse_definition_text(&text).map_err(|e| WorkflowError::InvalidDefinition {
                file: (*file).to_string(),
                message: e.to_string(),
            })?;
        out.push(Machine {
            name: (*name).to_string(),
            workflow_type: (*wt).to_string(),
            definition,
        });
    }
    Ok(out)
}

/// What StartExecution answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// The execution ARN.
    pub execution_arn: String,
    /// The name.
    pub name: String,
    /// Start time.
    pub start_date: String,
    /// False when an identical running execution was returned instead of a new one.
    pub created: bool,
}

/// DescribeExecution.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// ARN.
    pub execution_arn: String,
    /// State machine ARN.
    pub state_machine_arn: String,
    /// State machine name.
    pub state_machine: String,
    /// `BOOKING_LIFECYCLE`, ...
    pub workflow_type: Option<String>,
    /// Name.
    pub name: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    /// Input.
    pub input: Value,
    /// Output.
    pub output: Option<Value>,
    /// Error.
    pub error: Option<String>,
    /// Cause.
    pub cause: Option<String>,
    /// Start.
    pub start_date: String,
    /// Stop.
    pub stop_date: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// The task token it waits for, if any.
    pub waiting_for_token: Option<String>,
    /// The state it waits in, if any.
    pub waiting_state: Option<String>,
}

/// One row of ListExecutions.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    /// ARN.
    pub execution_arn: String,
    /// Name.
    pub name: String,
    /// State machine.
    pub state_machine: String,
    /// Workflow type.
    pub workflow_type: Option<String>,
    /// Status.
    pub status: String,
    /// Start.
    pub start_date: String,
    /// Stop.
    pub stop_date: Option<String>,
}

/// The workflow host.
pub struct Workflows {
    store: Arc<Store>,
    clock: Arc<RuntimeClock>,
    metrics: Arc<Metrics>,
    functions: Arc<Functions>,
    bus: Arc<Bus>,
    machines: HashMap<String, Machine>,
    queue: Mutex<(VecDeque<String>, HashSet<String>)>,
    queue_cv: Condvar,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    stop: AtomicBool,
    /// The saved state of running executions, by ARN (write-through: an entry is only ever
    /// the state of the last committed save). A run takes its execution's entry out and puts
    /// the new state back once it is saved, so a resume neither reads nor parses the store.
    cache: Mutex<HashMap<String, Cached>>,
    /// Runs finished by the workers.
    runs: std::sync::atomic::AtomicU64,
}

/// At most this many running executions' states are kept in memory (others are read from
/// the store when they resume).
const STATE_CACHE_ENTRIES: usize = 8192;

/// A running execution's state as last saved, with what a run needs besides it.
struct Cached {
    state: ExecutionState,
    checkpoint: i64,
    sm: String,
    correlation_id: Option<String>,
    /// Where the stored rows of the journal and the history begin.
    chunks: Chunks,
    /// Whether the execution may have rows in `execution_tasks` or `task_tokens` that the
    /// next save must delete (unknown, hence true, for a state read from the store). Task
    /// outcomes logged by this process are held back by the store, which tells the save
    /// whether a commit wrote any of them ([`Store::withdraw`]).
    side_rows: bool,
}

/// The first index of each stored row of an execution's journal and history. A row holds
/// one entry (`layout` 2 as first written) or, when its text is a JSON array, the entries
/// from its index on that one save appended (a run's worth: one row per table per save).
#[derive(Debug, Clone, Default)]
struct Chunks {
    journal: Vec<usize>,
    history: Vec<usize>,
}

/// The rows to write when the stored rows begin at `chunks` (`stored` entries in all) and
/// everything from the row start `start` on is rewritten: the index to delete stored rows
/// from, and the one row holding the entries from `start` on (`None` when there are none).
fn rechunk<T>(
    chunks: &mut Vec<usize>,
    stored: usize,
    start: usize,
    row: Option<T>,
) -> (Option<usize>, Option<(usize, T)>) {
    // `row` holds the serialised entries from `start` (a row start, or the stored length) on.
    let delete = (start < stored).then_some(start);
    chunks.retain(|c| *c < start);
    let row = row.map(|text| {
        chunks.push(start);
        (start, text)
    });
    (delete, row)
}

thread_local! {
    /// A worker's buffers for the journal and history rows of a save (see `save`).
    static ROW_BUFFERS: std::cell::RefCell<[Vec<u8>; 2]> = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// Serialises `entries` as one JSON array into `buf` (cleared first) and returns the text.
fn row_text<'b, T: Serialize>(buf: &'b mut Vec<u8>, entries: &[T]) -> Result<&'b str, String> {
    buf.clear();
    serde_json::to_writer(&mut *buf, entries).map_err(|e| e.to_string())?;
    std::str::from_utf8(buf).map_err(|e| e.to_string())
}

/// The payload of a history event that the engine shares with other events (a state's
/// input is the previous state's output; a Pass or Choice state's output its input).
fn shared_payload(details: &asl::history::Details) -> Option<&Arc<Value>> {
    match details {
        asl::history::Details::StateEntered { input, .. } => Some(input),
        asl::history::Details::StateExited { output, .. } => Some(output),
        _ => None,
    }
}

fn shared_payload_mut(details: &mut asl::history::Details) -> Option<&mut Arc<Value>> {
    match details {
        asl::history::Details::StateEntered { input, .. } => Some(input),
        asl::history::Details::StateExited { output, .. } => Some(output),
        _ => None,
    }
}

/// A history row whose events repeat payloads of earlier events: those payloads are
/// written as `null` and `refs` lists `[index in the row, id of the event whose payload it
/// is]`. (About half of a booking lifecycle's history bytes were such repeats.)
#[derive(Serialize, serde::Deserialize)]
struct HistoryRefRow<E> {
    refs: Vec<(usize, u64)>,
    events: E,
}

/// Serialises the events of `history` from `start` on as one history row into `buf`: a
/// plain JSON array, or a [`HistoryRefRow`] when some of them repeat an earlier payload.
fn history_row_text<'b>(
    buf: &'b mut Vec<u8>,
    history: &[asl::HistoryEvent],
    start: usize,
) -> Result<&'b str, String> {
    let mut first: HashMap<*const Value, u64> = HashMap::new();
    let mut refs = Vec::new();
    for (i, ev) in history.iter().enumerate() {
        let Some(p) = shared_payload(&ev.details) else {
            continue;
        };
        match first.entry(Arc::as_ptr(p)) {
            std::collections::hash_map::Entry::Occupied(src) if i >= start => {
                refs.push((i - start, *src.get()));
            }
            std::collections::hash_map::Entry::Occupied(_) => {}
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(ev.id);
            }
        }
    }
    if refs.is_empty() {
        return row_text(buf, &history[start..]);
    }
    let null = Arc::new(Value::Null);
    let mut events: Vec<std::borrow::Cow<'_, asl::HistoryEvent>> = history[start..]
        .iter()
        .map(std::borrow::Cow::Borrowed)
        .collect();
    for (i, _) in &refs {
        let ev = events[*i].to_mut();
        if let Some(p) = shared_payload_mut(&mut ev.details) {
            *p = null.clone();
        }
    }
    buf.clear();
    serde_json::to_writer(&mut *buf, &HistoryRefRow { refs, events }).map_err(|e| e.to_string())?;
    std::str::from_utf8(buf).map_err(|e| e.to_string())
}

/// Appends one stored history row to `out` (see [`history_row_text`]; rows written before
/// payload references are plain arrays or single events).
fn push_history_row(
    out: &mut Vec<asl::HistoryEvent>,
    chunks: &mut Vec<usize>,
    idx: i64,
    text: &str,
    arn: &str,
) -> Result<(), StoreError> {
    const TABLE: &str = "execution_history";
    if !text.starts_with("{\"refs\"") {
        return push_row(out, chunks, idx, text, TABLE, arn);
    }
    if idx != out.len() as i64 {
        return Err(corrupt(
            TABLE,
            arn,
            format!("row {idx} follows {} entries", out.len()),
        ));
    }
    let row: HistoryRefRow<Vec<asl::HistoryEvent>> =
        serde_json::from_str(text).map_err(|e| corrupt(TABLE, arn, e))?;
    chunks.push(out.len());
    let base = out.len();
    out.extend(row.events);
    for (i, src) in row.refs {
        // The source is an earlier event (ids count from 1 in order).
        let payload = (src as usize)
            .checked_sub(1)
            .filter(|s| *s < base + i)
            .and_then(|s| out.get(s))
            .and_then(|e| shared_payload(&e.details))
            .cloned()
            .ok_or_else(|| {
                corrupt(
                    TABLE,
                    arn,
                    format!("row {idx}: event {i} refers to event {src}, which has no payload before it"),
                )
            })?;
        match out
            .get_mut(base + i)
            .and_then(|e| shared_payload_mut(&mut e.details))
        {
            Some(p) => *p = payload,
            None => {
                return Err(corrupt(
                    TABLE,
                    arn,
                    format!("row {idx}: event {i} has no payload to refer"),
                ))
            }
        }
    }
    Ok(())
}

/// Replaces an execution's stored rows of one table from `delete` on by `row` (see
/// [`rechunk`]).
fn write_rows(
    tx: &rusqlite::Connection,
    arn: &str,
    delete: Option<usize>,
    row: Option<(usize, &str)>,
    delete_sql: &str,
    insert_sql: &str,
) -> rusqlite::Result<()> {
    if let Some(from) = delete {
        tx.prepare_cached(delete_sql)?
            .execute(params![arn, from as i64])?;
    }
    if let Some((idx, text)) = row {
        tx.prepare_cached(insert_sql)?
            .execute(params![arn, idx as i64, text])?;
    }
    Ok(())
}

/// Appends the entries of one stored row (one entry, or an array of them) to `out`,
/// checking that the row begins where the entries read so far end.
fn push_row<T: serde::de::DeserializeOwned>(
    out: &mut Vec<T>,
    chunks: &mut Vec<usize>,
    idx: i64,
    text: &str,
    table: &'static str,
    arn: &str,
) -> Result<(), StoreError> {
    if idx != out.len() as i64 {
        return Err(corrupt(
            table,
            arn,
            format!("row {idx} follows {} entries", out.len()),
        ));
    }
    chunks.push(out.len());
    if text.starts_with('[') {
        let items: Vec<T> = serde_json::from_str(text).map_err(|e| corrupt(table, arn, e))?;
        out.extend(items);
    } else {
        out.push(serde_json::from_str(text).map_err(|e| corrupt(table, arn, e))?);
    }
    Ok(())
}

/// The journal stored as rows: the root lane's (the engine keeps every Parallel branch's
/// and Map iteration's own journal in its lane, which stays in the summary row), or the
/// single journal of a state saved before lanes existed.
fn root_journal(state: &ExecutionState) -> &[JournalEntry] {
    match state.lanes.get("") {
        Some(l) => &l.journal,
        None => &state.journal,
    }
}

fn root_journal_mut(state: &mut ExecutionState) -> &mut Vec<JournalEntry> {
    if state.lanes.contains_key("") {
        if let Some(l) = state.lanes.get_mut("") {
            return &mut l.journal;
        }
    }
    &mut state.journal
}

/// What is already stored of an execution's journal and history: a save writes only the
/// rows from the first one that may differ.
#[derive(Debug, Clone, Default)]
struct Base {
    /// Journal entries stored (their kinds, in order).
    journal: Vec<std::mem::Discriminant<JournalEntry>>,
    /// The first stored journal entry that is an unfinished wait (the engine turns it into
    /// a finished one in place).
    first_open_wait: Option<usize>,
    /// History events stored (their kinds, in order).
    history: Vec<std::mem::Discriminant<asl::history::Details>>,
    /// The last stored history event.
    last_event: Option<asl::HistoryEvent>,
}

impl Base {
    fn of(state: &ExecutionState) -> Base {
        Base {
            journal: root_journal(state)
                .iter()
                .map(std::mem::discriminant)
                .collect(),
            first_open_wait: root_journal(state)
                .iter()
                .position(|e| matches!(e, JournalEntry::WaitingUntil(_))),
            history: state
                .history
                .iter()
                .map(|e| std::mem::discriminant(&e.details))
                .collect(),
            last_event: state.history.last().cloned(),
        }
    }

    /// The first journal index to (re)write for `journal`.
    fn journal_from(&self, journal: &[JournalEntry]) -> usize {
        let mut from = self.journal.len().min(journal.len());
        if let Some(w) = self.first_open_wait {
            from = from.min(w);
        }
        self.journal
            .iter()
            .zip(journal)
            .take(from)
            .position(|(k, e)| *k != std::mem::discriminant(e))
            .unwrap_or(from)
    }

    /// The first history index to (re)write for `history`.
    fn history_from(&self, history: &[asl::HistoryEvent]) -> usize {
        let mut from = self.history.len().min(history.len());
        if from > 0
            && from == self.history.len()
            && self.last_event.as_ref() != history.get(from - 1)
        {
            from -= 1;
        }
        self.history
            .iter()
            .zip(history)
            .take(from)
            .position(|(k, e)| *k != std::mem::discriminant(&e.details))
            .unwrap_or(from)
    }
}

/// The state without its journal and history (stored as rows), serialised.
fn head_text(state: &mut ExecutionState) -> Result<String, StoreError> {
    let journal = std::mem::take(root_journal_mut(state));
    let history = std::mem::take(&mut state.history);
    let text = serde_json::to_string(&*state);
    *root_journal_mut(state) = journal;
    state.history = history;
    text.map_err(|e| StoreError::Corrupt {
        table: "executions",
        message: e.to_string(),
    })
}

/// Runs `f` on the state as an [`Execution`] (the state is moved in and back, not copied).
fn with_exec<T>(state: &mut ExecutionState, f: impl FnOnce(&mut Execution) -> T) -> T {
    let mut exec = Execution::from_state(std::mem::take(state));
    let out = f(&mut exec);
    *state = exec.into_state();
    out
}

/// A clock stopped at one instant (a deferred heartbeat is applied at the time it was sent).
struct AtInstant(chrono::DateTime<chrono::Utc>);

impl asl::Clock for AtInstant {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
    fn wait_until(&self, t: chrono::DateTime<chrono::Utc>) -> bool {
        t <= self.0
    }
}

fn corrupt(table: &'static str, arn: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        message: format!("{arn}: {e}"),
    }
}

impl std::fmt::Debug for Workflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflows")
            .field("machines", &self.machines.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn valid_name(name: &str) -> Result<(), WorkflowError> {
    if name.is_empty() || name.chars().count() > 80 {
        return Err(WorkflowError::InvalidArgument(format!(
            "Invalid Name: '{name}' (1 to 80 characters)"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(*c))
    {
        return Err(WorkflowError::InvalidArgument(format!(
            "Invalid Name: '{name}' (character {c:?} is not allowed)"
        )));
    }
    Ok(())
}

/// `(state machine name, execution name)` of an execution ARN.
pub fn parse_execution_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:aws:states:")?;
    let mut parts = rest.splitn(5, ':');
    let _region = parts.next()?;
    let _account = parts.next()?;
    if parts.next()? != "execution" {
        return None;
    }
    Some((parts.next()?, parts.next()?))
}

/// An `executions` row: state text, checkpoint, state machine, correlation id, stop
/// time, layout.
type StoredRow = (String, i64, String, Option<String>, Option<i64>, i64);

/// An execution read from the store (its summary, for describe).
struct Row {
    state: ExecutionState,
    sm: String,
    correlation_id: Option<String>,
    stop_ms: Option<i64>,
    chunks: Chunks,
}

impl Workflows {
    /// A host for the given machines.
    pub fn new(
        store: Arc<Store>,
        clock: Arc<RuntimeClock>,
        metrics: Arc<Metrics>,
        functions: Arc<Functions>,
        bus: Arc<Bus>,
        machines: Vec<Machine>,
    ) -> Workflows {
        Workflows {
            store,
            clock,
            metrics,
            functions,
            bus,
            machines: machines.into_iter().map(|m| (m.name.clone(), m)).collect(),
            queue: Mutex::new((VecDeque::new(), HashSet::new())),
            queue_cv: Condvar::new(),
            locks: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            cache: Mutex::new(HashMap::new()),
            runs: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The state machine name of a workflow type (`BOOKING_LIFECYCLE`) or name.
    pub fn machine_name(&self, workflow_type_or_name: &str) -> Result<String, WorkflowError> {
        if self.machines.contains_key(workflow_type_or_name) {
            return Ok(workflow_type_or_name.to_string());
        }
        self.machines
            .values()
            .find(|m| m.workflow_type == workflow_type_or_name)
            .map(|m| m.name.clone())
            .ok_or_else(|| WorkflowError::StateMachineDoesNotExist(workflow_type_or_name.into()))
    }

    /// The loaded machines: (name, workflow type).
    pub fn machines(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .machines
            .values()
            .map(|m| (m.name.clone(), m.workflow_type.clone()))
            .collect();
        v.sort();
        v
    }

    fn lock_for(&self, arn: &str) -> Arc<Mutex<()>> {
        let mut l = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        l.entry(arn.to_string()).or_default().clone()
    }

    fn enqueue(&self, arn: &str) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.1.insert(arn.to_string()) {
            q.0.push_back(arn.to_string());
            self.queue_cv.notify_one();
        }
    }

    /// StartExecution. `parent` is the task token of a parent's `startExecution.sync` task.
    pub fn start(
        &self,
        workflow: &str,
        name: Option<&str>,
        input: Value,
        parent: Option<(&str, &str, bool)>,
    ) -> Result<Started, WorkflowError> {
        let sm = self.machine_name(workflow)?;
        let name = match name {
            Some(n) => n.to_string(),
            None => util::uuid_v4(),
        };
        valid_name(&name)?;
        let input_text = util::json_text(&input);
        if input_text.len() > asl::engine::MAX_PAYLOAD_BYTES {
            return Err(WorkflowError::InvalidArgument(format!(
                "input: {} bytes exceed the maximum of {} bytes",
                input_text.len(),
                asl::engine::MAX_PAYLOAD_BYTES
            )));
        }
        let info = ExecutionInfo {
            name: name.clone(),
            state_machine_name: sm.clone(),
            region: crate::REGION.into(),
            account: crate::ACCOUNT.into(),
            role_arn: ROLE_ARN.into(),
        };
        let arn = info.execution_arn();
        let exec = Execution::new(input.clone(), info, util::random_u64(), self.clock.as_ref());
        let state_text = serde_json::to_string(exec.state()).map_err(|e| StoreError::Corrupt {
            table: "executions",
            message: e.to_string(),
        })?;
        let correlation_id = input
            .get("correlationId")
            .and_then(Value::as_str)
            .map(str::to_string);
        let start_ms = exec.state().start_time.timestamp_millis();
        // Checks come before the writes, which fail only on I/O: no savepoint.
        let created = self.store.tx_unguarded(|tx| -> Result<Option<Started>, WorkflowError> {
            let existing: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT status, input, start_ms FROM executions WHERE arn = ?1",
                    [&arn],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((status, old_input, start)) = existing {
                let same = serde_json::from_str::<Value>(&old_input).ok() == Some(input.clone());
                if status == "RUNNING" && same {
                    return Ok(Some(Started {
                        execution_arn: arn.clone(),
                        name: name.clone(),
                        start_date: util::rfc3339_ms(util::from_ms(start)),
                        created: false,
                    }));
                }
                return Err(WorkflowError::ExecutionAlreadyExists(arn.clone()));
            }
            tx.execute(
                "INSERT INTO executions (arn, state_machine, name, status, input, start_ms, correlation_id, state, checkpoint, wake_ms, layout)
                 VALUES (?1, ?2, ?3, 'RUNNING', ?4, ?5, ?6, ?7, 0, NULL, 2)",
                params![arn, sm, name, input_text, start_ms, correlation_id, state_text],
            )?;
            if let Some((parent_arn, token, v2)) = parent {
                tx.execute(
                    "INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)",
                    params![
                        format!("parent:{arn}"),
                        json!({"arn": parent_arn, "token": token, "v2": v2}).to_string()
                    ],
                )?;
            }
            Ok(None)
        })?;
        if let Some(s) = created {
            return Ok(s);
        }
        self.metrics
            .inc("marketplace_executions_started_total", &[("workflow", &sm)]);
        util::log(
            Level::Info,
            "execution started",
            correlation_id.as_deref(),
            &[("executionArn", json!(arn)), ("workflow", json!(sm))],
        );
        self.status_event(&arn, &sm, &name, "RUNNING", &input, None, start_ms, None);
        self.put_back(
            &arn,
            Cached {
                state: exec.into_state(),
                checkpoint: 0,
                sm: sm.clone(),
                correlation_id: correlation_id.clone(),
                chunks: Chunks::default(),
                side_rows: false,
            },
        );
        self.enqueue(&arn);
        Ok(Started {
            execution_arn: arn,
            name,
            start_date: util::rfc3339_ms(util::from_ms(start_ms)),
            created: true,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn status_event(
        &self,
        arn: &str,
        sm: &str,
        name: &str,
        status: &str,
        input: &Value,
        output: Option<&Value>,
        start_ms: i64,
        stop_ms: Option<i64>,
    ) {
        let detail = json!({
            "executionArn": arn,
            "stateMachineArn": format!("arn:aws:states:{}:{}:stateMachine:{sm}", crate::REGION, crate::ACCOUNT),
            "name": name,
            "status": status,
            "startDate": start_ms,
            "stopDate": stop_ms,
            "input": util::json_text(input),
            "output": output.map(util::json_text),
        });
        let entry = PutEntry {
            source: Some("aws.states".into()),
            detail_type: Some("Step Functions Execution Status Change".into()),
            detail: Some(util::json_text(&detail)),
            resources: vec![arn.to_string()],
            event_bus_name: Some("default".into()),
            ..PutEntry::default()
        };
        if let Err(e) = self.bus.put_service_events(&[entry]) {
            util::log(
                Level::Error,
                &format!("status change event not published: {e}"),
                None,
                &[("executionArn", json!(arn))],
            );
        }
    }

    /// Reads an execution's state from the store. `full` also reads its journal and
    /// history rows (needed to run it); without it only the summary part is parsed.
    fn read(&self, arn: &str, full: bool) -> Result<(Row, i64, bool), WorkflowError> {
        let c = self.store.lock();
        let row: Option<StoredRow> = c
            .prepare_cached(
                "SELECT state, checkpoint, state_machine, correlation_id, stop_ms, layout FROM executions WHERE arn = ?1",
            )?
            .query_row([arn], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .optional()?;
        let (text, checkpoint, sm, correlation_id, stop_ms, layout) =
            row.ok_or_else(|| WorkflowError::ExecutionDoesNotExist(arn.into()))?;
        let mut state: ExecutionState =
            serde_json::from_str(&text).map_err(|e| corrupt("executions", arn, e))?;
        let rows = layout >= 2;
        let mut chunks = Chunks::default();
        if rows && full {
            let mut st = c.prepare_cached(
                "SELECT idx, entry FROM execution_journal WHERE arn = ?1 ORDER BY idx",
            )?;
            let texts =
                st.query_map([arn], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            let journal = root_journal_mut(&mut state);
            for t in texts {
                let (idx, text) = t?;
                push_row(
                    journal,
                    &mut chunks.journal,
                    idx,
                    &text,
                    "execution_journal",
                    arn,
                )?;
            }
            state.history = Self::read_history(&c, arn, &mut chunks.history)?;
        }
        Ok((
            Row {
                state,
                sm,
                correlation_id,
                stop_ms,
                chunks,
            },
            checkpoint,
            rows,
        ))
    }

    fn read_history(
        c: &rusqlite::Connection,
        arn: &str,
        chunks: &mut Vec<usize>,
    ) -> Result<Vec<asl::HistoryEvent>, WorkflowError> {
        let mut st = c.prepare_cached(
            "SELECT idx, event FROM execution_history WHERE arn = ?1 ORDER BY idx",
        )?;
        let texts = st.query_map([arn], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for t in texts {
            let (idx, text) = t?;
            push_history_row(&mut out, chunks, idx, &text, arn)?;
        }
        Ok(out)
    }

    /// Takes a running execution's state to run or change it (the caller holds the
    /// execution's lock): from memory, else from the store. The flag says whether task
    /// outcomes may have been logged at its checkpoint (always false for a state in
    /// memory: it was saved by this process after its last run).
    fn take(&self, arn: &str) -> Result<(Cached, Base, bool), WorkflowError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(arn);
        if let Some(c) = cached {
            let base = Base::of(&c.state);
            return Ok((c, base, false));
        }
        let (row, checkpoint, rows) = self.read(arn, true)?;
        // A state of the first layout has no rows yet: every row is written by the next save.
        let base = if rows {
            Base::of(&row.state)
        } else {
            Base::default()
        };
        Ok((
            Cached {
                state: row.state,
                checkpoint,
                sm: row.sm,
                correlation_id: row.correlation_id,
                chunks: row.chunks,
                side_rows: true,
            },
            base,
            true,
        ))
    }

    /// Puts a state back in memory (only running executions are kept).
    fn put_back(&self, arn: &str, c: Cached) {
        if c.state.status != Status::Running {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= STATE_CACHE_ENTRIES && !cache.contains_key(arn) {
            if let Some(k) = cache.keys().next().cloned() {
                cache.remove(&k);
            }
        }
        cache.insert(arn.to_string(), c);
    }

    /// When a paused execution must run again: its timer, its task's timeout or heartbeat
    /// timeout, or the execution's own deadline (`TimeoutSeconds` of the state machine),
    /// whichever comes first.
    fn wake_ms(state: &ExecutionState, deadline_ms: Option<i64>) -> Option<i64> {
        // Not paused (or ready to run after a delivered result): nothing to wake.
        if state.waiting.is_none() || state.outstanding().is_empty() {
            return None;
        }
        // Every outstanding wait counts (several Parallel branches or Map iterations may
        // be paused at once): the earliest timer, task timeout or heartbeat deadline; a
        // voluntary checkpoint is due at once.
        let own = state.next_due().map(|t| t.timestamp_millis().max(0));
        match (own, deadline_ms) {
            (Some(w), Some(d)) => Some(w.min(d)),
            (w, d) => w.or(d),
        }
    }

    /// The instant an execution of `sm` started at `start` times out, if its machine has
    /// a `TimeoutSeconds`.
    fn deadline(&self, sm: &str, state: &ExecutionState) -> Option<chrono::DateTime<chrono::Utc>> {
        let secs = self.machines.get(sm)?.definition.timeout_seconds?;
        Some(state.start_time + chrono::Duration::seconds(i64::try_from(secs).ok()?))
    }

    /// Saves a state at the next checkpoint in one transaction: the summary row, the
    /// journal and history rows from the first one that changed (`base` says what is
    /// stored), the task token it waits for; the task log of the previous checkpoint is
    /// cleared. On success the execution's checkpoint is advanced in `c`.
    fn save(&self, arn: &str, c: &mut Cached, base: &Base) -> Result<(), WorkflowError> {
        let head = head_text(&mut c.state)?;
        let state = &c.state;
        let stop_ms = if state.status == Status::Running {
            None
        } else {
            state.history.last().map(|h| h.timestamp.timestamp_millis())
        };
        let deadline = self.deadline(&c.sm, state).map(|d| d.timestamp_millis());
        let wake = Self::wake_ms(state, deadline);
        let root = root_journal(state);
        let jfrom = base.journal_from(root);
        let hfrom = base.history_from(&state.history);
        // The rows from the stored row holding the first difference on are replaced by
        // one row per table: the entries from that row's start on, as one JSON array.
        let mut chunks = c.chunks.clone();
        let jstart = Self::row_start(&chunks.journal, base.journal.len(), jfrom);
        let hstart = Self::row_start(&chunks.history, base.history.len(), hfrom);
        let prev = c.checkpoint;
        let now_ms = self.clock.now_ms();
        let side_rows = c.side_rows;
        // Serialised into this thread's reused buffers: a run's rows are tens of KiB, and
        // growing a fresh buffer for every save cost page faults and copies.
        let tokens_stored = ROW_BUFFERS.with(|bufs| -> Result<bool, WorkflowError> {
            let mut bufs = bufs.borrow_mut();
            let (jbuf, hbuf) = bufs.split_at_mut(1);
            let jtext = (jstart < root.len())
                .then(|| row_text(&mut jbuf[0], &root[jstart..]))
                .transpose()
                .map_err(|e| corrupt("execution_journal", arn, e))?;
            let htext = (hstart < state.history.len())
                .then(|| history_row_text(&mut hbuf[0], &state.history, hstart))
                .transpose()
                .map_err(|e| corrupt("execution_history", arn, e))?;
            let (jdel, jrow) = rechunk(&mut chunks.journal, base.journal.len(), jstart, jtext);
            let (hdel, hrow) = rechunk(&mut chunks.history, base.history.len(), hstart, htext);
            // Checks come before the writes, which fail only on I/O: no savepoint.
            let written = self.store.tx_unguarded(|tx| -> Result<bool, WorkflowError> {
                tx.prepare_cached(
                    "UPDATE executions SET status = ?2, state = ?3, checkpoint = ?4, wake_ms = ?5, stop_ms = ?6, layout = 2 WHERE arn = ?1",
                )?
                .execute(params![arn, state.status.as_str(), head, prev + 1, wake, stop_ms])?;
                write_rows(
                    tx,
                    arn,
                    jdel,
                    jrow,
                    "DELETE FROM execution_journal WHERE arn = ?1 AND idx >= ?2",
                    "INSERT OR REPLACE INTO execution_journal (arn, idx, entry) VALUES (?1, ?2, ?3)",
                )?;
                write_rows(
                    tx,
                    arn,
                    hdel,
                    hrow,
                    "DELETE FROM execution_history WHERE arn = ?1 AND idx >= ?2",
                    "INSERT OR REPLACE INTO execution_history (arn, idx, event) VALUES (?1, ?2, ?3)",
                )?;
                // The run's logged outcomes are obsolete now; rows of them are only in the
                // database when a commit came during the run. (Skipped when this process
                // knows there are none: no such commit, no token registered by the run,
                // and none stored by the last save.)
                if self.store.withdraw(arn) || side_rows {
                    tx.prepare_cached(
                        "DELETE FROM execution_tasks WHERE arn = ?1 AND checkpoint <= ?2",
                    )?
                    .execute(params![arn, prev])?;
                    tx.prepare_cached("DELETE FROM task_tokens WHERE arn = ?1")?
                        .execute([arn])?;
                }
                let open = if state.status == Status::Running {
                    state.outstanding()
                } else {
                    &[]
                };
                let mut stored = false;
                for w in open {
                    if let Waiting::Task { token, state: st, .. } = w {
                        if !token.is_empty() {
                            tx.prepare_cached(
                                "INSERT OR REPLACE INTO task_tokens (token, arn, state_name, created_ms) VALUES (?1, ?2, ?3, ?4)",
                            )?
                            .execute(params![token, arn, st, now_ms])?;
                            stored = true;
                        }
                    }
                }
                Ok(stored)
            });
            // A buffer that grew past 1 MiB for a huge run is not kept at that size.
            for b in bufs.iter_mut() {
                if b.capacity() > 1 << 20 {
                    *b = Vec::new();
                }
            }
            written
        })?;
        c.side_rows = tokens_stored;
        c.checkpoint = prev + 1;
        c.chunks = chunks;
        Ok(())
    }

    /// The start of the stored row holding index `from` (`from` itself when it is past the
    /// stored entries).
    fn row_start(chunks: &[usize], stored: usize, from: usize) -> usize {
        if from >= stored {
            return from;
        }
        chunks
            .iter()
            .rev()
            .find(|c| **c <= from)
            .copied()
            .unwrap_or(0)
    }

    /// Ends an execution waiting for a task token at its deadline: TIMED_OUT, as the
    /// interpreter ends one whose deadline passes between states.
    fn time_out_at_deadline(&self, c: &mut Cached, now: chrono::DateTime<chrono::Utc>) -> bool {
        let Some(deadline) = self.deadline(&c.sm, &c.state) else {
            return false;
        };
        if now < deadline || c.state.task_tokens().next().is_none() {
            return false;
        }
        let s = &mut c.state;
        let id = s.history.len() as u64 + 1;
        let at = s
            .history
            .last()
            .map_or(deadline, |h| h.timestamp.max(deadline));
        s.history.push(asl::HistoryEvent {
            id,
            previous_event_id: id - 1,
            timestamp: at,
            details: asl::history::Details::ExecutionTimedOut(Box::new(asl::history::ErrorCause {
                error: Some("States.Timeout".into()),
                cause: None,
            })),
        });
        s.status = Status::TimedOut;
        s.error = Some("States.Timeout".into());
        s.cause = None;
        s.output = None;
        s.waiting = None;
        s.waits.clear();
        true
    }

    /// Runs an execution until it finishes or pauses, persisting the result.
    pub fn run_execution(&self, arn: &str) -> Result<(), WorkflowError> {
        let lock = self.lock_for(arn);
        let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (mut c, base, maybe_logged) = self.take(arn)?;
        if c.state.status != Status::Running {
            return Ok(());
        }
        let Some(machine) = self.machines.get(&c.sm) else {
            let sm = c.sm.clone();
            self.put_back(arn, c);
            return Err(WorkflowError::StateMachineDoesNotExist(sm));
        };
        let deferred = self.apply_deferred(&mut c.state);
        let now = self.clock.now();
        with_exec(&mut c.state, |exec| exec.check_task_timeouts(now));
        if self.time_out_at_deadline(&mut c, now) {
            self.save(arn, &mut c, &base)?;
            self.finished(arn, &c.sm, &c.state, c.correlation_id.as_deref());
            return Ok(());
        }
        // Idle when every outstanding wait is still waiting for its token or for a timer
        // that is not due: the interpreter would pause again at the same instant.
        let idle = deferred.is_empty()
            && c.state.waiting.is_some()
            && !c.state.outstanding().is_empty()
            && c.state.outstanding().iter().all(|w| match w {
                Waiting::Task { .. } => true,
                Waiting::Timer { until } => *until > now,
                Waiting::Checkpoint => false,
            });
        if idle {
            self.put_back(arn, c);
            return Ok(());
        }
        let logged = if maybe_logged {
            self.logged_outcomes(arn, c.checkpoint)?
        } else {
            HashMap::new()
        };
        let mut tasks = HostTasks {
            host: self,
            arn,
            checkpoint: c.checkpoint,
            seq: 0,
            correlation_id: c.correlation_id.clone(),
            logged,
            wrote_side_rows: std::cell::Cell::new(false),
        };
        // The interpreter keeps a paused wait's due time, so the runtime clock is used as is:
        // a wait that is not due pauses the execution until its timer fires.
        let status = with_exec(&mut c.state, |exec| {
            exec.run(&machine.definition, &mut tasks, self.clock.as_ref())
        });
        c.side_rows |= tasks.wrote_side_rows.get();
        self.save(arn, &mut c, &base)?;
        if !deferred.is_empty() {
            let _ = self.store.tx(|c| -> Result<(), StoreError> {
                let mut st = c.prepare_cached("DELETE FROM kv WHERE key = ?1")?;
                for key in &deferred {
                    st.execute([key])?;
                }
                Ok(())
            });
        }
        for token in c.state.task_tokens() {
            if self.store.kv_get(&format!("callback:{token}"))?.is_some() {
                self.enqueue(arn);
                break;
            }
        }
        if status != Status::Running {
            self.finished(arn, &c.sm, &c.state, c.correlation_id.as_deref());
        } else {
            self.put_back(arn, c);
        }
        Ok(())
    }

    /// Task outcomes logged at a checkpoint by a run whose state was never saved (a
    /// process killed mid-run): replayed instead of invoking the tasks again.
    fn logged_outcomes(
        &self,
        arn: &str,
        checkpoint: i64,
    ) -> Result<HashMap<i64, (String, TaskOutcome)>, WorkflowError> {
        // Outcomes of a run that ended without its save may still be held back.
        self.store.write_held(arn)?;
        let c = self.store.lock();
        let mut st = c.prepare_cached(
            "SELECT seq, state_name, outcome FROM execution_tasks WHERE arn = ?1 AND checkpoint = ?2",
        )?;
        let rows = st.query_map(params![arn, checkpoint], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = HashMap::new();
        for row in rows {
            let (seq, name, text) = row?;
            if let Some(o) = serde_json::from_str(&text)
                .ok()
                .as_ref()
                .and_then(outcome_from)
            {
                out.insert(seq, (name, o));
            }
        }
        Ok(out)
    }

    fn finished(&self, arn: &str, sm: &str, state: &ExecutionState, corr: Option<&str>) {
        let status = state.status.as_str();
        self.metrics.inc(
            "marketplace_executions_total",
            &[("workflow", sm), ("status", status)],
        );
        let start_ms = state.start_time.timestamp_millis();
        let stop_ms = state
            .history
            .last()
            .map(|h| h.timestamp.timestamp_millis())
            .unwrap_or(start_ms);
        self.metrics.observe(
            "marketplace_execution_duration_seconds",
            &[("workflow", sm)],
            (stop_ms - start_ms) as f64 / 1000.0,
        );
        util::log(
            Level::Info,
            "execution finished",
            corr,
            &[
                ("executionArn", json!(arn)),
                ("workflow", json!(sm)),
                ("status", json!(status)),
                ("error", json!(state.error)),
                ("cause", json!(state.cause)),
            ],
        );
        self.status_event(
            arn,
            sm,
            &state.info.name,
            status,
            &state.input,
            state.output.as_ref(),
            start_ms,
            Some(stop_ms),
        );
        // A parent waiting in startExecution.sync gets the child's result.
        if let Ok(Some(p)) = self.store.kv_get(&format!("parent:{arn}")) {
            if let Ok(p) = serde_json::from_str::<Value>(&p) {
                let token = p["token"].as_str().unwrap_or_default();
                let result = if state.status == Status::Succeeded {
                    let out = state.output.clone().unwrap_or(Value::Null);
                    self.send_task_success(
                        token,
                        json!({
                            "ExecutionArn": arn,
                            "Status": status,
                            "StartDate": start_ms,
                            "StopDate": stop_ms,
                            "Input": state.input.to_string(),
                            "InputDetails": {"Included": true},
                            "Output": if p["v2"] == json!(true) { out.clone() } else { Value::String(out.to_string()) },
                            "OutputDetails": {"Included": true},
                        }),
                    )
                } else {
                    self.send_task_failure(
                        token,
                        Some("States.TaskFailed".into()),
                        Some(
                            json!({"ExecutionArn": arn, "Status": status, "Error": state.error, "Cause": state.cause})
                                .to_string(),
                        ),
                    )
                };
                if let Err(e) = result {
                    util::log(
                        Level::Warn,
                        &format!("parent of {arn} not resumed: {e}"),
                        corr,
                        &[],
                    );
                }
            }
        }
    }

    /// Applies the task results and heartbeats that arrived while the execution was running
    /// (stored under `callback:<token>` and `heartbeat:<token>`, one per outstanding token:
    /// several Parallel branches or Map iterations may wait at once); returns the keys to
    /// delete once the new state is saved.
    fn apply_deferred(&self, state: &mut ExecutionState) -> Vec<String> {
        let tokens: Vec<String> = state.task_tokens().map(str::to_string).collect();
        let mut keys = Vec::new();
        for token in tokens {
            let beat = format!("heartbeat:{token}");
            let key = format!("callback:{token}");
            // Both kinds of deferred answer in one read.
            let (mut heartbeat, mut callback) = (None, None);
            {
                let c = self.store.lock();
                let rows = c
                    .prepare_cached("SELECT key, value FROM kv WHERE key IN (?1, ?2)")
                    .and_then(|mut st| {
                        st.query_map([&beat, &key], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                        })?
                        .collect::<Result<Vec<_>, _>>()
                    })
                    .unwrap_or_default();
                for (k, text) in rows {
                    let v = serde_json::from_str::<Value>(&text).ok();
                    if k == beat {
                        heartbeat = v;
                    } else {
                        callback = v;
                    }
                }
            }
            if let Some(ms) = heartbeat
                .as_ref()
                .and_then(|v| v.get("heartbeat").and_then(Value::as_i64))
            {
                // At the instant it was sent, not at the instant it is applied.
                let at = AtInstant(util::from_ms(ms));
                let _ = with_exec(state, |exec| exec.send_task_heartbeat(&token, &at));
                keys.push(beat);
            }
            let Some(v) = callback else {
                continue;
            };
            let applied = with_exec(state, |exec| {
                if let Some(out) = v.get("output") {
                    exec.send_task_success(&token, out.clone())
                } else {
                    exec.send_task_failure(
                        &token,
                        v.get("error").and_then(Value::as_str).map(str::to_string),
                        v.get("cause").and_then(Value::as_str).map(str::to_string),
                    )
                }
            });
            if applied.is_ok() {
                keys.push(key);
            }
        }
        keys
    }

    fn by_token(&self, token: &str) -> Result<String, WorkflowError> {
        let c = self.store.lock();
        let arn: Option<String> = c
            .prepare_cached("SELECT arn FROM task_tokens WHERE token = ?1")?
            .query_row([token], |r| r.get(0))
            .optional()?;
        arn.ok_or_else(|| WorkflowError::TaskDoesNotExist(token.into()))
    }

    fn with_token(
        &self,
        token: &str,
        deferred: Value,
        f: impl FnOnce(&mut Execution) -> Result<(), asl::ExecError>,
    ) -> Result<Option<String>, WorkflowError> {
        if token.is_empty() || token.len() > 1024 {
            return Err(WorkflowError::InvalidArgument(
                "taskToken: must be 1 to 1024 characters".into(),
            ));
        }
        let arn = self.by_token(token)?;
        let lock = self.lock_for(&arn);
        let _g = match lock.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if deferred.get("heartbeat").is_some() => {
                // A heartbeat while the execution runs: its time is kept durably and applied
                // before the run's next timeout check (a later heartbeat replaces it).
                self.store
                    .kv_set(&format!("heartbeat:{token}"), &deferred.to_string())?;
                return Ok(None);
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                // The execution is running (possibly this very call comes from inside one of
                // its tasks): keep the result durably; the run applies it when it pauses.
                self.store
                    .kv_set(&format!("callback:{token}"), &deferred.to_string())?;
                self.enqueue(&arn);
                return Ok(None);
            }
        };
        let (mut c, base, _) = self.take(&arn)?;
        let applied = with_exec(&mut c.state, f).map_err(|e| match e {
            asl::ExecError::InvalidToken(t) => WorkflowError::TaskDoesNotExist(t),
            other => WorkflowError::InvalidArgument(other.to_string()),
        });
        if let Err(e) = applied {
            self.put_back(&arn, c);
            return Err(e);
        }
        self.save(&arn, &mut c, &base)?;
        self.put_back(&arn, c);
        Ok(Some(arn))
    }

    /// SendTaskSuccess: recorded durably before it returns, then the execution resumes.
    pub fn send_task_success(&self, token: &str, output: Value) -> Result<(), WorkflowError> {
        let d = json!({ "output": output.clone() });
        if let Some(arn) = self.with_token(token, d, |e| e.send_task_success(token, output))? {
            self.enqueue(&arn);
        }
        Ok(())
    }

    /// SendTaskFailure.
    pub fn send_task_failure(
        &self,
        token: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<(), WorkflowError> {
        let d = json!({ "error": error.clone(), "cause": cause.clone() });
        if let Some(arn) =
            self.with_token(token, d, |e| e.send_task_failure(token, error, cause))?
        {
            self.enqueue(&arn);
        }
        Ok(())
    }

    /// SendTaskHeartbeat.
    pub fn send_task_heartbeat(&self, token: &str) -> Result<(), WorkflowError> {
        let clock = self.clock.clone();
        let d = json!({ "heartbeat": self.clock.now_ms() });
        self.with_token(token, d, |e| e.send_task_heartbeat(token, clock.as_ref()))?;
        Ok(())
    }

    /// StopExecution: ABORTED with an optional error and cause.
    pub fn stop(
        &self,
        arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<Description, WorkflowError> {
        {
            let lock = self.lock_for(arn);
            let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
            let (mut c, base, _) = self.take(arn)?;
            if c.state.status == Status::Running {
                with_exec(&mut c.state, |exec| {
                    exec.stop(error, cause, self.clock.as_ref())
                });
                self.save(arn, &mut c, &base)?;
                self.finished(arn, &c.sm, &c.state, c.correlation_id.as_deref());
            }
        }
        self.describe(arn)
    }

    /// An execution's status (`RUNNING`, `SUCCEEDED`, …) and whether it waits for a task
    /// token, without building its description: from memory for a running execution at
    /// rest, else from the status column (a running one not in memory is described).
    pub fn status(&self, arn: &str) -> Result<(String, bool), WorkflowError> {
        let waits_for_token = |s: &ExecutionState| {
            s.status == Status::Running
                && s.outstanding()
                    .iter()
                    .any(|w| matches!(w, Waiting::Task { .. }))
        };
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.get(arn) {
                return Ok((
                    c.state.status.as_str().to_string(),
                    waits_for_token(&c.state),
                ));
            }
        }
        let status: Option<String> = self
            .store
            .lock()
            .prepare_cached("SELECT status FROM executions WHERE arn = ?1")?
            .query_row([arn], |r| r.get(0))
            .optional()?;
        match status {
            None => Err(WorkflowError::ExecutionDoesNotExist(arn.into())),
            Some(s) if s == Status::Running.as_str() => {
                let d = self.describe(arn)?;
                Ok((d.status, d.waiting_state.is_some()))
            }
            Some(s) => Ok((s, false)),
        }
    }

    /// DescribeExecution.
    pub fn describe(&self, arn: &str) -> Result<Description, WorkflowError> {
        // A running execution at rest is described from memory (its last saved state).
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.get(arn) {
                return Ok(self.description(arn, &c.state, &c.sm, c.correlation_id.clone(), None));
            }
        }
        let (row, _, rows) = self.read(arn, false)?;
        let s = &row.state;
        let stop = if s.status == Status::Running {
            None
        } else if rows {
            row.stop_ms.map(|ms| util::rfc3339_ms(util::from_ms(ms)))
        } else {
            s.history.last().map(|h| util::rfc3339_ms(h.timestamp))
        };
        Ok(self.description(arn, s, &row.sm, row.correlation_id.clone(), stop))
    }

    fn description(
        &self,
        arn: &str,
        s: &ExecutionState,
        sm: &str,
        correlation_id: Option<String>,
        stop_date: Option<String>,
    ) -> Description {
        let open = if s.status == Status::Running {
            s.outstanding()
        } else {
            &[]
        };
        let (token, wstate) = open
            .iter()
            .find_map(|w| match w {
                Waiting::Task { token, state, .. } => {
                    Some((Some(token.clone()), Some(state.clone())))
                }
                _ => None,
            })
            .unwrap_or((None, None));
        Description {
            execution_arn: arn.to_string(),
            state_machine_arn: s.info.state_machine_arn(),
            workflow_type: self.machines.get(sm).map(|m| m.workflow_type.clone()),
            state_machine: sm.to_string(),
            name: s.info.name.clone(),
            status: s.status.as_str().to_string(),
            input: s.input.clone(),
            output: s.output.clone(),
            error: s.error.clone(),
            cause: s.cause.clone(),
            start_date: util::rfc3339_ms(s.start_time),
            stop_date,
            correlation_id,
            waiting_for_token: token,
            waiting_state: wstate,
        }
    }

    /// GetExecutionHistory: events as Step Functions shapes them, oldest first.
    pub fn history(&self, arn: &str) -> Result<Vec<Value>, WorkflowError> {
        let (mut row, _, rows) = self.read(arn, false)?;
        if rows {
            row.state.history = Self::read_history(&self.store.lock(), arn, &mut Vec::new())?;
        }
        let s = &row.state;
        if s.history.is_empty() {
            // Not run yet: Step Functions already shows the start.
            let started = asl::HistoryEvent {
                id: 1,
                previous_event_id: 0,
                timestamp: s.start_time,
                details: asl::history::Details::ExecutionStarted(Box::new(
                    asl::history::ExecutionStartedDetails {
                        input: s.input.clone(),
                        role_arn: s.info.role_arn.clone(),
                        state_machine_arn: s.info.state_machine_arn(),
                    },
                )),
            };
            return Ok(vec![started.to_json()]);
        }
        Ok(s.history.iter().map(|h| h.to_json()).collect())
    }

    /// ListExecutions, newest first; `offset` pages.
    pub fn list(
        &self,
        workflow: Option<&str>,
        status: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Listed>, WorkflowError> {
        let sm = match workflow {
            Some(w) => Some(self.machine_name(w)?),
            None => None,
        };
        let c = self.store.lock();
        let mut st = c.prepare(
            "SELECT arn, name, state_machine, status, start_ms, stop_ms FROM executions
             WHERE (?1 IS NULL OR state_machine = ?1) AND (?2 IS NULL OR status = ?2)
             ORDER BY start_ms DESC, rowid DESC LIMIT ?3 OFFSET ?4",
        )?;
        let rows = st.query_map(params![sm, status, limit as i64, offset as i64], |r| {
            let sm: String = r.get(2)?;
            Ok(Listed {
                execution_arn: r.get(0)?,
                name: r.get(1)?,
                workflow_type: self.machines.get(&sm).map(|m| m.workflow_type.clone()),
                state_machine: sm,
                status: r.get(3)?,
                start_date: util::rfc3339_ms(util::from_ms(r.get(4)?)),
                stop_date: r
                    .get::<_, Option<i64>>(5)?
                    .map(|ms| util::rfc3339_ms(util::from_ms(ms))),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts of executions by state machine and status (for `/metrics`).
    pub fn counts(&self) -> Result<Vec<(String, String, i64)>, WorkflowError> {
        let c = self.store.lock();
        let mut st = c.prepare_cached(
            "SELECT state_machine, status, COUNT(*) FROM executions GROUP BY state_machine, status",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Queues every running execution that is not paused on a token, and those whose
    /// timer or task timeout is due: called at start-up and by the timer loop.
    pub fn enqueue_due(&self, startup: bool) -> Result<usize, WorkflowError> {
        let now_ms = self.clock.now_ms();
        let arns: Vec<String> = {
            let c = self.store.lock();
            let sql = if startup {
                "SELECT arn FROM executions WHERE status = 'RUNNING' AND (wake_ms IS NULL OR wake_ms <= ?1)"
            } else {
                "SELECT arn FROM executions WHERE status = 'RUNNING' AND wake_ms IS NOT NULL AND wake_ms <= ?1"
            };
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map([now_ms], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for a in &arns {
            self.enqueue(a);
        }
        Ok(arns.len())
    }

    /// Makes a task token known before the task's function runs (durably), so that a
    /// result sent from that function, or right after it, finds the execution.
    fn register_token(&self, token: &str, arn: &str, state_name: &str) {
        let now_ms = self.clock.now_ms();
        // Checks come before the writes, which fail only on I/O: no savepoint.
        let r = self.store.tx_unguarded(|tx| -> Result<usize, StoreError> {
            Ok(tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO task_tokens (token, arn, state_name, created_ms) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![token, arn, state_name, now_ms])?)
        });
        if let Err(e) = r {
            util::log(
                Level::Error,
                &format!("task token not registered: {e}"),
                None,
                &[("executionArn", json!(arn))],
            );
        }
    }

    /// The earliest instant (ms) a running execution paused on a timer (a Wait state or a
    /// retry interval) is due; executions waiting for a task token are not counted.
    pub fn next_timer_ms(&self) -> Result<Option<i64>, WorkflowError> {
        let c = self.store.lock();
        let mut st = c.prepare_cached(
            "SELECT MIN(wake_ms) FROM executions WHERE status = 'RUNNING' AND wake_ms IS NOT NULL
             AND arn NOT IN (SELECT arn FROM task_tokens)",
        )?;
        Ok(st.query_row([], |r| r.get(0))?)
    }

    /// How many runs the workers have finished (progress, for waiting loops).
    pub fn runs_done(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Runs queued executions until [`Workflows::shutdown`]; run on one or more threads.
    pub fn run_worker(&self) {
        loop {
            let arn = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Some(a) = q.0.pop_front() {
                        q.1.remove(&a);
                        break a;
                    }
                    q = self
                        .queue_cv
                        .wait_timeout(q, Duration::from_millis(200))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            };
            let r = self.run_execution(&arn);
            self.runs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = r {
                util::log(
                    Level::Error,
                    &format!("execution run failed: {e}"),
                    None,
                    &[("executionArn", json!(arn))],
                );
            }
        }
    }

    /// Fires due timers until [`Workflows::shutdown`] (polls every `every`).
    pub fn run_timers(&self, every: Duration) {
        while !self.stop.load(Ordering::SeqCst) {
            if let Err(e) = self.enqueue_due(false) {
                util::log(Level::Error, &format!("timer scan failed: {e}"), None, &[]);
            }
            std::thread::sleep(every);
        }
    }

    /// Asks workers and the timer loop to stop.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.queue_cv.notify_all();
    }

    /// Is anything queued or running? (tests and the demo wait for quiescence)
    pub fn queued(&self) -> usize {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0.len()
    }
}

/// Runs the tasks of one execution run, logging every outcome durably.
struct HostTasks<'a> {
    host: &'a Workflows,
    arn: &'a str,
    checkpoint: i64,
    seq: i64,
    correlation_id: Option<String>,
    /// Outcomes logged at this checkpoint by an earlier, unsaved run, by sequence number.
    logged: HashMap<i64, (String, TaskOutcome)>,
    /// Set when this run logs an outcome or registers a token (rows the save deletes).
    wrote_side_rows: std::cell::Cell<bool>,
}

/// `{"<key>": <v>}` as text.
fn wrapped(key: &str, v: &Value) -> String {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    let _ = serde_json::to_writer(&mut out, v);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// A task outcome as logged: `{"ok": ...}`, `{"pending": ...}` or `{"error", "cause"}`.
fn outcome_text(o: &TaskOutcome) -> String {
    match o {
        TaskOutcome::Succeeded(v) => wrapped("ok", v),
        TaskOutcome::Pending { submitted } => wrapped("pending", submitted),
        TaskOutcome::Failed { error, cause } => json!({"error": error, "cause": cause}).to_string(),
    }
}

fn outcome_from(v: &Value) -> Option<TaskOutcome> {
    if let Some(ok) = v.get("ok") {
        return Some(TaskOutcome::Succeeded(ok.clone()));
    }
    if let Some(p) = v.get("pending") {
        return Some(TaskOutcome::Pending {
            submitted: p.clone(),
        });
    }
    Some(TaskOutcome::Failed {
        error: v.get("error")?.as_str()?.to_string(),
        cause: v.get("cause").and_then(Value::as_str).map(str::to_string),
    })
}

impl HostTasks<'_> {
    fn logged(&mut self, seq: i64, state: &str) -> Option<TaskOutcome> {
        let (name, outcome) = self.logged.remove(&seq)?;
        (name == state).then_some(outcome)
    }

    /// Logs a task's outcome until the run's save: held back until the next commit (the
    /// save withdraws it), so that a commit holding the task's effects but not yet the
    /// save also holds the outcome, and a restart replays it instead of calling again.
    fn log_outcome(&self, seq: i64, state: &str, o: &TaskOutcome) {
        let text = outcome_text(o);
        let (arn, checkpoint, state) = (self.arn.to_string(), self.checkpoint, state.to_string());
        let r = self.host.store.hold(self.arn, move |tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO execution_tasks (arn, checkpoint, seq, state_name, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![arn, checkpoint, seq, state, text])
            .map(|_| ())
        });
        if let Err(e) = r {
            util::log(
                Level::Error,
                &format!("task outcome not logged: {e}"),
                self.correlation_id.as_deref(),
                &[("executionArn", json!(self.arn))],
            );
        }
    }

    fn lambda(&self, req: &TaskRequest<'_>) -> TaskOutcome {
        let Some(function) = req.parameters.get("FunctionName").and_then(Value::as_str) else {
            return TaskOutcome::Failed {
                error: "States.Runtime".into(),
                cause: Some("lambda:invoke needs Parameters.FunctionName".into()),
            };
        };
        let payload = req
            .parameters
            .get("Payload")
            .cloned()
            .unwrap_or(Value::Null);
        if let (true, Some(token)) = (req.resource.ends_with(".waitForTaskToken"), req.task_token) {
            // Known before the function runs, so a callback it triggers finds the execution.
            self.wrote_side_rows.set(true);
            self.host.register_token(token, self.arn, req.state_name);
        }
        match self.host.functions.invoke(function, payload) {
            Ok(v) => {
                if req.resource.ends_with(".waitForTaskToken") {
                    TaskOutcome::Pending {
                        submitted: json!({"StatusCode": 202, "Payload": ""}),
                    }
                } else {
                    TaskOutcome::Succeeded(json!({
                        "ExecutedVersion": "$LATEST",
                        "Payload": v,
                        "StatusCode": 200,
                        "SdkHttpMetadata": {"HttpStatusCode": 200},
                    }))
                }
            }
            Err(e) => TaskOutcome::Failed {
                cause: Some(
                    json!({"errorMessage": e.message, "errorType": e.error_type}).to_string(),
                ),
                error: e.error_type,
            },
        }
    }

    fn put_events(&self, req: &TaskRequest<'_>) -> TaskOutcome {
        let Some(entries) = req.parameters.get("Entries").and_then(Value::as_array) else {
            return TaskOutcome::Failed {
                error: "States.Runtime".into(),
                cause: Some("events:putEvents needs Parameters.Entries (an array)".into()),
            };
        };
        let mut put = Vec::new();
        for e in entries {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            put.push(PutEntry {
                source: s("Source"),
                detail_type: s("DetailType"),
                detail: e.get("Detail").map(|d| match d {
                    Value::String(t) => t.clone(),
                    other => util::json_text(other),
                }),
                resources: e
                    .get("Resources")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                time: s("Time"),
                event_bus_name: s("EventBusName"),
                trace_header: None,
            });
        }
        match self.host.bus.put_events(&put) {
            Err(e) => TaskOutcome::Failed {
                error: "EventBridge.AmazonEventBridgeException".into(),
                cause: Some(e.to_string()),
            },
            Ok(out) => {
                let v = serde_json::to_value(&out).unwrap_or(Value::Null);
                if out.failed_entry_count > 0 {
                    TaskOutcome::Failed {
                        error: "EventBridge.FailedEntry".into(),
                        cause: Some(v.to_string()),
                    }
                } else {
                    TaskOutcome::Succeeded(v)
                }
            }
        }
    }

    fn start_execution(&self, req: &TaskRequest<'_>) -> TaskOutcome {
        let p = req.parameters;
        let Some(sm_arn) = p.get("StateMachineArn").and_then(Value::as_str) else {
            return TaskOutcome::Failed {
                error: "States.Runtime".into(),
                cause: Some("states:startExecution needs Parameters.StateMachineArn".into()),
            };
        };
        let sm = sm_arn.rsplit(':').next().unwrap_or(sm_arn);
        let input = match p.get("Input") {
            Some(Value::String(t)) => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
            Some(v) => v.clone(),
            None => json!({}),
        };
        let sync = req.resource.contains(".sync");
        let parent = match (sync, req.task_token) {
            (true, Some(t)) => {
                self.wrote_side_rows.set(true);
                self.host.register_token(t, self.arn, req.state_name);
                Some((self.arn, t, req.resource.ends_with(".sync:2")))
            }
            _ => None,
        };
        match self
            .host
            .start(sm, p.get("Name").and_then(Value::as_str), input, parent)
        {
            Ok(s) => {
                let v = json!({"ExecutionArn": s.execution_arn, "StartDate": s.start_date});
                if sync {
                    TaskOutcome::Pending { submitted: v }
                } else {
                    TaskOutcome::Succeeded(v)
                }
            }
            Err(e) => TaskOutcome::Failed {
                error: format!("StepFunctions.{}Exception", e.code()),
                cause: Some(e.to_string()),
            },
        }
    }
}

impl TaskHandler for HostTasks<'_> {
    fn invoke(&mut self, req: &TaskRequest<'_>) -> TaskOutcome {
        let seq = self.seq;
        self.seq += 1;
        if let Some(o) = self.logged(seq, req.state_name) {
            return o;
        }
        let r = req.resource;
        let outcome = if r.starts_with("arn:aws:states:::lambda:invoke")
            || r.starts_with("arn:aws:lambda:")
        {
            if r.starts_with("arn:aws:lambda:") {
                match self.host.functions.invoke(r, req.parameters.clone()) {
                    Ok(v) => TaskOutcome::Succeeded(v),
                    Err(e) => TaskOutcome::Failed {
                        cause: Some(
                            json!({"errorMessage": e.message, "errorType": e.error_type})
                                .to_string(),
                        ),
                        error: e.error_type,
                    },
                }
            } else {
                self.lambda(req)
            }
        } else if r.starts_with("arn:aws:states:::events:putEvents") {
            self.put_events(req)
        } else if r.starts_with("arn:aws:states:::states:startExecution") {
            self.start_execution(req)
        } else {
            TaskOutcome::Failed {
                error: "States.TaskFailed".into(),
                cause: Some(format!(
                    "resource '{r}' is not supported by the local runtime (state '{}')",
                    req.state_name
                )),
            }
        };
        self.log_outcome(seq, req.state_name, &outcome);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::InvokeError;
    use crate::rules::Rules;
    use std::sync::atomic::AtomicUsize;

    fn ev(id: u64, details: asl::history::Details) -> asl::HistoryEvent {
        asl::HistoryEvent {
            id,
            previous_event_id: id.saturating_sub(1),
            timestamp: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            details,
        }
    }

    fn entered(id: u64, name: &str, input: &Arc<Value>) -> asl::HistoryEvent {
        ev(
            id,
            asl::history::Details::StateEntered {
                state_type: asl::history::StateType::Pass,
                name: Arc::from(name),
                input: input.clone(),
            },
        )
    }

    fn exited(id: u64, name: &str, output: &Arc<Value>) -> asl::HistoryEvent {
        ev(
            id,
            asl::history::Details::StateExited {
                state_type: asl::history::StateType::Pass,
                name: Arc::from(name),
                output: output.clone(),
                assigned: None,
            },
        )
    }

    #[test]
    fn history_rows_refer_to_repeated_payloads_and_read_back_equal() {
        let a = Arc::new(json!({"bookingId": "bk_1", "n": 1}));
        let b = Arc::new(json!({"bookingId": "bk_1", "n": 2}));
        // An equal value in another allocation is written out, not referred to.
        let b_copy = Arc::new((*b).clone());
        let history = vec![
            entered(1, "A", &a),
            exited(2, "A", &a),
            entered(3, "B", &a),
            exited(4, "B", &b),
            entered(5, "C", &b),
            exited(6, "C", &b_copy),
            entered(7, "D", &b_copy),
        ];
        // Written in two rows, the second referring to payloads of the first.
        let mut buf = Vec::new();
        let first = history_row_text(&mut buf, &history, 0)
            .expect("row")
            .to_string();
        assert!(
            first.starts_with("{\"refs\":[[1,1],[2,1],[4,4],[6,6]]"),
            "{first}"
        );
        let second = history_row_text(&mut buf, &history, 4)
            .expect("row")
            .to_string();
        assert!(second.starts_with("{\"refs\":[[0,4],[2,6]]"), "{second}");
        let mut out = Vec::new();
        let mut chunks = Vec::new();
        push_history_row(&mut out, &mut chunks, 0, &first, "arn:x").expect("first row");
        assert_eq!(out, history);
        // Read back, repeated payloads share one value again.
        let p = |i: usize| shared_payload(&out[i].details).cloned().expect("payload");
        assert!(Arc::ptr_eq(&p(0), &p(2)) && Arc::ptr_eq(&p(3), &p(4)));
        assert!(!Arc::ptr_eq(&p(4), &p(5)));
        out.truncate(4);
        chunks.clear();
        chunks.push(0);
        push_history_row(&mut out, &mut chunks, 4, &second, "arn:x").expect("second row");
        assert_eq!(out, history);
        assert_eq!(chunks, vec![0, 4]);
        // Rows without repeats stay plain arrays; rows of the earlier format are read.
        let plain = history_row_text(&mut buf, &history[..1], 0)
            .expect("row")
            .to_string();
        assert!(plain.starts_with('['));
        let mut old = Vec::new();
        push_history_row(&mut old, &mut Vec::new(), 0, &plain, "arn:x").expect("plain row");
        assert_eq!(old, history[..1]);
        // A reference to an event that is not before it is a corrupt row.
        let bad = first.replacen("[[1,1]", "[[1,2]", 1);
        let err = push_history_row(&mut Vec::new(), &mut Vec::new(), 0, &bad, "arn:x")
            .expect_err("forward reference");
        assert!(err.to_string().contains("refers to event 2"), "{err}");
    }

    const MACHINE: &str = r#"{
      "StartAt": "Call",
      "States": {
        "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                 "Parameters": {"FunctionName": "${PayoutManagerFunctionArn}", "Payload": {"x.$": "$.x"}},
                 "ResultSelector": {"y.$": "$.Payload.y"}, "ResultPath": "$.call", "Next": "Sleep"},
        "Sleep": {"Type": "Wait", "Seconds": 60, "Next": "Callback"},
        "Callback": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                 "Parameters": {"FunctionName": "${NotificationHandlerFunctionArn}", "Payload": {"token.$": "$$.Task.Token"}},
                 "ResultPath": "$.cb", "Next": "Publish"},
        "Publish": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
                 "Parameters": {"Entries": [{"Source": "test.wf", "DetailType": "Done", "Detail": {"y.$": "$.call.y"}, "EventBusName": "${EventBusName}"}]},
                 "ResultPath": null, "End": true}
      }
    }"#;

    const RULES: &str =
        r#"{"eventBus":{"name":"bus"},"deadLetterQueues":[{"name":"q"}],"rules":[]}"#;

    struct Fx {
        wf: Workflows,
        clock: Arc<RuntimeClock>,
        functions: Arc<Functions>,
        bus: Arc<Bus>,
        dir: std::path::PathBuf,
    }

    impl Drop for Fx {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fx(name: &str) -> Fx {
        let mut dir = std::env::temp_dir();
        dir.push(format!("mkt-wf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Store::open_dir(&dir).expect("store"));
        let clock = Arc::new(
            RuntimeClock::virtual_from(store.clone(), util::from_ms(1_700_000_000_000))
                .expect("clock"),
        );
        let metrics = Arc::new(Metrics::default());
        let functions = Arc::new(Functions::default());
        let bus = Arc::new(Bus::new(
            store.clone(),
            Arc::new(Rules::parse(RULES).expect("rules")),
            clock.clone(),
            metrics.clone(),
            functions.clone(),
        ));
        let text = substitute("m", MACHINE, "bus").expect("subst");
        let machine = Machine {
            name: "ecosystem-test".into(),
            workflow_type: "TEST".into(),
            definition: asl::parse_definition_text(&text).expect("definition"),
        };
        let wf = Workflows::new(
            store,
            clock.clone(),
            metrics,
            functions.clone(),
            bus.clone(),
            vec![machine],
        );
        Fx {
            wf,
            clock,
            functions,
            bus,
            dir,
        }
    }

    #[test]
    fn an_execution_runs_through_tasks_timers_and_a_task_token() {
        let f = fx("happy");
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        f.functions.register(
            "payout-manager",
            Arc::new(move |v: Value| {
                c2.fetch_add(1, Ordering::SeqCst);
                Ok(json!({"y": v["x"].as_i64().unwrap_or(0) * 2}))
            }),
        );
        let token = capture_token(&f);
        let s =
            f.wf.start("TEST", Some("run-1"), json!({"x": 21}), None)
                .expect("start");
        assert_eq!(
            s.execution_arn,
            "arn:aws:states:us-east-1:000000000000:execution:ecosystem-test:run-1"
        );
        // Same name, same input while running: the same execution; other input: refused.
        assert!(
            !f.wf
                .start("TEST", Some("run-1"), json!({"x": 21}), None)
                .expect("again")
                .created
        );
        assert!(matches!(
            f.wf.start("TEST", Some("run-1"), json!({"x": 1}), None),
            Err(WorkflowError::ExecutionAlreadyExists(_))
        ));
        f.wf.run_execution(&s.execution_arn).expect("run");
        assert_eq!(
            f.wf.describe(&s.execution_arn).expect("d").status,
            "RUNNING"
        );
        assert_eq!(
            f.wf.enqueue_due(false).expect("due"),
            0,
            "the timer is not due yet"
        );
        // Run early (a forced run, as after a restart): the wait keeps its due time.
        f.clock.advance(30).expect("advance");
        f.wf.run_execution(&s.execution_arn).expect("run early");
        assert_eq!(
            f.wf.describe(&s.execution_arn).expect("d").status,
            "RUNNING"
        );
        assert_eq!(
            f.wf.enqueue_due(false).expect("due"),
            0,
            "an early run does not move the timer"
        );
        f.clock.advance(30).expect("advance");
        assert_eq!(f.wf.enqueue_due(false).expect("due"), 1);
        f.wf.run_execution(&s.execution_arn).expect("run");
        let d = f.wf.describe(&s.execution_arn).expect("d");
        let tok = token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(d.waiting_for_token.as_deref(), Some(tok.as_str()));
        assert!(matches!(
            f.wf.send_task_success("nope", json!({})),
            Err(WorkflowError::TaskDoesNotExist(_))
        ));
        f.wf.send_task_success(&tok, json!({"ok": true}))
            .expect("success");
        f.wf.run_execution(&s.execution_arn).expect("run");
        let d = f.wf.describe(&s.execution_arn).expect("d");
        assert_eq!(d.status, "SUCCEEDED", "{d:?}");
        assert_eq!(
            d.output.as_ref().map(|o| o["cb"].clone()),
            Some(json!({"ok": true}))
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the first task ran once across three runs"
        );
        let events = f.bus.events_after(0, 100).expect("events");
        assert!(events
            .iter()
            .any(|(_, e)| e["source"] == "test.wf" && e["detail"]["y"] == 42));
        let hist = f.wf.history(&s.execution_arn).expect("history");
        assert_eq!(
            hist.first().map(|h| h["type"].clone()),
            Some(json!("ExecutionStarted"))
        );
        assert_eq!(
            hist.last().map(|h| h["type"].clone()),
            Some(json!("ExecutionSucceeded"))
        );
        assert!(matches!(
            f.wf.send_task_success(&tok, json!({})),
            Err(WorkflowError::TaskDoesNotExist(_))
        ));
    }

    #[test]
    fn a_logged_task_outcome_is_replayed_instead_of_invoking_the_function_again() {
        let f = fx("replay");
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        f.functions.register(
            "payout-manager",
            Arc::new(move |_v: Value| {
                c2.fetch_add(1, Ordering::SeqCst);
                Ok(json!({"y": 1}))
            }),
        );
        f.functions.register(
            "notification-handler",
            Arc::new(|_v: Value| Ok(Value::Null)),
        );
        let s =
            f.wf.start("TEST", Some("run-2"), json!({"x": 1}), None)
                .expect("start");
        // As if a previous process ran the first task and was killed before saving the state.
        f.wf.store
            .lock()
            .execute(
                "INSERT INTO execution_tasks (arn, checkpoint, seq, state_name, outcome) VALUES (?1, 0, 0, 'Call', ?2)",
                params![s.execution_arn, json!({"ok": {"Payload": {"y": 7}}}).to_string()],
            )
            .expect("log");
        let wf = restarted(&f, vec![test_machine(MACHINE)]);
        wf.run_execution(&s.execution_arn).expect("run");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        f.clock.advance(60).expect("advance");
        wf.run_execution(&s.execution_arn).expect("run");
        let d = wf.describe(&s.execution_arn).expect("d");
        let token = d.waiting_for_token.expect("waiting");
        wf.send_task_failure(&token, Some("Boom".into()), Some("why".into()))
            .expect("fail");
        wf.run_execution(&s.execution_arn).expect("run");
        let d = wf.describe(&s.execution_arn).expect("d");
        assert_eq!(
            (d.status.as_str(), d.error.as_deref()),
            ("FAILED", Some("Boom"))
        );
    }

    #[test]
    fn function_errors_fail_the_task_with_the_error_type_and_stop_aborts() {
        let f = fx("errors");
        f.functions.register(
            "payout-manager",
            Arc::new(|_v: Value| Err(InvokeError::new("Marketplace.ValidationError", "x: bad"))),
        );
        let s =
            f.wf.start("TEST", None, json!({"x": 1}), None)
                .expect("start");
        f.wf.run_execution(&s.execution_arn).expect("run");
        let d = f.wf.describe(&s.execution_arn).expect("d");
        assert_eq!(d.status, "FAILED");
        assert_eq!(d.error.as_deref(), Some("Marketplace.ValidationError"));
        assert!(d.cause.unwrap_or_default().contains("x: bad"));
        f.functions
            .register("payout-manager", Arc::new(|_v: Value| Ok(json!({"y": 1}))));
        let s =
            f.wf.start("TEST", None, json!({"x": 1}), None)
                .expect("start");
        f.wf.run_execution(&s.execution_arn).expect("run");
        let d =
            f.wf.stop(&s.execution_arn, Some("Stopped".into()), None)
                .expect("stop");
        assert_eq!(d.status, "ABORTED");
        let listed =
            f.wf.list(Some("TEST"), Some("ABORTED"), 10, 0)
                .expect("list");
        assert_eq!(listed.len(), 1);
        assert!(matches!(
            f.wf.describe("arn:nope"),
            Err(WorkflowError::ExecutionDoesNotExist(_))
        ));
    }

    #[test]
    fn placeholders_resolve_to_local_arns() {
        let t = substitute(
            "f",
            r#"{"a":"${PayoutManagerFunctionArn}","b":"${EventBusName}"}"#,
            "bus",
        )
        .expect("ok");
        assert_eq!(
            t,
            r#"{"a":"arn:aws:lambda:us-east-1:000000000000:function:payout-manager","b":"bus"}"#
        );
        let e = substitute("f", "${Nope}", "bus").expect_err("unknown");
        assert!(e.to_string().contains("unknown placeholder ${Nope}"), "{e}");
        let e = substitute("f", "${MysteryFunctionArn}", "bus").expect_err("unknown fn");
        assert!(e.to_string().contains("no function 'mystery'"), "{e}");
    }

    #[test]
    fn the_repository_workflows_load() {
        let m = load_machines(None, "bus").expect("valid definitions");
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn start_execution_sync_waits_for_the_child_and_takes_its_output() {
        let f = fx("sync");
        let parent = json!({"StartAt": "Child", "States": {"Child": {"Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {"StateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:ecosystem-child",
                           "Input": {"v.$": "$.x"}},
            "ResultSelector": {"out.$": "$.Output"}, "End": true}}});
        let child = json!({"StartAt": "Double", "States": {"Double": {"Type": "Pass",
            "Parameters": {"doubled.$": "States.MathAdd($.v, $.v)"}, "End": true}}});
        let m = |name: &str, wt: &str, d: &Value| Machine {
            name: name.into(),
            workflow_type: wt.into(),
            definition: asl::parse_definition_text(&d.to_string()).expect("definition"),
        };
        let wf = Workflows::new(
            f.wf.store.clone(),
            f.clock.clone(),
            Arc::new(Metrics::default()),
            f.functions.clone(),
            f.bus.clone(),
            vec![
                m("ecosystem-parent", "PARENT", &parent),
                m("ecosystem-child", "CHILD", &child),
            ],
        );
        let s = wf
            .start("PARENT", Some("p1"), json!({"x": 4}), None)
            .expect("start");
        wf.run_execution(&s.execution_arn).expect("run parent");
        assert_eq!(wf.describe(&s.execution_arn).expect("d").status, "RUNNING");
        let children = wf.list(Some("CHILD"), None, 10, 0).expect("list");
        assert_eq!(children.len(), 1);
        wf.run_execution(&children[0].execution_arn)
            .expect("run child");
        wf.run_execution(&s.execution_arn).expect("resume parent");
        let d = wf.describe(&s.execution_arn).expect("d");
        assert_eq!(d.status, "SUCCEEDED", "{d:?}");
        assert_eq!(d.output, Some(json!({"out": {"doubled": 8}})));
    }

    /// A second host on the same store: what a restarted process sees (nothing in memory).
    /// Registers a notification-handler that keeps the last `token` it was given.
    fn capture_token(f: &Fx) -> Arc<Mutex<String>> {
        let token = Arc::new(Mutex::new(String::new()));
        let t2 = token.clone();
        f.functions.register(
            "notification-handler",
            Arc::new(move |v: Value| {
                *t2.lock().unwrap_or_else(|p| p.into_inner()) =
                    v["token"].as_str().unwrap_or("").to_string();
                Ok(Value::Null)
            }),
        );
        token
    }

    fn restarted(f: &Fx, machines: Vec<Machine>) -> Workflows {
        Workflows::new(
            f.wf.store.clone(),
            f.clock.clone(),
            Arc::new(Metrics::default()),
            f.functions.clone(),
            f.bus.clone(),
            machines,
        )
    }

    fn test_machine(def: &str) -> Machine {
        let text = substitute("m", def, "bus").expect("subst");
        Machine {
            name: "ecosystem-test".into(),
            workflow_type: "TEST".into(),
            definition: asl::parse_definition_text(&text).expect("definition"),
        }
    }

    fn rows(f: &Fx, table: &str, arn: &str) -> i64 {
        f.wf.store
            .lock()
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE arn = ?1"),
                [arn],
                |r| r.get(0),
            )
            .expect("count")
    }

    /// The entries stored in a table's rows (a row holds one entry or an array of them).
    fn entries(f: &Fx, table: &str, arn: &str) -> Vec<Value> {
        let col = if table == "execution_journal" {
            "entry"
        } else {
            "event"
        };
        let c = f.wf.store.lock();
        let mut st = c
            .prepare(&format!(
                "SELECT {col} FROM {table} WHERE arn = ?1 ORDER BY idx"
            ))
            .expect("prepare");
        let texts: Vec<String> = st
            .query_map([arn], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let mut out = Vec::new();
        for t in texts {
            match serde_json::from_str(&t).expect("json") {
                Value::Array(items) => out.extend(items),
                // A history row with payload references (its events, payloads as null).
                Value::Object(mut row) if row.contains_key("refs") => match row.remove("events") {
                    Some(Value::Array(items)) => out.extend(items),
                    other => panic!("a row with refs has events: {other:?}"),
                },
                one => out.push(one),
            }
        }
        out
    }

    /// Rewrites an execution's rows one entry per row, as the version before array rows did.
    fn one_entry_per_row(f: &Fx, arn: &str) {
        for (table, col) in [
            ("execution_journal", "entry"),
            ("execution_history", "event"),
        ] {
            let items = entries(f, table, arn);
            let c = f.wf.store.lock();
            c.execute(&format!("DELETE FROM {table} WHERE arn = ?1"), [arn])
                .expect("delete");
            for (i, v) in items.iter().enumerate() {
                c.execute(
                    &format!("INSERT INTO {table} (arn, idx, {col}) VALUES (?1, ?2, ?3)"),
                    params![arn, i as i64, v.to_string()],
                )
                .expect("insert");
            }
        }
    }

    #[test]
    fn a_task_outcome_held_back_reaches_a_commit_during_the_run_and_the_save_clears_it() {
        let f = fx("held-log");
        let machine = test_machine(
            r#"{"StartAt": "First", "States": {
                 "First": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                           "Parameters": {"FunctionName": "${PayoutManagerFunctionArn}", "Payload": {}},
                           "ResultPath": "$.first", "Next": "Second"},
                 "Second": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": "${NotificationHandlerFunctionArn}", "Payload": {}},
                            "ResultPath": "$.second", "End": true}}}"#,
        );
        f.functions
            .register("payout-manager", Arc::new(|_v: Value| Ok(json!({"y": 1}))));
        // The second task commits (as a barrier of another thread would) and looks at what
        // the commit holds: the first task's outcome, not yet cleared by a save.
        let store = f.wf.store.clone();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen2 = seen.clone();
        f.functions.register(
            "notification-handler",
            Arc::new(move |_v: Value| {
                store
                    .sync()
                    .map_err(|e| InvokeError::new("Store", e.to_string()))?;
                let other = rusqlite::Connection::open(store.path())
                    .map_err(|e| InvokeError::new("Store", e.to_string()))?;
                let names = other
                    .prepare("SELECT state_name FROM execution_tasks")
                    .and_then(|mut st| {
                        st.query_map([], |r| r.get::<_, String>(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .map_err(|e| InvokeError::new("Store", e.to_string()))?;
                *seen2.lock().unwrap_or_else(|p| p.into_inner()) = names;
                Ok(Value::Null)
            }),
        );
        let wf = restarted(&f, vec![machine]);
        let arn = wf
            .start("TEST", Some("held-1"), json!({}), None)
            .expect("start")
            .execution_arn;
        wf.run_execution(&arn).expect("run");
        assert_eq!(wf.describe(&arn).expect("d").status, "SUCCEEDED");
        assert_eq!(
            *seen.lock().unwrap_or_else(|p| p.into_inner()),
            vec!["First".to_string()]
        );
        assert_eq!(rows(&f, "execution_tasks", &arn), 0, "the save cleared it");
        f.wf.store.sync().expect("sync");
        let other = rusqlite::Connection::open(f.wf.store.path()).expect("second connection");
        let left: i64 = other
            .query_row("SELECT COUNT(*) FROM execution_tasks", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 0, "the second outcome was withdrawn, never written");
    }

    #[test]
    fn a_save_leaves_no_task_log_or_stale_token_rows_behind() {
        let f = fx("side-rows");
        f.functions
            .register("payout-manager", Arc::new(|_v: Value| Ok(json!({"y": 5}))));
        let token = capture_token(&f);
        let arn =
            f.wf.start("TEST", Some("side-1"), json!({"x": 1}), None)
                .expect("start")
                .execution_arn;
        // The task's outcome is logged during the run and cleared by its save.
        f.wf.run_execution(&arn).expect("run");
        assert_eq!(rows(&f, "execution_tasks", &arn), 0);
        assert_eq!(rows(&f, "task_tokens", &arn), 0);
        f.clock.advance(60).expect("advance");
        f.wf.run_execution(&arn).expect("to the callback");
        assert_eq!(rows(&f, "execution_tasks", &arn), 0);
        assert_eq!(rows(&f, "task_tokens", &arn), 1, "the open token is stored");
        assert_eq!(f.wf.status(&arn).expect("status"), ("RUNNING".into(), true));
        // The same from the store, as a restarted process sees it.
        let wf = restarted(&f, vec![test_machine(MACHINE)]);
        assert_eq!(wf.status(&arn).expect("status"), ("RUNNING".into(), true));
        assert!(matches!(
            wf.status("arn:aws:states:us-east-1:000000000000:execution:nope:x"),
            Err(WorkflowError::ExecutionDoesNotExist(_))
        ));
        let t = token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        f.wf.send_task_success(&t, json!({"ok": true}))
            .expect("success");
        f.wf.run_execution(&arn).expect("to the end");
        assert_eq!(f.wf.describe(&arn).expect("d").status, "SUCCEEDED");
        assert_eq!(
            f.wf.status(&arn).expect("status"),
            ("SUCCEEDED".into(), false)
        );
        assert_eq!(rows(&f, "execution_tasks", &arn), 0);
        assert_eq!(
            rows(&f, "task_tokens", &arn),
            0,
            "the answered token is gone"
        );
    }

    #[test]
    fn journal_and_history_are_appended_as_rows_and_a_restart_resumes_from_them() {
        let f = fx("rows");
        f.functions
            .register("payout-manager", Arc::new(|_v: Value| Ok(json!({"y": 5}))));
        let token = capture_token(&f);
        let s =
            f.wf.start("TEST", Some("rows-1"), json!({"x": 1}), None)
                .expect("start");
        let arn = s.execution_arn;
        f.wf.run_execution(&arn).expect("run");
        // Paused in the Wait: the task result and the open wait are journaled, in one row
        // per table (one save).
        assert_eq!(entries(&f, "execution_journal", &arn).len(), 2);
        assert_eq!(rows(&f, "execution_journal", &arn), 1);
        let h1 = entries(&f, "execution_history", &arn).len();
        assert!(h1 >= 5, "{h1}");
        assert_eq!(rows(&f, "execution_history", &arn), 1);
        // The summary row holds neither journal nor history.
        let head: String =
            f.wf.store
                .lock()
                .query_row("SELECT state FROM executions WHERE arn = ?1", [&arn], |r| {
                    r.get(0)
                })
                .expect("head");
        let head: Value = serde_json::from_str(&head).expect("json");
        assert_eq!(head["journal"], json!([]));
        assert_eq!(head["history"], json!([]));
        let before = f.wf.history(&arn).expect("history");
        // A restarted host reads the rows back and carries on where the first one stopped.
        let wf2 = restarted(&f, vec![test_machine(MACHINE)]);
        f.clock.advance(60).expect("advance");
        wf2.run_execution(&arn).expect("run after restart");
        let after = wf2.history(&arn).expect("history");
        assert_eq!(
            &after[..before.len()],
            &before[..],
            "the stored history is kept, with its timestamps"
        );
        // Rows written one entry each (the previous version) are read and appended to.
        drop(wf2);
        one_entry_per_row(&f, &arn);
        let per_entry = rows(&f, "execution_history", &arn);
        let wf2 = restarted(&f, vec![test_machine(MACHINE)]);
        let tok = token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        wf2.send_task_success(&tok, json!({"done": 1}))
            .expect("success");
        wf2.run_execution(&arn).expect("finish");
        let d = wf2.describe(&arn).expect("describe");
        assert_eq!(d.status, "SUCCEEDED", "{d:?}");
        assert!(d.stop_date.is_some());
        let hist = wf2.history(&arn).expect("history");
        let stored = entries(&f, "execution_history", &arn);
        assert_eq!(hist.len(), stored.len());
        for (h, st) in hist.iter().zip(&stored) {
            assert_eq!(h["id"], st["id"]);
        }
        assert!(
            rows(&f, "execution_history", &arn) <= per_entry + 1,
            "the last run appended one row (after rewriting at most the last event's)"
        );
        for (i, h) in hist.iter().enumerate() {
            assert_eq!(h["id"], json!(i + 1), "ids are consecutive");
        }
        assert_eq!(
            hist.last().map(|h| h["type"].clone()),
            Some(json!("ExecutionSucceeded"))
        );
        // The finished wait was rewritten in place (WaitingUntil -> Waited).
        let journal = entries(&f, "execution_journal", &arn);
        assert_eq!(
            journal.len(),
            4,
            "task, wait, callback, putEvents: {journal:?}"
        );
        assert_eq!(journal[1], json!("Waited"));
    }

    #[test]
    fn a_token_completed_while_its_run_is_still_going_is_accepted_and_applied() {
        // The earliest moment a client can know a token is inside the function the
        // waitForTaskToken task invokes (it stores the token): the host knows the token
        // before that function runs, so a decision sent from there (here: from another
        // thread, while the run still holds the execution) is accepted, kept durably and
        // applied when the run pauses.
        let f = Arc::new(fx("early-token"));
        f.functions
            .register("payout-manager", Arc::new(|_v: Value| Ok(json!({"y": 3}))));
        let f2 = f.clone();
        let answered = Arc::new(Mutex::new(None));
        let a2 = answered.clone();
        f.functions.register(
            "notification-handler",
            Arc::new(move |v: Value| {
                let token = v["token"].as_str().unwrap_or("").to_string();
                let f3 = f2.clone();
                let r = std::thread::spawn(move || {
                    f3.wf
                        .send_task_success(&token, json!({"early": true}))
                        .map_err(|e| e.to_string())
                })
                .join()
                .unwrap_or_else(|_| Err("panicked".into()));
                *a2.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                Ok(Value::Null)
            }),
        );
        let s =
            f.wf.start("TEST", Some("early-1"), json!({"x": 1}), None)
                .expect("start");
        let arn = s.execution_arn;
        f.wf.run_execution(&arn).expect("run");
        f.clock.advance(60).expect("advance");
        f.wf.run_execution(&arn).expect("run to the callback");
        assert_eq!(
            answered.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            Some(Ok(())),
            "the decision is accepted at once"
        );
        f.wf.run_execution(&arn).expect("apply the decision");
        let d = f.wf.describe(&arn).expect("describe");
        assert_eq!(d.status, "SUCCEEDED", "{d:?}");
        assert_eq!(
            d.output.map(|o| o["cb"].clone()),
            Some(json!({"early": true}))
        );
    }

    #[test]
    fn a_heartbeat_sent_while_the_run_holds_the_execution_counts_from_when_it_was_sent() {
        // The function the task invokes lets 50 s pass and heartbeats from another thread
        // while the run still holds the execution: the heartbeat is kept and applied at
        // that instant (t0+50), so the 60 s heartbeat timeout ends at t0+110.
        let f = fx("early-beat");
        let host: Arc<Mutex<Option<Arc<Workflows>>>> = Arc::new(Mutex::new(None));
        let answered = Arc::new(Mutex::new(None));
        let (h2, a2, clock) = (host.clone(), answered.clone(), f.clock.clone());
        f.functions.register(
            "notification-handler",
            Arc::new(move |v: Value| {
                let token = v["token"].as_str().unwrap_or("").to_string();
                clock
                    .advance(50)
                    .map_err(|e| crate::functions::InvokeError::new("Test", e.to_string()))?;
                let wf = h2.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let r = std::thread::spawn(move || match wf {
                    Some(wf) => wf.send_task_heartbeat(&token).map_err(|e| e.to_string()),
                    None => Err("no host".to_string()),
                })
                .join()
                .unwrap_or_else(|_| Err("panicked".into()));
                *a2.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                Ok(Value::Null)
            }),
        );
        let def = r#"{"StartAt": "Beat", "States": {"Beat": {"Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "${NotificationHandlerFunctionArn}", "Payload": {"token.$": "$$.Task.Token"}},
            "HeartbeatSeconds": 60, "End": true}}}"#;
        let wf = Arc::new(restarted(&f, vec![test_machine(def)]));
        *host.lock().unwrap_or_else(|p| p.into_inner()) = Some(wf.clone());
        let s = wf
            .start("TEST", Some("beat-1"), json!({}), None)
            .expect("start");
        let arn = s.execution_arn;
        wf.run_execution(&arn).expect("run");
        assert_eq!(
            answered.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            Some(Ok(())),
            "the heartbeat is accepted at once"
        );
        f.clock.advance(20).expect("advance"); // t0+70: past t0+60
        wf.run_execution(&arn).expect("check");
        assert_eq!(wf.describe(&arn).expect("d").status, "RUNNING");
        f.clock.advance(50).expect("advance"); // t0+120: past t0+110
        wf.run_execution(&arn).expect("time out");
        let d = wf.describe(&arn).expect("d");
        assert_eq!(d.status, "FAILED", "{d:?}");
        assert_eq!(d.error.as_deref(), Some("States.HeartbeatTimeout"));
        *host.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    #[test]
    fn a_state_saved_whole_by_an_older_version_is_resumed() {
        let f = fx("legacy");
        f.functions
            .register("payout-manager", Arc::new(|_v: Value| Ok(json!({"y": 2}))));
        let s =
            f.wf.start("TEST", Some("old-1"), json!({"x": 1}), None)
                .expect("start");
        let arn = s.execution_arn;
        f.wf.run_execution(&arn).expect("run");
        // Rewrite the row as the first layout did: the whole state in one column.
        let wf2 = restarted(&f, vec![test_machine(MACHINE)]);
        let (c, _, _) = wf2.take(&arn).expect("take");
        let whole = serde_json::to_string(&c.state).expect("json");
        {
            let db = f.wf.store.lock();
            db.execute(
                "UPDATE executions SET state = ?2, layout = 1 WHERE arn = ?1",
                params![arn, whole],
            )
            .expect("legacy row");
            db.execute("DELETE FROM execution_journal", []).expect("j");
            db.execute("DELETE FROM execution_history", []).expect("h");
        }
        let wf3 = restarted(&f, vec![test_machine(MACHINE)]);
        let hist = wf3.history(&arn).expect("history of a legacy row");
        assert!(hist.len() >= 5);
        f.clock.advance(60).expect("advance");
        wf3.run_execution(&arn).expect("resume");
        assert_eq!(
            entries(&f, "execution_history", &arn).len(),
            wf3.history(&arn).expect("h").len(),
            "the next save writes every entry"
        );
        let layout: i64 =
            f.wf.store
                .lock()
                .query_row(
                    "SELECT layout FROM executions WHERE arn = ?1",
                    [&arn],
                    |r| r.get(0),
                )
                .expect("layout");
        assert_eq!(layout, 2);
    }

    #[test]
    fn a_task_token_wait_times_out_at_its_timeout_and_at_the_execution_deadline_on_the_clock() {
        let f = fx("timeouts");
        f.functions.register(
            "notification-handler",
            Arc::new(|_v: Value| Ok(Value::Null)),
        );
        let task_timeout = r#"{"StartAt": "Callback", "States": {
            "Callback": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
              "Parameters": {"FunctionName": "${NotificationHandlerFunctionArn}", "Payload": {"t.$": "$$.Task.Token"}},
              "TimeoutSeconds": 300, "End": true}}}"#;
        let execution_timeout = r#"{"TimeoutSeconds": 120, "StartAt": "Callback", "States": {
            "Callback": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
              "Parameters": {"FunctionName": "${NotificationHandlerFunctionArn}", "Payload": {"t.$": "$$.Task.Token"}},
              "End": true}}}"#;
        for (def, wait, status, error) in [
            (task_timeout, 300, "FAILED", "States.Timeout"),
            (execution_timeout, 120, "TIMED_OUT", "States.Timeout"),
        ] {
            let wf = restarted(&f, vec![test_machine(def)]);
            let s = wf.start("TEST", None, json!({}), None).expect("start");
            wf.run_execution(&s.execution_arn).expect("run");
            assert!(wf
                .describe(&s.execution_arn)
                .expect("d")
                .waiting_for_token
                .is_some());
            f.clock.advance(wait - 1).expect("advance");
            assert_eq!(wf.enqueue_due(false).expect("due"), 0, "not due yet");
            f.clock.advance(1).expect("advance");
            assert_eq!(wf.enqueue_due(false).expect("due"), 1, "due at {wait} s");
            wf.run_execution(&s.execution_arn).expect("run");
            let d = wf.describe(&s.execution_arn).expect("d");
            assert_eq!(
                (d.status.as_str(), d.error.as_deref()),
                (status, Some(error)),
                "{d:?}"
            );
            assert!(d.waiting_for_token.is_none());
            let h = wf.history(&s.execution_arn).expect("h");
            let last = h.last().cloned().unwrap_or_default();
            if status == "TIMED_OUT" {
                assert_eq!(last["type"], "ExecutionTimedOut", "{last}");
            }
            let removed: i64 =
                f.wf.store
                    .lock()
                    .query_row(
                        "SELECT COUNT(*) FROM task_tokens WHERE arn = ?1",
                        [&s.execution_arn],
                        |r| r.get(0),
                    )
                    .expect("tokens");
            assert_eq!(removed, 0, "the token is no longer accepted");
        }
    }

    #[test]
    fn parallel_branches_wait_for_their_tokens_at_once_and_resume_after_a_restart() {
        let f = fx("parallel");
        let tokens: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let seen = tokens.clone();
        f.functions.register(
            "notification-handler",
            Arc::new(move |v: Value| {
                let who = v["who"].as_str().unwrap_or_default().to_string();
                let tok = v["t"].as_str().unwrap_or_default().to_string();
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(who, tok);
                Ok(Value::Null)
            }),
        );
        let def = r#"{"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": true,
            "Branches": [
              {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "${NotificationHandlerFunctionArn}", "Payload": {"who": "a", "t.$": "$$.Task.Token"}}, "End": true}}},
              {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "${NotificationHandlerFunctionArn}", "Payload": {"who": "b", "t.$": "$$.Task.Token"}}, "End": true}}},
              {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 600, "Next": "Up"},
                "Up": {"Type": "Pass", "Result": "rested", "End": true}}}
            ]}}}"#;
        let wf = restarted(&f, vec![test_machine(def)]);
        let s = wf.start("TEST", None, json!({}), None).expect("start");
        wf.run_execution(&s.execution_arn).expect("run");
        let (a, b) = {
            let t = tokens.lock().unwrap_or_else(|p| p.into_inner());
            (t["a"].clone(), t["b"].clone())
        };
        assert_ne!(a, b);
        let registered: i64 =
            f.wf.store
                .lock()
                .query_row(
                    "SELECT COUNT(*) FROM task_tokens WHERE arn = ?1",
                    [&s.execution_arn],
                    |r| r.get(0),
                )
                .expect("tokens");
        assert_eq!(registered, 2, "both branches' tokens are accepted");
        // Idle: both tokens and a 10-minute timer are outstanding; nothing is due.
        assert_eq!(wf.enqueue_due(false).expect("due"), 0);
        // The second branch answers first, then the process restarts.
        wf.send_task_success(&b, json!("from b")).expect("b");
        wf.run_execution(&s.execution_arn).expect("run");
        assert_eq!(wf.describe(&s.execution_arn).expect("d").status, "RUNNING");
        let wf = restarted(&f, vec![test_machine(def)]);
        assert!(matches!(
            wf.send_task_success(&b, json!("again")),
            Err(WorkflowError::TaskDoesNotExist(_))
        ));
        wf.send_task_success(&a, json!("from a")).expect("a");
        wf.run_execution(&s.execution_arn).expect("run");
        assert_eq!(wf.describe(&s.execution_arn).expect("d").status, "RUNNING");
        // The timer branch wakes the execution at its due time.
        f.clock.advance(599).expect("advance");
        assert_eq!(wf.enqueue_due(false).expect("due"), 0, "not due yet");
        f.clock.advance(1).expect("advance");
        assert_eq!(wf.enqueue_due(false).expect("due"), 1, "due at 600 s");
        wf.run_execution(&s.execution_arn).expect("run");
        let d = wf.describe(&s.execution_arn).expect("d");
        assert_eq!(d.status, "SUCCEEDED", "{d:?}");
        assert_eq!(d.output, Some(json!(["from a", "from b", "rested"])));
    }

    #[test]
    fn names_and_arns_are_checked() {
        assert!(valid_name("booking-123").is_ok());
        assert!(valid_name("a b").is_err());
        assert!(valid_name(&"x".repeat(81)).is_err());
        assert_eq!(
            parse_execution_arn("arn:aws:states:us-east-1:000000000000:execution:sm:name"),
            Some(("sm", "name"))
        );
        assert_eq!(parse_execution_arn("arn:aws:states:x"), None);
    }
}
