//! Parsing and validating a state machine definition into a compiled, index-linked form.
//!
//! Every `Next` is resolved to an index, every path, intrinsic call and JSONata expression
//! is parsed once here, so executing a state never re-parses anything.

use crate::intrinsic::{self, Call};
use crate::jsonata_bridge::{self, Compiled};
use crate::path::Path;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// One validation problem, as in `ValidateStateMachineDefinition` diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// AWS diagnostic code, e.g. `SCHEMA_VALIDATION_FAILED`.
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// JSON pointer-like location, e.g. `/States/A/Next`.
    pub location: String,
}

/// A definition Step Functions would reject with `InvalidDefinition`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct InvalidDefinition {
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
}

fn render(d: &[Diagnostic]) -> String {
    let parts: Vec<String> = d
        .iter()
        .map(|d| {
            if d.location.is_empty() {
                format!("{}: {}", d.code, d.message)
            } else {
                format!("{}: {} at {}", d.code, d.message, d.location)
            }
        })
        .collect();
    format!("Invalid State Machine Definition: '{}'", parts.join(", "))
}

/// `JSONPath` or `JSONata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum QueryLanguage {
    /// The classic language (paths, `.$` keys, intrinsics).
    JSONPath,
    /// `{% %}` expressions.
    JSONata,
}

/// A compiled JSONata expression with its source text.
#[derive(Debug, Clone)]
pub struct JExpr {
    /// Source text without the `{% %}` delimiters.
    pub text: String,
    pub(crate) compiled: Compiled,
}

/// A value template in the JSONPath language (Parameters, ResultSelector, ItemSelector, Assign).
#[derive(Debug, Clone)]
pub enum Template {
    /// A constant.
    Const(Value),
    /// `"key.$": "$.path"`; carries the field name for error messages.
    Path(Path, Arc<str>),
    /// `"key.$": "States.Fn(...)"`.
    Intrinsic(Box<Call>, Arc<str>),
    /// Object with processed keys (`.$` suffix stripped).
    Object(Vec<(String, Template)>),
    /// Array of templates.
    Array(Vec<Template>),
}

/// A value template in the JSONata language (Arguments, Output, Assign, ...).
#[derive(Debug, Clone)]
pub enum JTemplate {
    /// A constant.
    Const(Value),
    /// `"{% expr %}"`.
    Expr(JExpr),
    /// Object.
    Object(Vec<(String, JTemplate)>),
    /// Array.
    Array(Vec<JTemplate>),
}

/// `InputPath`/`OutputPath`: absent = `$`, null = `{}`.
#[derive(Debug, Clone)]
pub enum PathOpt {
    /// The whole value.
    Whole,
    /// `null`: an empty object.
    Discard,
    /// A path.
    Path(Path),
}

/// `ResultPath`.
#[derive(Debug, Clone)]
pub enum ResultPath {
    /// `$` (default): the result replaces the input.
    Replace,
    /// `null`: the result is discarded.
    Discard,
    /// A reference path inside the input.
    At(Path),
}

/// `JitterStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// No jitter.
    None,
    /// Random delay between 0 and the computed interval.
    Full,
}

/// One `Retry` entry.
#[derive(Debug, Clone)]
pub struct Retrier {
    /// Error names matched.
    pub error_equals: Vec<String>,
    /// First interval (seconds).
    pub interval_seconds: f64,
    /// Maximum attempts (0 = never retry).
    pub max_attempts: u32,
    /// Multiplier per attempt.
    pub backoff_rate: f64,
    /// Cap of the interval.
    pub max_delay_seconds: Option<f64>,
    /// Jitter.
    pub jitter: Jitter,
}

/// One `Catch` entry.
#[derive(Debug, Clone)]
pub struct Catcher {
    /// Error names matched.
    pub error_equals: Vec<String>,
    /// Target state index.
    pub next: usize,
    /// Where the error output goes (JSONPath).
    pub result_path: ResultPath,
    /// Variables assigned.
    pub assign: Option<Assign>,
    /// JSONata `Output`.
    pub output: Option<JTemplate>,
}

/// `Assign` in either language.
#[derive(Debug, Clone)]
pub enum Assign {
    /// JSONPath-language assignments.
    Path(Template),
    /// JSONata-language assignments.
    Jsonata(JTemplate),
}

/// A number given either literally, through a path, or through a JSONata expression.
#[derive(Debug, Clone)]
pub enum NumSource {
    /// Literal.
    Lit(f64),
    /// `...Path`.
    Path(Path),
    /// `{% %}`.
    Expr(JExpr),
}

/// Comparison operators of Choice rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CmpKind {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

/// Right-hand side of a comparison.
#[derive(Debug, Clone)]
pub enum Operand {
    /// A literal.
    Value(Value),
    /// A `...Path` operator's path.
    Path(Path),
}

/// A Choice rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// All must hold.
    And(Vec<Rule>),
    /// One must hold.
    Or(Vec<Rule>),
    /// Negation.
    Not(Box<Rule>),
    /// `Variable` compared with an operand.
    Compare {
        /// The variable path.
        variable: Path,
        /// Operator.
        kind: CmpKind,
        /// Operand.
        operand: Operand,
    },
    /// JSONata `Condition`.
    Condition(JTemplate),
}

/// One entry of `Choices`.
#[derive(Debug, Clone)]
pub struct ChoiceBranch {
    /// The rule.
    pub rule: Rule,
    /// Target index.
    pub next: usize,
    /// Variables assigned when taken.
    pub assign: Option<Assign>,
    /// JSONata output when taken.
    pub output: Option<JTemplate>,
}

/// How long a Wait waits.
#[derive(Debug, Clone)]
pub enum WaitSpec {
    /// Seconds.
    Seconds(NumSource),
    /// Absolute timestamp.
    Timestamp(TsSource),
}

/// A timestamp given literally, through a path, or through a JSONata expression.
#[derive(Debug, Clone)]
pub enum TsSource {
    /// Literal (validated RFC 3339).
    Lit(String),
    /// `TimestampPath`.
    Path(Path),
    /// `{% %}`.
    Expr(JExpr),
}

/// A string given literally, by path/intrinsic, or by JSONata.
#[derive(Debug, Clone)]
pub enum StrSource {
    /// Literal.
    Lit(String),
    /// `ErrorPath`/`CausePath` path.
    Path(Path),
    /// `ErrorPath`/`CausePath` intrinsic.
    Intrinsic(Box<Call>),
    /// `{% %}`.
    Expr(JExpr),
}

/// Map processor mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapMode {
    /// Iterations run inside this execution.
    Inline,
    /// Iterations run as child executions (a Map Run).
    Distributed,
}

/// `ItemBatcher`.
#[derive(Debug, Clone)]
pub struct ItemBatcher {
    /// Max items per batch.
    pub max_items: Option<NumSource>,
    /// Max bytes per batch.
    pub max_bytes: Option<NumSource>,
    /// `BatchInput` template.
    pub batch_input: Option<Value>,
}

