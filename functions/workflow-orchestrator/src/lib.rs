//! # workflow-orchestrator
//!
//! Starts and steers the marketplace's workflows:
//!
//! - the **AppSync direct Lambda resolver** of `schema.graphql` (single events and
//!   BatchInvoke arrays): `startWorkflow`, `getWorkflowStatus`, `stopWorkflow`,
//!   `publishEvent`, `listWorkflowExecutions`, `getExecutionHistory`, `resolveDispute`,
//!   `respondToDispute`, `sendTaskSuccess`, `sendTaskFailure`, `sendTaskHeartbeat`;
//! - the **EventBridge target** of the rules `workflow-auto-trigger` (Provider Registered
//!   → PROVIDER_ONBOARDING), `payment-events-to-booking-workflow` (complete a waiting
//!   payment token, or refund a payment that landed after its booking expired or was
//!   cancelled) and `workflow-execution-status` (Step Functions status changes →
//!   `marketplace.workflow` events).
//!
//! Authorization (from the caller's identity, see [`appsync::Caller`]):
//! - administrators (IAM, Cognito group `admin`) may do everything;
//! - a signed-in user (Cognito/OIDC, not admin) starts, reads and lists only workflows
//!   whose input names them (`customerId`, `providerId` or `requestedBy` = their `sub`),
//!   may not start PAYMENT_PROCESSING, and publishes only client events about themselves;
//! - an API key (a trusted client without a user) may start and read workflows and
//!   publish client events (`Provider Registered`, `Booking Updated`);
//! - only administrators stop workflows, resolve disputes, publish other events, or
//!   complete tasks directly; the booking's provider answers a dispute (`respondToDispute`).
//!
//! `resolveDispute` and `respondToDispute` complete the dispute workflow's task token when
//! it waits; when the workflow is on its way to that wait (the provider was notified, the
//! escalation published, the token not stored yet) they record the validated answer in the
//! dispute record (conditional write on its version) and answer success: the waiting task
//! of dispute-handler completes its own token with it. A second answer, pending or
//! delivered, is refused (`Marketplace.InvalidTransition`), as is one the workflow will not
//! wait for (resolved; not escalated or escalated FINAL; review period or 7-day deadline over).
//!
//! Results carry `success`, `error` and `errorType` (the AWS error name, e.g.
//! `ExecutionDoesNotExist`, `ValidationException`) instead of GraphQL errors.
//!
//! Every Step Functions call goes through a circuit breaker (5 consecutive transient
//! failures open it for 30 s); state changes are logged and counted. Metrics (EMF,
//! namespace `EcosystemMarketplace`): `WorkflowStarted`, `WorkflowStartFailed`,
//! `WorkflowStartDeduplicated` (dimension `workflowType`), `StartDuration`,
//! `CircuitBreakerStateChange`, `CircuitBreakerOpen`, `CircuitBreakerState` (0 closed,
//! 1 half-open, 2 open, per resolver call), `WorkflowEventPublished`.
#![warn(missing_docs)]

pub mod appsync;
pub mod start;

use appsync::{Caller, ResolverEvent};
use chrono::{DateTime, TimeZone, Utc};
use marketplace_domain::entities::{BookingStatus, DisputeStatus};
use marketplace_domain::events::DisputeResolution;
use marketplace_domain::{ExecutionArn, ExecutionStatus, MarketplaceEvent, WorkflowType};
use marketplace_ports::breaker::{BreakerError, CircuitBreaker, Transition};
use marketplace_ports::callbacks::update_and_deliver;
use marketplace_ports::fields::{money_json, time_json, Fields};
use marketplace_ports::handler::{Invocation, TargetEvent};
use marketplace_ports::idempotency::Idempotency;
use marketplace_ports::log::{LogContext, Logger};
use marketplace_ports::metrics::{Metrics, Unit};
use marketplace_ports::store::RecordedAnswer;
use marketplace_ports::workflow::{ExecutionDescription, ListExecutionsRequest, StartedExecution};
use marketplace_ports::{
    DisputeRecord, ErrorType, HandlerError, HasErrorType, Ports, StoreError, WorkflowError,
};
use serde_json::{json, Value};
use start::{prepare, OnboardingUrls};
use std::future::Future;
use std::sync::Arc;

/// Settings.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// The marketplace bus.
    pub event_bus_name: String,
    /// Default onboarding URLs.
    pub onboarding_urls: OnboardingUrls,
    /// Consecutive transient failures that open the breaker.
    pub breaker_failure_threshold: u32,
    /// How long it stays open.
    pub breaker_open_seconds: i64,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            event_bus_name: "ecosystem-marketplace-events".into(),
            onboarding_urls: OnboardingUrls {
                refresh_url: "https://marketplace.example.com/provider/onboarding/refresh".into(),
                return_url: "https://marketplace.example.com/provider/onboarding/complete".into(),
            },
            breaker_failure_threshold: 5,
            breaker_open_seconds: 30,
        }
    }
}

/// Seconds before the 7-day resolution deadline at which the dispute workflow stops
/// waiting for an administrator and escalates finally (dispute-handler `escalateDispute`,
/// `deadlinePassed`): an admin decision is no longer recorded for a later wait after it.
pub const FINAL_ESCALATION_MARGIN_SECONDS: i64 = 120;

/// One of the dispute workflow's task-token waits answered through GraphQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DisputeWait {
    /// AwaitProviderResponse (respondToDispute).
    Provider,
    /// AwaitAdminDecision (resolveDispute).
    Admin,
}

impl DisputeWait {
    fn token(self, r: &DisputeRecord) -> Option<&str> {
        match self {
            DisputeWait::Provider => r.provider_task_token.as_deref(),
            DisputeWait::Admin => r.admin_task_token.as_deref(),
        }
    }

    fn token_mut(self, r: &mut DisputeRecord) -> &mut Option<String> {
        match self {
            DisputeWait::Provider => &mut r.provider_task_token,
            DisputeWait::Admin => &mut r.admin_task_token,
        }
    }

    fn answer(self, r: &DisputeRecord) -> Option<&RecordedAnswer> {
        match self {
            DisputeWait::Provider => r.provider_response.as_ref(),
            DisputeWait::Admin => r.admin_decision.as_ref(),
        }
    }

