//! `marketplace states ...`: run and validate Amazon States Language definitions.

use anyhow::{bail, Context};
use asl::{
    Clock, Execution, ExecutionInfo, MockTasks, NoTasks, RunOptions, StateMachine, SystemClock,
    TaskHandler, VirtualClock,
};
use clap::Subcommand;
use serde_json::{json, Value};
use std::time::Instant;

#[derive(Subcommand)]
pub enum StatesCommand {
    /// Run a state machine once (prints the outcome and history) or N times (prints throughput).
    Run {
        /// The ASL definition (JSON file).
        #[arg(long)]
        definition: String,
        /// Execution input: JSON text, or @FILE.
        #[arg(long, default_value = "{}")]
        input: String,
        /// AWS Step Functions Local MockConfigFile with the task results.
        #[arg(long, requires_all = ["state_machine_name", "test_case"])]
        mock_config: Option<String>,
        /// State machine name in the mock config.
        #[arg(long)]
        state_machine_name: Option<String>,
        /// Test case name in the mock config.
        #[arg(long)]
        test_case: Option<String>,
        /// Run N executions and report throughput instead of the outcome.
        #[arg(long)]
        repeat: Option<u64>,
        /// Wait states wait in real time instead of on a virtual clock.
        #[arg(long)]
        real_time: bool,
    },
    /// Validate definitions; exit 0 when all are valid.
    Validate {
        /// Definition files.
        #[arg(required = true)]
        files: Vec<String>,
    },
}

fn read_input(arg: &str) -> anyhow::Result<Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading input file {path}"))?
        }
        None => arg.to_string(),
    };
    serde_json::from_str(&text).context("--input is not valid JSON")
}

fn load_definition(path: &str) -> anyhow::Result<Result<StateMachine, asl::InvalidDefinition>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading definition {path}"))?;
    Ok(asl::parse_definition_text(&text))
}

fn make_tasks(
    mock_config: &Option<String>,
    sm_name: &Option<String>,
    test_case: &Option<String>,
) -> anyhow::Result<Box<dyn TaskHandler>> {
    match mock_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading mock config {path}"))?;
            let cfg: Value =
                serde_json::from_str(&text).context("mock config is not valid JSON")?;
            let sm = sm_name.as_deref().unwrap_or_default();
            let tc = test_case.as_deref().unwrap_or_default();
            Ok(Box::new(MockTasks::from_config(&cfg, sm, tc)?))
        }
        None => Ok(Box::new(NoTasks)),
    }
}

fn info(sm_name: &Option<String>) -> ExecutionInfo {
    ExecutionInfo {
        state_machine_name: sm_name.clone().unwrap_or_else(|| "StateMachine".into()),
        ..ExecutionInfo::default()
    }
}

pub fn run(cmd: StatesCommand) -> anyhow::Result<i32> {
    match cmd {
        StatesCommand::Validate { files } => {
            let mut ok = true;
            for f in &files {
                match load_definition(f)? {
                    Ok(_) => println!("{f}: valid"),
                    Err(e) => {
                        ok = false;
                        eprintln!("InvalidDefinition: {f}: {e}");
                    }
                }
            }
            Ok(if ok { 0 } else { 2 })
        }
        StatesCommand::Run {
            definition,
            input,
            mock_config,
            state_machine_name,
            test_case,
            repeat,
            real_time,
        } => {
            let sm = match load_definition(&definition)? {
                Ok(sm) => sm,
                Err(e) => {
                    eprintln!("InvalidDefinition: {e}");
                    return Ok(2);
                }
            };
            let input = read_input(&input)?;
            if let Some(n) = repeat {
                if n == 0 {
                    bail!("--repeat must be at least 1");
                }
                return repeat_runs(
                    &sm,
                    &input,
                    n,
                    &mock_config,
                    &state_machine_name,
                    &test_case,
                );
            }
            let out = run_once(
                &sm,
                input,
                &mock_config,
                &state_machine_name,
                &test_case,
                real_time,
            )?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(0)
        }
    }
}

