//! `marketplace`: the Ecosystem Marketplace on one machine.

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use marketplace_local::client::Client;
use marketplace_local::runtime::{Config, Runtime};
use marketplace_local::{server, util};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The handlers, the bus and the interpreter allocate many small JSON values; mimalloc
/// serves them with less contention and CPU than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod cli;
mod demo;

#[derive(Parser)]
#[command(
    name = "marketplace",
    version,
    about = "The Ecosystem Marketplace backend on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole marketplace: bus, workflows, GraphQL API, on one machine.
    Serve(ServeArgs),
    /// Publish an event on the running server's bus (PutEvents).
    Publish(PublishArgs),
    /// Workflow executions on the running server.
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
    /// Complete or fail a task a workflow waits on (task token callbacks).
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// EventBridge patterns (offline) and the running server's archive.
    #[command(subcommand)]
    Events(EventsCli),
    /// Dead letters of the running server.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The running server's virtual clock.
    #[command(subcommand)]
    Clock(ClockCommand),
    /// Tokens for the GraphQL API (bearer JWTs with sub and cognito:groups).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Step Functions state machines: run and validate ASL definitions.
    #[command(subcommand)]
    States(cli::states::StatesCommand),
    /// Start a server on a virtual clock and drive the four workflows through it.
    Demo(demo::DemoArgs),
    /// Measure the runtime's throughput (PutEvents with rules, workflow executions).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Data directory (created when missing).
    #[arg(long, default_value = "./.marketplace")]
    data_dir: PathBuf,
    /// API key clients send as x-api-key (default: the data directory's, generated once).
    #[arg(long)]
    api_key: Option<String>,
    /// Key of the admin API, sent as x-admin-key (default: MARKETPLACE_ADMIN_KEY, else the
    /// data directory's, generated once; written to DATA_DIR/admin.key, owner-only).
    #[arg(long)]
    admin_key: Option<String>,
    /// real, or virtual (time moves only with `marketplace clock advance`).
    #[arg(long, default_value = "real", value_parser = ["real", "virtual"])]
    clock: String,
    /// Rules file instead of the built-in infra/rules.json.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Directory of state machine definitions instead of the built-in statemachines/.
    #[arg(long)]
    statemachines: Option<PathBuf>,
    /// Workflow worker threads (event deliveries run on half as many, at least one).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Log level: error, warn, info, debug.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// How client commands find the server.
#[derive(Args, Clone)]
struct ClientArgs {
    /// Server URL (default: from DATA_DIR/server.json, else http://127.0.0.1:8080).
    #[arg(long, global = true)]
    url: Option<String>,
    /// API key of the GraphQL API (default: from DATA_DIR/server.json or MARKETPLACE_API_KEY).
    /// It does not open the admin API the client commands use.
    #[arg(long, global = true)]
    api_key: Option<String>,
    /// Admin key (default: MARKETPLACE_ADMIN_KEY, else DATA_DIR/admin.key).
    #[arg(long, global = true)]
    admin_key: Option<String>,
    /// A bearer token of the admin group instead of the admin key.
    #[arg(long, global = true)]
    token: Option<String>,
    /// Data directory of the server (to read its server.json).
    #[arg(long, global = true, default_value = "./.marketplace")]
    data_dir: PathBuf,
}

