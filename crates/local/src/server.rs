//! The HTTP server of `marketplace serve`: `/health`, `/metrics`, `/graphql`, the explorer
//! page at `/` (with `/explorer.js` and `/explorer.css`), Stripe's webhook endpoint, and the
//! admin API the CLI's client commands use (`/admin/...`).
//!
//! Two credentials, as in a deployed product: the API key (`x-api-key`) and user tokens open
//! the GraphQL API only; the admin API needs the admin key (`x-admin-key`) or a bearer
//! token whose `cognito:groups` holds `admin` (see [`crate::auth::authenticate_admin`]).

use crate::auth::{self, AuthError, Caller};
use crate::bus::PutEntry;
use crate::graphql::{self, Request as GqlRequest, RequestInfo, Schema};
use crate::metrics::gauge_labels;
use crate::runtime::Runtime;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The runtime.
    pub rt: Arc<Runtime>,
    /// The schema.
    pub schema: Arc<Schema>,
    /// The admin API's key (`x-admin-key`).
    pub admin_key: Arc<str>,
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn unauthorized(e: &AuthError) -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"errors": [{"errorType": "UnauthorizedException",
                           "message": format!("You are not authorized to make this call. ({e})")}]}),
    )
}

fn caller_of(rt: &Runtime, headers: &HeaderMap) -> Result<Caller, AuthError> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    auth::authenticate(
        &rt.api_key,
        &rt.signing_key,
        h("x-api-key"),
        h("authorization"),
        chrono::Utc::now().timestamp(),
    )
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(explorer))
        .route("/explorer.js", get(explorer_js))
        .route("/explorer.css", get(explorer_css))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/graphql", post(graphql_handler))
        .route("/webhooks/stripe", post(stripe_webhook))
        .route("/admin/:op", post(admin_post).get(admin_get))
        .route("/admin/:group/:op", post(admin_post2).get(admin_get2))
        .layer(axum::middleware::from_fn_with_state(state.clone(), barrier))
        .with_state(state)
}

/// Every response is an acknowledgement: the writes made before it are committed first
/// (the store's barrier, see [`crate::store::Store`]). When the commit fails, the answer is
/// a 503 instead — nothing is claimed that is not durable.
async fn barrier(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    if !st.rt.store.dirty() && st.rt.store.healthy() {
        return resp;
    }
    let store = st.rt.store.clone();
    match tokio::task::spawn_blocking(move || store.sync()).await {
        Ok(Ok(())) => resp,
        Ok(Err(e)) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": [{"errorType": "ServiceUnavailable",
                               "message": format!("the data directory could not commit: {e}; restart the server")}]}),
        ),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errors": [{"errorType": "InternalFailure", "message": e.to_string()}]}),
        ),
    }
}

async fn health(State(st): State<AppState>) -> Response {
    if !st.rt.store.healthy() {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "failed", "reason": "a commit to the data directory failed; restart the server"}),
        )
    } else if st.rt.ready.load(Ordering::SeqCst) {
        json_response(StatusCode::OK, json!({"status": "ok"}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "starting"}),
        )
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let rt = st.rt.clone();
    let text = tokio::task::spawn_blocking(move || {
        let mut gauges = Vec::new();
        if let Ok(s) = rt.bus.stats() {
            gauges.push((
                "marketplace_archived_events",
                "Events in the archive.",
                String::new(),
                s.archived as f64,
            ));
            gauges.push((
                "marketplace_pending_deliveries",
                "Deliveries waiting for an attempt.",
                String::new(),
                s.pending as f64,
            ));
            gauges.push((
                "marketplace_dead_letter_depth",
                "Dead letters not redriven.",
                String::new(),
                s.dead as f64,
            ));
        }
        if let Ok(c) = rt.workflows.counts() {
            for (sm, status, n) in c {
                gauges.push((
                    "marketplace_executions",
                    "Executions by workflow and current status.",
                    gauge_labels(&[("workflow", &sm), ("status", &status)]),
                    n as f64,
                ));
            }
        }
        rt.metrics.render(&gauges)
    })
    .await
    .unwrap_or_default();
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