    fn answer_mut(self, r: &mut DisputeRecord) -> &mut Option<RecordedAnswer> {
        match self {
            DisputeWait::Provider => &mut r.provider_response,
            DisputeWait::Admin => &mut r.admin_decision,
        }
    }

    fn what(self) -> &'static str {
        match self {
            DisputeWait::Provider => "the provider's response",
            DisputeWait::Admin => "an administrator's decision",
        }
    }

    /// Why the workflow will not reach this wait (its token not stored), or `None` when it
    /// is on its way: the provider's review while the dispute is OPEN and the 24 hours run;
    /// the manual review once ESCALATED at MANUAL_REVIEW level before the final margin.
    fn unreachable(self, r: &DisputeRecord, now: DateTime<Utc>) -> Option<String> {
        let status = r.dispute.status();
        match self {
            DisputeWait::Provider if status != DisputeStatus::Open => {
                Some(format!("it is {status}"))
            }
            DisputeWait::Provider if now >= r.review_deadline => Some(format!(
                "the review period ended at {}",
                r.review_deadline.to_rfc3339()
            )),
            DisputeWait::Provider => None,
            DisputeWait::Admin if status != DisputeStatus::Escalated => {
                Some(format!("it is {status}, not escalated"))
            }
            DisputeWait::Admin if r.escalation_level.as_deref() != Some("MANUAL_REVIEW") => {
                Some(format!(
                    "it is escalated at the {} level",
                    r.escalation_level.as_deref().unwrap_or("unknown")
                ))
            }
            DisputeWait::Admin
                if now + chrono::Duration::seconds(FINAL_ESCALATION_MARGIN_SECONDS)
                    >= r.resolution_deadline =>
            {
                Some(format!(
                    "its resolution deadline {} is reached",
                    r.resolution_deadline.to_rfc3339()
                ))
            }
            DisputeWait::Admin => None,
        }
    }
}

/// The workflow-orchestrator function.
#[derive(Clone)]
pub struct Orchestrator {
    ports: Ports,
    config: OrchestratorConfig,
    log: Logger,
    metrics: Metrics,
    breaker: CircuitBreaker,
    idempotency: Idempotency,
}

/// Client events a non-administrator may publish.
pub const CLIENT_EVENTS: &[(&str, &str)] = &[
    ("marketplace.provider", "Provider Registered"),
    ("marketplace.booking", "Booking Updated"),
];

/// A resolver result with `success: false`.
pub fn failure(error_type: &str, message: impl Into<String>) -> Value {
    json!({"success": false, "error": message.into(), "errorType": error_type})
}

/// The resolver's name for a handler error.
fn error_name(e: &HandlerError) -> &'static str {
    match e.error_type {
        ErrorType::ValidationError => "ValidationException",
        ErrorType::NotFound => "ResourceNotFoundException",
        ErrorType::Unauthorized => "UnauthorizedException",
        ErrorType::TransientError => "ServiceUnavailable",
        other => other.as_str(),
    }
}

fn from_handler(e: HandlerError) -> Value {
    failure(error_name(&e), e.message)
}

fn unauthorized(what: &str) -> Value {
    failure(
        "UnauthorizedException",
        format!("Not Authorized to access {what}"),
    )
}

/// A workflow error as a resolver result (its AWS name as errorType).
fn from_workflow(e: &BreakerError<WorkflowError>) -> Value {
    match e {
        BreakerError::Open { .. } => failure("ServiceUnavailable", e.to_string()),
        BreakerError::Inner(w) => failure(w.aws_name(), w.to_string()),
    }
}

fn parse_json_arg(f: &Fields<'_>, field: &str) -> Result<Value, HandlerError> {
    match f.get(field) {
        None => Err(f.error(field, "is required")),
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| f.error(field, format!("must be valid JSON: {e}")))
        }
        Some(v) => Ok(v.clone()),
    }
}

fn owns(caller: &Caller, input: &Value) -> bool {
    let Some(user) = caller.user_id() else {
        return true;
    };
    ["customerId", "providerId", "requestedBy"]
        .iter()
        .any(|k| input.get(*k).and_then(Value::as_str) == Some(user))
}

fn input_of(d: &ExecutionDescription) -> Value {
    d.input
        .as_deref()
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or(Value::Null)
}

