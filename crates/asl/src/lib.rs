//! # asl — an Amazon States Language interpreter
//!
//! Parses, validates and executes AWS Step Functions state machine definitions with the
//! semantics of the real service: JSONPath and JSONata query languages, intrinsic functions,
//! Choice rules, Retry/Catch, Parallel and Map, and execution histories shaped like
//! `GetExecutionHistory`. It has no AWS dependency: tasks are run through the
//! [`TaskHandler`] trait and time comes from a [`Clock`] (a [`VirtualClock`] makes a
//! seven-day `Wait` finish instantly).
//!
//! ```
//! use asl::{parse_definition, Execution, ExecutionInfo, NoTasks, Status, VirtualClock};
//! use serde_json::json;
//!
//! let sm = parse_definition(&json!({
//!     "StartAt": "Hello",
//!     "States": {"Hello": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('hi {}', $.name)"}, "End": true}}
//! })).unwrap();
//! let clock = VirtualClock::at_epoch_2024();
//! let mut exec = Execution::new(json!({"name": "Ada"}), ExecutionInfo::default(), 1, &clock);
//! assert_eq!(exec.run(&sm, &mut NoTasks, &clock), Status::Succeeded);
//! assert_eq!(exec.state().output, Some(json!({"greeting": "hi Ada"})));
//! ```
//!
//! ## Hosting executions
//!
//! [`Execution::run`] runs until the execution finishes or has to wait. A `Running` status
//! comes with [`ExecutionState::waiting`]:
//!
//! * [`Waiting::Task`] — a task returned [`TaskOutcome::Pending`] (`.waitForTaskToken`,
//!   `.sync`, activities, or any handler that completes asynchronously). Persist
//!   [`Execution::state`], and when the result arrives call
//!   [`Execution::send_task_success`] / [`Execution::send_task_failure`] (heartbeats:
//!   [`Execution::send_task_heartbeat`]; deadlines: [`Execution::check_task_timeouts`]),
//!   then `run` again.
//! * [`Waiting::Timer`] — the [`Clock`] declined to wait (`wait_until` returned `false`);
//!   call `run` again at `until`. The due time is kept in the journal: a run before it
//!   pauses again with the same `until`, a run at or after it carries on.
//! * [`Waiting::Checkpoint`] — [`RunOptions::checkpoint_every`] transitions were made.
//!
//! Resuming replays the journal: task handlers are never called twice for the same
//! attempt and the history keeps its original ids and timestamps.
#![warn(missing_docs)]

pub mod clock;
pub mod codec;
pub mod definition;
pub mod engine;
pub mod history;
pub mod intrinsic;
mod jsonata_bridge;
pub mod path;
pub mod task;

pub use clock::{Clock, SystemClock, VirtualClock};
pub use definition::{
    parse as parse_definition, parse_text as parse_definition_text, Diagnostic, InvalidDefinition,
    StateMachine,
};
pub use engine::{
    ExecError, Execution, ExecutionInfo, ExecutionState, JournalEntry, RunOptions, Status, Waiting,
};
pub use history::HistoryEvent;
pub use task::{MockConfigError, MockTasks, NoTasks, TaskHandler, TaskOutcome, TaskRequest};