async fn graphql_handler(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = match caller_of(&st.rt, &headers) {
        Ok(c) => c,
        Err(e) => return unauthorized(&e),
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let error_type = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "PayloadTooLargeException"
            } else {
                "MalformedHttpRequestException"
            };
            return json_response(
                status,
                json!({"errors": [{"errorType": error_type,
                                   "message": format!("The request body was refused: {}", rejection.body_text())}]}),
            );
        }
    };
    // As AppSync answers: an empty body, and a body that is not a JSON object with a
    // `query` string (`meow`, `{}`, `[]`), are refused before any GraphQL is parsed.
    let malformed = |message: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            json!({"errors": [{"message": message, "errorType": "MalformedHttpRequestException"}]}),
        )
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return malformed("Request body is empty.");
    }
    let req: GqlRequest = match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.get("query").is_some_and(Value::is_string) => match serde_json::from_value(v) {
            Ok(r) => r,
            Err(_) => return malformed("Unable to parse GraphQL query."),
        },
        _ => return malformed("Unable to parse GraphQL query."),
    };
    let mut hdrs = Map::new();
    for (k, v) in &headers {
        if matches!(k.as_str(), "authorization" | "x-api-key" | "x-admin-key") {
            continue;
        }
        if let Ok(v) = v.to_str() {
            hdrs.insert(k.as_str().to_string(), json!(v));
        }
    }
    let rt = st.rt.clone();
    let schema = st.schema.clone();
    let out = tokio::task::spawn_blocking(move || {
        let info = RequestInfo {
            caller: &caller,
            headers: hdrs,
            source_ip: addr.ip().to_string(),
        };
        graphql::execute(&schema, &req, &info, &mut |field, event| {
            let r = rt.resolve(field, event, &caller);
            let outcome = match &r {
                Ok(v) if v.get("success") == Some(&json!(false)) => "failure",
                Ok(_) => "success",
                Err(_) => "error",
            };
            rt.metrics.inc(
                "marketplace_graphql_requests_total",
                &[("field", field), ("outcome", outcome)],
            );
            r
        })
    })
    .await
    .unwrap_or_else(
        |_| json!({"errors": [{"errorType": "InternalFailure", "message": "resolver panicked"}]}),
    );
    json_response(StatusCode::OK, out)
}

/// Stripe's webhook endpoint: the request goes as is (headers, raw body) to the
/// stripe-webhook function, which verifies `Stripe-Signature`.
async fn stripe_webhook(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let mut hdrs = Map::new();
    for (k, v) in &headers {
        if let Ok(v) = v.to_str() {
            hdrs.insert(k.as_str().to_string(), json!(v));
        }
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let event = json!({"headers": hdrs, "body": text, "isBase64Encoded": false,
                       "requestContext": {"http": {"method": "POST", "path": "/webhooks/stripe"}}});
    let rt = st.rt.clone();
    let out =
        tokio::task::spawn_blocking(move || rt.functions.invoke("stripe-webhook", event)).await;
    match out {
        Ok(Ok(v)) => {
            let code = v.get("statusCode").and_then(Value::as_u64).unwrap_or(200) as u16;
            let body = match v.get("body") {
                Some(Value::String(b)) => b.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (
                StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
                [("content-type", "application/json")],
                body,
            )
                .into_response()
        }
        Ok(Err(e)) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errorType": e.error_type, "message": e.message}),
        ),
        Err(_) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errorType": "InternalFailure", "message": "handler panicked"}),
        ),
    }
}

async fn admin_get(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(op): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    admin(
        st,
        headers,
        op,
        Value::Object(q.into_iter().map(|(k, v)| (k, json!(v))).collect()),
    )
    .await
}