/// Kind-specific parts of a state.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Pass.
    Pass {
        /// `Result`.
        result: Option<Value>,
    },
    /// Task.
    Task {
        /// Resource ARN.
        resource: Arc<str>,
        /// `TimeoutSeconds` / path / expression.
        timeout: Option<NumSource>,
        /// `HeartbeatSeconds` / path / expression.
        heartbeat: Option<NumSource>,
    },
    /// Choice.
    Choice {
        /// Rules in order.
        choices: Vec<ChoiceBranch>,
        /// `Default`.
        default: Option<usize>,
    },
    /// Wait.
    Wait(WaitSpec),
    /// Succeed.
    Succeed,
    /// Fail.
    Fail {
        /// Error.
        error: Option<StrSource>,
        /// Cause.
        cause: Option<StrSource>,
    },
    /// Parallel.
    Parallel {
        /// Branches.
        branches: Vec<Machine>,
    },
    /// Map.
    Map(Box<MapSpec>),
}

/// Map-specific fields.
#[derive(Debug, Clone)]
pub struct MapSpec {
    /// Iteration machine.
    pub processor: Machine,
    /// Mode.
    pub mode: MapMode,
    /// `ItemsPath`.
    pub items_path: Option<Path>,
    /// JSONata `Items`.
    pub items: Option<JTemplate>,
    /// `ItemSelector`/`Parameters`.
    pub item_selector: Option<Template>,
    /// JSONata `ItemSelector`.
    pub item_selector_j: Option<JTemplate>,
    /// `MaxConcurrency`.
    pub max_concurrency: Option<NumSource>,
    /// `ToleratedFailureCount`.
    pub tolerated_count: Option<NumSource>,
    /// `ToleratedFailurePercentage`.
    pub tolerated_percentage: Option<NumSource>,
    /// `ItemBatcher`.
    pub batcher: Option<ItemBatcher>,
    /// Items given inline in an `ItemReader` without a `Resource`.
    pub reader_items: Option<Value>,
    /// `ItemReader.Resource` (an S3 reader, which this interpreter cannot serve).
    pub reader_resource: Option<String>,
    /// `Label`.
    pub label: Option<String>,
}

/// A compiled state.
#[derive(Debug, Clone)]
pub struct State {
    /// Name.
    pub name: Arc<str>,
    /// Query language in effect.
    pub ql: QueryLanguage,
    /// Next state index, `None` when `End`.
    pub next: Option<usize>,
    /// Type-specific part.
    pub kind: Kind,
    /// `InputPath`.
    pub input_path: PathOpt,
    /// `OutputPath`.
    pub output_path: PathOpt,
    /// `Parameters` (or Map `ItemSelector` handled separately).
    pub parameters: Option<Template>,
    /// `ResultSelector`.
    pub result_selector: Option<Template>,
    /// `ResultPath`.
    pub result_path: ResultPath,
    /// `Arguments` (JSONata).
    pub arguments: Option<JTemplate>,
    /// `Output` (JSONata).
    pub output: Option<JTemplate>,
    /// `Assign`.
    pub assign: Option<Assign>,
    /// `Retry`.
    pub retry: Vec<Retrier>,
    /// `Catch`.
    pub catch: Vec<Catcher>,
    /// Some JSONata expression of this state may read `$states.context`.
    pub jsonata_context: bool,
}

/// A list of states with a start index (the top level, a branch, or a Map processor).
#[derive(Debug, Clone)]
pub struct Machine {
    /// States in definition order.
    pub states: Vec<State>,
    /// Index of `StartAt`.
    pub start: usize,
}

/// A parsed and validated state machine.
#[derive(Debug, Clone)]
pub struct StateMachine {
    /// Top-level states.
    pub root: Machine,
    /// `TimeoutSeconds` of the whole machine.
    pub timeout_seconds: Option<u64>,
    /// `Comment`.
    pub comment: Option<String>,
    /// Top-level query language.
    pub query_language: QueryLanguage,
}

struct Ctx {
    diags: Vec<Diagnostic>,
    top_ql: QueryLanguage,
}

impl Ctx {
    fn schema(&mut self, msg: impl Into<String>, loc: &str) {
        self.diags.push(Diagnostic {
            code: "SCHEMA_VALIDATION_FAILED",
            message: msg.into(),
            location: loc.to_string(),
        });
    }
    fn push(&mut self, code: &'static str, msg: impl Into<String>, loc: &str) {
        self.diags.push(Diagnostic {
            code,
            message: msg.into(),
            location: loc.to_string(),
        });
    }
}

/// Placeholder index of a transition to a state that does not exist (validation only).
const DANGLING: usize = usize::MAX;

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn allowed(ty: &str) -> &'static [&'static str] {
    match ty {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "Result",
            "ResultPath",
            "Assign",
            "Output",
        ],
        "Task" => &[
            "Next",
            "End",
            "Resource",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
            "Arguments",
            "Output",
            "Assign",
        ],
        "Choice" => &[
            "Choices",
            "Default",
            "InputPath",
            "OutputPath",
            "Assign",
            "Output",
        ],
        "Wait" => &[
            "Next",
            "End",
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
            "InputPath",
            "OutputPath",
            "Assign",
            "Output",
        ],
        "Succeed" => &["InputPath", "OutputPath", "Output"],
        "Fail" => &["Error", "ErrorPath", "Cause", "CausePath"],
        "Parallel" => &[
            "Branches",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Arguments",
            "Output",
            "Assign",
        ],
        "Map" => &[
            "ItemProcessor",
            "Iterator",
            "ItemsPath",
            "Items",
            "ItemSelector",
            "Parameters",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "Label",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
            "Arguments",
            "Output",
            "Assign",
        ],
        _ => &[],
    }
}

const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "ItemsPath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
];
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];

/// Returns the JSONata expression inside `{% ... %}` when `s` is one.
pub fn jsonata_expr(s: &str) -> Option<&str> {
    let t = s.strip_prefix("{%")?.strip_suffix("%}")?;
    Some(t)
}

/// Parses and validates a definition given as JSON text.
pub fn parse_text(text: &str) -> Result<StateMachine, InvalidDefinition> {
    if text.trim().is_empty() {
        return Err(InvalidDefinition {
            diagnostics: vec![Diagnostic {
                code: "SCHEMA_VALIDATION_FAILED",
                message: "Definition must be a valid JSON object".into(),
                location: String::new(),
            }],
        });
    }
    let v: Value = serde_json::from_str(text).map_err(|e| InvalidDefinition {
        diagnostics: vec![Diagnostic {
            code: "INVALID_JSON_DESCRIPTION",
            message: json_error_message(text, &e),
            location: String::new(),
        }],
    })?;
    parse(&v)
}

/// Describes a JSON syntax error in the words of the Jackson parser Step Functions uses
/// (for the common case of a bare word), falling back to serde's description.
fn json_error_message(text: &str, e: &serde_json::Error) -> String {
    let t = text.trim_start();
    let word: String = t
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !word.is_empty() && !matches!(word.as_str(), "true" | "false" | "null") {
        let col = text.len() - t.len() + word.chars().count() + 1;
        return format!(
            "Unrecognized token '{word}': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n at [Source: (String)\"{}\"; line: 1, column: {col}]",
            text.escape_debug()
        );
    }
    e.to_string()
}

