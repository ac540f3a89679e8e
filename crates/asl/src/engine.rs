//! The interpreter.
//!
//! An execution is a serialisable [`ExecutionState`]: the input, a journal of everything
//! non-deterministic that happened (task outcomes, completed waits), the random seed and
//! the history so far. Running an execution replays the journal deterministically and then
//! continues live; when a task is pending (task token, `.sync` child) or a timer cannot be
//! waited for now, it stops and can be persisted. Delivering the task result
//! ([`Execution::send_task_success`]) appends to the journal and the next [`Execution::run`]
//! carries on. Replayed history keeps its original timestamps.

use crate::clock::Clock;
use crate::codec::SplitMix64;
use crate::definition::{
    parse_timestamp, Assign, CmpKind, JExpr, JTemplate, Jitter, Kind, Machine, MapMode, NumSource,
    Operand, PathOpt, QueryLanguage, ResultPath, Rule, State, StateMachine, StrSource, Template,
    TsSource, WaitSpec,
};
use crate::history::{
    format_ts, ActivityScheduledDetails, Details, ErrorCause, EvaluationFailure,
    ExecutionStartedDetails, HistoryEvent, LambdaFailure, LambdaScheduled, MapIterationDetails,
    StateType, TaskFailure, TaskOutput, TaskResource, TaskScheduledDetails,
};
use crate::intrinsic::{self, IntrinsicEnv, IntrinsicFailure};
use crate::jsonata_bridge;
use crate::path::{set_reference, Path, Root, Segment};
use crate::task::{is_lambda_arn, TaskHandler, TaskOutcome, TaskRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Payload size limit (256 KiB) for inputs, outputs and task results.
pub const MAX_PAYLOAD_BYTES: usize = 262_144;
/// History event limit of a standard execution.
pub const MAX_HISTORY_EVENTS: usize = 25_000;

/// Status of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Not finished (paused waiting for a task result or a timer).
    Running,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// The state machine's `TimeoutSeconds` elapsed.
    TimedOut,
    /// Stopped from outside.
    Aborted,
}

impl Status {
    /// `"SUCCEEDED"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Aborted => "ABORTED",
        }
    }
}

/// Something non-deterministic that happened, recorded for replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JournalEntry {
    /// A task produced a result (shared with the history and the state's result).
    TaskSucceeded(Arc<Value>),
    /// A task failed.
    TaskFailed {
        /// Error name.
        error: String,
        /// Cause.
        cause: Option<String>,
    },
    /// A wait (Wait state or retry interval) completed.
    Waited,
    /// A wait (Wait state or retry interval) was reached and is due at this instant; kept
    /// so that a resumed execution waits for the same instant. Becomes [`JournalEntry::Waited`]
    /// when the wait completes.
    WaitingUntil(DateTime<Utc>),
    /// A task was started and waits for its result (task token, `.sync`, activity): a resumed
    /// execution pauses here again without invoking the task a second time. Replaced by
    /// [`JournalEntry::TaskSucceeded`] / [`JournalEntry::TaskFailed`] when the result arrives.
    TaskPending(Waiting),
    /// The branches of a Parallel state or the iterations of a Map state finished (or one of
    /// them failed the state): a resumed execution takes this result instead of running them
    /// again.
    Joined {
        /// The result array when the state's branches/iterations succeeded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        /// The failure otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<LaneFailure>,
        /// Id of the event the state's next event follows.
        prev: u64,
        /// Id of the last `MapIteration{Succeeded,Failed}` event (Map states).
        #[serde(default)]
        end: u64,
        /// The failure is the state's own (a Map's item selector), not a branch's or an
        /// iteration's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        whole: bool,
    },
}

/// A failure recorded in [`JournalEntry::Joined`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneFailure {
    /// Error name.
    #[serde(default)]
    pub error: Option<String>,
    /// Cause.
    #[serde(default)]
    pub cause: Option<String>,
    /// An `EvaluationFailed` event was already recorded for it.
    #[serde(default)]
    pub reported: bool,
    /// No `MapStateFailed`/`ParallelStateFailed` event is recorded for it.
    #[serde(default)]
    pub no_state_failed: bool,
    /// The field a JSONata evaluation failed in.
    #[serde(default)]
    pub location: Option<String>,
}

/// One line of execution: the execution itself (key `""`), a Parallel branch or a Map
/// iteration (key `/<n>.<i>` appended to its parent's key, where `n` counts the
/// Parallel/Map states the parent has run and `i` is the branch or item index).
///
/// Branches and iterations progress independently: each one has its own journal and
/// remembers which history events it recorded, so that whichever order their task results
/// arrive in, a resumed execution replays each of them deterministically and only appends
/// new events to the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaneState {
    /// Recorded outcomes of this lane, in its execution order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<JournalEntry>,
    /// Number of history events this lane has recorded.
    #[serde(default)]
    pub events: u32,
    /// Their ids as runs of consecutive ids: `(first id, count)` (empty when the history is
    /// not recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_ids: Vec<(u64, u32)>,
    /// State transitions this lane has made.
    #[serde(default)]
    pub transitions: u64,
    /// The type of the state the lane is paused in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_in: Option<StateType>,
    /// Set when the lane finished while a sibling had not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<LaneDone>,
}

impl LaneState {
    fn last_event(&self) -> u64 {
        self.event_ids
            .last()
            .map(|(s, n)| s + u64::from(*n) - 1)
            .unwrap_or(0)
    }
}

/// The outcome of a finished branch or iteration whose siblings are still running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneDone {
    /// The output when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Error name when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Cause when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Id of its last event before the iteration end event.
    #[serde(default)]
    pub last: u64,
    /// Id of its `MapIteration{Succeeded,Failed}` event.
    #[serde(default)]
    pub end: u64,
}

/// Why a running execution is paused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Waiting {
    /// A task waits for `SendTaskSuccess`/`SendTaskFailure` with this token.
    Task {
        /// The task token.
        token: String,
        /// State name.
        state: String,
        /// Resource ARN.
        resource: String,
        /// When the task was started.
        since: DateTime<Utc>,
        /// `TimeoutSeconds` in effect.
        timeout_seconds: Option<u64>,
        /// `HeartbeatSeconds` in effect.
        heartbeat_seconds: Option<u64>,
        /// Last heartbeat.
        last_heartbeat: DateTime<Utc>,
    },
    /// A timer that the clock could not wait for now.
    Timer {
        /// When to resume.
        until: DateTime<Utc>,
    },
    /// Stopped voluntarily after `RunOptions::checkpoint_every` transitions.
    Checkpoint,
}

/// Names and identity of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionInfo {
    /// Execution name.
    pub name: String,
    /// State machine name.
    pub state_machine_name: String,
    /// Region used in ARNs.
    pub region: String,
    /// Account used in ARNs.
    pub account: String,
    /// Role ARN reported in the context object and history.
    pub role_arn: String,
}

impl Default for ExecutionInfo {
    fn default() -> Self {
        ExecutionInfo {
            name: "execution".into(),
            state_machine_name: "StateMachine".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            role_arn: "arn:aws:iam::123456789012:role/StepFunctionsRole".into(),
        }
    }
}

impl ExecutionInfo {
    /// `arn:aws:states:REGION:ACCOUNT:stateMachine:NAME`
    pub fn state_machine_arn(&self) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            self.region, self.account, self.state_machine_name
        )
    }
    /// `arn:aws:states:REGION:ACCOUNT:execution:SM:NAME`
    pub fn execution_arn(&self) -> String {
        format!(
            "arn:aws:states:{}:{}:execution:{}:{}",
            self.region, self.account, self.state_machine_name, self.name
        )
    }
}

/// The complete, serialisable state of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionState {
    /// Identity.
    pub info: ExecutionInfo,
    /// Execution input.
    pub input: Value,
    /// Start time.
    pub start_time: DateTime<Utc>,
    /// Random seed (UUIDs, MathRandom, jitter, task tokens).
    pub seed: u64,
    /// Recorded outcomes, in execution order.
    pub journal: Vec<JournalEntry>,
    /// History so far.
    pub history: Vec<HistoryEvent>,
    /// Status.
    pub status: Status,
    /// Output when succeeded.
    pub output: Option<Value>,
    /// Error when failed/timed out/aborted.
    pub error: Option<String>,
    /// Cause when failed/timed out/aborted.
    pub cause: Option<String>,
    /// Why it is paused, when running: the earliest timer if any is outstanding, else the
    /// first outstanding task (in branch/iteration order), else a checkpoint. `None` while
    /// running means it is ready to run (a task result or timeout was just delivered).
    /// All outstanding waits are in [`ExecutionState::waits`].
    pub waiting: Option<Waiting>,
    /// State transitions performed by the last run (replay included).
    pub transitions: u64,
    /// Every outstanding wait of a paused execution: one per paused Parallel branch or Map
    /// iteration (task tokens and timers), in branch/iteration order. A delivered result
    /// removes its wait. See [`ExecutionState::outstanding`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<Waiting>,
    /// The execution's lanes (the root `""`, and the branches/iterations of unfinished
    /// Parallel and Map states) with their journals.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lanes: BTreeMap<String, LaneState>,
    /// History events recorded so far (also counted when the history is not recorded): the
    /// 25,000-event limit.
    #[serde(default)]
    pub event_count: usize,
}

impl Default for ExecutionState {
    /// A running execution with no input, history or journal, started at the epoch (what
    /// [`Execution::new`] fills in; also a cheap placeholder for `std::mem::take`).
    fn default() -> Self {
        ExecutionState {
            info: ExecutionInfo::default(),
            input: Value::Null,
            start_time: DateTime::<Utc>::UNIX_EPOCH,
            seed: 0,
            journal: Vec::new(),
            history: Vec::new(),
            status: Status::Running,
            output: None,
            error: None,
            cause: None,
            waiting: None,
            transitions: 0,
            waits: Vec::new(),
            lanes: BTreeMap::new(),
            event_count: 0,
        }
    }
}

impl ExecutionState {
    /// Every outstanding wait: [`ExecutionState::waits`], or for a state saved by an earlier
    /// version (no `waits`), [`ExecutionState::waiting`].
    pub fn outstanding(&self) -> &[Waiting] {
        if self.waits.is_empty() {
            self.waiting.as_slice()
        } else {
            &self.waits
        }
    }

    /// The outstanding task tokens.
    pub fn task_tokens(&self) -> impl Iterator<Item = &str> {
        self.outstanding().iter().filter_map(|w| match w {
            Waiting::Task { token, .. } => Some(token.as_str()),
            _ => None,
        })
    }

    /// When the execution must be run next without outside input: the earliest due timer,
    /// task `TimeoutSeconds` or `HeartbeatSeconds` deadline; the start of the epoch for a
    /// checkpoint; `None` when only task results can move it on (or it is not paused).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        if self.status != Status::Running {
            return None;
        }
        self.outstanding().iter().filter_map(Waiting::due).min()
    }
}

impl Waiting {
    /// When this wait ends by itself: a timer's instant, a task's timeout or heartbeat
    /// deadline, the epoch for a checkpoint (due at once).
    pub fn due(&self) -> Option<DateTime<Utc>> {
        match self {
            Waiting::Timer { until } => Some(*until),
            Waiting::Checkpoint => Some(DateTime::<Utc>::UNIX_EPOCH),
            Waiting::Task {
                since,
                timeout_seconds,
                heartbeat_seconds,
                last_heartbeat,
                ..
            } => {
                let a = timeout_seconds.map(|t| *since + chrono::Duration::seconds(t as i64));
                let b = heartbeat_seconds
                    .map(|h| *last_heartbeat + chrono::Duration::seconds(h as i64));
                match (a, b) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// The timeout a task wait has reached at `now` (`States.Timeout` or
    /// `States.HeartbeatTimeout`).
    fn expired(&self, now: DateTime<Utc>) -> Option<&'static str> {
        let Waiting::Task {
            since,
            timeout_seconds,
            heartbeat_seconds,
            last_heartbeat,
            ..
        } = self
        else {
            return None;
        };
        if timeout_seconds.is_some_and(|t| now >= *since + chrono::Duration::seconds(t as i64)) {
            Some("States.Timeout")
        } else if heartbeat_seconds
            .is_some_and(|h| now >= *last_heartbeat + chrono::Duration::seconds(h as i64))
        {
            Some("States.HeartbeatTimeout")
        } else {
            None
        }
    }

    fn token(&self) -> Option<&str> {
        match self {
            Waiting::Task { token, .. } => Some(token),
            _ => None,
        }
    }
}

/// The wait reported in [`ExecutionState::waiting`]: a checkpoint, else the earliest timer,
/// else the first task.
fn primary_wait(waits: &[Waiting]) -> Option<Waiting> {
    if let Some(c) = waits.iter().find(|w| matches!(w, Waiting::Checkpoint)) {
        return Some(c.clone());
    }
    let timer = waits
        .iter()
        .filter_map(|w| match w {
            Waiting::Timer { until } => Some(*until),
            _ => None,
        })
        .min();
    match timer {
        Some(until) => Some(Waiting::Timer { until }),
        None => waits.first().cloned(),
    }
}

/// Errors of the execution API (not execution failures, which are results).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The token does not belong to the task the execution waits for.
    #[error("Invalid Token: '{0}'")]
    InvalidToken(String),
    /// The execution is not running.
    #[error("the execution is not running (status {0})")]
    NotRunning(&'static str),
    /// The input is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
}

/// An execution of a state machine.
#[derive(Debug, Clone)]
pub struct Execution {
    state: ExecutionState,
}

/// Options for [`Execution::run_with`].
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Record history events (turn off for throughput measurements).
    pub record_history: bool,
    /// Stop after this many new state transitions (status stays `Running`, waiting
    /// [`Waiting::Checkpoint`]) so that a host can persist the state after every transition;
    /// the next [`Execution::run`] carries on.
    pub checkpoint_every: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            record_history: true,
            checkpoint_every: None,
        }
    }
}

impl Execution {
    /// Creates an execution (nothing runs until [`Execution::run`]).
    pub fn new(input: Value, info: ExecutionInfo, seed: u64, clock: &dyn Clock) -> Execution {
        Execution {
            state: ExecutionState {
                info,
                input,
                start_time: clock.now(),
                seed,
                ..ExecutionState::default()
            },
        }
    }

    /// Restores an execution from its serialised state.
    pub fn from_state(state: ExecutionState) -> Execution {
        Execution { state }
    }

    /// The current state (serialise it to persist the execution).
    pub fn state(&self) -> &ExecutionState {
        &self.state
    }

    /// Consumes the execution, returning its state.
    pub fn into_state(self) -> ExecutionState {
        self.state
    }

    /// Runs (or resumes) until the execution finishes or pauses.
    pub fn run(
        &mut self,
        sm: &StateMachine,
        tasks: &mut dyn TaskHandler,
        clock: &dyn Clock,
    ) -> Status {
        self.run_with(sm, tasks, clock, RunOptions::default())
    }