async fn admin_get2(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path((group, op)): axum::extract::Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    admin(
        st,
        headers,
        format!("{group}/{op}"),
        Value::Object(q.into_iter().map(|(k, v)| (k, json!(v))).collect()),
    )
    .await
}

async fn admin_post(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(op): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    admin_body(st, headers, op, body).await
}

async fn admin_post2(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path((group, op)): axum::extract::Path<(String, String)>,
    body: Bytes,
) -> Response {
    admin_body(st, headers, format!("{group}/{op}"), body).await
}

async fn admin_body(st: AppState, headers: HeaderMap, op: String, body: Bytes) -> Response {
    let args: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"errorType": "ValidationException", "message": format!("body is not JSON: {e}")}),
                )
            }
        }
    };
    admin(st, headers, op, args).await
}

async fn admin(st: AppState, headers: HeaderMap, op: String, args: Value) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let checked = auth::authenticate_admin(
        &auth::AdminKeys {
            admin_key: &st.admin_key,
            api_key: &st.rt.api_key,
            signing_key: &st.rt.signing_key,
        },
        &auth::AdminHeaders {
            x_admin_key: h("x-admin-key"),
            authorization: h("authorization"),
            x_api_key: h("x-api-key"),
        },
        chrono::Utc::now().timestamp(),
    );
    if let Err(e) = checked {
        let (status, error_type) = if e.is_forbidden() {
            (StatusCode::FORBIDDEN, "AccessDeniedException")
        } else {
            (StatusCode::UNAUTHORIZED, "UnauthorizedException")
        };
        return json_response(
            status,
            json!({"errorType": error_type, "message": e.to_string()}),
        );
    }
    let rt = st.rt.clone();
    let r = tokio::task::spawn_blocking(move || admin_op(&rt, &op, &args)).await;
    match r {
        Ok(Ok(v)) => json_response(StatusCode::OK, v),
        Ok(Err((status, error_type, message))) => {
            json_response(status, json!({"errorType": error_type, "message": message}))
        }
        Err(_) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errorType": "InternalFailure", "message": "handler panicked"}),
        ),
    }
}

type AdminResult = Result<Value, (StatusCode, String, String)>;

fn bad(message: impl Into<String>) -> (StatusCode, String, String) {
    (
        StatusCode::BAD_REQUEST,
        "ValidationException".into(),
        message.into(),
    )
}

fn wf_err(e: crate::workflows::WorkflowError) -> (StatusCode, String, String) {
    use crate::workflows::WorkflowError as W;
    let status = match &e {
        W::ExecutionDoesNotExist(_) | W::StateMachineDoesNotExist(_) | W::TaskDoesNotExist(_) => {
            StatusCode::NOT_FOUND
        }
        W::ExecutionAlreadyExists(_) => StatusCode::CONFLICT,
        W::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, e.code().into(), e.to_string())
}

fn bus_err(e: crate::bus::BusError) -> (StatusCode, String, String) {
    let status = match &e {
        crate::bus::BusError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        crate::bus::BusError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, e.code().into(), e.to_string())
}

fn parse_time_ms(v: &Value, field: &str) -> Result<Option<i64>, (StatusCode, String, String)> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(|| {
            bad(format!(
                "{field}: must be milliseconds since the epoch or RFC 3339"
            ))
        }),
        Value::String(s) => match s.parse::<i64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.timestamp_millis()))
                .map_err(|_| bad(format!("{field}: '{s}' is not RFC 3339"))),
        },
        _ => Err(bad(format!("{field}: must be a time"))),
    }
}