/// Parses and validates a definition.
pub fn parse(v: &Value) -> Result<StateMachine, InvalidDefinition> {
    let mut ctx = Ctx {
        diags: Vec::new(),
        top_ql: QueryLanguage::JSONPath,
    };
    let Some(obj) = v.as_object() else {
        return Err(InvalidDefinition {
            diagnostics: vec![Diagnostic {
                code: "SCHEMA_VALIDATION_FAILED",
                message: "Definition must be a valid JSON object".into(),
                location: String::new(),
            }],
        });
    };
    let ql = match obj.get("QueryLanguage") {
        None => QueryLanguage::JSONPath,
        Some(Value::String(s)) if s == "JSONPath" => QueryLanguage::JSONPath,
        Some(Value::String(s)) if s == "JSONata" => QueryLanguage::JSONata,
        Some(_) => {
            ctx.schema(
                "The value for the field 'QueryLanguage' must be one of [JSONPath, JSONata]",
                "/QueryLanguage",
            );
            QueryLanguage::JSONPath
        }
    };
    ctx.top_ql = ql;
    let timeout_seconds = match obj.get("TimeoutSeconds") {
        None => None,
        Some(t) => match t.as_u64() {
            Some(n) => Some(n),
            None => {
                ctx.schema(
                    "The value for the field 'TimeoutSeconds' must be a positive integer",
                    "/TimeoutSeconds",
                );
                None
            }
        },
    };
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "StartAt" | "States" | "Comment" | "Version" | "TimeoutSeconds" | "QueryLanguage"
        ) {
            ctx.schema(format!("These fields are not supported: [{k}]"), "/");
        }
    }
    let root = machine(&mut ctx, obj, "", ql, true);
    if !ctx.diags.is_empty() {
        return Err(InvalidDefinition {
            diagnostics: ctx.diags,
        });
    }
    Ok(StateMachine {
        root: root.unwrap_or(Machine {
            states: Vec::new(),
            start: 0,
        }),
        timeout_seconds,
        comment: obj
            .get("Comment")
            .and_then(|c| c.as_str())
            .map(str::to_string),
        query_language: ql,
    })
}

fn machine(
    ctx: &mut Ctx,
    obj: &Map<String, Value>,
    loc: &str,
    ql: QueryLanguage,
    top: bool,
) -> Option<Machine> {
    let mut missing = Vec::new();
    if !obj.contains_key("States") {
        missing.push("States");
    }
    if !obj.contains_key("StartAt") {
        missing.push("StartAt");
    }
    if !missing.is_empty() {
        ctx.schema(
            format!("These fields are required: [{}]", missing.join(", ")),
            if loc.is_empty() { "/" } else { loc },
        );
        return None;
    }
    if !top {
        for k in obj.keys() {
            if !matches!(
                k.as_str(),
                "StartAt" | "States" | "Comment" | "ProcessorConfig"
            ) {
                ctx.schema(format!("These fields are not supported: [{k}]"), loc);
            }
        }
    }
    let Some(states) = obj.get("States").and_then(|s| s.as_object()) else {
        ctx.schema(
            "The value for the field 'States' must be an object",
            &format!("{loc}/States"),
        );
        return None;
    };
    let Some(start_name) = obj.get("StartAt").and_then(|s| s.as_str()) else {
        ctx.schema(
            "The value for the field 'StartAt' must be a string",
            &format!("{loc}/StartAt"),
        );
        return None;
    };
    if states.is_empty() {
        ctx.schema(
            "The field 'States' must not be empty",
            &format!("{loc}/States"),
        );
        return None;
    }
    let index: HashMap<&str, usize> = states
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let before = ctx.diags.len();
    let start = index.get(start_name).copied();
    if start.is_none() {
        ctx.push(
            "MISSING_TRANSITION_TARGET",
            format!("Missing 'Next' target: {start_name}"),
            &format!("{loc}/StartAt"),
        );
    }
    let mut out = Vec::with_capacity(states.len());
    for (name, sv) in states {
        let sloc = format!("{loc}/States/{name}");
        if name.len() > 80 {
            ctx.schema("State names must be at most 80 characters long", &sloc);
        }
        if let Some(st) = state(ctx, name, sv, &sloc, ql, &index) {
            out.push(st);
        }
    }
    if ctx.diags[before..]
        .iter()
        .any(|d| d.code != "MISSING_TRANSITION_TARGET")
        || out.len() != states.len()
    {
        return None;
    }
    // A workflow needs a terminal state; without one AWS skips the reachability walk.
    let terminal = out
        .iter()
        .any(|s| s.next.is_none() && !matches!(s.kind, Kind::Choice { .. }));
    if !terminal {
        ctx.push(
            "MISSING_END_STATE",
            "Workflow has no terminal state",
            if top { "null" } else { loc },
        );
        return None;
    }
    let mut seen = vec![false; out.len()];
    let mut stack: Vec<usize> = start.into_iter().collect();
    while let Some(i) = stack.pop() {
        if i == DANGLING || seen[i] {
            continue;
        }
        seen[i] = true;
        let s = &out[i];
        if let Some(n) = s.next {
            stack.push(n);
        }
        if let Kind::Choice { choices, default } = &s.kind {
            stack.extend(choices.iter().map(|c| c.next));
            stack.extend(default.iter().copied());
        }
        stack.extend(s.catch.iter().map(|c| c.next));
    }
    for (i, s) in out.iter().enumerate() {
        if !seen[i] {
            ctx.push(
                "MISSING_TRANSITION_TARGET",
                format!("State \"{}\" is not reachable.", s.name),
                &format!("{loc}/States/{}", s.name),
            );
        }
    }
    if ctx.diags.len() != before {
        return None;
    }
    let start = start?;
    Some(Machine { states: out, start })
}

fn get_ql(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    loc: &str,
    parent: QueryLanguage,
) -> QueryLanguage {
    match o.get("QueryLanguage") {
        None => parent,
        Some(Value::String(s)) if s == "JSONata" => QueryLanguage::JSONata,
        Some(Value::String(s)) if s == "JSONPath" => {
            if ctx.top_ql == QueryLanguage::JSONata {
                ctx.schema(
                    "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
                    loc,
                );
            }
            QueryLanguage::JSONPath
        }
        Some(_) => {
            ctx.schema(
                "The value for the field 'QueryLanguage' must be one of [JSONPath, JSONata]",
                &format!("{loc}/QueryLanguage"),
            );
            parent
        }
    }
}

fn target(
    ctx: &mut Ctx,
    name: Option<&Value>,
    index: &HashMap<&str, usize>,
    loc: &str,
) -> Option<usize> {
    match name {
        Some(Value::String(n)) => match index.get(n.as_str()) {
            Some(i) => Some(*i),
            None => {
                ctx.push(
                    "MISSING_TRANSITION_TARGET",
                    format!("Missing 'Next' target: {n}"),
                    loc,
                );
                // keep validating the graph; the definition is rejected anyway
                Some(DANGLING)
            }
        },
        Some(_) => {
            ctx.schema("The value for the field 'Next' must be a STRING", loc);
            None
        }
        None => None,
    }
}

fn parse_path(ctx: &mut Ctx, v: &Value, field: &str, loc: &str, reference: bool) -> Option<Path> {
    let Some(s) = v.as_str() else {
        ctx.schema(
            format!("The value for the field '{field}' must be a STRING"),
            loc,
        );
        return None;
    };
    match Path::parse(s) {
        Ok(p) => {
            if reference && !p.is_reference() {
                ctx.schema(
                    format!("The value for the field '{field}' must be a valid Reference Path"),
                    loc,
                );
                return None;
            }
            Some(p)
        }
        Err(_) => {
            ctx.schema(
                format!("The value for the field '{field}' must be a valid JSONPath"),
                loc,
            );
            None
        }
    }
}