#[derive(Args)]
struct PublishArgs {
    /// Source, e.g. marketplace.booking.
    #[arg(long, required_unless_present = "entries")]
    source: Option<String>,
    /// Detail type, e.g. "Booking Created".
    #[arg(long, required_unless_present = "entries")]
    detail_type: Option<String>,
    /// Detail (JSON text or @FILE).
    #[arg(long, required_unless_present = "entries")]
    detail: Option<String>,
    /// A JSON file of PutEvents entries (Source, DetailType, Detail, ...).
    #[arg(long, conflicts_with_all = ["source", "detail_type", "detail"])]
    entries: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum WorkflowsCommand {
    /// Start an execution.
    Start {
        /// BOOKING_LIFECYCLE, PAYMENT_PROCESSING, DISPUTE_RESOLUTION, PROVIDER_ONBOARDING.
        #[arg(long = "type")]
        workflow_type: String,
        /// Execution name (unique per workflow).
        #[arg(long)]
        name: Option<String>,
        /// Input (JSON text or @FILE).
        #[arg(long, default_value = "{}")]
        input: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Describe an execution.
    Status {
        /// Execution ARN.
        arn: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop an execution.
    Stop {
        /// Execution ARN.
        arn: String,
        /// Error name.
        #[arg(long)]
        error: Option<String>,
        /// Cause.
        #[arg(long)]
        cause: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List executions, newest first.
    List {
        /// Only this workflow type.
        #[arg(long = "type")]
        workflow_type: Option<String>,
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The history of an execution.
    History {
        /// Execution ARN.
        arn: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum TasksCommand {
    /// SendTaskSuccess.
    Success {
        /// Task token.
        #[arg(value_name = "TASK_TOKEN")]
        task_token: String,
        /// Output (JSON text or @FILE).
        #[arg(long, default_value = "{}")]
        output: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// SendTaskFailure.
    Failure {
        /// Task token.
        #[arg(value_name = "TASK_TOKEN")]
        task_token: String,
        /// Error name.
        #[arg(long)]
        error: Option<String>,
        /// Cause.
        #[arg(long)]
        cause: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// SendTaskHeartbeat.
    Heartbeat {
        /// Task token.
        #[arg(value_name = "TASK_TOKEN")]
        task_token: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum EventsCli {
    /// Replay archived events of a time window to the rules that match them now.
    Replay {
        /// Window start (RFC 3339 or epoch milliseconds; default: the beginning).
        #[arg(long)]
        start: Option<String>,
        /// Window end (default: now).
        #[arg(long)]
        end: Option<String>,
        /// Only events this pattern matches (JSON).
        #[arg(long)]
        pattern: Option<String>,
        /// Replay name (carried in the events' replay-name).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The archived events after a sequence number (the event flow).
    List {
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    #[command(flatten)]
    Patterns(cli::events::EventsCommand),
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Dead letters not yet redriven.
    List {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send dead letters back to their targets.
    Redrive {
        /// Only these ids (default: all).
        #[arg(long = "id")]
        ids: Vec<i64>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum ClockCommand {
    /// Move the virtual clock forward, e.g. `24h`, `90m`, `7d`.
    Advance {
        /// Duration.
        duration: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the server's time.
    Now {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token: offline from --data-dir's signing key, or through the server with --url.
    Mint {
        /// The user id (sub).
        #[arg(long)]
        sub: String,
        /// Comma-separated cognito:groups, e.g. admin.
        #[arg(long, default_value = "")]
        groups: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Reads `@FILE` or returns the text itself.
fn text_or_file(arg: &str) -> anyhow::Result<String> {
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}")),
        None => Ok(arg.to_string()),
    }
}

fn json_arg(arg: &str, what: &str) -> anyhow::Result<Value> {
    let text = text_or_file(arg)?;
    serde_json::from_str(&text).with_context(|| format!("{what}: not valid JSON"))
}

/// The discovery file a server writes into its data directory.
pub const SERVER_FILE: &str = "server.json";

/// The file of the data directory holding the admin key (owner-only permissions).
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// The kv entry of the data directory's generated admin key.
const ADMIN_KEY_KV: &str = "admin_key";

/// Writes a secret readable by its owner only.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", path.display()))?;
        }
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{secret}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The admin key the client commands send: --admin-key, MARKETPLACE_ADMIN_KEY, or the
/// data directory's admin.key.
fn admin_key_of(a: &ClientArgs) -> Option<String> {
    a.admin_key
        .clone()
        .or_else(|| std::env::var("MARKETPLACE_ADMIN_KEY").ok())
        .or_else(|| {
            std::fs::read_to_string(a.data_dir.join(ADMIN_KEY_FILE))
                .ok()
                .map(|k| k.trim().to_string())
        })
        .filter(|k| !k.is_empty())
}

fn server_info(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(SERVER_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

fn client(a: &ClientArgs) -> anyhow::Result<Client> {
    let info = server_info(&a.data_dir);
    let url = a
        .url
        .clone()
        .or_else(|| {
            info.as_ref()
                .and_then(|i| i["url"].as_str().map(str::to_string))
        })
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let mut c = Client::new(&url)?;
    if let Some(t) = &a.token {
        c = c.with_header("authorization", &format!("Bearer {t}"));
    } else {
        if let Some(k) = admin_key_of(a) {
            c = c.with_header("x-admin-key", &k);
        }
        // Sent too, so that a server refusing it for the admin API can say why.
        let key = a
            .api_key
            .clone()
            .or_else(|| std::env::var("MARKETPLACE_API_KEY").ok())
            .or_else(|| {
                info.as_ref()
                    .and_then(|i| i["apiKey"].as_str().map(str::to_string))
            });
        if let Some(k) = key {
            c = c.with_header("x-api-key", &k);
        }
    }
    Ok(c)
}

/// Sends an admin request and prints the JSON answer; non-2xx answers are errors.
fn call(a: &ClientArgs, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<i32> {
    let c = client(a)?;
    let r = match body {
        Some(b) => c.request(method, path, Some(&b.to_string()), &[])?,
        None => c.request(method, path, None, &[])?,
    };
    let v = r.json();
    if (200..300).contains(&r.status) {
        println!("{}", serde_json::to_string_pretty(&v)?);
        Ok(0)
    } else {
        eprintln!(
            "{}: {}",
            v["errorType"]
                .as_str()
                .or(v["errors"][0]["errorType"].as_str())
                .unwrap_or("Error"),
            v["message"]
                .as_str()
                .or(v["errors"][0]["message"].as_str())
                .unwrap_or(&r.body)
        );
        Ok(1)
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `serve` until SIGINT/SIGTERM.
fn serve(a: ServeArgs) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    util::set_log_level(&a.log_level);
    let cfg = Config {
        data_dir: a.data_dir.clone(),
        rules_file: a.rules.clone(),
        statemachines_dir: a.statemachines.clone(),
        virtual_clock: a.clock == "virtual",
        api_key: a.api_key.clone(),
        workers: a.workers,
    };
    let rt = match Runtime::open(&cfg) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    let fixed_admin_key = a
        .admin_key
        .clone()
        .or_else(|| std::env::var("MARKETPLACE_ADMIN_KEY").ok());
    let admin_key = match &fixed_admin_key {
        Some(k) if k.trim().len() >= 16 => k.trim().to_string(),
        Some(_) => {
            eprintln!("--admin-key: must be at least 16 characters");
            return Ok(2);
        }
        None => rt
            .store
            .kv_get_or_init(ADMIN_KEY_KV, || format!("mka-{}", util::random_hex(24)))?,
    };
    write_secret(&a.data_dir.join(ADMIN_KEY_FILE), &admin_key)?;
    let schema = Arc::new(
        marketplace_local::graphql::Schema::parse(marketplace_local::graphql::SCHEMA_SDL)
            .context("schema.graphql")?,
    );
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let rt2 = rt.clone();
    let data_dir = a.data_dir.clone();
    let code = tokio_rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((a.bind.as_str(), a.port))
            .await
            .with_context(|| format!("binding {}:{}", a.bind, a.port))?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let resumed = rt2.start(cfg.workers)?;
        let info = json!({"url": url, "apiKey": rt2.api_key, "pid": std::process::id()});
        std::fs::write(a.data_dir.join(SERVER_FILE), info.to_string())
            .with_context(|| format!("writing {}", a.data_dir.join(SERVER_FILE).display()))?;
        println!("marketplace listening on {url}");
        println!("api key: {}", rt2.api_key);
        println!("admin key: {admin_key}");
        println!("ready in {} ms", started.elapsed().as_millis());
        rt2.log_ready(&url, resumed);
        let app = server::router(server::AppState {
            rt: rt2.clone(),
            schema,
            admin_key: admin_key.as_str().into(),
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
        anyhow::Ok(0)
    })?;
    rt.shutdown();
    let _ = std::fs::remove_file(data_dir.join(SERVER_FILE));
    Ok(code)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(a) => serve(a),
        Command::States(cmd) => cli::states::run(cmd),
        Command::Events(EventsCli::Patterns(cmd)) => cli::events::run(cmd),
        Command::Events(EventsCli::Replay {
            start,
            end,
            pattern,
            name,
            client,
        }) => {
            let pattern = match pattern {
                Some(p) => Some(json_arg(&p, "--pattern")?),
                None => None,
            };
            call(
                &client,
                "POST",
                "/admin/events/replay",
                Some(json!({"start": start, "end": end, "pattern": pattern, "name": name})),
            )
        }
        Command::Events(EventsCli::List {
            after,
            limit,
            client,
        }) => call(
            &client,
            "GET",
            &format!("/admin/events?after={after}&limit={limit}"),
            None,
        ),
        Command::Publish(a) => {
            let entries = match &a.entries {
                Some(f) => {
                    let v: Value = serde_json::from_str(
                        &std::fs::read_to_string(f)
                            .with_context(|| format!("reading {}", f.display()))?,
                    )
                    .with_context(|| format!("{}: not valid JSON", f.display()))?;
                    match v {
                        Value::Array(_) => v,
                        Value::Object(ref o) if o.contains_key("Entries") => v["Entries"].clone(),
                        _ => bail!(
                            "{}: expected an array of entries or {{\"Entries\": [...]}}",
                            f.display()
                        ),
                    }
                }
                None => {
                    let detail = text_or_file(a.detail.as_deref().unwrap_or("{}"))?;
                    json!([{"Source": a.source, "DetailType": a.detail_type, "Detail": detail}])
                }
            };
            call(
                &a.client,
                "POST",
                "/admin/publish",
                Some(json!({"Entries": entries})),
            )
        }
        Command::Workflows(w) => match w {
            WorkflowsCommand::Start {
                workflow_type,
                name,
                input,
                client,
            } => {
                let input = json_arg(&input, "--input")?;
                call(
                    &client,
                    "POST",
                    "/admin/workflows/start",
                    Some(json!({"workflowType": workflow_type, "name": name, "input": input})),
                )
            }
            WorkflowsCommand::Status { arn, client } => call(
                &client,
                "GET",
                &format!("/admin/workflows/status?executionArn={}", enc(&arn)),
                None,
            ),
            WorkflowsCommand::Stop {
                arn,
                error,
                cause,
                client,
            } => call(
                &client,
                "POST",
                "/admin/workflows/stop",
                Some(json!({"executionArn": arn, "error": error, "cause": cause})),
            ),
            WorkflowsCommand::List {
                workflow_type,
                status,
                limit,
                client,
            } => {
                let mut q = format!("/admin/workflows/list?limit={limit}");
                if let Some(t) = workflow_type {
                    q.push_str(&format!("&workflowType={}", enc(&t)));
                }
                if let Some(s) = status {
                    q.push_str(&format!("&status={}", enc(&s)));
                }
                call(&client, "GET", &q, None)
            }
            WorkflowsCommand::History { arn, client } => call(
                &client,
                "GET",
                &format!("/admin/workflows/history?executionArn={}", enc(&arn)),
                None,
            ),
        },
        Command::Tasks(t) => match t {
            TasksCommand::Success {
                task_token: token,
                output,
                client,
            } => {
                let output = json_arg(&output, "--output")?;
                call(
                    &client,
                    "POST",
                    "/admin/tasks/success",
                    Some(json!({"taskToken": token, "output": output})),
                )
            }
            TasksCommand::Failure {
                task_token: token,
                error,
                cause,
                client,
            } => call(
                &client,
                "POST",
                "/admin/tasks/failure",
                Some(json!({"taskToken": token, "error": error, "cause": cause})),
            ),
            TasksCommand::Heartbeat {
                task_token: token,
                client,
            } => call(
                &client,
                "POST",
                "/admin/tasks/heartbeat",
                Some(json!({"taskToken": token})),
            ),
        },
        Command::Dlq(d) => match d {
            DlqCommand::List { queue, client } => {
                let q = match queue {
                    Some(q) => format!("/admin/dlq/list?queue={}", enc(&q)),
                    None => "/admin/dlq/list".into(),
                };
                call(&client, "GET", &q, None)
            }
            DlqCommand::Redrive { ids, queue, client } => call(
                &client,
                "POST",
                "/admin/dlq/redrive",
                Some(json!({"ids": ids, "queue": queue})),
            ),
        },
        Command::Clock(c) => match c {
            ClockCommand::Advance { duration, client } => {
                marketplace_local::clock::parse_duration(&duration).map_err(anyhow::Error::msg)?;
                call(
                    &client,
                    "POST",
                    "/admin/clock/advance",
                    Some(json!({"duration": duration})),
                )
            }
            ClockCommand::Now { client } => call(&client, "GET", "/admin/clock/now", None),
        },
        Command::Token(TokenCommand::Mint {
            sub,
            groups,
            ttl,
            client: c,
        }) => {
            let groups: Vec<String> = groups
                .split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect();
            if c.url.is_none() && c.data_dir.join(marketplace_local::store::DB_FILE).exists() {
                let store = marketplace_local::store::Store::open_dir(&c.data_dir)?;
                let key = marketplace_local::runtime::signing_key(&store)?;
                println!(
                    "{}",
                    marketplace_local::auth::mint(
                        &key,
                        &sub,
                        &groups,
                        chrono::Utc::now().timestamp(),
                        ttl
                    )
                );
                Ok(0)
            } else {
                let cl = client(&c)?;
                let r = cl.post(
                    "/admin/token/mint",
                    &json!({"sub": sub, "groups": groups, "ttlSeconds": ttl}),
                )?;
                match r.json()["token"].as_str() {
                    Some(t) if r.status == 200 => {
                        println!("{t}");
                        Ok(0)
                    }
                    _ => {
                        eprintln!("token mint failed ({}): {}", r.status, r.body);
                        Ok(1)
                    }
                }
            }
        }
        Command::Demo(a) => demo::run(a),
        Command::Bench(b) => bench::run(b),
    }
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