fn admin_op(rt: &Runtime, op: &str, a: &Value) -> AdminResult {
    let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
    let req = |k: &str| s(k).ok_or_else(|| bad(format!("{k}: required")));
    let num = |k: &str, d: usize| -> Result<usize, (StatusCode, String, String)> {
        match a.get(k) {
            None | Some(Value::Null) => Ok(d),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| bad(format!("{k}: must be a positive integer"))),
            Some(Value::String(t)) => t
                .parse()
                .map_err(|_| bad(format!("{k}: must be a positive integer"))),
            _ => Err(bad(format!("{k}: must be a positive integer"))),
        }
    };
    match op {
        "publish" => {
            let entries: Vec<PutEntry> =
                serde_json::from_value(a.get("Entries").cloned().unwrap_or(json!([])))
                    .map_err(|e| bad(format!("Entries: {e}")))?;
            let out = rt.bus.put_events(&entries).map_err(bus_err)?;
            serde_json::to_value(out).map_err(|e| bad(e.to_string()))
        }
        "workflows/start" => {
            let input = match a.get("input") {
                Some(Value::String(t)) => {
                    serde_json::from_str(t).map_err(|e| bad(format!("input: not JSON: {e}")))?
                }
                Some(v) => v.clone(),
                None => json!({}),
            };
            let wt = req("workflowType")?;
            let st = rt
                .workflows
                .start(&wt, s("name").as_deref(), input, None)
                .map_err(wf_err)?;
            serde_json::to_value(st).map_err(|e| bad(e.to_string()))
        }
        "workflows/status" => serde_json::to_value(
            rt.workflows
                .describe(&req("executionArn")?)
                .map_err(wf_err)?,
        )
        .map_err(|e| bad(e.to_string())),
        "workflows/stop" => serde_json::to_value(
            rt.workflows
                .stop(&req("executionArn")?, s("error"), s("cause"))
                .map_err(wf_err)?,
        )
        .map_err(|e| bad(e.to_string())),
        "workflows/list" => {
            let rows = rt
                .workflows
                .list(
                    s("workflowType").as_deref(),
                    s("status").as_deref(),
                    num("limit", 100)?,
                    num("offset", 0)?,
                )
                .map_err(wf_err)?;
            Ok(json!({"executions": rows}))
        }
        "workflows/history" => {
            Ok(json!({"events": rt.workflows.history(&req("executionArn")?).map_err(wf_err)?}))
        }
        "tasks/success" => {
            let output = match a.get("output") {
                Some(Value::String(t)) => {
                    serde_json::from_str(t).map_err(|e| bad(format!("output: not JSON: {e}")))?
                }
                Some(v) => v.clone(),
                None => json!({}),
            };
            rt.workflows
                .send_task_success(&req("taskToken")?, output)
                .map_err(wf_err)?;
            Ok(json!({}))
        }
        "tasks/failure" => {
            rt.workflows
                .send_task_failure(&req("taskToken")?, s("error"), s("cause"))
                .map_err(wf_err)?;
            Ok(json!({}))
        }
        "tasks/heartbeat" => {
            rt.workflows
                .send_task_heartbeat(&req("taskToken")?)
                .map_err(wf_err)?;
            Ok(json!({}))
        }
        "events/replay" => {
            let start =
                parse_time_ms(a.get("start").unwrap_or(&Value::Null), "start")?.unwrap_or(0);
            let end = parse_time_ms(a.get("end").unwrap_or(&Value::Null), "end")?
                .unwrap_or_else(|| rt.clock.now_ms() + 1);
            let pattern = match a.get("pattern") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(
                    event_patterns::Pattern::parse(t).map_err(|e| bad(format!("pattern: {e}")))?,
                ),
                Some(v) => Some(
                    event_patterns::Pattern::from_value(v)
                        .map_err(|e| bad(format!("pattern: {e}")))?,
                ),
            };
            let name =
                s("name").unwrap_or_else(|| format!("replay-{}", crate::util::random_hex(4)));
            let n = rt
                .bus
                .replay(&name, start, end, pattern.as_ref())
                .map_err(bus_err)?;
            Ok(json!({"replayName": name, "eventsReplayed": n}))
        }
        "dlq" | "dlq/list" => {
            let items = rt
                .bus
                .dead_letters(s("queue").as_deref(), num("limit", 100)?)
                .map_err(bus_err)?;
            Ok(json!({"deadLetters": items}))
        }
        "dlq/redrive" => {
            let ids: Vec<i64> = match a.get("ids") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => {
                    serde_json::from_value(v.clone()).map_err(|e| bad(format!("ids: {e}")))?
                }
            };
            let n = rt
                .bus
                .redrive(&ids, s("queue").as_deref())
                .map_err(bus_err)?;
            Ok(json!({"redriven": n}))
        }
        "clock/advance" => {
            let secs = crate::clock::parse_duration(&req("duration")?).map_err(bad)?;
            let now = rt.clock.advance(secs).map_err(|e| bad(e.to_string()))?;
            rt.bus.notify();
            rt.workflows.enqueue_due(false).map_err(wf_err)?;
            Ok(json!({"now": crate::util::rfc3339_ms(now)}))
        }
        "clock" | "clock/now" => Ok(
            json!({"now": crate::util::rfc3339_ms(rt.clock.now()), "virtual": rt.clock.is_virtual()}),
        ),
        "token" | "token/mint" => {
            let sub = req("sub")?;
            let groups: Vec<String> = match a.get("groups") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(g)) => g
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect(),
                Some(v) => {
                    serde_json::from_value(v.clone()).map_err(|e| bad(format!("groups: {e}")))?
                }
            };
            let ttl = num("ttlSeconds", 3600)? as i64;
            Ok(
                json!({"token": auth::mint(&rt.signing_key, &sub, &groups, chrono::Utc::now().timestamp(), ttl)}),
            )
        }
        "events" => {
            let after = num("after", 0)? as i64;
            let items = rt
                .bus
                .events_after(after, num("limit", 100)?)
                .map_err(bus_err)?;
            Ok(
                json!({"events": items.into_iter().map(|(seq, e)| json!({"seq": seq, "event": e})).collect::<Vec<_>>()}),
            )
        }
        "seed" => seed(rt, a),
        "stripe/complete-onboarding"
        | "stripe/confirm"
        | "stripe/authenticate"
        | "stripe/settle-payout"
        | "stripe/fail-next"
        | "stripe/events"
        | "stripe/redeliver" => stripe_op(rt, op, a),
        "outbox" => {
            let items = crate::adapters::SqlitePorts::new(rt.store.clone())
                .outbox()
                .map_err(|e| {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError".to_string(),
                        e.to_string(),
                    )
                })?;
            Ok(json!({"messages": items}))
        }
        "stats" => {
            let s = rt.bus.stats().map_err(bus_err)?;
            Ok(
                json!({"bus": s, "executions": rt.workflows.counts().map_err(wf_err)?
                .into_iter().map(|(sm, st, n)| json!({"stateMachine": sm, "status": st, "count": n})).collect::<Vec<_>>(),
                "workflowQueue": rt.workflows.queued()}),
            )
        }
        other => Err((
            StatusCode::NOT_FOUND,
            "UnknownOperation".into(),
            format!("no admin operation '{other}'"),
        )),
    }
}