fn path_opt(ctx: &mut Ctx, o: &Map<String, Value>, field: &str, loc: &str) -> PathOpt {
    match o.get(field) {
        None => PathOpt::Whole,
        Some(Value::Null) => PathOpt::Discard,
        Some(v) => match parse_path(ctx, v, field, &format!("{loc}/{field}"), false) {
            Some(p) if p.root == crate::path::Root::Input && p.segments.is_empty() => {
                PathOpt::Whole
            }
            Some(p) => PathOpt::Path(p),
            None => PathOpt::Whole,
        },
    }
}

fn template_in(ctx: &mut Ctx, v: &Value, loc: &str) -> Template {
    match v {
        Value::Object(o) => {
            let mut out = Vec::with_capacity(o.len());
            let mut all_const = true;
            for (k, x) in o {
                if let Some(key) = k.strip_suffix(".$") {
                    all_const = false;
                    let Some(s) = x.as_str() else {
                        ctx.schema(
                            format!(
                                "The value for the field '{k}' must be a valid JSONPath or a valid intrinsic function call"
                            ),
                            loc,
                        );
                        continue;
                    };
                    let field: Arc<str> = Arc::from(k.as_str());
                    if intrinsic::looks_like_call(s) {
                        match intrinsic::parse(s) {
                            Ok(c) => out.push((key.to_string(), Template::Intrinsic(Box::new(c), field))),
                            Err(_) => ctx.schema(
                                format!(
                                    "The value for the field '{k}' must be a valid JSONPath or a valid intrinsic function call"
                                ),
                                loc,
                            ),
                        }
                    } else {
                        match Path::parse(s) {
                            Ok(p) => out.push((key.to_string(), Template::Path(p, field))),
                            Err(_) => ctx.schema(
                                format!(
                                    "The value for the field '{k}' must be a valid JSONPath or a valid intrinsic function call"
                                ),
                                loc,
                            ),
                        }
                    }
                } else {
                    let t = template_in(ctx, x, &format!("{loc}/{k}"));
                    if !matches!(t, Template::Const(_)) {
                        all_const = false;
                    }
                    out.push((k.clone(), t));
                }
            }
            if all_const {
                Template::Const(v.clone())
            } else {
                Template::Object(out)
            }
        }
        Value::Array(a) => {
            let items: Vec<Template> = a
                .iter()
                .enumerate()
                .map(|(i, x)| template_in(ctx, x, &format!("{loc}[{i}]")))
                .collect();
            if items.iter().all(|t| matches!(t, Template::Const(_))) {
                Template::Const(v.clone())
            } else {
                Template::Array(items)
            }
        }
        other => Template::Const(other.clone()),
    }
}

fn jexpr(ctx: &mut Ctx, text: &str, loc: &str) -> Option<JExpr> {
    match jsonata_bridge::compile(text) {
        Ok(c) => Some(JExpr {
            text: text.trim().to_string(),
            compiled: c,
        }),
        Err(e) => {
            ctx.schema(
                format!(
                    "The JSONata expression '{}' is not valid: {}",
                    text.trim(),
                    e.message
                ),
                loc,
            );
            None
        }
    }
}

fn jtemplate(ctx: &mut Ctx, v: &Value, loc: &str) -> JTemplate {
    match v {
        Value::String(s) => match jsonata_expr(s) {
            Some(e) => match jexpr(ctx, e, loc) {
                Some(x) => JTemplate::Expr(x),
                None => JTemplate::Const(v.clone()),
            },
            None => JTemplate::Const(v.clone()),
        },
        Value::Object(o) => {
            let items: Vec<(String, JTemplate)> = o
                .iter()
                .map(|(k, x)| (k.clone(), jtemplate(ctx, x, &format!("{loc}/{k}"))))
                .collect();
            if items.iter().all(|(_, t)| matches!(t, JTemplate::Const(_))) {
                JTemplate::Const(v.clone())
            } else {
                JTemplate::Object(items)
            }
        }
        Value::Array(a) => {
            let items: Vec<JTemplate> = a
                .iter()
                .enumerate()
                .map(|(i, x)| jtemplate(ctx, x, &format!("{loc}[{i}]")))
                .collect();
            if items.iter().all(|t| matches!(t, JTemplate::Const(_))) {
                JTemplate::Const(v.clone())
            } else {
                JTemplate::Array(items)
            }
        }
        other => JTemplate::Const(other.clone()),
    }
}

fn assign(ctx: &mut Ctx, v: Option<&Value>, loc: &str, ql: QueryLanguage) -> Option<Assign> {
    let v = v?;
    if !v.is_object() {
        ctx.schema("The value for the field 'Assign' must be an OBJECT", loc);
        return None;
    }
    Some(match ql {
        QueryLanguage::JSONPath => Assign::Path(template_in(ctx, v, loc)),
        QueryLanguage::JSONata => Assign::Jsonata(jtemplate(ctx, v, loc)),
    })
}

fn num_source(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    field: &str,
    loc: &str,
    ql: QueryLanguage,
) -> Option<NumSource> {
    let path_field = format!("{field}Path");
    if let Some(v) = o.get(field) {
        if o.contains_key(&path_field) {
            ctx.schema(
                format!(
                    "There should only be one of the following fields: [{field}, {path_field}]"
                ),
                loc,
            );
        }
        return match v {
            Value::Number(n) => n.as_f64().map(NumSource::Lit),
            Value::String(s) if ql == QueryLanguage::JSONata && jsonata_expr(s).is_some() => jexpr(
                ctx,
                jsonata_expr(s).unwrap_or_default(),
                &format!("{loc}/{field}"),
            )
            .map(NumSource::Expr),
            _ => {
                ctx.schema(
                    format!("The value for the field '{field}' must be a NUMBER"),
                    &format!("{loc}/{field}"),
                );
                None
            }
        };
    }
    if let Some(v) = o.get(&path_field) {
        return parse_path(ctx, v, &path_field, &format!("{loc}/{path_field}"), false)
            .map(NumSource::Path);
    }
    None
}

fn error_equals(ctx: &mut Ctx, o: &Map<String, Value>, loc: &str) -> Vec<String> {
    match o.get("ErrorEquals") {
        Some(Value::Array(a)) if !a.is_empty() => {
            let v: Vec<String> = a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            if v.len() != a.len() {
                ctx.schema(
                    "The value for the field 'ErrorEquals' must be a list of STRINGs",
                    loc,
                );
            }
            if let Some(p) = v.iter().position(|e| e == "States.ALL") {
                if v.len() > 1 {
                    ctx.schema(
                        "Error names 'States.ALL' must appear alone in 'ErrorEquals'",
                        &format!("{loc}/ErrorEquals[{p}]"),
                    );
                }
            }
            v
        }
        Some(_) => {
            ctx.schema("The field 'ErrorEquals' must not be empty", loc);
            Vec::new()
        }
        None => {
            ctx.schema("The field 'ErrorEquals' is required but was missing", loc);
            Vec::new()
        }
    }
}