    /// [`Execution::run`] with options.
    pub fn run_with(
        &mut self,
        sm: &StateMachine,
        tasks: &mut dyn TaskHandler,
        clock: &dyn Clock,
        opts: RunOptions,
    ) -> Status {
        if self.state.status != Status::Running {
            return self.state.status;
        }
        let mut lanes = std::mem::take(&mut self.state.lanes);
        // A state saved before lanes existed: one journal consumed in execution order, and
        // a history that the first run regenerates in the same order.
        let legacy = if lanes.is_empty()
            && (!self.state.history.is_empty() || !self.state.journal.is_empty())
        {
            Some(Legacy {
                journal: std::mem::take(&mut self.state.journal),
                pos: 0,
                history_len: self.state.history.len(),
                emitted: 0,
                transitions: self.state.transitions,
            })
        } else {
            None
        };
        let root = match lanes.remove("") {
            Some(rec) => LaneCtx::resume(self.state.seed, rec, lanes.is_empty()),
            None => LaneCtx::fresh(self.state.seed),
        };
        let mut r = Runner {
            info: &self.state.info,
            exec_input: &self.state.input,
            start_time: self.state.start_time,
            tasks,
            clock,
            lane: root,
            path: Vec::new(),
            lanes,
            legacy,
            waits: Vec::new(),
            history: std::mem::take(&mut self.state.history),
            transitions: 0,
            record: opts.record_history,
            checkpoint_every: opts.checkpoint_every,
            new_transitions: 0,
            null: Arc::new(Value::Null),
            now_cache: std::cell::Cell::new((i64::MIN, DateTime::<Utc>::default())),
            events: 0,
            deadline: sm
                .timeout_seconds
                .map(|s| self.state.start_time + chrono::Duration::seconds(s as i64)),
            exec_arn: OnceCell::new(),
            limit_hit: false,
        };
        if r.legacy.is_none() {
            r.events = self.state.event_count;
        }
        let mut prev = 0u64;
        let result = if payload_too_large(&self.state.input) {
            Err(Stop::Fail(Failure::new(
                "States.DataLimitExceeded",
                "The execution input exceeds the maximum number of bytes service limit.",
            )))
        } else {
            r.emit(
                &mut prev,
                Details::ExecutionStarted(Box::new(ExecutionStartedDetails {
                    input: self.state.input.clone(),
                    role_arn: self.state.info.role_arn.clone(),
                    state_machine_arn: self.state.info.state_machine_arn(),
                })),
            );
            prev = 0;
            let mut scope = Scope::root();
            r.run_machine(
                &sm.root,
                self.state.input.clone(),
                &mut scope,
                &mut prev,
                false,
            )
        };
        let mut checkpoint = false;
        let result = if r.limit_hit {
            // Nothing after the limit counts, whatever the states made of the failure.
            prev = r.history.len() as u64;
            Err(Stop::Fail(history_limit_failure()))
        } else {
            result
        };
        let (status, out, err, cause) = match result {
            Ok(v) => {
                if payload_too_large(&v) {
                    (
                        Status::Failed,
                        None,
                        Some("States.DataLimitExceeded".to_string()),
                        Some("The execution output exceeds the maximum number of bytes service limit.".to_string()),
                    )
                } else {
                    (Status::Succeeded, Some(v), None, None)
                }
            }
            Err(Stop::Fail(f)) => (Status::Failed, None, f.error, f.cause),
            Err(Stop::TimedOut) => (
                Status::TimedOut,
                None,
                Some("States.Timeout".to_string()),
                None,
            ),
            Err(Stop::Pause(kind)) => {
                checkpoint = kind == Pause::Checkpoint;
                (Status::Running, None, None, None)
            }
        };
        match status {
            Status::Succeeded => {
                let output = out.clone().unwrap_or(Value::Null);
                r.emit(
                    &mut prev,
                    Details::ExecutionSucceeded {
                        output: Box::new(output),
                    },
                );
            }
            Status::Failed => {
                r.emit(
                    &mut prev,
                    Details::ExecutionFailed(Box::new(ErrorCause {
                        error: err.clone(),
                        cause: cause.clone(),
                    })),
                );
            }
            Status::TimedOut => {
                let id = r.emit(
                    &mut prev,
                    Details::ExecutionTimedOut(Box::new(ErrorCause {
                        error: err.clone(),
                        cause: cause.clone(),
                    })),
                );
                // The execution timed out at its deadline, even when the clock is read
                // later (a host resuming a paused execution after the deadline).
                if let (Some(d), true) = (r.deadline, id > 0) {
                    let n = r.history.len();
                    let floor = match n {
                        2.. => r.history[n - 2].timestamp,
                        _ => d,
                    };
                    if let Some(e) = r.history.last_mut() {
                        if e.timestamp > d {
                            e.timestamp = d.max(floor);
                        }
                    }
                }
            }
            Status::Running | Status::Aborted => {}
        }
        let transitions = r.transitions;
        let history = std::mem::take(&mut r.history);
        let root = std::mem::replace(&mut r.lane, LaneCtx::fresh(0));
        let mut lanes = std::mem::take(&mut r.lanes);
        let mut waits = std::mem::take(&mut r.waits);
        let events = r.events;
        drop(r);
        if status != Status::Running {
            // Branches of unfinished Parallel/Map states can never resume.
            lanes.clear();
            waits.clear();
        } else if checkpoint {
            // Stopped at once: the tasks other branches wait for are still outstanding.
            waits = vec![Waiting::Checkpoint];
            for l in lanes.values() {
                if l.done.is_none() {
                    if let Some(JournalEntry::TaskPending(w)) = l.journal.last() {
                        waits.push(w.clone());
                    }
                }
            }
        }
        lanes.insert(String::new(), root.into_record(None));
        self.state.lanes = lanes;
        self.state.history = history;
        self.state.status = status;
        self.state.output = out;
        self.state.error = err;
        self.state.cause = cause;
        self.state.waiting = primary_wait(&waits);
        self.state.waits = waits;
        self.state.transitions = transitions;
        self.state.event_count = events;
        status
    }

    fn pending_token(&self, token: &str) -> Result<(), ExecError> {
        if self.state.status != Status::Running {
            return Err(ExecError::NotRunning(self.state.status.as_str()));
        }
        if self.state.task_tokens().any(|t| t == token) {
            Ok(())
        } else {
            Err(ExecError::InvalidToken(token.to_string()))
        }
    }

    /// Replaces the pending entry of `token` with its outcome; the execution is then ready
    /// to run.
    fn deliver(&mut self, token: &str, entry: JournalEntry) {
        let mut placed = false;
        for lane in self.state.lanes.values_mut() {
            if let Some(slot) = lane
                .journal
                .iter_mut()
                .rev()
                .find(|e| matches!(e, JournalEntry::TaskPending(w) if w.token() == Some(token)))
            {
                *slot = entry.clone();
                placed = true;
                break;
            }
        }
        if !placed {
            // Saved by an earlier version: the outcome continues the single journal.
            self.state.journal.push(entry);
        }
        self.state.waits.retain(|w| w.token() != Some(token));
        self.state.waiting = None;
    }

    /// Delivers a task result (`SendTaskSuccess`) for any outstanding task token. Call
    /// [`Execution::run`] afterwards.
    pub fn send_task_success(&mut self, token: &str, output: Value) -> Result<(), ExecError> {
        self.pending_token(token)?;
        self.deliver(token, JournalEntry::TaskSucceeded(Arc::new(output)));
        Ok(())
    }

    /// Delivers a task failure (`SendTaskFailure`) for any outstanding task token. Call
    /// [`Execution::run`] afterwards.
    pub fn send_task_failure(
        &mut self,
        token: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<(), ExecError> {
        self.pending_token(token)?;
        self.deliver(
            token,
            JournalEntry::TaskFailed {
                error: error.unwrap_or_default(),
                cause,
            },
        );
        Ok(())
    }

    /// Records a heartbeat (`SendTaskHeartbeat`) for any outstanding task token.
    pub fn send_task_heartbeat(&mut self, token: &str, clock: &dyn Clock) -> Result<(), ExecError> {
        self.pending_token(token)?;
        let now = clock.now();
        let beat = |w: &mut Waiting| {
            if let Waiting::Task {
                token: t,
                last_heartbeat,
                ..
            } = w
            {
                if t == token {
                    *last_heartbeat = now;
                }
            }
        };
        self.state.waits.iter_mut().for_each(beat);
        if let Some(w) = &mut self.state.waiting {
            beat(w);
        }
        for lane in self.state.lanes.values_mut() {
            for e in lane.journal.iter_mut() {
                if let JournalEntry::TaskPending(w) = e {
                    beat(w);
                }
            }
        }
        Ok(())
    }

    /// Fails every outstanding task whose `TimeoutSeconds` or `HeartbeatSeconds` has elapsed
    /// at `now`. Returns true when a timeout was delivered (call [`Execution::run`]
    /// afterwards).
    pub fn check_task_timeouts(&mut self, now: DateTime<Utc>) -> bool {
        if self.state.status != Status::Running {
            return false;
        }
        let expired: Vec<(String, &'static str)> = self
            .state
            .outstanding()
            .iter()
            .filter_map(|w| Some((w.token()?.to_string(), w.expired(now)?)))
            .collect();
        for (token, err) in &expired {
            self.deliver(
                token,
                JournalEntry::TaskFailed {
                    error: err.to_string(),
                    cause: None,
                },
            );
        }
        !expired.is_empty()
    }

    /// Stops the execution (`StopExecution`): status ABORTED.
    pub fn stop(&mut self, error: Option<String>, cause: Option<String>, clock: &dyn Clock) {
        if self.state.status != Status::Running {
            return;
        }
        let id = self.state.history.len() as u64 + 1;
        self.state.history.push(HistoryEvent {
            id,
            previous_event_id: id - 1,
            timestamp: clock.now(),
            details: Details::ExecutionAborted(Box::new(ErrorCause {
                error: error.clone(),
                cause: cause.clone(),
            })),
        });
        self.state.event_count += 1;
        self.state.status = Status::Aborted;
        self.state.error = error;
        self.state.cause = cause;
        self.state.waiting = None;
        self.state.waits.clear();
        self.state.lanes.retain(|k, _| k.is_empty());
    }
}

/// Runs a definition to completion with a virtual or real clock: a convenience for tests and the CLI.
pub fn run_to_end(
    sm: &StateMachine,
    input: Value,
    info: ExecutionInfo,
    tasks: &mut dyn TaskHandler,
    clock: &dyn Clock,
) -> Execution {
    let mut e = Execution::new(input, info, 0x5eed, clock);
    e.run(sm, tasks, clock);
    e
}

#[derive(Debug, Clone)]
struct Failure {
    error: Option<String>,
    cause: Option<String>,
    /// `EvaluationFailed` already recorded.
    reported: bool,
    /// Do not record `MapStateFailed`/`ParallelStateFailed` for this failure.
    no_state_failed: bool,
    /// The field a JSONata evaluation failed in (`EvaluationFailed.location`).
    location: Option<String>,
}

impl Failure {
    fn new(error: &str, cause: impl Into<String>) -> Failure {
        Failure {
            error: Some(error.to_string()),
            cause: Some(cause.into()),
            reported: false,
            no_state_failed: false,
            location: None,
        }
    }
    fn error_output(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "Error".into(),
            self.error.clone().map(Value::String).unwrap_or(Value::Null),
        );
        let cause = match (&self.cause, self.name()) {
            (Some(c), _) => Value::String(c.clone()),
            // Step Functions reports timeouts with an empty cause in the error output.
            (None, "States.Timeout" | "States.HeartbeatTimeout") => Value::String(String::new()),
            (None, _) => Value::Null,
        };
        m.insert("Cause".into(), cause);
        Value::Object(m)
    }
    fn name(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }
    fn at(mut self, location: &str) -> Failure {
        self.location = Some(location.to_string());
        self
    }
}

enum Stop {
    Fail(Failure),
    /// The lane is paused; its waits are in `Runner::waits`.
    Pause(Pause),
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// A task result or a timer: other branches carry on.
    Wait,
    /// `RunOptions::checkpoint_every`: the whole run stops at once.
    Checkpoint,
}

impl Failure {
    fn to_record(&self) -> LaneFailure {
        LaneFailure {
            error: self.error.clone(),
            cause: self.cause.clone(),
            reported: self.reported,
            no_state_failed: self.no_state_failed,
            location: self.location.clone(),
        }
    }
    fn from_record(r: &LaneFailure) -> Failure {
        Failure {
            error: r.error.clone(),
            cause: r.cause.clone(),
            reported: r.reported,
            no_state_failed: r.no_state_failed,
            location: r.location.clone(),
        }
    }
}

/// The running lane (see [`LaneState`]).
struct LaneCtx {
    journal: Vec<JournalEntry>,
    jpos: usize,
    /// Ids of the events the lane recorded in earlier runs, then of the new ones.
    ids: Vec<(u64, u32)>,
    /// Events recorded in earlier runs.
    existing: u32,
    /// Events emitted in this run (replayed ones included).
    emitted: u32,
    /// Position of the next replayed event in `ids`.
    cursor: (usize, u32),
    seed: u64,
    rng: SplitMix64,
    /// Parallel/Map states started by this lane in this run (names child lanes).
    spawn: u32,
    transitions: u64,
    /// Transitions made in earlier runs.
    replayed: u64,
    /// No lane below this one has a record.
    fresh: bool,
    paused_in: Option<StateType>,
}

impl LaneCtx {
    fn fresh(seed: u64) -> LaneCtx {
        LaneCtx {
            journal: Vec::new(),
            jpos: 0,
            ids: Vec::new(),
            existing: 0,
            emitted: 0,
            cursor: (0, 0),
            seed,
            rng: SplitMix64::new(seed),
            spawn: 0,
            transitions: 0,
            replayed: 0,
            fresh: true,
            paused_in: None,
        }
    }
    fn resume(seed: u64, rec: LaneState, fresh: bool) -> LaneCtx {
        let mut l = LaneCtx::fresh(seed);
        l.journal = rec.journal;
        l.ids = rec.event_ids;
        l.existing = rec.events;
        l.replayed = rec.transitions;
        l.fresh = fresh;
        l
    }
    fn into_record(self, done: Option<LaneDone>) -> LaneState {
        LaneState {
            journal: self.journal,
            events: self.emitted.max(self.existing),
            event_ids: self.ids,
            transitions: self.transitions.max(self.replayed),
            paused_in: if done.is_none() { self.paused_in } else { None },
            done,
        }
    }
}

/// The seed of branch/iteration `idx` of the `seq`-th Parallel/Map state of a lane.
fn child_seed(seed: u64, seq: u32, idx: usize) -> u64 {
    let mut g = SplitMix64::new(
        seed ^ (u64::from(seq) << 40 ^ idx as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93),
    );
    g.next_u64()
}

/// Replay of a state saved before lanes existed.
struct Legacy {
    journal: Vec<JournalEntry>,
    pos: usize,
    history_len: usize,
    emitted: usize,
    transitions: u64,
}

/// How a branch/iteration of the current Parallel/Map state stands in this run.
enum LaneStat {
    NotStarted,
    Succeeded {
        last: u64,
        end: u64,
    },
    Failed {
        error: Option<String>,
        cause: Option<String>,
        last: u64,
        end: u64,
    },
    Paused,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Stop {
        Stop::Fail(f)
    }
}

/// Workflow variables, scoped: Parallel branches and Map iterations see outer variables
/// and assign into their own scope.
struct Scope<'p> {
    vars: HashMap<String, Value>,
    parent: Option<&'p Scope<'p>>,
}

impl<'p> Scope<'p> {
    fn root() -> Scope<'static> {
        Scope {
            vars: HashMap::new(),
            parent: None,
        }
    }
    fn child(parent: &'p Scope<'p>) -> Scope<'p> {
        Scope {
            vars: HashMap::new(),
            parent: Some(parent),
        }
    }
    fn get(&self, name: &str) -> Option<&Value> {
        match self.vars.get(name) {
            Some(v) => Some(v),
            None => self.parent.and_then(|p| p.get(name)),
        }
    }
    fn for_each(&self, f: &mut dyn FnMut(&str, &Value)) {
        if let Some(p) = self.parent {
            p.for_each(f);
        }
        for (k, v) in &self.vars {
            f(k, v);
        }
    }
}

/// A state's input or output, shared with the history without copying.
type Shared = Arc<Value>;

/// (MaxConcurrency, ToleratedFailureCount, ToleratedFailurePercentage, MaxItemsPerBatch,
/// MaxInputBytesPerBatch) of a Map state.
type MapLimits = (Option<usize>, f64, f64, Option<u64>, Option<u64>);