/// Local development data: services and users (contacts and groups) of the marketplace.
fn seed(rt: &Runtime, a: &Value) -> AdminResult {
    use marketplace_ports::store::{ServiceRepository, UserContact};
    let ports = crate::adapters::SqlitePorts::new(rt.store.clone());
    let internal = |e: String| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError".to_string(),
            e,
        )
    };
    let mut services = 0;
    for (i, sv) in a["services"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let service: marketplace_domain::entities::Service =
            serde_json::from_value(sv).map_err(|e| bad(format!("services[{i}]: {e}")))?;
        crate::handlers::block_on(ports.put_service(&service))
            .ok_or_else(|| internal("no executor".into()))?
            .map_err(|e| internal(e.to_string()))?;
        services += 1;
    }
    let mut users = 0;
    for (i, u) in a["users"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let groups: Vec<String> = u["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let contact: UserContact =
            serde_json::from_value(u).map_err(|e| bad(format!("users[{i}]: {e}")))?;
        let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        ports
            .put_user(&contact, &refs)
            .map_err(|e| internal(e.to_string()))?;
        users += 1;
    }
    Ok(json!({"services": services, "users": users}))
}

/// Drives the simulated Stripe as its users would: a provider finishing onboarding, a
/// customer confirming a payment (or 3-D Secure), the bank settling a payout.
fn stripe_op(rt: &Runtime, op: &str, a: &Value) -> AdminResult {
    use marketplace_ports::payments::PaymentGateway;
    use marketplace_ports::store::{BookingRepository, PaymentRepository, ProviderRepository};
    let sim = rt.stripe.get().ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable".to_string(),
            "no simulated Stripe".to_string(),
        )
    })?;
    let ports = crate::adapters::SqlitePorts::new(rt.store.clone());
    let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
    fn gw(e: marketplace_ports::GatewayError) -> (StatusCode, String, String) {
        bad(format!("stripe: {e}"))
    }
    fn run<F: std::future::Future>(f: F) -> Result<F::Output, (StatusCode, String, String)> {
        crate::handlers::block_on(f).ok_or_else(|| bad("no executor"))
    }
    let out = match op {
        "stripe/complete-onboarding" => {
            let provider = s("providerId").ok_or_else(|| bad("providerId: required"))?;
            let rec = run(ports.get_provider(&provider))?
                .map_err(|e| bad(e.to_string()))?
                .ok_or_else(|| bad(format!("providerId: provider {provider} does not exist")))?;
            let account = rec
                .value
                .provider
                .stripe_account_id()
                .map(|a| a.as_str().to_string())
                .ok_or_else(|| {
                    bad(format!(
                        "providerId: provider {provider} has no connected account yet"
                    ))
                })?;
            serde_json::to_value(sim.complete_onboarding(&account).map_err(gw)?)
        }
        "stripe/confirm" => {
            let pi = match (s("paymentIntentId"), s("bookingId")) {
                (Some(pi), _) => pi,
                (None, Some(b)) => {
                    let from_booking = run(ports.get_booking(&b))?
                        .map_err(|e| bad(e.to_string()))?
                        .and_then(|r| r.value.payment_intent_id);
                    let from_payments = run(ports.list_payments_by_booking(&b))?
                        .map_err(|e| bad(e.to_string()))?
                        .into_iter()
                        .find(|p| p.kind == marketplace_ports::PaymentKind::PaymentIntent)
                        .map(|p| p.id);
                    from_booking.or(from_payments).ok_or_else(|| {
                        bad(format!("bookingId: booking {b} has no PaymentIntent yet"))
                    })?
                }
                _ => return Err(bad("paymentIntentId or bookingId: required")),
            };
            let pm = s("paymentMethod").unwrap_or_else(|| "pm_card_visa".into());
            let key = format!("local-confirm-{pi}-{pm}");
            serde_json::to_value(
                run(sim.confirm_payment_intent(&pi, Some(&pm), &key))?.map_err(gw)?,
            )
        }
        "stripe/authenticate" => {
            let pi = s("paymentIntentId").ok_or_else(|| bad("paymentIntentId: required"))?;
            serde_json::to_value(
                sim.authenticate(&pi, a["success"] != json!(false))
                    .map_err(gw)?,
            )
        }
        "stripe/fail-next" => {
            // Failure injection: the next `count` calls of `operation` fail.
            let operation = s("operation").ok_or_else(|| bad("operation: required"))?;
            let count = match a.get("count") {
                None | Some(Value::Null) => 1,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| bad("count: must be an integer from 1 to 100"))?,
            };
            let kind = s("kind").unwrap_or_else(|| "transient".into());
            let error = match kind.as_str() {
                "transient" => marketplace_ports::GatewayError::Transient {
                    status: 503,
                    message: "injected: Stripe is unavailable".into(),
                },
                "permanent" => marketplace_ports::GatewayError::permanent(
                    400,
                    "invalid_request_error",
                    "injected: the request was refused",
                ),
                other => {
                    return Err(bad(format!(
                        "kind: '{other}' is not one of transient, permanent"
                    )))
                }
            };
            for _ in 0..count {
                sim.fail_next(&operation, error.clone());
            }
            Ok(json!({"operation": operation, "kind": kind, "count": count}))
        }
        "stripe/events" => {
            // What the simulated Stripe saw and emitted, and what it refunded.
            let calls: Vec<Value> = sim
                .calls()
                .into_iter()
                .map(|(op, key)| json!({"operation": op, "idempotencyKey": key}))
                .collect();
            let refunded = s("paymentIntentId").map(|pi| sim.refunded(&pi));
            Ok(json!({"events": sim.events(), "calls": calls, "refunded": refunded}))
        }
        "stripe/redeliver" => {
            // Stripe delivers a webhook at least once: deliver an emitted event again.
            let id = s("eventId").ok_or_else(|| bad("eventId: required"))?;
            let event = sim
                .events()
                .into_iter()
                .find(|e| e.get("id") == Some(&json!(id)))
                .ok_or_else(|| bad(format!("eventId: no webhook event {id}")))?;
            let secret = rt
                .store
                .kv_get(crate::handlers::WEBHOOK_SECRET_KEY)
                .map_err(|e| bad(e.to_string()))?
                .ok_or_else(|| bad("no webhook secret"))?;
            let req = crate::handlers::signed_webhook_event(
                &secret,
                rt.clock.now().timestamp(),
                &event.to_string(),
            );
            let answer = rt
                .functions
                .invoke("stripe-webhook", req)
                .map_err(|e| bad(format!("stripe-webhook: {}", e.message)))?;
            sim.mark_webhook_delivered(&id).map_err(gw)?;
            Ok(answer)
        }
        _ => {
            let po = s("payoutId").ok_or_else(|| bad("payoutId: required"))?;
            serde_json::to_value(
                sim.settle_payout(&po, a["paid"] != json!(false))
                    .map_err(gw)?,
            )
        }
    };
    out.map_err(|e| bad(e.to_string()))
}