fn result_path(ctx: &mut Ctx, o: &Map<String, Value>, loc: &str) -> ResultPath {
    match o.get("ResultPath") {
        None => ResultPath::Replace,
        Some(Value::Null) => ResultPath::Discard,
        Some(v) => match parse_path(ctx, v, "ResultPath", &format!("{loc}/ResultPath"), true) {
            Some(p) if p.segments.is_empty() => ResultPath::Replace,
            Some(p) => ResultPath::At(p),
            None => ResultPath::Replace,
        },
    }
}

fn is_rfc3339(s: &str) -> bool {
    // Requires a 'T' separator and an explicit offset, like AWS.
    let b = s.as_bytes();
    if b.len() < 20 || b[10] != b'T' {
        return false;
    }
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Parses an RFC 3339 timestamp the way Step Functions accepts it.
pub fn parse_timestamp(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if !is_rfc3339(s) {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

fn known_resource(res: &str) -> Result<(), String> {
    // Optimised integrations with a fixed action list; anything else is accepted.
    let Some(rest) = res.strip_prefix("arn:aws:states:::") else {
        return Ok(());
    };
    let base = rest.split('.').next().unwrap_or(rest);
    let (svc, action) = match base.split_once(':') {
        Some(x) => x,
        None => return Ok(()),
    };
    let ok: &[&str] = match svc {
        "dynamodb" => &["getItem", "putItem", "updateItem", "deleteItem"],
        "sqs" => &["sendMessage"],
        "sns" => &["publish"],
        "lambda" => &["invoke"],
        "events" => &["putEvents"],
        "states" => &["startExecution"],
        _ => return Ok(()),
    };
    if ok.contains(&action) {
        Ok(())
    } else {
        Err(format!(
            "The resource provided arn:aws:states:::{svc}:{action} is not recognized. The value is not a valid resource ARN, or the resource is not available in this region."
        ))
    }
}

fn strsource(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    field: &str,
    loc: &str,
    ql: QueryLanguage,
) -> Option<StrSource> {
    let pf = format!("{field}Path");
    if let Some(v) = o.get(field) {
        if o.contains_key(&pf) {
            ctx.schema(
                format!("There should only be one of the following fields: [{field}, {pf}]"),
                loc,
            );
        }
        let Some(s) = v.as_str() else {
            ctx.schema(
                format!("The value for the field '{field}' must be a STRING"),
                &format!("{loc}/{field}"),
            );
            return None;
        };
        if ql == QueryLanguage::JSONata {
            if let Some(e) = jsonata_expr(s) {
                return jexpr(ctx, e, &format!("{loc}/{field}")).map(StrSource::Expr);
            }
        }
        return Some(StrSource::Lit(s.to_string()));
    }
    if let Some(v) = o.get(&pf) {
        let Some(s) = v.as_str() else {
            ctx.schema(
                format!("The value for the field '{pf}' must be a STRING"),
                &format!("{loc}/{pf}"),
            );
            return None;
        };
        if intrinsic::looks_like_call(s) {
            return match intrinsic::parse(s) {
                Ok(c) => Some(StrSource::Intrinsic(Box::new(c))),
                Err(_) => {
                    ctx.schema(
                        format!("The value for the field '{pf}' must be a valid JSONPath or a valid intrinsic function call"),
                        &format!("{loc}/{pf}"),
                    );
                    None
                }
            };
        }
        return parse_path(ctx, v, &pf, &format!("{loc}/{pf}"), false).map(StrSource::Path);
    }
    None
}

fn state(
    ctx: &mut Ctx,
    name: &str,
    sv: &Value,
    loc: &str,
    parent_ql: QueryLanguage,
    index: &HashMap<&str, usize>,
) -> Option<State> {
    let Some(o) = sv.as_object() else {
        ctx.schema("A state must be an OBJECT", loc);
        return None;
    };
    let Some(ty) = o.get("Type").and_then(|t| t.as_str()) else {
        ctx.schema("The field 'Type' is required but was missing", loc);
        return None;
    };
    let ql = get_ql(ctx, o, loc, parent_ql);
    let allow = allowed(ty);
    if allow.is_empty() {
        ctx.schema(
            format!("The value for the field 'Type' must be one of [Task, Pass, Choice, Wait, Succeed, Fail, Parallel, Map]: {ty}"),
            &format!("{loc}/Type"),
        );
        return None;
    }
    for k in o.keys() {
        if COMMON.contains(&k.as_str()) {
            continue;
        }
        if !allow.contains(&k.as_str()) {
            ctx.schema(format!("Field '{k}' is not supported"), loc);
            continue;
        }
        if ql == QueryLanguage::JSONata && JSONPATH_ONLY.contains(&k.as_str()) {
            ctx.schema(
                format!("The QueryLanguage is set to 'JSONata', but field '{k}' is only supported for the 'JSONPath' QueryLanguage"),
                loc,
            );
        }
        if ql == QueryLanguage::JSONPath && JSONATA_ONLY.contains(&k.as_str()) {
            ctx.schema(
                format!("The QueryLanguage is set to 'JSONPath', but field '{k}' is only supported for the 'JSONata' QueryLanguage"),
                loc,
            );
        }
    }
    let terminal_type = matches!(ty, "Choice" | "Succeed" | "Fail");
    let next = if terminal_type {
        None
    } else {
        let end = o.get("End");
        match (o.get("Next"), end) {
            (Some(_), Some(Value::Bool(true))) => {
                ctx.schema("These fields cannot be used together: [Next, End]", loc);
                None
            }
            (Some(n), _) => target(ctx, Some(n), index, &format!("{loc}/Next")),
            (None, Some(Value::Bool(true))) => None,
            (None, _) => {
                ctx.schema("The field 'Next' is required but was missing", loc);
                None
            }
        }
    };
    let parameters = o
        .get("Parameters")
        .filter(|_| ty != "Map")
        .map(|p| template_in(ctx, p, &format!("{loc}/Parameters")));
    let result_selector = o
        .get("ResultSelector")
        .map(|p| template_in(ctx, p, &format!("{loc}/ResultSelector")));
    let arguments = o
        .get("Arguments")
        .map(|a| jtemplate(ctx, a, &format!("{loc}/Arguments")));
    let output = o
        .get("Output")
        .map(|a| jtemplate(ctx, a, &format!("{loc}/Output")));
    let assign_v = assign(ctx, o.get("Assign"), &format!("{loc}/Assign"), ql);
    let mut retry = Vec::new();
    if let Some(r) = o.get("Retry") {
        match r.as_array() {
            Some(a) => {
                for (i, x) in a.iter().enumerate() {
                    let rl = format!("{loc}/Retry[{i}]");
                    let Some(ro) = x.as_object() else {
                        ctx.schema("A retrier must be an OBJECT", &rl);
                        continue;
                    };
                    let ee = error_equals(ctx, ro, &rl);
                    let f = |k: &str| ro.get(k).and_then(|v| v.as_f64());
                    let interval = f("IntervalSeconds").unwrap_or(1.0);
                    let max_attempts = f("MaxAttempts").unwrap_or(3.0);
                    let backoff = f("BackoffRate").unwrap_or(2.0);
                    if interval < 1.0 && ro.contains_key("IntervalSeconds") {
                        ctx.schema(
                            "The value for the field 'IntervalSeconds' must be at least 1",
                            &format!("{rl}/IntervalSeconds"),
                        );
                    }
                    if max_attempts < 0.0 {
                        ctx.schema(
                            "The value for the field 'MaxAttempts' must be a non-negative integer",
                            &format!("{rl}/MaxAttempts"),
                        );
                    }
                    if backoff < 1.0 {
                        ctx.schema(
                            "The value for the field 'BackoffRate' must be at least 1.0",
                            &format!("{rl}/BackoffRate"),
                        );
                    }
                    let jitter = match ro.get("JitterStrategy").and_then(|j| j.as_str()) {
                        None | Some("NONE") => Jitter::None,
                        Some("FULL") => Jitter::Full,
                        Some(_) => {
                            ctx.schema("The value for the field 'JitterStrategy' must be one of [FULL, NONE]", &format!("{rl}/JitterStrategy"));
                            Jitter::None
                        }
                    };
                    retry.push(Retrier {
                        error_equals: ee,
                        interval_seconds: interval,
                        max_attempts: max_attempts as u32,
                        backoff_rate: backoff,
                        max_delay_seconds: f("MaxDelaySeconds"),
                        jitter,
                    });
                }
            }
            None => ctx.schema(
                "The value for the field 'Retry' must be an ARRAY",
                &format!("{loc}/Retry"),
            ),
        }
    }
    let mut catch = Vec::new();
    if let Some(c) = o.get("Catch") {
        match c.as_array() {
            Some(a) => {
                for (i, x) in a.iter().enumerate() {
                    let cl = format!("{loc}/Catch[{i}]");
                    let Some(co) = x.as_object() else {
                        ctx.schema("A catcher must be an OBJECT", &cl);
                        continue;
                    };
                    let ee = error_equals(ctx, co, &cl);
                    let Some(n) = target(ctx, co.get("Next"), index, &format!("{cl}/Next")) else {
                        if co.get("Next").is_none() {
                            ctx.schema("The field 'Next' is required but was missing", &cl);
                        }
                        continue;
                    };
                    catch.push(Catcher {
                        error_equals: ee,
                        next: n,
                        result_path: result_path(ctx, co, &cl),
                        assign: assign(ctx, co.get("Assign"), &format!("{cl}/Assign"), ql),
                        output: co
                            .get("Output")
                            .map(|v| jtemplate(ctx, v, &format!("{cl}/Output"))),
                    });
                }
            }
            None => ctx.schema(
                "The value for the field 'Catch' must be an ARRAY",
                &format!("{loc}/Catch"),
            ),
        }
    }
    let kind = match ty {
        "Pass" => Kind::Pass {
            result: o.get("Result").cloned(),
        },
        "Succeed" => Kind::Succeed,
        "Fail" => Kind::Fail {
            error: strsource(ctx, o, "Error", loc, ql),
            cause: strsource(ctx, o, "Cause", loc, ql),
        },
        "Task" => {
            let resource = match o.get("Resource") {
                Some(Value::String(r)) => {
                    if let Err(m) = known_resource(r) {
                        ctx.schema(m, &format!("{loc}/Resource"));
                    }
                    Arc::from(r.as_str())
                }
                Some(_) => {
                    ctx.schema(
                        "The value for the field 'Resource' must be a STRING",
                        &format!("{loc}/Resource"),
                    );
                    Arc::from("")
                }
                None => {
                    ctx.schema("The field 'Resource' is required but was missing", loc);
                    Arc::from("")
                }
            };
            if let Some(c) = o.get("Credentials") {
                if c.get("RoleArn").is_none() && c.get("RoleArn.$").is_none() {
                    ctx.schema(
                        "The field 'RoleArn' is required but was missing",
                        &format!("{loc}/Credentials"),
                    );
                }
            }
            Kind::Task {
                resource,
                timeout: num_source(ctx, o, "TimeoutSeconds", loc, ql),
                heartbeat: num_source(ctx, o, "HeartbeatSeconds", loc, ql),
            }
        }
        "Wait" => {
            let n = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
                .iter()
                .filter(|k| o.contains_key(**k))
                .count();
            if n != 1 {
                ctx.schema(
                    "Exactly one of these fields is required: [Seconds, SecondsPath, Timestamp, TimestampPath]",
                    loc,
                );
                return None;
            }
            if let Some(t) = o.get("Timestamp") {
                let s = t.as_str().unwrap_or("");
                if ql == QueryLanguage::JSONata && jsonata_expr(s).is_some() {
                    let e = jexpr(
                        ctx,
                        jsonata_expr(s).unwrap_or_default(),
                        &format!("{loc}/Timestamp"),
                    )?;
                    Kind::Wait(WaitSpec::Timestamp(TsSource::Expr(e)))
                } else if !is_rfc3339(s) {
                    ctx.schema(
                        "String does not match RFC3339 timestamp",
                        &format!("{loc}/Timestamp"),
                    );
                    return None;
                } else {
                    Kind::Wait(WaitSpec::Timestamp(TsSource::Lit(s.to_string())))
                }
            } else if let Some(t) = o.get("TimestampPath") {
                let p = parse_path(
                    ctx,
                    t,
                    "TimestampPath",
                    &format!("{loc}/TimestampPath"),
                    false,
                )?;
                Kind::Wait(WaitSpec::Timestamp(TsSource::Path(p)))
            } else {
                let s = num_source(ctx, o, "Seconds", loc, ql)?;
                if let NumSource::Lit(x) = s {
                    if x < 0.0 || x.fract() != 0.0 {
                        ctx.schema(
                            "The value for the field 'Seconds' must be a non-negative integer",
                            &format!("{loc}/Seconds"),
                        );
                    }
                }
                Kind::Wait(WaitSpec::Seconds(s))
            }
        }
        "Choice" => {
            let mut choices = Vec::new();
            match o.get("Choices").and_then(|c| c.as_array()) {
                Some(a) if !a.is_empty() => {
                    for (i, c) in a.iter().enumerate() {
                        let cl = format!("{loc}/Choices[{i}]");
                        let Some(co) = c.as_object() else {
                            ctx.schema("A choice rule must be an OBJECT", &cl);
                            continue;
                        };
                        let rule = if ql == QueryLanguage::JSONata {
                            match co.get("Condition") {
                                Some(c) => Some(Rule::Condition(jtemplate(
                                    ctx,
                                    c,
                                    &format!("{cl}/Condition"),
                                ))),
                                None => {
                                    ctx.schema(
                                        "The field 'Condition' is required but was missing",
                                        &cl,
                                    );
                                    None
                                }
                            }
                        } else {
                            rule(ctx, co, &cl, 0)
                        };
                        let next = match co.get("Next") {
                            None => {
                                ctx.schema("The field 'Next' is required but was missing", &cl);
                                None
                            }
                            n => target(ctx, n, index, &format!("{cl}/Next")),
                        };
                        if let (Some(rule), Some(next)) = (rule, next) {
                            choices.push(ChoiceBranch {
                                rule,
                                next,
                                assign: assign(ctx, co.get("Assign"), &format!("{cl}/Assign"), ql),
                                output: co
                                    .get("Output")
                                    .map(|v| jtemplate(ctx, v, &format!("{cl}/Output"))),
                            });
                        }
                    }
                }
                _ => ctx.schema(
                    "The field 'Choices' is required and must be a non-empty ARRAY",
                    loc,
                ),
            }
            let default = target(ctx, o.get("Default"), index, &format!("{loc}/Default"));
            Kind::Choice { choices, default }
        }
        "Parallel" => {
            let mut branches = Vec::new();
            match o.get("Branches").and_then(|b| b.as_array()) {
                Some(a) if !a.is_empty() => {
                    for (i, b) in a.iter().enumerate() {
                        let bl = format!("{loc}/Branches[{i}]");
                        match b.as_object() {
                            Some(bo) => {
                                if let Some(m) = machine(ctx, bo, &bl, ql, false) {
                                    branches.push(m);
                                }
                            }
                            None => ctx.schema("A branch must be an OBJECT", &bl),
                        }
                    }
                }
                _ => ctx.schema(
                    "The field 'Branches' is required and must be a non-empty ARRAY",
                    loc,
                ),
            }
            Kind::Parallel { branches }
        }
        "Map" => Kind::Map(Box::new(map_spec(ctx, o, loc, ql)?)),
        _ => return None,
    };
    Some(State {
        name: Arc::from(name),
        ql,
        next,
        kind,
        input_path: path_opt(ctx, o, "InputPath", loc),
        output_path: path_opt(ctx, o, "OutputPath", loc),
        parameters,
        result_selector,
        result_path: result_path(ctx, o, loc),
        arguments,
        output,
        assign: assign_v,
        retry,
        catch,
        jsonata_context: ql == QueryLanguage::JSONata && mentions_context(sv),
    })
}

/// True when a string of the state (outside nested branches/processors) uses `$states`
/// other than as `$states.input`, `$states.result` or `$states.errorOutput`.
fn mentions_context(v: &Value) -> bool {
    match v {
        Value::String(s) => s.match_indices("$states").any(|(i, _)| {
            let rest = &s[i + "$states".len()..];
            !(rest.starts_with(".input")
                || rest.starts_with(".result")
                || rest.starts_with(".errorOutput"))
        }),
        Value::Array(a) => a.iter().any(mentions_context),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "Branches" | "ItemProcessor" | "Iterator"))
            .any(|(_, x)| mentions_context(x)),
        _ => false,
    }
}

fn map_spec(
    ctx: &mut Ctx,
    o: &Map<String, Value>,
    loc: &str,
    ql: QueryLanguage,
) -> Option<MapSpec> {
    let (proc_v, field) = match (o.get("ItemProcessor"), o.get("Iterator")) {
        (Some(p), _) => (p, "ItemProcessor"),
        (None, Some(i)) => (i, "Iterator"),
        (None, None) => {
            ctx.schema("The field 'ItemProcessor' is required but was missing", loc);
            return None;
        }
    };
    let Some(po) = proc_v.as_object() else {
        ctx.schema(
            format!("The value for the field '{field}' must be an OBJECT"),
            &format!("{loc}/{field}"),
        );
        return None;
    };
    let mode = match po
        .get("ProcessorConfig")
        .and_then(|c| c.get("Mode"))
        .and_then(|m| m.as_str())
    {
        None | Some("INLINE") => MapMode::Inline,
        Some("DISTRIBUTED") => MapMode::Distributed,
        Some(m) => {
            ctx.schema(
                format!("The value for the field 'Mode' must be one of [INLINE, DISTRIBUTED]: {m}"),
                &format!("{loc}/{field}/ProcessorConfig/Mode"),
            );
            MapMode::Inline
        }
    };
    let processor = machine(ctx, po, &format!("{loc}/{field}"), ql, false)?;
    let items_path = match o.get("ItemsPath") {
        Some(v) => parse_path(ctx, v, "ItemsPath", &format!("{loc}/ItemsPath"), false),
        None => None,
    };
    let sel = o.get("ItemSelector").or_else(|| o.get("Parameters"));
    let (item_selector, item_selector_j) = match (sel, ql) {
        (Some(s), QueryLanguage::JSONPath) => (
            Some(template_in(ctx, s, &format!("{loc}/ItemSelector"))),
            None,
        ),
        (Some(s), QueryLanguage::JSONata) => (
            None,
            Some(jtemplate(ctx, s, &format!("{loc}/ItemSelector"))),
        ),
        (None, _) => (None, None),
    };
    let batcher = o
        .get("ItemBatcher")
        .and_then(|b| b.as_object())
        .map(|b| ItemBatcher {
            max_items: num_source(
                ctx,
                b,
                "MaxItemsPerBatch",
                &format!("{loc}/ItemBatcher"),
                ql,
            ),
            max_bytes: num_source(
                ctx,
                b,
                "MaxInputBytesPerBatch",
                &format!("{loc}/ItemBatcher"),
                ql,
            ),
            batch_input: b.get("BatchInput").cloned(),
        });
    let mut reader_items = None;
    let mut reader_resource = None;
    if let Some(r) = o.get("ItemReader") {
        match r.get("Resource").and_then(|x| x.as_str()) {
            // Valid in Step Functions; reading S3 is refused when the state runs.
            Some(res) => reader_resource = Some(res.to_string()),
            None => reader_items = r.get("Items").cloned(),
        }
    }
    Some(MapSpec {
        processor,
        mode,
        items_path,
        items: o
            .get("Items")
            .map(|v| jtemplate(ctx, v, &format!("{loc}/Items"))),
        item_selector,
        item_selector_j,
        max_concurrency: num_source(ctx, o, "MaxConcurrency", loc, ql),
        tolerated_count: num_source(ctx, o, "ToleratedFailureCount", loc, ql),
        tolerated_percentage: num_source(ctx, o, "ToleratedFailurePercentage", loc, ql),
        batcher,
        reader_items,
        reader_resource,
        label: o.get("Label").and_then(|l| l.as_str()).map(str::to_string),
    })
}

fn cmp_kind(name: &str) -> Option<(CmpKind, bool)> {
    use CmpKind::*;
    let (base, path) = match name.strip_suffix("Path") {
        Some(b) if b != "Is" => (b, true),
        _ => (name, false),
    };
    let k = match base {
        "StringEquals" => StringEquals,
        "StringLessThan" => StringLessThan,
        "StringGreaterThan" => StringGreaterThan,
        "StringLessThanEquals" => StringLessThanEquals,
        "StringGreaterThanEquals" => StringGreaterThanEquals,
        "StringMatches" if !path => StringMatches,
        "NumericEquals" => NumericEquals,
        "NumericLessThan" => NumericLessThan,
        "NumericGreaterThan" => NumericGreaterThan,
        "NumericLessThanEquals" => NumericLessThanEquals,
        "NumericGreaterThanEquals" => NumericGreaterThanEquals,
        "BooleanEquals" => BooleanEquals,
        "TimestampEquals" => TimestampEquals,
        "TimestampLessThan" => TimestampLessThan,
        "TimestampGreaterThan" => TimestampGreaterThan,
        "TimestampLessThanEquals" => TimestampLessThanEquals,
        "TimestampGreaterThanEquals" => TimestampGreaterThanEquals,
        "IsNull" if !path => IsNull,
        "IsPresent" if !path => IsPresent,
        "IsNumeric" if !path => IsNumeric,
        "IsString" if !path => IsString,
        "IsBoolean" if !path => IsBoolean,
        "IsTimestamp" if !path => IsTimestamp,
        _ => return None,
    };
    Some((k, path))
}

fn rule(ctx: &mut Ctx, o: &Map<String, Value>, loc: &str, depth: usize) -> Option<Rule> {
    if depth > 64 {
        ctx.schema("Choice rules are nested too deeply", loc);
        return None;
    }
    if let Some(a) = o.get("And").or_else(|| o.get("Or")) {
        let is_and = o.contains_key("And");
        let key = if is_and { "And" } else { "Or" };
        let Some(arr) = a.as_array().filter(|a| !a.is_empty()) else {
            ctx.schema(
                format!("The value for the field '{key}' must be a non-empty ARRAY"),
                &format!("{loc}/{key}"),
            );
            return None;
        };
        let mut rules = Vec::new();
        for (i, r) in arr.iter().enumerate() {
            let rl = format!("{loc}/{key}[{i}]");
            match r.as_object() {
                Some(ro) => rules.push(rule(ctx, ro, &rl, depth + 1)?),
                None => ctx.schema("A choice rule must be an OBJECT", &rl),
            }
        }
        return Some(if is_and {
            Rule::And(rules)
        } else {
            Rule::Or(rules)
        });
    }
    if let Some(n) = o.get("Not") {
        let Some(no) = n.as_object() else {
            ctx.schema(
                "The value for the field 'Not' must be an OBJECT",
                &format!("{loc}/Not"),
            );
            return None;
        };
        return Some(Rule::Not(Box::new(rule(
            ctx,
            no,
            &format!("{loc}/Not"),
            depth + 1,
        )?)));
    }
    let Some(var) = o.get("Variable") else {
        ctx.schema("The field 'Variable' is required but was missing", loc);
        return None;
    };
    let variable = parse_path(ctx, var, "Variable", &format!("{loc}/Variable"), false)?;
    let mut found = None;
    for (k, v) in o {
        if matches!(
            k.as_str(),
            "Variable" | "Next" | "Comment" | "Assign" | "Output"
        ) {
            continue;
        }
        match cmp_kind(k) {
            Some((kind, is_path)) => {
                if found.is_some() {
                    ctx.schema(
                        "A choice rule must have exactly one comparison operator",
                        loc,
                    );
                    return None;
                }
                let operand = if is_path {
                    Operand::Path(parse_path(ctx, v, k, &format!("{loc}/{k}"), false)?)
                } else {
                    let ok = match kind {
                        CmpKind::StringEquals
                        | CmpKind::StringLessThan
                        | CmpKind::StringGreaterThan
                        | CmpKind::StringLessThanEquals
                        | CmpKind::StringGreaterThanEquals
                        | CmpKind::StringMatches => v.is_string(),
                        CmpKind::NumericEquals
                        | CmpKind::NumericLessThan
                        | CmpKind::NumericGreaterThan
                        | CmpKind::NumericLessThanEquals
                        | CmpKind::NumericGreaterThanEquals => v.is_number(),
                        CmpKind::TimestampEquals
                        | CmpKind::TimestampLessThan
                        | CmpKind::TimestampGreaterThan
                        | CmpKind::TimestampLessThanEquals
                        | CmpKind::TimestampGreaterThanEquals => {
                            v.as_str().and_then(parse_timestamp).is_some()
                        }
                        _ => v.is_boolean(),
                    };
                    if !ok {
                        ctx.schema(
                            format!("The value for the field '{k}' has an invalid type"),
                            &format!("{loc}/{k}"),
                        );
                        return None;
                    }
                    Operand::Value(v.clone())
                };
                found = Some(Rule::Compare {
                    variable: variable.clone(),
                    kind,
                    operand,
                });
            }
            None => {
                ctx.schema(
                    format!("Field '{k}' is not supported"),
                    &format!("{loc}/{k}"),
                );
                return None;
            }
        }
    }
    if found.is_none() {
        ctx.schema("A choice rule must have a comparison operator", loc);
    }
    found
}

/// The number of states including nested branches and processors.
pub fn count_states(m: &Machine) -> usize {
    m.states
        .iter()
        .map(|s| {
            1 + match &s.kind {
                Kind::Parallel { branches } => branches.iter().map(count_states).sum(),
                Kind::Map(spec) => count_states(&spec.processor),
                _ => 0,
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn valid_minimal() {
        let m = parse(&json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}))
            .unwrap();
        assert_eq!(m.root.states.len(), 1);
    }

    #[test]
    fn aws_messages() {
        assert_eq!(
            err(json!({"StartAt": "A"})),
            "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: These fields are required: [States] at /'"
        );
        assert!(
            err(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}))
                .contains("MISSING_TRANSITION_TARGET: Missing 'Next' target: B at /States/A/Next")
        );
        assert!(err(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}, "B": {"Type": "Pass", "End": true}}}))
            .contains("MISSING_TRANSITION_TARGET: State \"B\" is not reachable. at /States/B"));
        assert!(err(json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "Timestamp": "2016-12-05T21:29:29", "End": true}}}))
            .contains("String does not match RFC3339 timestamp at /States/A/Timestamp"));
        assert!(err(json!({"StartAt": "A", "QueryLanguage": "JSONata", "States": {"A": {"Type": "Pass", "InputPath": "$", "End": true}}}))
            .contains("InputPath"));
    }

    #[test]
    fn graph_diagnostics_like_aws() {
        assert_eq!(
            err(json!({"StartAt": "pass1", "States": {
                "pass1": {"Type": "Pass", "Next": "pass3"},
                "pass2": {"Type": "Pass", "End": true}}})),
            "Invalid State Machine Definition: 'MISSING_TRANSITION_TARGET: Missing 'Next' target: pass3 at /States/pass1/Next, MISSING_TRANSITION_TARGET: State \"pass2\" is not reachable. at /States/pass2'"
        );
        assert_eq!(
            err(json!({"StartAt": "A", "States": {
                "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"},
                "C": {"Type": "Pass", "Next": "A"}}})),
            "Invalid State Machine Definition: 'MISSING_END_STATE: Workflow has no terminal state at null'"
        );
        assert!(err(json!({"StartAt": "Nope", "States": {"A": {"Type": "Pass", "End": true}}}))
            .starts_with("Invalid State Machine Definition: 'MISSING_TRANSITION_TARGET: Missing 'Next' target: Nope at /StartAt, MISSING_TRANSITION_TARGET: State \"A\" is not reachable."));
    }

    #[test]
    fn field_rules_like_aws() {
        assert!(err(json!({"StartAt": "M", "States": {"M": {"Type": "Pass", "TimeoutSeconds": 3, "End": true}}}))
            .contains("SCHEMA_VALIDATION_FAILED: Field 'TimeoutSeconds' is not supported at /States/M"));
        assert!(err(json!({"StartAt": "M", "QueryLanguage": "JSONata", "States": {"M": {"Type": "Pass", "OutputPath": "$", "End": true}}}))
            .contains("The QueryLanguage is set to 'JSONata', but field 'OutputPath' is only supported for the 'JSONPath' QueryLanguage at /States/M"));
        assert!(err(json!({"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": "x", "TimeoutSeconds": 1, "TimeoutSecondsPath": "$.t", "End": true}}}))
            .contains("There should only be one of the following fields: [TimeoutSeconds, TimeoutSecondsPath]"));
        assert!(err(json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:query", "End": true}}}))
            .contains("is not recognized"));
    }

    #[test]
    fn non_object_and_bad_json() {
        assert!(parse_text(" ")
            .unwrap_err()
            .to_string()
            .contains("Definition must be a valid JSON object"));
        assert!(parse_text("not a definition").is_err());
        assert!(parse(&json!([1])).is_err());
    }
}