/// Builds the input of one Map iteration.
type ItemSelectorFn<'f, 'a> =
    dyn Fn(&mut Runner<'a>, usize, &Value, &Scope) -> Result<Value, Failure> + 'f;

/// Per-state evaluation context.
struct Sctx<'s> {
    state: &'s State,
    entered_id: u64,
    /// `previousEventId` of the state's Entered event.
    entered_prev: u64,
    entered: DateTime<Utc>,
    retry_count: u32,
    token: Option<String>,
    map_item: Option<(usize, &'s Value)>,
    context: OnceCell<Value>,
}

struct Runner<'a> {
    info: &'a ExecutionInfo,
    exec_input: &'a Value,
    start_time: DateTime<Utc>,
    tasks: &'a mut dyn TaskHandler,
    clock: &'a dyn Clock,
    /// The running lane.
    lane: LaneCtx,
    /// (Parallel/Map number, branch/item index) of the running lane and its ancestors.
    path: Vec<(u32, usize)>,
    /// Records of the lanes that are not running.
    lanes: BTreeMap<String, LaneState>,
    legacy: Option<Legacy>,
    /// Outstanding waits of the paused lanes.
    waits: Vec<Waiting>,
    history: Vec<HistoryEvent>,
    transitions: u64,
    record: bool,
    /// Stop after this many new transitions.
    checkpoint_every: Option<u64>,
    /// New (not replayed) transitions in this run.
    new_transitions: u64,
    /// Last clock reading and its calendar form.
    now_cache: std::cell::Cell<(i64, DateTime<Utc>)>,
    /// A shared `null` for events that are not recorded.
    null: Shared,
    /// Events of the current history, counted even when not recorded (limit enforcement).
    events: usize,
    deadline: Option<DateTime<Utc>>,
    exec_arn: OnceCell<String>,
    /// The history reached its limit: the execution fails with the next event.
    limit_hit: bool,
}

/// The failure of an execution whose history reached [`MAX_HISTORY_EVENTS`].
fn history_limit_failure() -> Failure {
    Failure::new(
        "States.Runtime",
        format!(
            "The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
        ),
    )
}

/// Events an execution ends with: the only ones recorded once the history is full.
fn is_terminal(d: &Details) -> bool {
    matches!(
        d,
        Details::ExecutionSucceeded { .. }
            | Details::ExecutionFailed(_)
            | Details::ExecutionTimedOut(_)
            | Details::ExecutionAborted(_)
    )
}

fn state_type(k: &Kind) -> StateType {
    match k {
        Kind::Pass { .. } => StateType::Pass,
        Kind::Task { .. } => StateType::Task,
        Kind::Choice { .. } => StateType::Choice,
        Kind::Wait(_) => StateType::Wait,
        Kind::Succeed => StateType::Succeed,
        Kind::Fail { .. } => StateType::Fail,
        Kind::Parallel { .. } => StateType::Parallel,
        Kind::Map(_) => StateType::Map,
    }
}

struct CountWriter(usize);
impl std::io::Write for CountWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_size(v: &Value) -> usize {
    let mut w = CountWriter(0);
    let _ = serde_json::to_writer(&mut w, v);
    w.0
}

/// A task's outcome inside the interpreter: a result is shared by the journal, the
/// history and the state's result instead of being copied into each.
enum Outcome {
    Succeeded(Shared),
    Failed {
        error: String,
        cause: Option<String>,
    },
    Pending {
        submitted: Value,
    },
}

fn payload_too_large(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
        Value::String(s) if s.len() < MAX_PAYLOAD_BYTES / 8 => false,
        _ => json_size(v) > MAX_PAYLOAD_BYTES,
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn error_matches(list: &[String], f: &Failure) -> bool {
    let e = f.name();
    if e == "States.Runtime" {
        return false;
    }
    list.iter().any(|x| {
        x == e
            || x == "States.ALL"
            || (x == "States.TaskFailed"
                && e != "States.Timeout"
                && !e.starts_with("States.Runtime"))
    })
}

struct PathEnv<'r, 'a, 's> {
    r: &'r mut Runner<'a>,
    input: &'r Value,
    sctx: &'r Sctx<'s>,
    scope: &'r Scope<'r>,
    field: &'r str,
}

impl IntrinsicEnv for PathEnv<'_, '_, '_> {
    fn resolve(&mut self, p: &Path) -> Result<Value, IntrinsicFailure> {
        match self.r.resolve_path(p, self.input, self.sctx, self.scope) {
            Some(v) => Ok(v),
            None => Err(IntrinsicFailure {
                error: "States.Runtime",
                cause: format!(
                    "The JSONPath '{}' specified for the field '{}' could not be found in the input '{}'",
                    p.text,
                    self.field,
                    compact(self.input)
                ),
            }),
        }
    }
    fn random_u64(&mut self) -> u64 {
        self.r.lane.rng.next_u64()
    }
    fn uuid(&mut self) -> String {
        self.r.lane.rng.uuid_v4()
    }
}

impl<'a> Runner<'a> {
    /// The clock's time; the conversion to a calendar time is cached while the clock stands
    /// still (a virtual clock between waits).
    fn now(&self) -> DateTime<Utc> {
        let m = self.clock.now_micros();
        let (cm, ct) = self.now_cache.get();
        if cm == m {
            return ct;
        }
        let t = DateTime::from_timestamp_micros(m).unwrap_or_default();
        self.now_cache.set((m, t));
        t
    }

    /// The lane's next event when an earlier run recorded it (the history already holds
    /// it): its id (0 when the history is not recorded).
    fn take_existing(&mut self, prev: &mut u64) -> Option<u64> {
        if self.lane.emitted >= self.lane.existing {
            return None;
        }
        self.lane.emitted += 1;
        let (ri, off) = self.lane.cursor;
        let id = match self.lane.ids.get(ri) {
            Some(&(start, n)) => {
                self.lane.cursor = if off + 1 >= n {
                    (ri + 1, 0)
                } else {
                    (ri, off + 1)
                };
                start + u64::from(off)
            }
            None => 0,
        };
        if id == 0 || !self.record {
            return Some(0);
        }
        *prev = id;
        Some(id)
    }

    /// [`Runner::emit`] building the details only for a new event (replayed events are
    /// skipped: a resume does not rebuild their payloads).
    fn emit_lazy(&mut self, prev: &mut u64, details: impl FnOnce() -> Details) -> u64 {
        match self.take_existing(prev) {
            Some(id) => id,
            None => self.emit(prev, details()),
        }
    }

    fn emit(&mut self, prev: &mut u64, details: Details) -> u64 {
        if let Some(id) = self.take_existing(prev) {
            return id;
        }
        self.lane.emitted += 1;
        if let Some(l) = &mut self.legacy {
            if l.emitted < l.history_len {
                // Saved by an earlier version: its history is regenerated in order.
                l.emitted += 1;
                let id = l.emitted as u64;
                self.events += 1;
                self.push_id(id);
                if !self.record {
                    return 0;
                }
                *prev = id;
                return id;
            }
        }
        if self.full(&details) {
            return 0;
        }
        self.events += 1;
        if !self.record {
            return 0;
        }
        let id = self.history.len() as u64 + 1;
        let timestamp = self.now();
        self.history.push(HistoryEvent {
            id,
            previous_event_id: *prev,
            timestamp,
            details,
        });
        self.push_id(id);
        *prev = id;
        id
    }

    /// Step Functions fails an execution whose history reaches 25,000 events: event 25,000
    /// is `ExecutionFailed`. Past 24,999 events only the terminal event is recorded.
    fn full(&mut self, details: &Details) -> bool {
        if self.events + 1 >= MAX_HISTORY_EVENTS && !is_terminal(details) {
            self.limit_hit = true;
        }
        self.limit_hit && !is_terminal(details)
    }

    fn push_id(&mut self, id: u64) {
        match self.lane.ids.last_mut() {
            Some((s, n)) if *s + u64::from(*n) == id => *n += 1,
            _ => self.lane.ids.push((id, 1)),
        }
    }

    /// Records an event that belongs to no lane (the aborts of a failed Parallel/Map state,
    /// whose lanes never replay).
    fn emit_detached(&mut self, prev: u64, details: Details) -> u64 {
        if self.full(&details) {
            return 0;
        }
        self.events += 1;
        if !self.record {
            return 0;
        }
        let id = self.history.len() as u64 + 1;
        let timestamp = self.now();
        self.history.push(HistoryEvent {
            id,
            previous_event_id: prev,
            timestamp,
            details,
        });
        id
    }

    /// The lane's journal entry at its position; a state saved by an earlier version feeds
    /// its single journal to the lanes in execution order.
    fn jentry(&mut self) -> Option<&JournalEntry> {
        if self.lane.jpos >= self.lane.journal.len() {
            if let Some(l) = &mut self.legacy {
                if let Some(e) = l.journal.get(l.pos) {
                    self.lane.journal.push(e.clone());
                    l.pos += 1;
                }
            }
        }
        self.lane.journal.get(self.lane.jpos)
    }

    /// Writes a new journal entry at the lane's position (not advancing it).
    fn jwrite(&mut self, e: JournalEntry) {
        self.lane.journal.truncate(self.lane.jpos);
        self.lane.journal.push(e);
    }

    /// Records `EvaluationFailed` once for a JSONata failure, linked the way AWS links it.
    fn report_evaluation_failed(&mut self, f: &mut Failure, sctx: &Sctx, prev: &mut u64) {
        if f.name() != "States.QueryEvaluationError" || f.reported {
            return;
        }
        *prev = if f.location.as_deref() == Some("Timestamp") {
            sctx.entered_id
        } else {
            sctx.entered_prev
        };
        self.emit(
            prev,
            Details::EvaluationFailed(Box::new(EvaluationFailure {
                error: f.error.clone().unwrap_or_default(),
                cause: f.cause.clone().unwrap_or_default(),
                location: f.location.clone(),
                state: sctx.state.name.clone(),
            })),
        );
        f.reported = true;
    }

    /// Records an event after `prev` without making it the predecessor of the next one.
    fn emit_side(&mut self, prev: u64, details: Details) -> u64 {
        let mut p = prev;
        self.emit(&mut p, details)
    }

    fn in_error(&self, sctx: &Sctx, msg: impl std::fmt::Display) -> String {
        format!(
            "An error occurred while executing the state '{}' (entered at the event id #{}). {}",
            sctx.state.name, sctx.entered_id, msg
        )
    }

    fn runtime(&self, sctx: &Sctx, msg: impl std::fmt::Display) -> Failure {
        Failure::new("States.Runtime", self.in_error(sctx, msg))
    }

    /// `States.ResultPathMatchFailure`: the ResultPath cannot be applied to the input.
    fn result_path_failure(&self, sctx: &Sctx, p: &Path, input: &Value) -> Failure {
        Failure::new(
            "States.ResultPathMatchFailure",
            self.in_error(
                sctx,
                format_args!(
                    "Unable to apply ReferencePath {} to input {}",
                    p.text,
                    compact(input)
                ),
            ),
        )
    }

    fn qe(&self, sctx: &Sctx, msg: impl std::fmt::Display) -> Failure {
        Failure::new("States.QueryEvaluationError", self.in_error(sctx, msg))
    }

    fn exec_arn(&self) -> &str {
        self.exec_arn.get_or_init(|| self.info.execution_arn())
    }

    fn context(&self, sctx: &Sctx) -> Value {
        let mut exec = Map::new();
        exec.insert("Id".into(), Value::String(self.exec_arn().to_string()));
        exec.insert("Input".into(), self.exec_input.clone());
        exec.insert(
            "StartTime".into(),
            Value::String(format_ts(&self.start_time)),
        );
        exec.insert("Name".into(), Value::String(self.info.name.clone()));
        exec.insert("RoleArn".into(), Value::String(self.info.role_arn.clone()));
        exec.insert("RedriveCount".into(), Value::from(0));
        let mut st = Map::new();
        st.insert(
            "EnteredTime".into(),
            Value::String(format_ts(&sctx.entered)),
        );
        st.insert("Name".into(), Value::String(sctx.state.name.to_string()));
        if matches!(sctx.state.kind, Kind::Task { .. }) {
            st.insert("RetryCount".into(), Value::from(sctx.retry_count));
        }
        let mut sm = Map::new();
        sm.insert("Id".into(), Value::String(self.info.state_machine_arn()));
        sm.insert(
            "Name".into(),
            Value::String(self.info.state_machine_name.clone()),
        );
        let mut c = Map::new();
        c.insert("Execution".into(), Value::Object(exec));
        c.insert("State".into(), Value::Object(st));
        c.insert("StateMachine".into(), Value::Object(sm));
        if let Some(t) = &sctx.token {
            let mut task = Map::new();
            task.insert("Token".into(), Value::String(t.clone()));
            c.insert("Task".into(), Value::Object(task));
        }
        if let Some((i, v)) = sctx.map_item {
            let mut item = Map::new();
            item.insert("Index".into(), Value::from(i));
            item.insert("Value".into(), v.clone());
            let mut m = Map::new();
            m.insert("Item".into(), Value::Object(item));
            c.insert("Map".into(), Value::Object(m));
        }
        Value::Object(c)
    }

    /// The value of the common context paths (`$$.Execution.Id`, `$$.State.EnteredTime`,
    /// `$$.Task.Token`, ...) without building the whole context object; `None` for any
    /// other path (which then reads the built object).
    fn context_field(&self, p: &Path, sctx: &Sctx) -> Option<Value> {
        let [Segment::Field(a), Segment::Field(b)] = p.segments.as_slice() else {
            return None;
        };
        Some(match (a.as_str(), b.as_str()) {
            ("Execution", "Id") => Value::String(self.exec_arn().to_string()),
            ("Execution", "Name") => Value::String(self.info.name.clone()),
            ("Execution", "StartTime") => Value::String(format_ts(&self.start_time)),
            ("State", "EnteredTime") => Value::String(format_ts(&sctx.entered)),
            ("State", "Name") => Value::String(sctx.state.name.to_string()),
            ("StateMachine", "Id") => Value::String(self.info.state_machine_arn()),
            ("StateMachine", "Name") => Value::String(self.info.state_machine_name.clone()),
            ("Task", "Token") => Value::String(sctx.token.clone()?),
            _ => return None,
        })
    }

    fn resolve_path(&self, p: &Path, input: &Value, sctx: &Sctx, scope: &Scope) -> Option<Value> {
        match &p.root {
            Root::Input => p.select(input),
            Root::Context => {
                if let Some(v) = self.context_field(p, sctx) {
                    return Some(v);
                }
                let ctx = sctx.context.get_or_init(|| self.context(sctx));
                p.select(ctx)
            }
            Root::Variable(name) => {
                let v = scope.get(name)?;
                p.select(v)
            }
        }
    }