/// Security headers of the explorer's files: nothing but this server is ever contacted.
const EXPLORER_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn explorer_file(content_type: &'static str, body: String) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", content_type),
            ("content-security-policy", EXPLORER_CSP),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The explorer page (`src/explorer/index.html`).
pub const EXPLORER_HTML: &str = include_str!("explorer/index.html");
/// The explorer's style sheet.
pub const EXPLORER_CSS: &str = include_str!("explorer/explorer.css");
/// The explorer's script, with a placeholder for the introspection query.
const EXPLORER_JS_TEMPLATE: &str = include_str!("explorer/explorer.js");

/// The explorer's script as served: the introspection query is
/// [`graphql::INTROSPECTION_QUERY`], inlined as a JSON string.
pub fn explorer_script() -> String {
    let query = serde_json::to_string(graphql::INTROSPECTION_QUERY).unwrap_or_default();
    EXPLORER_JS_TEMPLATE.replace("/*INTROSPECTION_QUERY*/", &query)
}

async fn explorer() -> Response {
    explorer_file("text/html; charset=utf-8", EXPLORER_HTML.to_string())
}

async fn explorer_js() -> Response {
    explorer_file("text/javascript; charset=utf-8", explorer_script())
}

async fn explorer_css() -> Response {
    explorer_file("text/css; charset=utf-8", EXPLORER_CSS.to_string())
}