fn ms_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    match v? {
        Value::Number(n) => n
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

impl Orchestrator {
    /// An orchestrator over `ports`.
    pub fn new(ports: Ports, config: OrchestratorConfig, log: Logger, metrics: Metrics) -> Self {
        let observer_log = log.clone();
        let observer_metrics = metrics.clone();
        let breaker = CircuitBreaker::new(
            "stepfunctions",
            config.breaker_failure_threshold,
            config.breaker_open_seconds,
            ports.clock.clone(),
        )
        .with_observer(Arc::new(move |t: &Transition| {
            observer_log.warn(
                &LogContext::default(),
                &format!(
                    "circuit {} {} -> {}",
                    t.name,
                    t.from.as_str(),
                    t.to.as_str()
                ),
                &[
                    ("breaker", json!(t.name)),
                    ("from", json!(t.from.as_str())),
                    ("to", json!(t.to.as_str())),
                ],
            );
            observer_metrics.add("CircuitBreakerStateChange", Unit::Count, 1.0);
            if t.to == marketplace_ports::breaker::BreakerState::Open {
                observer_metrics.add("CircuitBreakerOpen", Unit::Count, 1.0);
            }
        }));
        let idempotency = Idempotency::new(
            ports.idempotency.clone(),
            ports.clock.clone(),
            "workflow-orchestrator",
            24 * 3600,
            60,
        )
        .with_pause(ports.pause.clone());
        Self {
            ports,
            config,
            log,
            metrics,
            breaker,
            idempotency,
        }
    }

    /// The circuit breaker (its state is a metric of the local runtime too).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    async fn sfn<T, Fut>(
        &self,
        call: impl FnOnce() -> Fut,
    ) -> Result<T, BreakerError<WorkflowError>>
    where
        Fut: Future<Output = Result<T, WorkflowError>>,
    {
        self.breaker
            .call(call, |e: &WorkflowError| {
                matches!(e, WorkflowError::Unavailable(_))
            })
            .await
    }

    /// Handles any event the function receives: an AppSync resolver event, a BatchInvoke
    /// array of them, or an EventBridge target input (`action: handleEvent`).
    pub async fn handle(
        &self,
        event: Value,
        request_id: Option<&str>,
    ) -> Result<Value, HandlerError> {
        let result = match &event {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.resolve_value(item, request_id).await?);
                }
                Ok(Value::Array(out))
            }
            Value::Object(o) if o.contains_key("info") => {
                self.resolve_value(&event, request_id).await
            }
            Value::Object(_) => self.handle_target(&event, request_id).await,
            _ => Err(HandlerError::validation(
                "event",
                "must be a JSON object or an array",
            )),
        };
        self.metrics.flush();
        result
    }

    async fn resolve_value(
        &self,
        event: &Value,
        request_id: Option<&str>,
    ) -> Result<Value, HandlerError> {
        let e = ResolverEvent::parse(event)?;
        Ok(self.resolve(&e, request_id).await)
    }

    /// Resolves one field; the answer is always a result object.
    pub async fn resolve(&self, event: &ResolverEvent, request_id: Option<&str>) -> Value {
        let mut inv = Invocation::new(
            &event.arguments,
            request_id,
            self.log.clone(),
            self.metrics.clone(),
        );
        if inv.context.correlation_id.is_none() {
            inv.context.correlation_id = event.header("x-correlation-id").map(str::to_owned);
        }
        let caller = match Caller::from_identity(event.identity.as_ref()) {
            Ok(c) => c,
            Err(e) => return from_handler(e),
        };
        let field = event.info.field_name.as_str();
        let args = Fields::new(&event.arguments);
        let result = match field {
            "startWorkflow" => self.start_workflow(&caller, &args, &inv).await,
            "getWorkflowStatus" => self.get_workflow_status(&caller, &args).await,
            "listWorkflowExecutions" => self.list_executions(&caller, &args).await,
            "getExecutionHistory" => self.get_history(&caller, &args).await,
            "stopWorkflow" => self.stop_workflow(&caller, &args).await,
            "publishEvent" => self.publish_event(&caller, &args, &inv).await,
            "resolveDispute" => self.resolve_dispute(&caller, &args).await,
            "respondToDispute" => self.respond_to_dispute(&caller, &args).await,
            "sendTaskSuccess" | "sendTaskFailure" | "sendTaskHeartbeat" => {
                self.send_task(field, &caller, &args).await
            }
            other => Err(HandlerError::validation(
                "info.fieldName",
                format!("{other:?} is not resolved by workflow-orchestrator"),
            )),
        };
        let out = result.unwrap_or_else(from_handler);
        let state = match self.breaker.state() {
            marketplace_ports::breaker::BreakerState::Closed => 0.0,
            marketplace_ports::breaker::BreakerState::HalfOpen => 1.0,
            marketplace_ports::breaker::BreakerState::Open => 2.0,
        };
        inv.metrics.add("CircuitBreakerState", Unit::None, state);
        inv.metrics.flush();
        let ok = out.get("success").and_then(Value::as_bool).unwrap_or(false);
        let fields = [
            ("fieldName", json!(field)),
            ("caller", json!(caller.describe())),
            ("success", json!(ok)),
            (
                "errorType",
                out.get("errorType").cloned().unwrap_or(Value::Null),
            ),
        ];
        if ok {
            inv.log
                .info(&inv.context, &format!("{field} resolved"), &fields);
        } else {
            inv.log.warn(
                &inv.context,
                &format!("{field} refused: {}", out["error"].as_str().unwrap_or("")),
                &fields,
            );
        }
        out
    }

    async fn start_workflow(
        &self,
        caller: &Caller,
        args: &Fields<'_>,
        inv: &Invocation,
    ) -> Result<Value, HandlerError> {
        let wt: WorkflowType = args.parse("workflowType")?;
        let mut input = parse_json_arg(args, "input")?;
        if wt == WorkflowType::PaymentProcessing && !caller.is_admin() && caller.user_id().is_some()
        {
            return Ok(unauthorized("PAYMENT_PROCESSING (administrators only)"));
        }
        if let (Some(user), Some(o)) = (caller.user_id(), input.as_object_mut()) {
            if !caller.is_admin()
                && o.get("operation")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_uppercase)
                    .as_deref()
                    == Some("CANCEL")
            {
                o.entry("requestedBy").or_insert(json!(user));
            }
        }
        // A cancellation continues the booking's business flow: it carries the
        // correlationId stored on the booking unless the caller gave one.
        if wt == WorkflowType::BookingLifecycle {
            if let Some(o) = input.as_object_mut() {
                let is_cancel = o
                    .get("operation")
                    .and_then(Value::as_str)
                    .is_some_and(|op| op.eq_ignore_ascii_case("CANCEL"));
                let booking_id = o
                    .get("bookingId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let (true, false, Some(id)) =
                    (is_cancel, o.contains_key("correlationId"), booking_id)
                {
                    if let Some(b) = self.ports.bookings.get_booking(&id).await? {
                        o.insert(
                            "correlationId".into(),
                            json!(b.value.correlation_id.clone()),
                        );
                    }
                }
            }
        }
        let mut prepared = prepare(
            wt,
            &input,
            args.opt_str("executionName")?,
            &self.config.onboarding_urls,
        )?;
        if let Some(id) = self.rebooking_id(wt, &input, &prepared.input).await? {
            if let Some(o) = input.as_object_mut() {
                o.insert("bookingId".into(), json!(id));
            }
            prepared = prepare(
                wt,
                &input,
                args.opt_str("executionName")?,
                &self.config.onboarding_urls,
            )?;
        }
        if caller.is_end_user() && !self.may_start(caller, wt, &prepared.input).await? {
            return Ok(unauthorized(&format!(
                "a {} workflow of another user",
                wt.as_str()
            )));
        }
        inv.metrics.add_dimension("workflowType", wt.as_str());
        let started_at = self.ports.clock.now();
        match self.start(wt, &prepared.name, &prepared.input).await {
            Ok((s, status, dedup)) => {
                let elapsed = (self.ports.clock.now() - started_at).num_milliseconds() as f64;
                inv.metrics
                    .add("StartDuration", Unit::Milliseconds, elapsed);
                inv.metrics.add(
                    if dedup {
                        "WorkflowStartDeduplicated"
                    } else {
                        "WorkflowStarted"
                    },
                    Unit::Count,
                    1.0,
                );
                Ok(json!({
                    "success": true,
                    "executionArn": s.execution_arn,
                    "executionName": prepared.name,
                    "workflowType": wt.as_str(),
                    "status": status.as_str(),
                    "startDate": time_json(&s.start_date),
                    "correlationId": prepared.correlation_id,
                }))
            }
            Err(e) => {
                inv.metrics.add("WorkflowStartFailed", Unit::Count, 1.0);
                Ok(from_workflow(&e))
            }
        }
    }

    /// The booking id derived for a BOOK without one is a hash of (customer, service,
    /// start), so a retried request finds the same booking. When that booking has ended
    /// (expired or cancelled), the slot is free again and the same request is a new
    /// booking: the id of its first attempt whose booking does not exist or is still live.
    async fn rebooking_id(
        &self,
        wt: WorkflowType,
        input: &Value,
        prepared: &Value,
    ) -> Result<Option<String>, HandlerError> {
        if wt != WorkflowType::BookingLifecycle
            || prepared["operation"] != "BOOK"
            || input.get("bookingId").is_some()
        {
            return Ok(None);
        }
        let Some(derived) = prepared["bookingId"].as_str() else {
            return Ok(None);
        };
        let ended =
            |s: BookingStatus| matches!(s, BookingStatus::Expired | BookingStatus::Cancelled);
        match self.ports.bookings.get_booking(derived).await? {
            Some(b) if ended(b.value.booking.status()) => {}
            _ => return Ok(None),
        }
        for attempt in 1..=100u32 {
            let hash = marketplace_ports::idempotency::payload_hash(&json!([derived, attempt]));
            let id = format!("bk_{}", &hash[..20]);
            match self.ports.bookings.get_booking(&id).await? {
                Some(b) if ended(b.value.booking.status()) => continue,
                _ => return Ok(Some(id)),
            }
        }
        Err(HandlerError::validation(
            "startDateTime",
            "this slot was booked and released too many times by the same customer",
        ))
    }

    async fn may_start(
        &self,
        caller: &Caller,
        wt: WorkflowType,
        input: &Value,
    ) -> Result<bool, HandlerError> {
        let Some(user) = caller.user_id() else {
            return Ok(true);
        };
        if wt == WorkflowType::BookingLifecycle && input["operation"] == "CANCEL" {
            // the canceller must be the booking's customer (CUSTOMER) or provider (PROVIDER)
            let id = input["bookingId"].as_str().unwrap_or_default();
            let Some(b) = self.ports.bookings.get_booking(id).await? else {
                return Err(HandlerError::not_found(format!("booking {id}")));
            };
            let b = &b.value.booking;
            return Ok(match input["cancelledBy"].as_str() {
                Some("CUSTOMER") => {
                    b.customer_id().as_str() == user && input["requestedBy"] == user
                }
                Some("PROVIDER") => {
                    b.provider_id().as_str() == user && input["requestedBy"] == user
                }
                _ => false,
            });
        }
        Ok(owns(caller, input))
    }

    /// Starts an execution; a start repeated with the same input returns the existing
    /// execution (idempotent), another input under the same name is refused.
    async fn start(
        &self,
        wt: WorkflowType,
        name: &str,
        input: &Value,
    ) -> Result<(StartedExecution, ExecutionStatus, bool), BreakerError<WorkflowError>> {
        let text = input.to_string();
        match self
            .sfn(|| self.ports.workflows.start_execution(wt, name, &text))
            .await
        {
            Ok(s) => Ok((s, ExecutionStatus::Running, false)),
            Err(BreakerError::Inner(WorkflowError::ExecutionAlreadyExists(msg))) => {
                let arn = format!(
                    "{}:{name}",
                    self.ports
                        .workflows
                        .state_machine_arn(wt)
                        .replace(":stateMachine:", ":execution:")
                );
                let d = self
                    .sfn(|| self.ports.workflows.describe_execution(&arn))
                    .await?;
                if input_of(&d) == *input {
                    Ok((
                        StartedExecution {
                            execution_arn: d.execution_arn,
                            start_date: d.start_date,
                        },
                        d.status,
                        true,
                    ))
                } else {
                    Err(BreakerError::Inner(WorkflowError::ExecutionAlreadyExists(
                        format!("{msg} with a different input"),
                    )))
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn describe_owned(
        &self,
        caller: &Caller,
        arn: &str,
    ) -> Result<Result<ExecutionDescription, Value>, HandlerError> {
        if ExecutionArn::new(arn).is_err() {
            return Ok(Err(failure("InvalidArn", format!("Invalid Arn: '{arn}'"))));
        }
        match self
            .sfn(|| self.ports.workflows.describe_execution(arn))
            .await
        {
            Ok(d) if caller.is_end_user() && !owns(caller, &input_of(&d)) => {
                Ok(Err(unauthorized("this execution")))
            }
            Ok(d) => Ok(Ok(d)),
            Err(e) => Ok(Err(from_workflow(&e))),
        }
    }

    async fn get_workflow_status(
        &self,
        caller: &Caller,
        args: &Fields<'_>,
    ) -> Result<Value, HandlerError> {
        let arn = args.str("executionArn")?;
        let expected: Option<WorkflowType> = args.opt_parse("workflowType")?;
        let d = match self.describe_owned(caller, arn).await? {
            Ok(d) => d,
            Err(v) => return Ok(v),
        };
        if let (Some(w), Some(actual)) = (expected, d.workflow_type) {
            if w != actual {
                return Ok(failure(
                    "ValidationException",
                    format!(
                        "workflowType: the execution is a {} workflow, not {}",
                        actual.as_str(),
                        w.as_str()
                    ),
                ));
            }
        }
        Ok(json!({
            "success": true,
            "executionArn": d.execution_arn,
            "executionName": d.name,
            "workflowType": d.workflow_type.map(|w| w.as_str()),
            "status": d.status.as_str(),
            "input": d.input,
            "output": d.output,
            "startDate": time_json(&d.start_date),
            "stopDate": d.stop_date.as_ref().map(time_json),
            "error": d.error,
            "errorType": d.error,
            "cause": d.cause,
        }))
    }

    fn limit(args: &Fields<'_>) -> Result<u32, HandlerError> {
        match args.get("limit") {
            None => Ok(100),
            Some(v) => match v.as_i64() {
                Some(n) if (1..=1000).contains(&n) => Ok(n as u32),
                _ => Err(args.error("limit", "must be an integer from 1 to 1000")),
            },
        }
    }

    async fn list_executions(
        &self,
        caller: &Caller,
        args: &Fields<'_>,
    ) -> Result<Value, HandlerError> {
        let req = ListExecutionsRequest {
            workflow_type: args.opt_parse("workflowType")?,
            status: args.opt_parse("status")?,
            max_results: Self::limit(args)?,
            next_token: args.opt_str("nextToken")?.map(str::to_owned),
        };
        let page = match self
            .sfn(|| self.ports.workflows.list_executions(&req))
            .await
        {
            Ok(p) => p,
            Err(e) => return Ok(from_workflow(&e)),
        };
        let mut executions = Vec::new();
        for e in page.executions {
            if caller.is_end_user() {
                // a user sees only their own executions (filtered within the page)
                match self
                    .sfn(|| self.ports.workflows.describe_execution(&e.execution_arn))
                    .await
                {
                    Ok(d) if owns(caller, &input_of(&d)) => {}
                    Ok(_) => continue,
                    Err(err) => return Ok(from_workflow(&err)),
                }
            }
            executions.push(json!({
                "executionArn": e.execution_arn,
                "name": e.name,
                "workflowType": e.workflow_type.map(|w| w.as_str()),
                "status": e.status.as_str(),
                "startDate": time_json(&e.start_date),
                "stopDate": e.stop_date.as_ref().map(time_json),
            }));
        }
        Ok(json!({"success": true, "executions": executions, "nextToken": page.next_token}))
    }

    async fn get_history(&self, caller: &Caller, args: &Fields<'_>) -> Result<Value, HandlerError> {
        let arn = args.str("executionArn")?;
        let limit = Self::limit(args)?;
        let token = args.opt_str("nextToken")?;
        let reverse = args.opt_bool("reverseOrder")?.unwrap_or(false);
        if let Err(v) = self.describe_owned(caller, arn).await? {
            return Ok(v);
        }
        match self
            .sfn(|| {
                self.ports
                    .workflows
                    .get_execution_history(arn, limit, token, reverse)
            })
            .await
        {
            Ok(page) => Ok(json!({
                "success": true,
                "events": page.events.iter().map(|e| json!({
                    "id": e.id,
                    "previousEventId": e.previous_event_id,
                    "type": e.event_type,
                    "timestamp": time_json(&e.timestamp),
                    "details": e.details.as_ref().map(|d| d.to_string()),
                })).collect::<Vec<_>>(),
                "nextToken": page.next_token,
            })),
            Err(e) => Ok(from_workflow(&e)),
        }
    }

    async fn stop_workflow(
        &self,
        caller: &Caller,
        args: &Fields<'_>,
    ) -> Result<Value, HandlerError> {
        if !caller.is_admin() {
            return Ok(unauthorized("stopWorkflow (administrators only)"));
        }
        let arn = args.str("executionArn")?;
        if ExecutionArn::new(arn).is_err() {
            return Ok(failure("InvalidArn", format!("Invalid Arn: '{arn}'")));
        }
        let error = args.opt_str("error")?;
        let cause = args.opt_str("cause")?;
        match self
            .sfn(|| self.ports.workflows.stop_execution(arn, error, cause))
            .await
        {
            Ok(stop) => {
                let status = match self
                    .sfn(|| self.ports.workflows.describe_execution(arn))
                    .await
                {
                    Ok(d) => d.status,
                    Err(_) => ExecutionStatus::Aborted,
                };
                Ok(
                    json!({"success": true, "executionArn": arn, "status": status.as_str(), "stopDate": time_json(&stop)}),
                )
            }
            Err(e) => Ok(from_workflow(&e)),
        }
    }

    async fn publish_event(
        &self,
        caller: &Caller,
        args: &Fields<'_>,
        inv: &Invocation,
    ) -> Result<Value, HandlerError> {
        let source = args.str("source")?;
        let detail_type = args.str("detailType")?;
        let mut detail = parse_json_arg(args, "detail")?;
        let Some(obj) = detail.as_object_mut() else {
            return Ok(failure(
                "ValidationException",
                "detail: must be a JSON object",
            ));
        };
        let client_event = CLIENT_EVENTS.contains(&(source, detail_type));
        if !caller.is_admin() {
            if !client_event {
                return Ok(unauthorized(&format!(
                    "publishing {source} \"{detail_type}\" (administrators only)"
                )));
            }
            if caller.user_id().is_some() && !owns(caller, &Value::Object(obj.clone())) {
                return Ok(unauthorized("publishing events about another user"));
            }
        }
        if !obj.contains_key("correlationId") {
            let c = inv
                .context
                .correlation_id
                .clone()
                .unwrap_or_else(|| self.ports.ids.new_id("corr-"));
            obj.insert("correlationId".into(), json!(c));
        }
        if !obj.contains_key("timestamp") {
            obj.insert("timestamp".into(), time_json(&self.ports.clock.now()));
        }
        let event = match MarketplaceEvent::decode(source, detail_type, &detail) {
            Ok(e) => e,
            Err(e) => return Ok(failure("ValidationException", e.to_string())),
        };
        let entry = event.to_put_events_entry(Some(&self.config.event_bus_name));
        let results = self.ports.events.put_events(&[entry]).await?;
        match results.into_iter().next() {
            Some(r) if r.error_code.is_none() && r.event_id.is_some() => {
                inv.metrics.add("EventPublished", Unit::Count, 1.0);
                Ok(json!({"success": true, "eventId": r.event_id}))
            }
            Some(r) => Ok(failure(
                r.error_code.as_deref().unwrap_or("InternalFailure"),
                r.error_message.unwrap_or_default(),
            )),
            None => Ok(failure("InternalFailure", "PutEvents returned no result")),
        }
    }

    async fn resolve_dispute(
        &self,
        caller: &Caller,
        args: &Fields<'_>,
    ) -> Result<Value, HandlerError> {
        if !caller.is_admin() {
            return Ok(unauthorized("resolveDispute (administrators only)"));
        }
        let id = args.str("disputeId")?;
        let resolution: DisputeResolution = args.parse("resolution")?;
        let notes = args.opt_str("notes")?;
        let Some(current) = self.ports.disputes.get_dispute(id).await? else {
            return Ok(failure(
                "ResourceNotFoundException",
                format!("dispute {id} does not exist"),
            ));
        };
        let d = &current.value;
        let currency = d.amount_paid.currency();
        let refund = args.money("refundAmount", currency)?;
        let rule = match resolution {
            DisputeResolution::Refunded if refund != d.refundable_amount => {
                Some(format!("must be the refundable amount ({}) when resolution is REFUNDED", d.refundable_amount))
            }
            DisputeResolution::PartiallyRefunded if refund.is_zero() || refund.amount() >= d.refundable_amount.amount() => {
                Some(format!("must be > 0 and < the refundable amount ({}) when resolution is PARTIALLY_REFUNDED", d.refundable_amount))
            }
            DisputeResolution::Rejected if !refund.is_zero() => Some("must be 0 when resolution is REJECTED".into()),
            _ => None,
        };
        if let Some(rule) = rule {
            return Ok(failure(
                "ValidationException",
                format!("refundAmount: {rule}"),
            ));
        }
        let output = json!({
            "resolution": resolution.as_str(),
            "refundAmount": money_json(&refund),
            "adminId": caller.describe(),
            "notes": notes,
        });
        if let Some(refused) = self
            .answer_dispute(id, DisputeWait::Admin, &caller.describe(), &output)
            .await?
        {
            return Ok(refused);
        }
        Ok(json!({
            "success": true,
            "disputeId": id,
            "resolution": resolution.as_str(),
            "refundAmount": money_json(&refund),
            "currency": currency.code(),
            "eventId": null,
        }))
    }

    /// Gives the workflow of dispute `id` the answer `output` for `wait`: completes the task
    /// token when the workflow waits; when the workflow is on its way to the wait (the token
    /// not stored yet) records the answer, which the waiting task applies to its own token.
    /// Returns the refusal (a resolver result) if the answer cannot be taken.
    async fn answer_dispute(
        &self,
        id: &str,
        wait: DisputeWait,
        by: &str,
        output: &Value,
    ) -> Result<Option<Value>, HandlerError> {
        let text = output.to_string();
        let refused = |message: String| {
            Ok(Some(failure(
                ErrorType::InvalidTransition.as_str(),
                message,
            )))
        };
        for _ in 0..5 {
            let Some(current) = self.ports.disputes.get_dispute(id).await? else {
                return Ok(Some(failure(
                    "ResourceNotFoundException",
                    format!("dispute {id} does not exist"),
                )));
            };
            let d = &current.value;
            if d.dispute.status() == DisputeStatus::Resolved {
                return refused(format!("dispute {id} is already resolved"));
            }
            if let Some(a) = wait.answer(d) {
                let state = if a.delivered {
                    "was already given"
                } else {
                    "is already recorded and is applied when the workflow reaches its wait"
                };
                return refused(format!(
                    "dispute {id}: {} {state} (by {} at {}); a second one is refused",
                    wait.what(),
                    a.answered_by,
                    a.answered_at.to_rfc3339()
                ));
            }
            let now = self.ports.clock.now();
            if let Some(token) = wait.token(d).map(str::to_owned) {
                if let Err(e) = self
                    .sfn(|| self.ports.workflows.send_task_success(&token, &text))
                    .await
                {
                    return Ok(Some(from_workflow(&e)));
                }
                self.record_delivered(
                    id,
                    wait,
                    &token,
                    RecordedAnswer {
                        output: text,
                        answered_by: by.to_owned(),
                        answered_at: now,
                        delivered: true,
                    },
                )
                .await;
                return Ok(None);
            }
            if let Some(why) = wait.unreachable(d, now) {
                return refused(format!(
                    "dispute {id} is not waiting for {}: {why}",
                    wait.what()
                ));
            }
            let mut next = d.clone();
            *wait.answer_mut(&mut next) = Some(RecordedAnswer {
                output: text.clone(),
                answered_by: by.to_owned(),
                answered_at: now,
                delivered: false,
            });
            match self
                .ports
                .disputes
                .update_dispute(&next, current.version)
                .await
            {
                Ok(_) => return Ok(None),
                // the wait was armed (or the dispute moved on) meanwhile: look again
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(failure(
            "ServiceUnavailable",
            format!("dispute {id} kept changing while the answer was recorded; retry"),
        )))
    }

    /// Marks the answer sent on `token` as delivered (so that a second one is refused) and
    /// forgets the token. The workflow has its answer already: a failure here is logged only.
    async fn record_delivered(
        &self,
        id: &str,
        wait: DisputeWait,
        token: &str,
        answer: RecordedAnswer,
    ) {
        for _ in 0..5 {
            let current = match self.ports.disputes.get_dispute(id).await {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    self.log.warn(
                        &LogContext::default(),
                        &format!("dispute {id}: the answer was sent but not recorded: {e}"),
                        &[],
                    );
                    return;
                }
            };
            if wait.token(&current.value) != Some(token) {
                // the workflow moved on (resolved, escalated again)
                return;
            }
            let mut next = current.value.clone();
            *wait.token_mut(&mut next) = None;
            *wait.answer_mut(&mut next) = Some(answer.clone());
            match self
                .ports
                .disputes
                .update_dispute(&next, current.version)
                .await
            {
                Ok(_) => return,
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => {
                    self.log.warn(
                        &LogContext::default(),
                        &format!("dispute {id}: the answer was sent but not recorded: {e}"),
                        &[],
                    );
                    return;
                }
            }
        }
    }

    async fn respond_to_dispute(
        &self,
        caller: &Caller,
        args: &Fields<'_>,
    ) -> Result<Value, HandlerError> {
        let id = args.str("disputeId")?;
        let response = args.str("response")?.to_ascii_uppercase();
        if !matches!(response.as_str(), "ACCEPT" | "REJECT" | "PARTIAL_OFFER") {
            return Ok(failure(
                "ValidationException",
                "response: must be ACCEPT, REJECT or PARTIAL_OFFER",
            ));
        }
        let Some(current) = self.ports.disputes.get_dispute(id).await? else {
            return Ok(failure(
                "ResourceNotFoundException",
                format!("dispute {id} does not exist"),
            ));
        };
        let d = &current.value;
        let is_provider = caller.user_id() == Some(d.provider_id.as_str());
        if !(caller.is_admin() || is_provider) {
            return Ok(unauthorized(
                "respondToDispute (the booking's provider only)",
            ));
        }
        let offer = args.opt_money("offerAmount", d.amount_paid.currency())?;
        if response == "PARTIAL_OFFER" && offer.is_none_or(|o| o.is_zero()) {
            return Ok(failure(
                "ValidationException",
                "offerAmount: is required and > 0 for PARTIAL_OFFER",
            ));
        }
        let output = json!({
            "response": response,
            "offerAmount": offer.as_ref().map(money_json),
            "message": args.opt_str("message")?,
        });
        if let Some(refused) = self
            .answer_dispute(id, DisputeWait::Provider, &caller.describe(), &output)
            .await?
        {
            return Ok(refused);
        }
        Ok(json!({"success": true, "disputeId": id}))
    }

    async fn send_task(
        &self,
        field: &str,
        caller: &Caller,
        args: &Fields<'_>,
    ) -> Result<Value, HandlerError> {
        if !caller.is_admin() {
            return Ok(unauthorized(&format!("{field} (administrators only)")));
        }
        let token = args.str("taskToken")?;
        let r = match field {
            "sendTaskSuccess" => {
                let output = parse_json_arg(args, "output")?.to_string();
                self.sfn(|| self.ports.workflows.send_task_success(token, &output))
                    .await
            }
            "sendTaskFailure" => {
                let error = args.opt_str("error")?.unwrap_or("");
                let cause = args.opt_str("cause")?.unwrap_or("");
                self.sfn(|| self.ports.workflows.send_task_failure(token, error, cause))
                    .await
            }
            _ => {
                self.sfn(|| self.ports.workflows.send_task_heartbeat(token))
                    .await
            }
        };
        Ok(match r {
            Ok(()) => json!({"success": true}),
            Err(e) => from_workflow(&e),
        })
    }

    /// Handles an EventBridge target input.
    pub async fn handle_target(
        &self,
        payload: &Value,
        request_id: Option<&str>,
    ) -> Result<Value, HandlerError> {
        let inv = Invocation::new(payload, request_id, self.log.clone(), self.metrics.clone());
        let result = self.target(payload, &inv).await;
        match &result {
            Ok(v) => inv
                .log
                .info(&inv.context, "event handled", &[("result", v.clone())]),
            Err(e) => inv.log_error("handleEvent", e),
        }
        inv.metrics.flush();
        result
    }

    async fn target(&self, payload: &Value, inv: &Invocation) -> Result<Value, HandlerError> {
        let action = payload
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("handleEvent");
        if action != "handleEvent" {
            return Err(HandlerError::validation(
                "action",
                format!("{action:?} is not an action of workflow-orchestrator"),
            ));
        }
        let event = TargetEvent::parse(payload)?;
        match (event.source.as_str(), event.detail_type.as_str()) {
            ("marketplace.provider", "Provider Registered") => {
                self.auto_start_onboarding(&event, inv).await
            }
            ("marketplace.payment", "Payment Succeeded" | "Payment Failed") => {
                self.payment_event(&event, inv).await
            }
            ("aws.states", "Step Functions Execution Status Change") => {
                let key = format!("status-{}", event.event_id);
                let (v, _) = self
                    .idempotency
                    .run(&key, &event.detail, || self.status_change(&event, inv))
                    .await?;
                Ok(v)
            }
            (s, d) => {
                Ok(json!({"handled": false, "reason": format!("no handling for {s} \"{d}\"")}))
            }
        }
    }

    async fn auto_start_onboarding(
        &self,
        event: &TargetEvent,
        inv: &Invocation,
    ) -> Result<Value, HandlerError> {
        let d = Fields::under(&event.detail, "detail");
        let input = json!({
            "providerId": d.str("providerId")?,
            "email": d.str("email")?,
            "country": d.str("country")?,
            "businessType": "individual",
            "correlationId": d.opt_str("correlationId")?,
        });
        let prepared = prepare(
            WorkflowType::ProviderOnboarding,
            &input,
            None,
            &self.config.onboarding_urls,
        )?;
        inv.metrics
            .add_dimension("workflowType", WorkflowType::ProviderOnboarding.as_str());
        match self
            .start(
                WorkflowType::ProviderOnboarding,
                &prepared.name,
                &prepared.input,
            )
            .await
        {
            Ok((s, _, dedup)) => {
                inv.metrics.add(
                    if dedup {
                        "WorkflowStartDeduplicated"
                    } else {
                        "WorkflowStarted"
                    },
                    Unit::Count,
                    1.0,
                );
                Ok(json!({"handled": true, "executionArn": s.execution_arn, "deduplicated": dedup}))
            }
            // an onboarding of this provider exists (a redelivery, or a restart after
            // a failure with another input): nothing to start twice
            Err(BreakerError::Inner(WorkflowError::ExecutionAlreadyExists(m))) => {
                inv.metrics
                    .add("WorkflowStartDeduplicated", Unit::Count, 1.0);
                Ok(json!({"handled": true, "deduplicated": true, "note": m}))
            }
            Err(e) => {
                inv.metrics.add("WorkflowStartFailed", Unit::Count, 1.0);
                Err(breaker_to_handler(e))
            }
        }
    }

    async fn payment_event(
        &self,
        event: &TargetEvent,
        inv: &Invocation,
    ) -> Result<Value, HandlerError> {
        let d = Fields::under(&event.detail, "detail");
        let pi = d.str("paymentIntentId")?;
        let booking_id = d.str("bookingId")?;
        let succeeded = event.detail_type == "Payment Succeeded";
        let failure_code = d.opt_str("failureCode")?.map(str::to_owned);
        let failure_message = d.opt_str("failureMessage")?.map(str::to_owned);
        let updated = update_and_deliver(&self.ports, pi, |r| {
            if r.status != "succeeded" {
                if succeeded {
                    r.status = "succeeded".into();
                } else {
                    r.status = "failed".into();
                    r.failure_code = failure_code.clone();
                    r.failure_message = failure_message.clone();
                }
            }
        })
        .await?;
        if !succeeded {
            return Ok(
                json!({"handled": true, "delivered": updated.is_some_and(|r| r.outcome_delivered)}),
            );
        }
        // a payment that landed after its booking ended waiting is refunded
        let Some(booking) = self.ports.bookings.get_booking(booking_id).await? else {
            return Ok(
                json!({"handled": true, "delivered": updated.is_some_and(|r| r.outcome_delivered)}),
            );
        };
        let status = booking.value.booking.status();
        if !matches!(status, BookingStatus::Expired | BookingStatus::Cancelled) {
            return Ok(
                json!({"handled": true, "delivered": updated.is_some_and(|r| r.outcome_delivered)}),
            );
        }
        let currency = booking.value.booking.price().currency();
        let amount = d.money("amount", currency)?;
        let refunded = updated
            .as_ref()
            .map(|r| r.refunded)
            .unwrap_or(marketplace_domain::Money::zero(currency));
        let left = amount
            .checked_sub(&refunded)
            .unwrap_or(marketplace_domain::Money::zero(currency));
        if left.is_zero() {
            return Ok(json!({"handled": true, "refund": "nothing left to refund"}));
        }
        let input = json!({
            "paymentType": "REFUND",
            "paymentIntentId": pi,
            "bookingId": booking_id,
            "amount": money_json(&left),
            "currency": currency.code(),
            "reason": "BOOKING_CANCELLED",
            "correlationId": d.opt_str("correlationId")?.unwrap_or(&booking.value.correlation_id),
        });
        let name = start::execution_name(&format!("refund-late-{pi}"));
        inv.metrics
            .add_dimension("workflowType", WorkflowType::PaymentProcessing.as_str());
        match self
            .start(WorkflowType::PaymentProcessing, &name, &input)
            .await
        {
            Ok((s, _, dedup)) => Ok(
                json!({"handled": true, "refundExecutionArn": s.execution_arn, "deduplicated": dedup, "bookingStatus": status.as_str()}),
            ),
            Err(BreakerError::Inner(WorkflowError::ExecutionAlreadyExists(_))) => {
                Ok(json!({"handled": true, "deduplicated": true}))
            }
            Err(e) => Err(breaker_to_handler(e)),
        }
    }

    async fn status_change(
        &self,
        event: &TargetEvent,
        inv: &Invocation,
    ) -> Result<Value, HandlerError> {
        let d = Fields::under(&event.detail, "detail");
        let arn_text = d.str("executionArn")?;
        let arn = ExecutionArn::new(arn_text).map_err(|e| d.error("executionArn", e.rule))?;
        let Some(wt) = arn.workflow_type() else {
            return Ok(json!({"handled": false, "reason": "not a marketplace state machine"}));
        };
        let status: ExecutionStatus = d.parse("status")?;
        let start = ms_time(event.detail.get("startDate"))
            .ok_or_else(|| d.error("startDate", "must be epoch milliseconds or RFC 3339"))?;
        let stop = ms_time(event.detail.get("stopDate"));
        let input: Value = d
            .opt_str("input")?
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or(Value::Null);
        let correlation = input
            .get("correlationId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| arn.execution_name().to_owned());
        let now = self.ports.clock.now();
        let mut detail = json!({
            "workflowType": wt.as_str(),
            "executionArn": arn.as_str(),
            "executionName": arn.execution_name(),
            "startDate": time_json(&start),
            "timestamp": time_json(&now),
            "correlationId": correlation,
        });
        let detail_type = match status {
            ExecutionStatus::Running => "Workflow Started",
            ExecutionStatus::Succeeded => "Workflow Succeeded",
            ExecutionStatus::Failed => "Workflow Failed",
            ExecutionStatus::TimedOut => "Workflow Timed Out",
            ExecutionStatus::Aborted => "Workflow Aborted",
            ExecutionStatus::PendingRedrive => {
                return Ok(json!({"handled": false, "reason": "PENDING_REDRIVE is not published"}))
            }
        };
        if status != ExecutionStatus::Running {
            detail["stopDate"] = time_json(&stop.unwrap_or(now));
        }
        if status == ExecutionStatus::Succeeded {
            if let Some(out) = d
                .opt_str("output")?
                .and_then(|o| serde_json::from_str::<Value>(o).ok())
            {
                detail["output"] = out;
            }
        }
        if matches!(status, ExecutionStatus::Failed | ExecutionStatus::Aborted) {
            for k in ["error", "cause"] {
                if let Some(v) = d.opt_str(k)? {
                    detail[k] = json!(v.chars().take(5000).collect::<String>());
                }
            }
        }
        let event = MarketplaceEvent::decode("marketplace.workflow", detail_type, &detail)
            .map_err(|e| HandlerError::validation(e.field(), e.to_string()))?;
        let entry = event.to_put_events_entry(Some(&self.config.event_bus_name));
        let ids = marketplace_ports::publish_all(self.ports.events.as_ref(), &[entry], 3).await?;
        inv.metrics.add_dimension("workflowType", wt.as_str());
        inv.metrics.add("WorkflowEventPublished", Unit::Count, 1.0);
        Ok(json!({"handled": true, "published": detail_type, "eventId": ids.first()}))
    }
}

fn breaker_to_handler(e: BreakerError<WorkflowError>) -> HandlerError {
    match e {
        BreakerError::Open { .. } => HandlerError::transient(e.to_string()),
        BreakerError::Inner(w) => {
            let t = w.error_type();
            HandlerError::new(t, w.to_string())
        }
    }
}

#[cfg(test)]
mod tests;