    /// Like `resolve_path`, borrowing when the path selects one existing value.
    fn resolve_ref<'v>(
        &self,
        p: &Path,
        input: &'v Value,
        sctx: &'v Sctx,
        scope: &'v Scope,
    ) -> Option<Cow<'v, Value>> {
        let root: &'v Value = match &p.root {
            Root::Input => input,
            Root::Context => {
                if let Some(v) = self.context_field(p, sctx) {
                    return Some(Cow::Owned(v));
                }
                sctx.context.get_or_init(|| self.context(sctx))
            }
            Root::Variable(name) => scope.get(name)?,
        };
        if p.is_definite() && !matches!(p.segments.last(), Some(Segment::Length)) {
            p.get(root).map(Cow::Borrowed)
        } else {
            p.select(root).map(Cow::Owned)
        }
    }

    fn eval_template(
        &mut self,
        t: &Template,
        input: &Value,
        sctx: &Sctx,
        scope: &Scope,
    ) -> Result<Value, Failure> {
        match t {
            Template::Const(v) => Ok(v.clone()),
            Template::Path(p, field) => match self.resolve_path(p, input, sctx, scope) {
                Some(v) => Ok(v),
                None => {
                    let shown = if p.root == Root::Context {
                        sctx.context.get_or_init(|| self.context(sctx)).clone()
                    } else {
                        input.clone()
                    };
                    Err(self.runtime(
                        sctx,
                        format_args!(
                            "The JSONPath '{}' specified for the field '{}' could not be found in the input '{}'",
                            p.text,
                            field,
                            compact(&shown)
                        ),
                    ))
                }
            },
            Template::Intrinsic(call, field) => {
                let mut env = PathEnv {
                    r: self,
                    input,
                    sctx,
                    scope,
                    field,
                };
                match intrinsic::eval(call, &mut env) {
                    Ok(v) => Ok(v),
                    Err(e) => Err(Failure::new(e.error, self.in_error(sctx, e.cause))),
                }
            }
            Template::Object(items) => {
                let mut m = Map::with_capacity(items.len());
                for (k, t) in items {
                    m.insert(k.clone(), self.eval_template(t, input, sctx, scope)?);
                }
                Ok(Value::Object(m))
            }
            Template::Array(items) => {
                let mut a = Vec::with_capacity(items.len());
                for t in items {
                    a.push(self.eval_template(t, input, sctx, scope)?);
                }
                Ok(Value::Array(a))
            }
        }
    }

    fn states_var(
        &self,
        input: &Value,
        result: Option<&Value>,
        error_output: Option<&Value>,
        sctx: &Sctx,
    ) -> Value {
        let mut m = Map::new();
        m.insert("input".into(), input.clone());
        if let Some(r) = result {
            m.insert("result".into(), r.clone());
        }
        if let Some(e) = error_output {
            m.insert("errorOutput".into(), e.clone());
        }
        if sctx.state.jsonata_context {
            m.insert(
                "context".into(),
                sctx.context.get_or_init(|| self.context(sctx)).clone(),
            );
        }
        Value::Object(m)
    }

    fn jsonata_env(&mut self, states: &Value, scope: &Scope, sctx: &Sctx) -> jsonata_bridge::Env {
        let seed = self.lane.rng.next_u64();
        let vars = |f: &mut dyn FnMut(&str, &Value)| scope.for_each(f);
        jsonata_bridge::Env::new(states, &vars, seed, sctx.entered.timestamp_millis())
    }

    fn eval_jexpr(
        &mut self,
        e: &JExpr,
        states: &Value,
        scope: &Scope,
        sctx: &Sctx,
        field: &str,
    ) -> Result<Value, Failure> {
        let env = self.jsonata_env(states, scope, sctx);
        self.eval_jexpr_in(e, &env, sctx, field)
    }

    fn eval_jexpr_in(
        &self,
        e: &JExpr,
        env: &jsonata_bridge::Env,
        sctx: &Sctx,
        field: &str,
    ) -> Result<Value, Failure> {
        match env.evaluate(&e.compiled) {
            Ok(Some(v)) => Ok(v),
            Ok(None) if env.yields_function(&e.compiled) => Err(self
                .qe(
                    sctx,
                    format_args!(
                        "The JSONata expression '{}' specified for the field '{}' returned an unsupported result type.",
                        e.text, field
                    ),
                )
                .at(field)),
            Ok(None) => Err(self
                .qe(
                    sctx,
                    format_args!(
                        "The JSONata expression '{}' specified for the field '{}' returned nothing (undefined).",
                        e.text, field
                    ),
                )
                .at(field)),
            Err(err) => {
                let msg = if err.code.is_empty() {
                    err.message
                } else {
                    format!("{}: {}", err.code, err.message)
                };
                Err(self
                    .qe(
                        sctx,
                        format_args!(
                            "The JSONata expression '{}' specified for the field '{}' threw an error during evaluation. {}",
                            e.text, field, msg
                        ),
                    )
                    .at(field))
            }
        }
    }

    /// Evaluates a JSONata template; the bindings are built once for all its expressions.
    fn eval_jtemplate(
        &mut self,
        t: &JTemplate,
        states: &Value,
        scope: &Scope,
        sctx: &Sctx,
        field: &str,
    ) -> Result<Value, Failure> {
        match t {
            JTemplate::Const(v) => Ok(v.clone()),
            _ => {
                let env = self.jsonata_env(states, scope, sctx);
                self.eval_jt(t, &env, sctx, field)
            }
        }
    }

    fn eval_jt(
        &self,
        t: &JTemplate,
        env: &jsonata_bridge::Env,
        sctx: &Sctx,
        field: &str,
    ) -> Result<Value, Failure> {
        match t {
            JTemplate::Const(v) => Ok(v.clone()),
            JTemplate::Expr(e) => self.eval_jexpr_in(e, env, sctx, field),
            JTemplate::Object(items) => {
                let mut m = Map::with_capacity(items.len());
                for (k, t) in items {
                    let f = format!("{field}/{k}");
                    m.insert(k.clone(), self.eval_jt(t, env, sctx, &f)?);
                }
                Ok(Value::Object(m))
            }
            JTemplate::Array(items) => {
                let mut a = Vec::with_capacity(items.len());
                for (i, t) in items.iter().enumerate() {
                    let f = format!("{field}[{i}]");
                    a.push(self.eval_jt(t, env, sctx, &f)?);
                }
                Ok(Value::Array(a))
            }
        }
    }

    fn apply_path_opt(
        &self,
        p: &PathOpt,
        v: Value,
        sctx: &Sctx,
        scope: &Scope,
    ) -> Result<Value, Failure> {
        match p {
            PathOpt::Whole => Ok(v),
            PathOpt::Discard => Ok(Value::Object(Map::new())),
            PathOpt::Path(path) => match self.resolve_path(path, &v, sctx, scope) {
                Some(x) => Ok(x),
                None => Err(self.runtime(
                    sctx,
                    format_args!("Invalid path '{}' : {}", path.text, path.miss_message(&v)),
                )),
            },
        }
    }

    /// `InputPath`/`OutputPath` applied to a borrowed value.
    fn select_path_opt(
        &self,
        p: &PathOpt,
        v: &Value,
        sctx: &Sctx,
        scope: &Scope,
    ) -> Result<Value, Failure> {
        match p {
            PathOpt::Whole => Ok(v.clone()),
            PathOpt::Discard => Ok(Value::Object(Map::new())),
            PathOpt::Path(path) => match self.resolve_path(path, v, sctx, scope) {
                Some(x) => Ok(x),
                None => Err(self.runtime(
                    sctx,
                    format_args!("Invalid path '{}' : {}", path.text, path.miss_message(v)),
                )),
            },
        }
    }

    fn apply_result_path(
        &self,
        rp: &ResultPath,
        raw_input: Value,
        result: Value,
        sctx: &Sctx,
    ) -> Result<Value, Failure> {
        match rp {
            ResultPath::Replace => Ok(result),
            ResultPath::Discard => Ok(raw_input),
            ResultPath::At(p) => {
                let mut target = raw_input;
                match set_reference(&mut target, &p.segments, result) {
                    Ok(()) => Ok(target),
                    Err(_) => Err(self.result_path_failure(sctx, p, &target)),
                }
            }
        }
    }

    /// Evaluates `Assign`; returns the assigned values.
    fn eval_assign(
        &mut self,
        a: &Assign,
        value_for_dollar: &Value,
        states: Option<&Value>,
        sctx: &Sctx,
        scope: &Scope,
    ) -> Result<Map<String, Value>, Failure> {
        let v = match a {
            Assign::Path(t) => self.eval_template(t, value_for_dollar, sctx, scope)?,
            Assign::Jsonata(t) => {
                let st = match states {
                    Some(s) => s.clone(),
                    None => self.states_var(value_for_dollar, None, None, sctx),
                };
                self.eval_jtemplate(t, &st, scope, sctx, "Assign")?
            }
        };
        match v {
            Value::Object(m) => Ok(m),
            _ => Ok(Map::new()),
        }
    }

    /// Waits until `until` (a Wait state or a retry interval).
    ///
    /// The due time is fixed when the wait is first reached: when the clock cannot wait now
    /// it is journaled as [`JournalEntry::WaitingUntil`], and a resumed execution waits for
    /// that same instant (not for a target recomputed at the resume time). A wait that ends
    /// past the execution's deadline is cut short by the timeout, at the deadline.
    fn wait_until(&mut self, until: DateTime<Utc>) -> Result<(), Stop> {
        let until = match self.jentry() {
            Some(JournalEntry::Waited) => {
                self.lane.jpos += 1;
                return Ok(());
            }
            Some(JournalEntry::WaitingUntil(t)) => *t,
            _ => {
                self.jwrite(JournalEntry::WaitingUntil(until));
                until
            }
        };
        if self.limit_hit {
            return Err(Stop::Fail(history_limit_failure()));
        }
        let (target, times_out) = match self.deadline {
            Some(d) if until > d => (d, true),
            _ => (until, false),
        };
        if target <= self.now() || self.clock.wait_until(target) {
            if times_out {
                return Err(Stop::TimedOut);
            }
            let pos = self.lane.jpos;
            self.lane.journal[pos] = JournalEntry::Waited;
            self.lane.jpos += 1;
            Ok(())
        } else {
            self.waits.push(Waiting::Timer { until: target });
            Err(Stop::Pause(Pause::Wait))
        }
    }

    fn run_machine(
        &mut self,
        m: &'a Machine,
        input: Value,
        scope: &mut Scope,
        prev: &mut u64,
        in_parallel: bool,
    ) -> Result<Value, Stop> {
        let mut input: Shared = Arc::new(input);
        let mut cur = m.start;
        loop {
            let st = &m.states[cur];
            self.transitions += 1;
            self.lane.transitions += 1;
            let is_new = match &self.legacy {
                Some(l) => self.transitions > l.transitions,
                None => self.lane.transitions > self.lane.replayed,
            };
            if is_new {
                if let Some(n) = self.checkpoint_every {
                    if self.new_transitions >= n {
                        self.transitions -= 1;
                        self.lane.transitions -= 1;
                        self.lane.paused_in = None;
                        return Err(Stop::Pause(Pause::Checkpoint));
                    }
                }
                self.new_transitions += 1;
            }
            if self.limit_hit {
                return Err(Stop::Fail(history_limit_failure()));
            }
            // Replayed transitions happened before the deadline was checked last time.
            if let Some(d) = self.deadline {
                if is_new && self.now() >= d {
                    return Err(Stop::TimedOut);
                }
            }
            let stype = state_type(&st.kind);
            let entered_prev = *prev;
            let entered_id = self.emit(
                prev,
                Details::StateEntered {
                    state_type: stype,
                    name: st.name.clone(),
                    input: if self.record {
                        input.clone()
                    } else {
                        self.null.clone()
                    },
                },
            );
            if self.limit_hit {
                return Err(Stop::Fail(history_limit_failure()));
            }
            let sctx = Sctx {
                state: st,
                entered_id,
                entered_prev,
                // The Entered event's time (kept on replay), so `$$.State.EnteredTime` and
                // JSONata's `$now()` are deterministic when an execution is resumed.
                entered: match (entered_id as usize)
                    .checked_sub(1)
                    .and_then(|i| self.history.get(i))
                {
                    Some(e) if self.record => e.timestamp,
                    _ => self.now(),
                },
                retry_count: 0,
                token: match &st.kind {
                    Kind::Task { resource, .. }
                        if resource.ends_with(".waitForTaskToken")
                            || resource.contains(".sync")
                            || resource.contains(":activity:") =>
                    {
                        Some(format!(
                            "{}{}",
                            self.lane.rng.uuid_v4().replace('-', ""),
                            self.lane.rng.uuid_v4().replace('-', "")
                        ))
                    }
                    _ => None,
                },
                map_item: None,
                context: OnceCell::new(),
            };
            let raw = if !st.catch.is_empty() {
                Some(input.clone())
            } else {
                None
            };
            let outcome = self.exec_state(st, input, &sctx, scope, prev);
            match outcome {
                Ok((output, next, assigned)) => {
                    if !matches!(st.kind, Kind::Fail { .. }) {
                        let record = self.record;
                        self.emit(
                            prev,
                            Details::StateExited {
                                state_type: stype,
                                name: st.name.clone(),
                                output: if record {
                                    output.clone()
                                } else {
                                    self.null.clone()
                                },
                                assigned: assigned.map(Box::new),
                            },
                        );
                    }
                    match next {
                        Some(n) => {
                            cur = n;
                            input = output;
                        }
                        None => return Ok(Arc::try_unwrap(output).unwrap_or_else(|a| (*a).clone())),
                    }
                }
                Err(Stop::Fail(mut f)) => {
                    if let Some(c) = st.catch.iter().find(|c| error_matches(&c.error_equals, &f)) {
                        let raw_in = match raw {
                            Some(r) => Arc::try_unwrap(r).unwrap_or_else(|a| (*a).clone()),
                            None => Value::Null,
                        };
                        let err_out = f.error_output();
                        let (output, assigned) = match st.ql {
                            QueryLanguage::JSONPath => {
                                let assigned = match &c.assign {
                                    Some(a) => {
                                        let vars =
                                            self.eval_assign(a, &err_out, None, &sctx, scope)?;
                                        Some(vars)
                                    }
                                    None => None,
                                };
                                let out =
                                    self.apply_result_path(&c.result_path, raw_in, err_out, &sctx)?;
                                (out, assigned)
                            }
                            QueryLanguage::JSONata => {
                                let states = self.states_var(&raw_in, None, Some(&err_out), &sctx);
                                let assigned = match &c.assign {
                                    Some(a) => Some(self.eval_assign(
                                        a,
                                        &raw_in,
                                        Some(&states),
                                        &sctx,
                                        scope,
                                    )?),
                                    None => None,
                                };
                                let out = match &c.output {
                                    Some(o) => {
                                        self.eval_jtemplate(o, &states, scope, &sctx, "Output")?
                                    }
                                    None => err_out,
                                };
                                (out, assigned)
                            }
                        };
                        let assigned_v = assigned.map(|vars| {
                            for (k, v) in &vars {
                                scope.vars.insert(k.clone(), v.clone());
                            }
                            Value::Object(vars)
                        });
                        let record = self.record;
                        self.emit(
                            prev,
                            Details::StateExited {
                                state_type: stype,
                                name: st.name.clone(),
                                output: if record {
                                    Arc::new(output.clone())
                                } else {
                                    self.null.clone()
                                },
                                assigned: assigned_v.map(Box::new),
                            },
                        );
                        cur = c.next;
                        input = Arc::new(output);
                        continue;
                    }
                    if in_parallel && stype == StateType::Task && f.name() != "States.Runtime" {
                        self.emit_side(*prev, Details::StateAborted { state_type: stype });
                    }
                    self.report_evaluation_failed(&mut f, &sctx, prev);
                    return Err(Stop::Fail(f));
                }
                Err(other) => {
                    if matches!(other, Stop::Pause(Pause::Wait)) {
                        self.lane.paused_in = Some(stype);
                    }
                    return Err(other);
                }
            }
        }
    }

    /// Runs one state. Returns (output, next, assigned variables for the history).
    fn exec_state(
        &mut self,
        st: &'a State,
        input: Shared,
        sctx: &Sctx,
        scope: &mut Scope,
        prev: &mut u64,
    ) -> Result<(Shared, Option<usize>, Option<Value>), Stop> {
        match st.ql {
            QueryLanguage::JSONPath => self.exec_jsonpath(st, input, sctx, scope, prev),
            QueryLanguage::JSONata => self.exec_jsonata(st, input, sctx, scope, prev),
        }
    }

    fn commit_assign(scope: &mut Scope, vars: Option<Map<String, Value>>) -> Option<Value> {
        vars.filter(|m| !m.is_empty()).map(|m| {
            for (k, v) in &m {
                scope.vars.insert(k.clone(), v.clone());
            }
            Value::Object(m)
        })
    }

    /// Applies `OutputPath` to the effective input (when `InputPath` made one) or the raw input.
    fn output_of(
        &self,
        st: &State,
        eff: Option<Value>,
        raw: Shared,
        sctx: &Sctx,
        scope: &Scope,
    ) -> Result<Shared, Failure> {
        match (&st.output_path, eff) {
            (PathOpt::Whole, None) => Ok(raw),
            (p, Some(v)) => Ok(Arc::new(self.apply_path_opt(p, v, sctx, scope)?)),
            (p, None) => {
                let v = self.select_path_opt(p, &raw, sctx, scope)?;
                Ok(Arc::new(v))
            }
        }
    }

    fn exec_jsonpath(
        &mut self,
        st: &'a State,
        raw: Shared,
        sctx: &Sctx,
        scope: &mut Scope,
        prev: &mut u64,
    ) -> Result<(Shared, Option<usize>, Option<Value>), Stop> {
        // Fail: paths apply to the raw input.
        if let Kind::Fail { error, cause } = &st.kind {
            let e = self.str_source(error.as_ref(), "ErrorPath", &raw, sctx, scope)?;
            let c = self.str_source(cause.as_ref(), "CausePath", &raw, sctx, scope)?;
            return Err(Stop::Fail(Failure {
                error: e,
                cause: c,
                reported: false,
                no_state_failed: false,
                location: None,
            }));
        }
        let eff = match &st.input_path {
            PathOpt::Whole => None,
            p => Some(self.select_path_opt(p, &raw, sctx, scope)?),
        };
        let eff_ref: &Value = eff.as_ref().unwrap_or(&raw);
        match &st.kind {
            Kind::Choice { choices, default } => {
                for c in choices {
                    if self.eval_rule(&c.rule, eff_ref, sctx, scope)? {
                        let assigned = match &c.assign {
                            Some(a) => Some(self.eval_assign(a, eff_ref, None, sctx, scope)?),
                            None => None,
                        };
                        let out = self.output_of(st, eff, raw, sctx, scope)?;
                        let assigned = Self::commit_assign(scope, assigned);
                        return Ok((out, Some(c.next), assigned));
                    }
                }
                match default {
                    Some(d) => {
                        let assigned = match &st.assign {
                            Some(a) => Some(self.eval_assign(a, eff_ref, None, sctx, scope)?),
                            None => None,
                        };
                        let out = self.output_of(st, eff, raw, sctx, scope)?;
                        let assigned = Self::commit_assign(scope, assigned);
                        Ok((out, Some(*d), assigned))
                    }
                    None => Err(Stop::Fail(Failure::new(
                        "States.NoChoiceMatched",
                        self.in_error(sctx, "No Choice Rule matched and no Default was specified."),
                    ))),
                }
            }
            Kind::Succeed => {
                let out = self.output_of(st, eff, raw, sctx, scope)?;
                Ok((out, None, None))
            }
            Kind::Wait(spec) => {
                let until = self.wait_target(spec, eff_ref, sctx, scope)?;
                let assigned = match &st.assign {
                    Some(a) => Some(self.eval_assign(a, eff_ref, None, sctx, scope)?),
                    None => None,
                };
                self.wait_until(until)?;
                let out = self.output_of(st, eff, raw, sctx, scope)?;
                let assigned = Self::commit_assign(scope, assigned);
                Ok((out, st.next, assigned))
            }
            _ => {
                // Pass, Task, Parallel, Map
                let params = match &st.parameters {
                    Some(t) => Some(self.eval_template(t, eff_ref, sctx, scope)?),
                    None => None,
                };
                // (A task's result is shared with the journal and the history.)
                let result: Shared = match &st.kind {
                    Kind::Pass { result } => Arc::new(match (result, params) {
                        (Some(r), _) => r.clone(),
                        (None, Some(p)) => p,
                        (None, None) => eff_ref.clone(),
                    }),
                    Kind::Task { .. } => {
                        let work_in = match (params, &eff) {
                            (Some(p), _) => Arc::new(p),
                            (None, Some(e)) => Arc::new(e.clone()),
                            (None, None) => raw.clone(),
                        };
                        self.exec_task(st, &work_in, eff_ref, sctx, scope, prev)?
                    }
                    Kind::Parallel { branches } => {
                        let work_in = params.as_ref().unwrap_or(eff_ref);
                        Arc::new(self.with_retry(st, sctx, prev, |r, prev| {
                            r.exec_parallel(st, branches, work_in, scope, prev)
                        })?)
                    }
                    Kind::Map(spec) => {
                        let items_src = eff_ref;
                        Arc::new(self.with_retry(st, sctx, prev, |r, prev| {
                            r.exec_map(st, spec, items_src, sctx, scope, prev)
                        })?)
                    }
                    _ => Arc::new(Value::Null),
                };
                let result = match &st.result_selector {
                    Some(t) => Arc::new(self.eval_template(t, &result, sctx, scope)?),
                    None => result,
                };
                let assigned = match &st.assign {
                    Some(a) => Some(self.eval_assign(a, &result, None, sctx, scope)?),
                    None => None,
                };
                drop(eff);
                let merged: Shared = match &st.result_path {
                    ResultPath::Replace => result,
                    ResultPath::Discard => raw,
                    rp => {
                        let result = Arc::try_unwrap(result).unwrap_or_else(|a| (*a).clone());
                        match Arc::try_unwrap(raw) {
                            Ok(owned) => Arc::new(self.apply_result_path(rp, owned, result, sctx)?),
                            // Shared with the history: copy only the path's spine, not the subtree
                            // the result replaces.
                            Err(shared) => match rp {
                                ResultPath::At(p) => {
                                    match crate::path::with_reference(&shared, &p.segments, result)
                                    {
                                        Ok(v) => Arc::new(v),
                                        Err(_) => {
                                            return Err(Stop::Fail(
                                                self.result_path_failure(sctx, p, &shared),
                                            ))
                                        }
                                    }
                                }
                                _ => Arc::new(self.apply_result_path(
                                    rp,
                                    (*shared).clone(),
                                    result,
                                    sctx,
                                )?),
                            },
                        }
                    }
                };
                let out = match &st.output_path {
                    PathOpt::Whole => merged,
                    p => Arc::new(self.select_path_opt(p, &merged, sctx, scope)?),
                };
                let assigned = Self::commit_assign(scope, assigned);
                Ok((out, st.next, assigned))
            }
        }
    }

    fn exec_jsonata(
        &mut self,
        st: &'a State,
        raw: Shared,
        sctx: &Sctx,
        scope: &mut Scope,
        prev: &mut u64,
    ) -> Result<(Shared, Option<usize>, Option<Value>), Stop> {
        let states_in = self.states_var(&raw, None, None, sctx);
        if let Kind::Fail { error, cause } = &st.kind {
            let e = self.str_source_j(error.as_ref(), &states_in, scope, sctx, "Error")?;
            let c = self.str_source_j(cause.as_ref(), &states_in, scope, sctx, "Cause")?;
            return Err(Stop::Fail(Failure {
                error: e,
                cause: c,
                reported: false,
                no_state_failed: false,
                location: None,
            }));
        }
        let (result, next): (Option<Value>, Option<usize>) = match &st.kind {
            Kind::Choice { choices, default } => {
                let mut chosen = None;
                for c in choices {
                    if let Rule::Condition(t) = &c.rule {
                        let v = self.eval_jtemplate(t, &states_in, scope, sctx, "Condition")?;
                        match v {
                            Value::Bool(true) => {
                                chosen = Some(c);
                                break;
                            }
                            Value::Bool(false) => {}
                            other => {
                                let text = match t {
                                    JTemplate::Expr(e) => e.text.clone(),
                                    _ => compact(&other),
                                };
                                return Err(Stop::Fail(self.qe(
                                    sctx,
                                    format_args!(
                                        "The JSONata expression '{}' specified for the field 'Condition' returned an unexpected result type. Expected 'boolean', but was '{}' for value: {}",
                                        text,
                                        intrinsic::type_name(&other),
                                        compact(&other)
                                    ),
                                ).at("Condition")));
                            }
                        }
                    }
                }
                match chosen {
                    Some(c) => {
                        let assigned = match &c.assign {
                            Some(a) => {
                                Some(self.eval_assign(a, &raw, Some(&states_in), sctx, scope)?)
                            }
                            None => None,
                        };
                        let out = match &c.output {
                            Some(o) => {
                                Arc::new(self.eval_jtemplate(o, &states_in, scope, sctx, "Output")?)
                            }
                            None => raw,
                        };
                        let assigned = Self::commit_assign(scope, assigned);
                        return Ok((out, Some(c.next), assigned));
                    }
                    None => match default {
                        Some(d) => (None, Some(*d)),
                        None => {
                            return Err(Stop::Fail(Failure::new(
                                "States.NoChoiceMatched",
                                self.in_error(
                                    sctx,
                                    "No Choice Rule matched and no Default was specified.",
                                ),
                            )))
                        }
                    },
                }
            }
            Kind::Pass { .. } | Kind::Succeed => (None, st.next),
            Kind::Wait(spec) => {
                let until = self.wait_target_j(spec, &states_in, scope, sctx)?;
                self.wait_until(until)?;
                (None, st.next)
            }
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_) => {
                let args = match &st.arguments {
                    Some(t) => self.eval_jtemplate(t, &states_in, scope, sctx, "Arguments")?,
                    None => (*raw).clone(),
                };
                let r = match &st.kind {
                    Kind::Task { .. } => {
                        let r = self.exec_task(st, &Arc::new(args), &raw, sctx, scope, prev)?;
                        Arc::try_unwrap(r).unwrap_or_else(|a| (*a).clone())
                    }
                    Kind::Parallel { branches } => self.with_retry(st, sctx, prev, |r, prev| {
                        r.exec_parallel(st, branches, &args, scope, prev)
                    })?,
                    Kind::Map(spec) => {
                        let states_ref = &states_in;
                        self.with_retry(st, sctx, prev, |r, prev| {
                            r.exec_map_j(st, spec, states_ref, sctx, scope, prev)
                        })?
                    }
                    _ => Value::Null,
                };
                (Some(r), st.next)
            }
            Kind::Fail { .. } => (None, None),
        };
        let states = match &result {
            Some(r) => {
                let mut s = states_in;
                if let Some(o) = s.as_object_mut() {
                    o.insert("result".into(), r.clone());
                }
                s
            }
            None => states_in,
        };
        let assigned = match &st.assign {
            Some(a) => Some(self.eval_assign(a, &raw, Some(&states), sctx, scope)?),
            None => None,
        };
        let out = match (&st.output, result) {
            (Some(o), _) => Arc::new(self.eval_jtemplate(o, &states, scope, sctx, "Output")?),
            (None, Some(r)) => Arc::new(r),
            (None, None) => raw,
        };
        let assigned = Self::commit_assign(scope, assigned);
        Ok((out, next, assigned))
    }

    fn str_source(
        &mut self,
        s: Option<&StrSource>,
        field: &str,
        input: &Value,
        sctx: &Sctx,
        scope: &Scope,
    ) -> Result<Option<String>, Failure> {
        let v = match s {
            None => return Ok(None),
            Some(StrSource::Lit(x)) => return Ok(Some(x.clone())),
            Some(StrSource::Expr(_)) => return Ok(None),
            Some(StrSource::Path(p)) => match self.resolve_path(p, input, sctx, scope) {
                Some(v) => v,
                None => {
                    return Err(self.runtime(
                        sctx,
                        format_args!(
                            "The JSONPath '{}' specified for the field '{}' could not be found in the input '{}'",
                            p.text,
                            field,
                            compact(input)
                        ),
                    ))
                }
            },
            Some(StrSource::Intrinsic(c)) => {
                let mut env = PathEnv {
                    r: self,
                    input,
                    sctx,
                    scope,
                    field,
                };
                intrinsic::eval(c, &mut env)
                    .map_err(|e| Failure::new(e.error, self.in_error(sctx, e.cause)))?
            }
        };
        match v {
            Value::String(s) => Ok(Some(s)),
            other => Err(self.runtime(
                sctx,
                format_args!(
                    "The {} field must be a string but was: {}",
                    field,
                    compact(&other)
                ),
            )),
        }
    }

    fn str_source_j(
        &mut self,
        s: Option<&StrSource>,
        states: &Value,
        scope: &Scope,
        sctx: &Sctx,
        field: &str,
    ) -> Result<Option<String>, Failure> {
        match s {
            None => Ok(None),
            Some(StrSource::Lit(x)) => Ok(Some(x.clone())),
            Some(StrSource::Expr(e)) => {
                let v = self.eval_jexpr(e, states, scope, sctx, field)?;
                match v {
                    Value::String(s) => Ok(Some(s)),
                    other => Err(self.qe(
                        sctx,
                        format_args!(
                            "The JSONata expression '{}' specified for the field '{}' returned an unexpected result type. Expected 'string', but was '{}' for value: {}",
                            e.text,
                            field,
                            intrinsic::type_name(&other),
                            compact(&other)
                        ),
                    ).at(field)),
                }
            }
            Some(_) => Ok(None),
        }
    }

    fn wait_target(
        &mut self,
        spec: &WaitSpec,
        input: &Value,
        sctx: &Sctx,
        scope: &Scope,
    ) -> Result<DateTime<Utc>, Failure> {
        // Relative to when the state was entered (kept on replay).
        let now = sctx.entered;
        match spec {
            WaitSpec::Seconds(NumSource::Lit(s)) => Ok(now + secs(*s)),
            WaitSpec::Seconds(NumSource::Path(p)) => {
                let v = self.resolve_path(p, input, sctx, scope).ok_or_else(|| {
                    self.runtime(
                        sctx,
                        format_args!(
                            "The SecondsPath parameter does not reference an input value: {}",
                            p.text
                        ),
                    )
                })?;
                let n = v.as_i64().filter(|_| v.is_i64() || v.is_u64());
                match n {
                    Some(n) if n >= 0 => Ok(now + chrono::Duration::seconds(n)),
                    Some(_) => Err(self.runtime(
                        sctx,
                        format_args!(
                            "The SecondsPath parameter references a negative value: {} == {}",
                            p.text,
                            compact(&v)
                        ),
                    )),
                    None => Err(self.runtime(
                        sctx,
                        format_args!(
                            "The SecondsPath parameter cannot be parsed as a long value: {} == {}",
                            p.text,
                            compact(&v)
                        ),
                    )),
                }
            }
            WaitSpec::Timestamp(TsSource::Lit(s)) => parse_timestamp(s)
                .ok_or_else(|| self.runtime(sctx, format_args!("Invalid timestamp {s}"))),
            WaitSpec::Timestamp(TsSource::Path(p)) => {
                let v = self.resolve_path(p, input, sctx, scope).ok_or_else(|| {
                    self.runtime(
                        sctx,
                        format_args!(
                            "The TimestampPath parameter does not reference an input value: {}",
                            p.text
                        ),
                    )
                })?;
                let text = match &v {
                    Value::String(s) => s.clone(),
                    other => compact(other),
                };
                v.as_str().and_then(parse_timestamp).ok_or_else(|| {
                    self.runtime(
                        sctx,
                        format_args!(
                            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {}",
                            p.text, text
                        ),
                    )
                })
            }
            WaitSpec::Seconds(NumSource::Expr(_)) | WaitSpec::Timestamp(TsSource::Expr(_)) => {
                Err(self.runtime(sctx, "JSONata fields are not allowed in a JSONPath state"))
            }
        }
    }

    fn wait_target_j(
        &mut self,
        spec: &WaitSpec,
        states: &Value,
        scope: &Scope,
        sctx: &Sctx,
    ) -> Result<DateTime<Utc>, Failure> {
        // Relative to when the state was entered (kept on replay).
        let now = sctx.entered;
        match spec {
            WaitSpec::Seconds(NumSource::Lit(s)) => Ok(now + secs(*s)),
            WaitSpec::Seconds(NumSource::Expr(e)) => {
                let v = self.eval_jexpr(e, states, scope, sctx, "Seconds")?;
                match v.as_f64() {
                    Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(now + secs(n)),
                    _ => Err(self.qe(
                        sctx,
                        format_args!(
                            "The JSONata expression '{}' specified for the field 'Seconds' returned an unexpected result type. Expected 'integer', but was '{}' for value: {}",
                            e.text,
                            intrinsic::type_name(&v),
                            compact(&v)
                        ),
                    ).at("Seconds")),
                }
            }
            WaitSpec::Timestamp(TsSource::Lit(s)) => parse_timestamp(s)
                .ok_or_else(|| self.qe(sctx, format_args!("Invalid timestamp {s}"))),
            WaitSpec::Timestamp(TsSource::Expr(e)) => {
                let v = self.eval_jexpr(e, states, scope, sctx, "Timestamp")?;
                let text = match &v {
                    Value::String(s) => s.clone(),
                    other => compact(other),
                };
                v.as_str().and_then(parse_timestamp).ok_or_else(|| {
                    self.qe(
                        sctx,
                        format_args!(
                            "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {text}"
                        ),
                    ).at("Timestamp")
                })
            }
            _ => Err(self.qe(sctx, "JSONPath fields are not allowed in a JSONata state")),
        }
    }

    fn num(
        &mut self,
        n: &NumSource,
        input: &Value,
        sctx: &Sctx,
        scope: &Scope,
        field: &str,
    ) -> Result<Value, Failure> {
        match n {
            NumSource::Lit(x) => Ok(num_value(*x)),
            NumSource::Path(p) => self.resolve_path(p, input, sctx, scope).ok_or_else(|| {
                self.runtime(
                    sctx,
                    format_args!(
                        "Invalid path '{}' : No results for path: {}",
                        p.text,
                        p.normalized()
                    ),
                )
            }),
            NumSource::Expr(e) => {
                let states = self.states_var(input, None, None, sctx);
                self.eval_jexpr(e, &states, scope, sctx, field)
            }
        }
    }

    /// Retries a whole Parallel/Map state per its `Retry` list.
    fn with_retry(
        &mut self,
        st: &'a State,
        sctx: &Sctx,
        prev: &mut u64,
        mut f: impl FnMut(&mut Self, &mut u64) -> Result<Value, Stop>,
    ) -> Result<Value, Stop> {
        let mut counts = vec![0u32; st.retry.len()];
        loop {
            match f(self, prev) {
                Err(Stop::Fail(mut fl)) => {
                    if !self.should_retry(st, &fl, &mut counts)? {
                        self.report_evaluation_failed(&mut fl, sctx, prev);
                        if !fl.no_state_failed {
                            let event_type = match st.kind {
                                Kind::Map(_) => "MapStateFailed",
                                _ => "ParallelStateFailed",
                            };
                            self.emit(
                                prev,
                                Details::Plain {
                                    event_type: event_type.into(),
                                },
                            );
                        }
                        return Err(Stop::Fail(fl));
                    }
                }
                other => return other,
            }
        }
    }

    /// Decides about a retry, waiting the interval when one is due.
    fn should_retry(&mut self, st: &State, f: &Failure, counts: &mut [u32]) -> Result<bool, Stop> {
        let Some(i) = st
            .retry
            .iter()
            .position(|r| error_matches(&r.error_equals, f))
        else {
            return Ok(false);
        };
        let r = &st.retry[i];
        if counts[i] >= r.max_attempts {
            return Ok(false);
        }
        let mut delay = r.interval_seconds * r.backoff_rate.powi(counts[i] as i32);
        if let Some(m) = r.max_delay_seconds {
            delay = delay.min(m);
        }
        if r.jitter == Jitter::Full {
            let frac = (self.lane.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            delay *= frac;
        }
        counts[i] += 1;
        let until = self.clock.now() + secs(delay);
        self.wait_until(until)?;
        Ok(true)
    }

    /// The task's outcome: replayed from the journal, or from the handler (journaled).
    /// `Err` carries the wait of a task that is still pending from an earlier run.
    fn next_task_outcome(&mut self, req: &TaskRequest<'_>) -> Result<Outcome, Box<Waiting>> {
        match self.jentry() {
            Some(JournalEntry::TaskSucceeded(v)) => {
                let v = v.clone();
                self.lane.jpos += 1;
                return Ok(Outcome::Succeeded(v));
            }
            Some(JournalEntry::TaskFailed { error, cause }) => {
                let out = Outcome::Failed {
                    error: error.clone(),
                    cause: cause.clone(),
                };
                self.lane.jpos += 1;
                return Ok(out);
            }
            Some(JournalEntry::TaskPending(w)) => return Err(Box::new(w.clone())),
            _ => {}
        }
        if self.limit_hit {
            return Ok(Outcome::Failed {
                error: "States.Runtime".into(),
                cause: history_limit_failure().cause,
            });
        }
        let out = match self.tasks.invoke(req) {
            TaskOutcome::Succeeded(v) => Outcome::Succeeded(Arc::new(v)),
            TaskOutcome::Failed { error, cause } => Outcome::Failed { error, cause },
            TaskOutcome::Pending { submitted } => Outcome::Pending { submitted },
        };
        match &out {
            Outcome::Succeeded(v) => {
                self.jwrite(JournalEntry::TaskSucceeded(v.clone()));
                self.lane.jpos += 1;
            }
            Outcome::Failed { error, cause } => {
                self.jwrite(JournalEntry::TaskFailed {
                    error: error.clone(),
                    cause: cause.clone(),
                });
                self.lane.jpos += 1;
            }
            Outcome::Pending { .. } => {}
        }
        Ok(out)
    }

    fn exec_task(
        &mut self,
        st: &'a State,
        params: &Shared,
        path_input: &Value,
        sctx: &Sctx,
        scope: &Scope,
        prev: &mut u64,
    ) -> Result<Shared, Stop> {
        let info = self.info;
        let Kind::Task {
            resource,
            timeout,
            heartbeat,
        } = &st.kind
        else {
            return Ok(Arc::new(Value::Null));
        };
        let timeout_s = match timeout {
            Some(n) => Some(self.positive_int(n, path_input, sctx, scope, "TimeoutSeconds")?),
            None => None,
        };
        let heartbeat_s = match heartbeat {
            Some(n) => Some(self.positive_int(n, path_input, sctx, scope, "HeartbeatSeconds")?),
            None => None,
        };
        if let Some(problem) = parameter_problem(resource, params) {
            return Err(Stop::Fail(self.runtime(
                sctx,
                format_args!(
                    "The Parameters '{}' could not be used to start the Task: [{problem}]",
                    compact(params)
                ),
            )));
        }
        let lambda = is_lambda_arn(resource);
        let activity = !lambda && resource.contains(":activity:");
        let (rtype, rname) = classify(resource);
        let callback = resource.ends_with(".waitForTaskToken");
        let sync = resource.contains(".sync");
        let mut counts = vec![0u32; st.retry.len()];
        let mut attempt = 0u32;
        loop {
            let token = sctx.token.clone();
            let params_now: &Shared = params;
            if lambda {
                self.emit_lazy(prev, || {
                    Details::LambdaFunctionScheduled(Box::new(LambdaScheduled {
                        resource: resource.to_string(),
                        input: (**params_now).clone(),
                        timeout_in_seconds: timeout_s,
                    }))
                });
                self.emit_lazy(prev, || Details::LambdaFunctionStarted);
            } else if activity {
                self.emit_lazy(prev, || {
                    Details::ActivityScheduled(Box::new(ActivityScheduledDetails {
                        resource: resource.to_string(),
                        input: (**params_now).clone(),
                        timeout_in_seconds: timeout_s,
                        heartbeat_in_seconds: heartbeat_s,
                    }))
                });
            } else {
                self.emit_lazy(prev, || {
                    Details::TaskScheduled(Box::new(TaskScheduledDetails {
                        resource_type: rtype.clone(),
                        resource: rname.clone(),
                        region: info.region.clone(),
                        parameters: params_now.clone(),
                        timeout_in_seconds: timeout_s,
                        heartbeat_in_seconds: heartbeat_s,
                    }))
                });
                self.emit_lazy(prev, || {
                    Details::TaskStarted(Box::new(TaskResource {
                        resource_type: rtype.clone(),
                        resource: rname.clone(),
                    }))
                });
            }
            let req = TaskRequest {
                state_name: &st.name,
                resource,
                parameters: params_now.as_ref(),
                task_token: token.as_deref(),
                attempt,
                timeout_seconds: timeout_s,
                heartbeat_seconds: heartbeat_s,
            };
            let (outcome, still) = match self.next_task_outcome(&req) {
                Ok(o) => (o, None),
                Err(w) => (
                    Outcome::Pending {
                        submitted: Value::Object(Map::new()),
                    },
                    Some(w),
                ),
            };
            if activity && !matches!(outcome, Outcome::Pending { .. }) {
                // a worker picked the task up and reported back
                self.emit_lazy(prev, || Details::ActivityStarted);
            }
            if (callback || sync) && !lambda && !activity {
                let submitted = Arc::new(match &outcome {
                    Outcome::Pending { submitted } => submitted.clone(),
                    _ => Value::Object(Map::new()),
                });
                self.emit_lazy(prev, || {
                    Details::TaskSubmitted(Box::new(TaskOutput {
                        resource_type: rtype.clone(),
                        resource: rname.clone(),
                        output: submitted,
                    }))
                });
            }
            let failure = match outcome {
                Outcome::Pending { .. } => {
                    let w = match still {
                        Some(w) => *w,
                        None => {
                            let now = self.clock.now();
                            let w = Waiting::Task {
                                token: token.unwrap_or_default(),
                                state: st.name.to_string(),
                                resource: resource.to_string(),
                                since: now,
                                timeout_seconds: timeout_s,
                                heartbeat_seconds: heartbeat_s,
                                last_heartbeat: now,
                            };
                            self.jwrite(JournalEntry::TaskPending(w.clone()));
                            w
                        }
                    };
                    self.waits.push(w);
                    return Err(Stop::Pause(Pause::Wait));
                }
                Outcome::Succeeded(v) => {
                    if payload_too_large(&v) {
                        let who = if lambda || activity {
                            resource.to_string()
                        } else {
                            rtype.clone()
                        };
                        Failure::new(
                            "States.DataLimitExceeded",
                            format!(
                                "The state/task '{who}' returned a result with a size exceeding the maximum number of bytes service limit."
                            ),
                        )
                    } else {
                        if lambda {
                            self.emit_lazy(prev, || Details::LambdaFunctionSucceeded {
                                output: Box::new((*v).clone()),
                            });
                        } else if activity {
                            self.emit_lazy(prev, || Details::ActivitySucceeded {
                                output: Box::new((*v).clone()),
                            });
                        } else {
                            self.emit_lazy(prev, || {
                                Details::TaskSucceeded(Box::new(TaskOutput {
                                    resource_type: rtype.clone(),
                                    resource: rname.clone(),
                                    output: v.clone(),
                                }))
                            });
                        }
                        return Ok(v);
                    }
                }
                Outcome::Failed { error, cause } => Failure {
                    error: if error.is_empty() { None } else { Some(error) },
                    cause,
                    reported: false,
                    no_state_failed: false,
                    location: None,
                },
            };
            let timed_out = matches!(failure.name(), "States.Timeout" | "States.HeartbeatTimeout");
            let emit_fail = failure.name() != "States.DataLimitExceeded";
            if activity {
                self.emit_lazy(prev, || {
                    Details::ActivityFailed(Box::new(LambdaFailure {
                        event_type: if timed_out && emit_fail {
                            "ActivityTimedOut".into()
                        } else {
                            "ActivityFailed".into()
                        },
                        error: failure.error.clone(),
                        cause: failure.cause.clone(),
                    }))
                });
            } else if emit_fail {
                if lambda {
                    self.emit_lazy(prev, || {
                        Details::LambdaFunctionFailed(Box::new(LambdaFailure {
                            event_type: if timed_out {
                                "LambdaFunctionTimedOut".into()
                            } else {
                                "LambdaFunctionFailed".into()
                            },
                            error: failure.error.clone(),
                            cause: failure.cause.clone(),
                        }))
                    });
                } else {
                    self.emit_lazy(prev, || {
                        Details::TaskFailed(Box::new(TaskFailure {
                            event_type: if timed_out {
                                "TaskTimedOut".into()
                            } else {
                                "TaskFailed".into()
                            },
                            resource_type: rtype.clone(),
                            resource: rname.clone(),
                            error: failure.error.clone(),
                            cause: failure.cause.clone(),
                        }))
                    });
                }
            } else if lambda {
                self.emit_lazy(prev, || {
                    Details::LambdaFunctionFailed(Box::new(LambdaFailure {
                        event_type: "LambdaFunctionFailed".into(),
                        error: failure.error.clone(),
                        cause: failure.cause.clone(),
                    }))
                });
            } else {
                self.emit_lazy(prev, || {
                    Details::TaskFailed(Box::new(TaskFailure {
                        event_type: "TaskFailed".into(),
                        resource_type: rtype.clone(),
                        resource: rname.clone(),
                        error: failure.error.clone(),
                        cause: failure.cause.clone(),
                    }))
                });
            }
            if !self.should_retry(st, &failure, &mut counts)? {
                return Err(Stop::Fail(failure));
            }
            attempt += 1;
        }
    }

    fn positive_int(
        &mut self,
        n: &NumSource,
        input: &Value,
        sctx: &Sctx,
        scope: &Scope,
        field: &str,
    ) -> Result<u64, Failure> {
        let v = self.num(n, input, sctx, scope, field)?;
        match v.as_f64() {
            Some(x) if x > 0.0 => Ok(x as u64),
            _ => Err(self.runtime(
                sctx,
                format_args!(
                    "The value of the field '{field}' must be a positive integer: {}",
                    compact(&v)
                ),
            )),
        }
    }

    fn exec_parallel(
        &mut self,
        _st: &'a State,
        branches: &'a [Machine],
        input: &Value,
        scope: &mut Scope,
        prev: &mut u64,
    ) -> Result<Value, Stop> {
        self.emit(
            prev,
            Details::Plain {
                event_type: "ParallelStateStarted".into(),
            },
        );
        let seq = self.lane.spawn;
        self.lane.spawn += 1;
        if let Some((r, p, _, _)) = self.replay_joined() {
            *prev = p;
            return r;
        }
        let mut end = 0u64;
        let mut whole = false;
        let mut run = |r: &mut Self, i: usize, child: &mut Scope, bprev: &mut u64| {
            Ok(r.run_machine(&branches[i], input.clone(), child, bprev, true))
        };
        let res = self.run_lanes(
            seq,
            branches.len(),
            0,
            None,
            (0.0, 0.0),
            scope,
            prev,
            &mut end,
            &mut whole,
            &mut run,
        );
        // Step Functions records no ParallelStateSucceeded event.
        self.settle(seq, res.map(Value::Array), *prev, end, whole)
    }

    /// A journaled result of the current Parallel/Map state's branches or iterations:
    /// (result, event the state's next event follows, last iteration end event).
    #[allow(clippy::type_complexity)]
    fn replay_joined(&mut self) -> Option<(Result<Value, Stop>, u64, u64, bool)> {
        // (States saved before lanes existed hold no Joined entries.)
        let (r, p, e, w) = match self.lane.journal.get(self.lane.jpos)? {
            JournalEntry::Joined {
                output,
                failure,
                prev,
                end,
                whole,
            } => {
                let r = match (output, failure) {
                    (_, Some(f)) => Err(Stop::Fail(Failure::from_record(f))),
                    (Some(v), None) => Ok(v.clone()),
                    (None, None) => Ok(Value::Array(Vec::new())),
                };
                (r, *prev, *end, *whole)
            }
            _ => return None,
        };
        self.lane.jpos += 1;
        Some((r, p, e, w))
    }

    /// Journals the end of a Parallel/Map state's branches or iterations, or lets a pause
    /// through (their records were kept by `run_lanes`).
    fn settle(
        &mut self,
        seq: u32,
        res: Result<Value, Stop>,
        prev: u64,
        end: u64,
        whole: bool,
    ) -> Result<Value, Stop> {
        let (output, failure) = match &res {
            Ok(v) => (Some(v.clone()), None),
            Err(Stop::Fail(f)) => (None, Some(f.to_record())),
            Err(_) => return res,
        };
        if !self.lane.fresh {
            let prefix = self.child_prefix(seq);
            self.drop_records(&prefix);
        }
        self.jwrite(JournalEntry::Joined {
            output,
            failure,
            prev,
            end,
            whole,
        });
        self.lane.jpos += 1;
        res
    }

    /// Key prefix of the branches/iterations of the current lane's `seq`-th Parallel/Map.
    fn child_prefix(&self, seq: u32) -> String {
        let mut k = String::new();
        for (s, i) in &self.path {
            k.push_str(&format!("/{s}.{i}"));
        }
        k.push_str(&format!("/{seq}."));
        k
    }

    fn has_records(&self, prefix: &str) -> bool {
        self.lanes
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .is_some_and(|(k, _)| k.starts_with(prefix))
    }

    fn drop_records(&mut self, prefix: &str) {
        let keys: Vec<String> = self
            .lanes
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.lanes.remove(&k);
        }
    }

    /// Runs the branches of a Parallel state or the iterations of a Map state, each in its
    /// own lane. A lane that pauses (task token, timer) lets the next one run; the state
    /// pauses when every unfinished lane is paused. At most `max_conc` (0: any number) lanes
    /// are unfinished at a time; lanes start in index order. `prev` is the state's last
    /// event on entry; on exit the event its next event follows.
    #[allow(clippy::too_many_arguments)]
    fn run_lanes<F>(
        &mut self,
        seq: u32,
        n: usize,
        max_conc: usize,
        map: Option<(&Arc<str>, bool)>,
        tolerance: (f64, f64),
        scope: &Scope,
        prev: &mut u64,
        last_end: &mut u64,
        whole: &mut bool,
        run: &mut F,
    ) -> Result<Vec<Value>, Stop>
    where
        F: FnMut(
            &mut Runner<'a>,
            usize,
            &mut Scope,
            &mut u64,
        ) -> Result<Result<Value, Stop>, Failure>,
    {
        let waits_mark = self.waits.len();
        let prefix = if self.lane.fresh {
            None
        } else {
            let p = self.child_prefix(seq);
            self.has_records(&p).then_some(p)
        };
        let distributed = map.is_some_and(|m| m.1);
        let iteration = |event_type: &str, i: usize| {
            map.map(|(name, _)| {
                Details::MapIteration(Box::new(MapIterationDetails {
                    event_type: event_type.into(),
                    name: name.clone(),
                    index: i,
                }))
            })
        };
        let start = *prev;
        // Event linkage as Step Functions records it: each iteration starts after the last
        // event of the previous one; the iteration end events do not extend the chain.
        let mut chain = *prev;
        let mut results: Vec<Value> = Vec::with_capacity(n);
        let mut stats: Vec<LaneStat> = Vec::with_capacity(n);
        let mut paused: Vec<(usize, LaneState)> = Vec::new();
        let mut failures = 0usize;
        let record_outer = self.record;
        let mut stop: Option<Stop> = None;
        for i in 0..n {
            let rec = match &prefix {
                Some(p) => self.lanes.remove(&format!("{p}{i}")),
                None => None,
            };
            if let Some(LaneState { done: Some(d), .. }) = &rec {
                // Finished in an earlier run.
                if map.is_some() && !distributed {
                    chain = d.last;
                }
                *last_end = (*last_end).max(d.end);
                match &d.output {
                    Some(v) => {
                        results.push(v.clone());
                        stats.push(LaneStat::Succeeded {
                            last: d.last,
                            end: d.end,
                        });
                    }
                    None => {
                        failures += 1;
                        results.push(
                            Failure {
                                error: d.error.clone(),
                                cause: d.cause.clone(),
                                reported: false,
                                no_state_failed: false,
                                location: None,
                            }
                            .error_output(),
                        );
                        stats.push(LaneStat::Failed {
                            error: d.error.clone(),
                            cause: d.cause.clone(),
                            last: d.last,
                            end: d.end,
                        });
                    }
                }
                continue;
            }
            if rec.is_none() && max_conc > 0 && paused.len() >= max_conc {
                break;
            }
            let seed = child_seed(self.lane.seed, seq, i);
            let child_ctx = match rec {
                Some(r) => LaneCtx::resume(seed, r, false),
                None => LaneCtx::fresh(seed),
            };
            let outer = std::mem::replace(&mut self.lane, child_ctx);
            self.path.push((seq, i));
            let mut child = Scope::child(scope);
            let outer_events = self.events;
            let mut iprev = if map.is_some() { chain } else { start };
            if distributed {
                self.record = false;
                self.events = self.lane.existing as usize;
            } else if let Some(d) = iteration("MapIterationStarted", i) {
                iprev = self.emit_side(chain, d);
            }
            let r = run(self, i, &mut child, &mut iprev);
            self.record = record_outer;
            if distributed {
                self.events = outer_events;
            }
            let r = match r {
                Ok(r) => r,
                Err(fail) => {
                    self.path.pop();
                    self.lane = outer;
                    results.push(Value::Null);
                    stats.push(LaneStat::NotStarted);
                    *whole = true;
                    stop = Some(Stop::Fail(fail));
                    break;
                }
            };
            let mut end = 0;
            match &r {
                Ok(_) => {
                    if let Some(d) = iteration("MapIterationSucceeded", i).filter(|_| !distributed)
                    {
                        end = self.emit_side(iprev, d);
                    }
                }
                Err(Stop::Fail(_)) => {
                    if let Some(d) = iteration("MapIterationFailed", i).filter(|_| !distributed) {
                        end = self.emit_side(iprev, d);
                    }
                }
                _ => {}
            }
            self.path.pop();
            let ctx = std::mem::replace(&mut self.lane, outer);
            if map.is_some() && !distributed {
                chain = iprev;
            }
            *last_end = (*last_end).max(end);
            match r {
                Ok(v) => {
                    results.push(v);
                    stats.push(LaneStat::Succeeded { last: iprev, end });
                }
                Err(Stop::Fail(f)) => {
                    if map.is_none() {
                        *prev = iprev;
                        results.push(Value::Null);
                        stats.push(LaneStat::NotStarted);
                        stop = Some(Stop::Fail(f));
                        break;
                    }
                    failures += 1;
                    let (tolerated_count, tolerated_pct) = tolerance;
                    let pct_ok = n > 0
                        && (failures as f64) * 100.0 / (n as f64) <= tolerated_pct
                        && tolerated_pct > 0.0;
                    let count_ok = (failures as f64) <= tolerated_count;
                    if !(pct_ok || count_ok) {
                        let fl = if tolerated_count > 0.0 || tolerated_pct > 0.0 {
                            Failure::new(
                                "States.ExceedToleratedFailureThreshold",
                                "The specified tolerated failure threshold was exceeded",
                            )
                        } else {
                            f
                        };
                        *prev = chain;
                        results.push(Value::Null);
                        stats.push(LaneStat::NotStarted);
                        stop = Some(Stop::Fail(fl));
                        break;
                    }
                    results.push(f.error_output());
                    stats.push(LaneStat::Failed {
                        error: f.error,
                        cause: f.cause,
                        last: iprev,
                        end,
                    });
                }
                Err(Stop::Pause(kind)) => {
                    results.push(Value::Null);
                    stats.push(LaneStat::Paused);
                    paused.push((i, ctx.into_record(None)));
                    if kind == Pause::Checkpoint {
                        stop = Some(Stop::Pause(kind));
                        break;
                    }
                }
                Err(Stop::TimedOut) => return Err(Stop::TimedOut),
            }
        }
        match stop {
            Some(Stop::Fail(f)) => {
                self.abort_lanes(seq, map, paused);
                // Their task tokens and timers are no longer outstanding.
                self.waits.truncate(waits_mark);
                return Err(Stop::Fail(f));
            }
            Some(other) => {
                self.keep_lanes(seq, &stats, results, paused);
                return Err(other);
            }
            None => {}
        }
        if !paused.is_empty() {
            self.keep_lanes(seq, &stats, results, paused);
            return Err(Stop::Pause(Pause::Wait));
        }
        if map.is_some() {
            *prev = chain;
        }
        Ok(results)
    }

    /// Keeps the records of the current state's lanes while it is paused.
    fn keep_lanes(
        &mut self,
        seq: u32,
        stats: &[LaneStat],
        results: Vec<Value>,
        paused: Vec<(usize, LaneState)>,
    ) {
        let prefix = self.child_prefix(seq);
        for (i, (st, out)) in stats.iter().zip(results).enumerate() {
            let done = match st {
                LaneStat::Succeeded { last, end } => LaneDone {
                    output: Some(out),
                    error: None,
                    cause: None,
                    last: *last,
                    end: *end,
                },
                LaneStat::Failed {
                    error,
                    cause,
                    last,
                    end,
                } => LaneDone {
                    output: None,
                    error: error.clone(),
                    cause: cause.clone(),
                    last: *last,
                    end: *end,
                },
                LaneStat::NotStarted | LaneStat::Paused => continue,
            };
            self.lanes.insert(
                format!("{prefix}{i}"),
                LaneState {
                    done: Some(done),
                    ..LaneState::default()
                },
            );
        }
        for (i, rec) in paused {
            self.lanes.insert(format!("{prefix}{i}"), rec);
        }
        self.lane.fresh = false;
    }

    /// The current state failed while some of its branches/iterations were paused: they
    /// are aborted (`<Type>StateAborted`, `MapIterationAborted`) and their waits dropped.
    fn abort_lanes(
        &mut self,
        seq: u32,
        map: Option<(&Arc<str>, bool)>,
        mut paused: Vec<(usize, LaneState)>,
    ) {
        let prefix = self.child_prefix(seq);
        if !self.lane.fresh {
            for (k, rec) in self
                .lanes
                .range::<str, _>((
                    std::ops::Bound::Included(prefix.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(&prefix))
            {
                if rec.done.is_some() {
                    continue;
                }
                if let Ok(i) = k[prefix.len()..].parse::<usize>() {
                    paused.push((i, rec.clone()));
                }
            }
            self.drop_records(&prefix);
        }
        paused.sort_by_key(|(i, _)| *i);
        for (i, rec) in &paused {
            let mut p = rec.last_event();
            if let Some(t) = rec.paused_in {
                p = self.emit_detached(p, Details::StateAborted { state_type: t });
            }
            if let Some((name, false)) = map {
                self.emit_detached(
                    p,
                    Details::MapIteration(Box::new(MapIterationDetails {
                        event_type: "MapIterationAborted".into(),
                        name: name.clone(),
                        index: *i,
                    })),
                );
            }
        }
    }

    fn map_params(
        &mut self,
        spec: &crate::definition::MapSpec,
        input: &Value,
        sctx: &Sctx,
        scope: &Scope,
        max_concurrency_only: bool,
    ) -> Result<MapLimits, Failure> {
        let int_field = |r: &mut Self,
                         n: &Option<NumSource>,
                         f: &str,
                         float: bool|
         -> Result<Option<f64>, Failure> {
            match n {
                None => Ok(None),
                Some(src) => {
                    let v = r.num(src, input, sctx, scope, f)?;
                    let ok = match &v {
                        Value::Number(x) if float || x.is_i64() || x.is_u64() => x.as_f64(),
                        Value::String(s) if float => s.parse::<f64>().ok(),
                        Value::String(s) => s.parse::<i64>().ok().map(|x| x as f64),
                        _ => None,
                    };
                    match ok {
                        Some(x) => Ok(Some(x)),
                        None => {
                            let path = match src {
                                NumSource::Path(p) => p.text.clone(),
                                _ => String::new(),
                            };
                            Err(r.runtime(
                                sctx,
                                format_args!(
                                    "The {f}Path field refers to value {} which is not a valid {}: {}",
                                    match &v { Value::String(s) => format!("\"{s}\""), o => format!("\"{}\"", compact(o)) },
                                    if float { "float" } else { "integer" },
                                    path
                                ),
                            ))
                        }
                    }
                }
            }
        };
        if max_concurrency_only {
            let mc = int_field(self, &spec.max_concurrency, "MaxConcurrency", false)?;
            return Ok((mc.map(|x| x as usize), 0.0, 0.0, None, None));
        }
        let mc: Option<f64> = None;
        let tc = int_field(self, &spec.tolerated_count, "ToleratedFailureCount", false)?;
        let tp = int_field(
            self,
            &spec.tolerated_percentage,
            "ToleratedFailurePercentage",
            true,
        )?;
        if let Some(c) = tc {
            if c < 0.0 {
                return Err(self.runtime(sctx, "ToleratedFailureCount cannot be negative."));
            }
        }
        if let Some(p) = tp {
            if !(0.0..=100.0).contains(&p) {
                return Err(self.runtime(
                    sctx,
                    "ToleratedFailurePercentage must be between 0 and 100.",
                ));
            }
        }
        let (mi, mb) = match &spec.batcher {
            Some(b) => {
                let mi = int_field(self, &b.max_items, "MaxItemsPerBatch", false)?;
                let mb = int_field(self, &b.max_bytes, "MaxInputBytesPerBatch", false)?;
                (mi.map(|x| x as u64), mb.map(|x| x as u64))
            }
            None => (None, None),
        };
        Ok((
            mc.map(|x| x as usize),
            tc.unwrap_or(0.0),
            tp.unwrap_or(0.0),
            mi,
            mb,
        ))
    }

    fn exec_map(
        &mut self,
        st: &'a State,
        spec: &'a crate::definition::MapSpec,
        eff_input: &Value,
        sctx: &Sctx,
        scope: &mut Scope,
        prev: &mut u64,
    ) -> Result<Value, Stop> {
        let max_conc = match self.map_params(spec, eff_input, sctx, scope, true) {
            Ok(l) => l.0.unwrap_or(0),
            Err(mut f) => {
                f.no_state_failed = true;
                return Err(Stop::Fail(f));
            }
        };
        if let Some(res) = &spec.reader_resource {
            return Err(Stop::Fail(self.runtime(
                sctx,
                format_args!(
                    "The ItemReader resource '{res}' reads from Amazon S3, which this interpreter does not provide"
                ),
            )));
        }
        let items_v = if let Some(items) = &spec.reader_items {
            items.clone()
        } else {
            match &spec.items_path {
                Some(p) => self
                    .resolve_path(p, eff_input, sctx, scope)
                    .ok_or_else(|| {
                        self.runtime(
                            sctx,
                            format_args!(
                                "Invalid path '{}' : No results for path: {}",
                                p.text,
                                p.normalized()
                            ),
                        )
                    })?,
                None => eff_input.clone(),
            }
        };
        let Value::Array(items) = items_v else {
            return Err(Stop::Fail(self.runtime(
                sctx,
                format_args!(
                    "Invalid path '{}' : The value for the field 'ItemsPath' must be an array",
                    spec.items_path.as_ref().map(|p| p.text.as_str()).unwrap_or("$")
                ),
            )));
        };
        self.emit(
            prev,
            Details::MapStateStarted {
                length: items.len(),
            },
        );
        let (_mc, tc, tp, mi, mb) = match self.map_params(spec, eff_input, sctx, scope, false) {
            Ok(x) => x,
            Err(mut f) => {
                f.no_state_failed = true;
                return Err(Stop::Fail(f));
            }
        };
        let items = batch(
            items,
            mi,
            mb,
            spec.batcher.as_ref().and_then(|b| b.batch_input.clone()),
        );
        let selector =
            |r: &mut Self, i: usize, item: &Value, scope: &Scope| -> Result<Value, Failure> {
                match &spec.item_selector {
                    Some(t) => {
                        let sc = Sctx {
                            state: sctx.state,
                            entered_id: sctx.entered_id,
                            entered_prev: sctx.entered_prev,
                            entered: sctx.entered,
                            retry_count: sctx.retry_count,
                            token: None,
                            map_item: Some((i, item)),
                            context: OnceCell::new(),
                        };
                        r.eval_template(t, eff_input, &sc, scope)
                    }
                    None => Ok(item.clone()),
                }
            };
        self.map_run(st, spec, items, tc, tp, max_conc, scope, prev, &selector)
    }

    fn exec_map_j(
        &mut self,
        st: &'a State,
        spec: &'a crate::definition::MapSpec,
        states_in: &Value,
        sctx: &Sctx,
        scope: &mut Scope,
        prev: &mut u64,
    ) -> Result<Value, Stop> {
        let raw = states_in.get("input").cloned().unwrap_or(Value::Null);
        let max_conc = match self.map_params(spec, &raw, sctx, scope, true) {
            Ok(l) => l.0.unwrap_or(0),
            Err(mut f) => {
                f.no_state_failed = true;
                return Err(Stop::Fail(f));
            }
        };
        if let Some(res) = &spec.reader_resource {
            return Err(Stop::Fail(self.runtime(
                sctx,
                format_args!(
                    "The ItemReader resource '{res}' reads from Amazon S3, which this interpreter does not provide"
                ),
            )));
        }
        let items_v = if let Some(items) = &spec.reader_items {
            items.clone()
        } else {
            match &spec.items {
                Some(JTemplate::Expr(e)) => {
                    let v = self.eval_jexpr(e, states_in, scope, sctx, "Items")?;
                    if !v.is_array() {
                        return Err(Stop::Fail(self.qe(
                            sctx,
                            format_args!(
                                "The JSONata expression '{}' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was '{}' for value: {}",
                                e.text,
                                intrinsic::type_name(&v),
                                compact(&v)
                            ),
                        ).at("Items")));
                    }
                    v
                }
                Some(t) => self.eval_jtemplate(t, states_in, scope, sctx, "Items")?,
                None => raw.clone(),
            }
        };
        let Value::Array(items) = items_v else {
            return Err(Stop::Fail(self.qe(
                sctx,
                format_args!(
                    "Map state input must be an array but was: {}",
                    compact(&items_v)
                ),
            )));
        };
        self.emit(
            prev,
            Details::MapStateStarted {
                length: items.len(),
            },
        );
        let (_mc, tc, tp, mi, mb) = match self.map_params(spec, &raw, sctx, scope, false) {
            Ok(x) => x,
            Err(mut f) => {
                f.no_state_failed = true;
                return Err(Stop::Fail(f));
            }
        };
        let items = batch(
            items,
            mi,
            mb,
            spec.batcher.as_ref().and_then(|b| b.batch_input.clone()),
        );
        let selector =
            |r: &mut Self, i: usize, item: &Value, scope: &Scope| -> Result<Value, Failure> {
                match &spec.item_selector_j {
                    Some(t) => {
                        let sc = Sctx {
                            state: sctx.state,
                            entered_id: sctx.entered_id,
                            entered_prev: sctx.entered_prev,
                            entered: sctx.entered,
                            retry_count: sctx.retry_count,
                            token: None,
                            map_item: Some((i, item)),
                            context: OnceCell::new(),
                        };
                        let states = r.states_var(&raw, None, None, &sc);
                        r.eval_jtemplate(t, &states, scope, &sc, "ItemSelector")
                    }
                    None => Ok(item.clone()),
                }
            };
        self.map_run(st, spec, items, tc, tp, max_conc, scope, prev, &selector)
    }

    #[allow(clippy::too_many_arguments)]
    fn map_run(
        &mut self,
        st: &'a State,
        spec: &'a crate::definition::MapSpec,
        items: Vec<Value>,
        tolerated_count: f64,
        tolerated_pct: f64,
        max_conc: usize,
        scope: &mut Scope,
        prev: &mut u64,
        selector: &ItemSelectorFn<'_, 'a>,
    ) -> Result<Value, Stop> {
        let distributed = spec.mode == MapMode::Distributed;
        if distributed {
            let arn = format!(
                "arn:aws:states:{}:{}:mapRun:{}/{}:{}",
                self.info.region,
                self.info.account,
                self.info.state_machine_name,
                spec.label.as_deref().unwrap_or(&st.name),
                self.lane.rng.uuid_v4()
            );
            self.emit(prev, Details::MapRunStarted { map_run_arn: arn });
        }
        let seq = self.lane.spawn;
        self.lane.spawn += 1;
        let (res, end, whole) = match self.replay_joined() {
            Some((r, p, e, w)) => {
                *prev = p;
                (r, e, w)
            }
            None => {
                let mut end = 0u64;
                let mut whole = false;
                let mut run = |r: &mut Self, i: usize, child: &mut Scope, iprev: &mut u64| {
                    let input = selector(r, i, &items[i], child)?;
                    Ok(r.run_machine(&spec.processor, input, child, iprev, false))
                };
                let res = self.run_lanes(
                    seq,
                    items.len(),
                    max_conc,
                    Some((&st.name, distributed)),
                    (tolerated_count, tolerated_pct),
                    scope,
                    prev,
                    &mut end,
                    &mut whole,
                    &mut run,
                );
                let res = self.settle(seq, res.map(Value::Array), *prev, end, whole);
                (res, end, whole)
            }
        };
        let results = match res {
            Ok(v) => v,
            Err(Stop::Fail(fl)) => {
                if distributed && !whole {
                    self.emit(
                        prev,
                        Details::MapRunFailed(Box::new(ErrorCause {
                            error: fl.error.clone(),
                            cause: fl.cause.clone(),
                        })),
                    );
                }
                return Err(Stop::Fail(fl));
            }
            Err(other) => return Err(other),
        };
        if distributed {
            self.emit(
                prev,
                Details::Plain {
                    event_type: "MapRunSucceeded".into(),
                },
            );
            self.emit_side(
                *prev,
                Details::Plain {
                    event_type: "MapStateSucceeded".into(),
                },
            );
            return Ok(results);
        }
        let p = if end > 0 { end } else { *prev };
        self.emit_side(
            p,
            Details::Plain {
                event_type: "MapStateSucceeded".into(),
            },
        );
        *prev = p;
        Ok(results)
    }

    fn eval_rule(
        &mut self,
        rule: &Rule,
        input: &Value,
        sctx: &Sctx,
        scope: &Scope,
    ) -> Result<bool, Failure> {
        match rule {
            Rule::And(rs) => {
                for r in rs {
                    if !self.eval_rule(r, input, sctx, scope)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rs) => {
                for r in rs {
                    if self.eval_rule(r, input, sctx, scope)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(r) => Ok(!self.eval_rule(r, input, sctx, scope)?),
            Rule::Condition(_) => Ok(false),
            Rule::Compare {
                variable,
                kind,
                operand,
            } => {
                let var = self.resolve_ref(variable, input, sctx, scope);
                if *kind == CmpKind::IsPresent {
                    let want = matches!(operand, Operand::Value(Value::Bool(true)));
                    let present = match var.as_deref() {
                        None => false,
                        Some(Value::Array(a)) if !variable.is_definite() => !a.is_empty(),
                        Some(_) => true,
                    };
                    return Ok(present == want);
                }
                let Some(var) = var else {
                    return Err(self.runtime(
                        sctx,
                        format_args!(
                            "Invalid path '{}': The choice state's condition path references an invalid value.",
                            variable.text
                        ),
                    ));
                };
                let rhs: Cow<'_, Value> = match operand {
                    Operand::Value(v) => Cow::Borrowed(v),
                    Operand::Path(p) => match self.resolve_ref(p, input, sctx, scope) {
                        Some(v) => v,
                        None => {
                            return Err(self.runtime(
                                sctx,
                                format_args!(
                                    "Invalid path '{}': The choice state's condition path references an invalid value.",
                                    p.text
                                ),
                            ))
                        }
                    },
                };
                Ok(compare(*kind, &var, &rhs))
            }
        }
    }
}

fn secs(s: f64) -> chrono::Duration {
    chrono::Duration::microseconds((s * 1_000_000.0) as i64)
}

fn num_value(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn batch(
    items: Vec<Value>,
    max_items: Option<u64>,
    max_bytes: Option<u64>,
    batch_input: Option<Value>,
) -> Vec<Value> {
    if max_items.is_none() && max_bytes.is_none() {
        return items;
    }
    let max_items = max_items.unwrap_or(u64::MAX).max(1) as usize;
    let max_bytes = max_bytes.unwrap_or(u64::MAX) as usize;
    let mut out = Vec::new();
    let mut cur: Vec<Value> = Vec::new();
    let mut cur_bytes = 0usize;
    for it in items {
        let sz = json_size(&it);
        if !cur.is_empty() && (cur.len() >= max_items || cur_bytes + sz > max_bytes) {
            out.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
        cur_bytes += sz;
        cur.push(it);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter()
        .map(|items| {
            let mut m = Map::new();
            if let Some(bi) = &batch_input {
                m.insert("BatchInput".into(), bi.clone());
            }
            m.insert("Items".into(), Value::Array(items));
            Value::Object(m)
        })
        .collect()
}

/// Checks service-integration parameters Step Functions validates before starting a task.
fn parameter_problem(resource: &str, params: &Value) -> Option<String> {
    if resource.starts_with("arn:aws:states:::apigateway:invoke") {
        if let Some(h) = params.get("Headers") {
            let ok = h.as_object().is_some_and(|o| {
                o.values().all(|v| {
                    v.as_array()
                        .is_some_and(|a| a.iter().all(|x| x.is_string()))
                })
            });
            if !ok {
                return Some("The value of the field 'Headers' has an invalid format".into());
            }
        }
    }
    None
}

/// Splits a Task resource into the `resourceType` and `resource` of Task history events.
fn classify(resource: &str) -> (String, String) {
    if let Some(rest) = resource.strip_prefix("arn:aws:states:::") {
        if let Some(sdk) = rest.strip_prefix("aws-sdk:") {
            if let Some((svc, action)) = sdk.split_once(':') {
                return (format!("aws-sdk:{svc}"), action.to_string());
            }
        }
        if let Some((svc, action)) = rest.split_once(':') {
            return (svc.to_string(), action.to_string());
        }
        return (rest.to_string(), String::new());
    }
    if resource.contains(":activity:") {
        return ("activity".into(), resource.to_string());
    }
    ("lambda".into(), resource.to_string())
}

fn is_ts_string(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(parse_timestamp)
}

fn string_matches(s: &str, pattern: &str) -> bool {
    // `*` matches any run of characters; `\*` is a literal star; `\\` a backslash.
    let p: Vec<char> = pattern.chars().collect();
    let mut toks: Vec<Option<char>> = Vec::new(); // None = wildcard
    let mut i = 0;
    while i < p.len() {
        if p[i] == '\\' && i + 1 < p.len() {
            toks.push(Some(p[i + 1]));
            i += 2;
        } else if p[i] == '*' {
            toks.push(None);
            i += 1;
        } else {
            toks.push(Some(p[i]));
            i += 1;
        }
    }
    let s: Vec<char> = s.chars().collect();
    let (mut si, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if ti < toks.len() {
            match toks[ti] {
                Some(c) if c == s[si] => {
                    si += 1;
                    ti += 1;
                    continue;
                }
                None => {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((st, ss)) => {
                ti = st + 1;
                si = ss + 1;
                star = Some((st, ss + 1));
            }
            None => return false,
        }
    }
    while ti < toks.len() && toks[ti].is_none() {
        ti += 1;
    }
    ti == toks.len()
}

fn compare(kind: CmpKind, var: &Value, rhs: &Value) -> bool {
    use std::cmp::Ordering::*;
    use CmpKind::*;
    match kind {
        IsNull => var.is_null() == (rhs == &Value::Bool(true)),
        IsNumeric => var.is_number() == (rhs == &Value::Bool(true)),
        IsString => var.is_string() == (rhs == &Value::Bool(true)),
        IsBoolean => var.is_boolean() == (rhs == &Value::Bool(true)),
        IsTimestamp => is_ts_string(var).is_some() == (rhs == &Value::Bool(true)),
        IsPresent => true,
        BooleanEquals => match (var, rhs) {
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        },
        StringMatches => match (var, rhs) {
            (Value::String(a), Value::String(b)) => string_matches(a, b),
            _ => false,
        },
        StringEquals
        | StringLessThan
        | StringGreaterThan
        | StringLessThanEquals
        | StringGreaterThanEquals => match (var, rhs) {
            (Value::String(a), Value::String(b)) => {
                let o = a.as_str().cmp(b.as_str());
                match kind {
                    StringEquals => o == Equal,
                    StringLessThan => o == Less,
                    StringGreaterThan => o == Greater,
                    StringLessThanEquals => o != Greater,
                    _ => o != Less,
                }
            }
            _ => false,
        },
        NumericEquals
        | NumericLessThan
        | NumericGreaterThan
        | NumericLessThanEquals
        | NumericGreaterThanEquals => match (var, rhs) {
            (Value::Number(a), Value::Number(b)) => {
                let o = match (a.as_i64(), b.as_i64()) {
                    (Some(x), Some(y)) => Some(x.cmp(&y)),
                    _ => a
                        .as_f64()
                        .zip(b.as_f64())
                        .and_then(|(x, y)| x.partial_cmp(&y)),
                };
                let Some(o) = o else { return false };
                match kind {
                    NumericEquals => o == Equal,
                    NumericLessThan => o == Less,
                    NumericGreaterThan => o == Greater,
                    NumericLessThanEquals => o != Greater,
                    _ => o != Less,
                }
            }
            _ => false,
        },
        TimestampEquals
        | TimestampLessThan
        | TimestampGreaterThan
        | TimestampLessThanEquals
        | TimestampGreaterThanEquals => match (is_ts_string(var), is_ts_string(rhs)) {
            (Some(a), Some(b)) => {
                let o = a.cmp(&b);
                match kind {
                    TimestampEquals => o == Equal,
                    TimestampLessThan => o == Less,
                    TimestampGreaterThan => o == Greater,
                    TimestampLessThanEquals => o != Greater,
                    _ => o != Less,
                }
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_matches_wildcards() {
        assert!(string_matches("log-2024.txt", "log-*.txt"));
        assert!(string_matches("abc", "*"));
        assert!(!string_matches("abc", "a*d"));
        assert!(string_matches("a*c", "a\\*c"));
        assert!(!string_matches("abc", "a\\*c"));
    }

    #[test]
    fn classify_resources() {
        assert_eq!(
            classify("arn:aws:states:::lambda:invoke"),
            ("lambda".into(), "invoke".into())
        );
        assert_eq!(
            classify("arn:aws:states:::aws-sdk:s3:getObject"),
            ("aws-sdk:s3".into(), "getObject".into())
        );
        assert_eq!(
            classify("arn:aws:states:::sqs:sendMessage.waitForTaskToken"),
            ("sqs".into(), "sendMessage.waitForTaskToken".into())
        );
    }
}