/// Runs one execution and renders the contract's result object.
fn run_once(
    sm: &StateMachine,
    input: Value,
    mock_config: &Option<String>,
    sm_name: &Option<String>,
    test_case: &Option<String>,
    real_time: bool,
) -> anyhow::Result<Value> {
    let mut tasks = make_tasks(mock_config, sm_name, test_case)?;
    let vclock = VirtualClock::at_epoch_2024();
    let clock: &dyn Clock = if real_time { &SystemClock } else { &vclock };
    let mut exec = Execution::new(input, info(sm_name), 0x5eed, clock);
    let status = exec.run(sm, tasks.as_mut(), clock);
    let st = exec.state();
    let history: Vec<Value> = st.history.iter().map(|e| e.to_json()).collect();
    Ok(json!({
        // RUNNING only if a task handler left the execution waiting for a callback.
        "status": status.as_str(),
        "output": st.output.clone().unwrap_or(Value::Null),
        "error": st.error,
        "cause": st.cause,
        "history": history,
    }))
}

fn repeat_runs(
    sm: &StateMachine,
    input: &Value,
    n: u64,
    mock_config: &Option<String>,
    sm_name: &Option<String>,
    test_case: &Option<String>,
) -> anyhow::Result<i32> {
    let clock = VirtualClock::at_epoch_2024();
    let info = info(sm_name);
    let mut transitions = 0u64;
    // Read the mock config once; every execution starts from fresh invocation counters.
    let mocks = match mock_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading mock config {path}"))?;
            let cfg: Value =
                serde_json::from_str(&text).context("mock config is not valid JSON")?;
            Some(MockTasks::from_config(
                &cfg,
                sm_name.as_deref().unwrap_or_default(),
                test_case.as_deref().unwrap_or_default(),
            )?)
        }
        None => None,
    };
    let start = Instant::now();
    for i in 0..n {
        let mut tasks: Box<dyn TaskHandler> = match &mocks {
            Some(m) => Box::new(m.clone()),
            None => Box::new(NoTasks),
        };
        let mut exec = Execution::new(input.clone(), info.clone(), i, &clock);
        exec.run_with(sm, tasks.as_mut(), &clock, RunOptions::default());
        transitions += exec.state().transitions;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let out = json!({
        "executions": n,
        "seconds": secs,
        "executions_per_second": n as f64 / secs,
        "state_transitions_per_second": transitions as f64 / secs,
    });
    println!("{}", serde_json::to_string(&out)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, v: &Value) -> String {
        let dir = std::env::temp_dir().join(format!("asl-cli-{}-{name}", std::process::id()));
        std::fs::write(&dir, serde_json::to_string(v).unwrap()).unwrap();
        dir.to_string_lossy().into_owned()
    }

    #[test]
    fn runs_with_a_mock_config() {
        let sm = asl::parse_definition(&json!({
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:111111111111:function:f", "End": true}}
        }))
        .unwrap();
        let cfg = write(
            "mock.json",
            &json!({"StateMachines": {"M": {"TestCases": {"C": {"T": "R"}}}},
                    "MockedResponses": {"R": {"0": {"Return": {"StatusCode": 200, "Payload": {"ok": 1}}}}}}),
        );
        let out = run_once(
            &sm,
            json!({}),
            &Some(cfg),
            &Some("M".into()),
            &Some("C".into()),
            false,
        )
        .unwrap();
        assert_eq!(out["status"], "SUCCEEDED");
        assert_eq!(out["output"], json!({"ok": 1}));
        let types: Vec<&str> = out["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "ExecutionStarted",
                "TaskStateEntered",
                "LambdaFunctionScheduled",
                "LambdaFunctionStarted",
                "LambdaFunctionSucceeded",
                "TaskStateExited",
                "ExecutionSucceeded"
            ]
        );
    }

    #[test]
    fn invalid_definition_exits_2() {
        let def = write("bad.json", &json!({"StartAt": "A"}));
        let code = run(StatesCommand::Run {
            definition: def.clone(),
            input: "{}".into(),
            mock_config: None,
            state_machine_name: None,
            test_case: None,
            repeat: None,
            real_time: false,
        })
        .unwrap();
        assert_eq!(code, 2);
        assert_eq!(
            run(StatesCommand::Validate { files: vec![def] }).unwrap(),
            2
        );
    }

    #[test]
    fn input_from_file_or_text() {
        let f = write("input.json", &json!({"a": 1}));
        assert_eq!(read_input(&format!("@{f}")).unwrap(), json!({"a": 1}));
        assert_eq!(read_input("[1]").unwrap(), json!([1]));
        assert!(read_input("{").is_err());
    }
}
