//! # dispute-handler
//!
//! Dispute records, the automated resolution rules, escalation and resolution
//! (`statemachines/README.md`, "dispute-handler"). The workflow publishes the events;
//! this function keeps the records and decides.
//!
//! Automated rules (`evaluateDispute`; `refundable` = paid − already refunded):
//!
//! | rule | type | provider response | decision |
//! |---|---|---|---|
//! | R0-nothing-refundable | any | ACCEPT, nothing left | REJECT |
//! | R1-accepted-refund | REFUND_REQUEST | ACCEPT | REFUND of the request (all of refundable if none), capped |
//! | R2-small-claim-unanswered | REFUND_REQUEST | NO_RESPONSE, request ≤ 100.00 and ≤ refundable | REFUND |
//! | R3-unanswered-claim | REFUND_REQUEST | NO_RESPONSE, larger | ESCALATE (PROVIDER_NO_RESPONSE) |
//! | R4-refund-rejected | REFUND_REQUEST | REJECT | ESCALATE (NO_AGREEMENT) |
//! | R5-offer-on-refund | REFUND_REQUEST | PARTIAL_OFFER ≥ 50 % of the request | PARTIAL_REFUND of the offer, else ESCALATE |
//! | R6-complaint-accepted | SERVICE_COMPLAINT | ACCEPT | PARTIAL_REFUND of 50 % of refundable |
//! | R7-complaint-offer | SERVICE_COMPLAINT | PARTIAL_OFFER of 25–100 % of refundable | PARTIAL_REFUND of the offer |
//! | R8-complaint-unresolved | SERVICE_COMPLAINT | REJECT, NO_RESPONSE, offer < 25 % | ESCALATE |
//!
//! A refund's resolution is REFUNDED when it returns everything paid, else
//! PARTIALLY_REFUNDED. Nothing is rejected automatically except by R0.
//!
//! The waits `awaitProviderResponse` and `awaitAdminDecision` store their task token in the
//! record, except when the answer was given (GraphQL `respondToDispute` / `resolveDispute`)
//! before the workflow reached the wait — the provider is notified, the escalation
//! published, just before: the answer is then recorded in the record (`provider_response`,
//! `admin_decision`, not delivered) and the waiting task completes its own token with it
//! (SendTaskSuccess) and marks it delivered. A new escalation starts a new manual review and
//! clears the decision (one never applied is named in the escalation notes).
#![warn(missing_docs)]

use chrono::{DateTime, Duration, Utc};
use marketplace_domain::entities::{BookingStatus, Dispute, DisputeStatus};
use marketplace_domain::events::{DisputeResolution, DisputeType, EscalationReason};
use marketplace_domain::ids::{CorrelationId, CustomerId, DisputeId};
use marketplace_domain::Money;
use marketplace_ports::fields::{money_json, time_json, Fields};
use marketplace_ports::handler::{Invocation, TaskPayload};
use marketplace_ports::log::Logger;
use marketplace_ports::metrics::{Metrics, Unit};
use marketplace_ports::store::RecordedAnswer;
use marketplace_ports::{DisputeRecord, ErrorType, HandlerError, Ports, StoreError, Versioned};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};

/// How long a provider has to answer.
pub const REVIEW_WINDOW_HOURS: i64 = 24;
/// How long a dispute may stay open.
pub const RESOLUTION_WINDOW_DAYS: i64 = 7;
/// Disputes are accepted until this many days after the service ended.
pub const DISPUTE_WINDOW_DAYS: i64 = 30;
/// The largest unanswered refund request granted automatically (currency units).
pub const SMALL_CLAIM: i64 = 100;

/// The decision of the automated rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// REFUND, PARTIAL_REFUND, REJECT or ESCALATE.
    pub decision: &'static str,
    /// The amount to refund (0 for REJECT/ESCALATE).
    pub refund: Money,
    /// The rule applied.
    pub rule: &'static str,
    /// Why, in words.
    pub explanation: String,
    /// PROVIDER_NO_RESPONSE or NO_AGREEMENT when escalating.
    pub escalation: Option<&'static str>,
}

fn percent(m: Money, pct: u32) -> Money {
    let v = (m.amount() * Decimal::from(pct) / Decimal::from(100)).round_dp_with_strategy(
        m.currency().exponent(),
        RoundingStrategy::MidpointAwayFromZero,
    );
    Money::new(v, m.currency()).unwrap_or(m)
}

fn min(a: Money, b: Money) -> Money {
    if a.amount() <= b.amount() {
        a
    } else {
        b
    }
}

/// Applies the rules of the module docs.
pub fn decide(
    dispute_type: DisputeType,
    response: &str,
    offer: Option<Money>,
    requested: Option<Money>,
    refundable: Money,
) -> Decision {
    let zero = Money::zero(refundable.currency());
    let escalate = |rule: &'static str, why: &'static str, text: String| Decision {
        decision: "ESCALATE",
        refund: zero,
        rule,
        explanation: text,
        escalation: Some(why),
    };
    let refund =
        |decision: &'static str, amount: Money, rule: &'static str, text: String| Decision {
            decision,
            refund: amount,
            rule,
            explanation: text,
            escalation: None,
        };
    if response == "ACCEPT" && refundable.is_zero() {
        return Decision {
            decision: "REJECT",
            refund: zero,
            rule: "R0-nothing-refundable",
            explanation: "the provider accepted, but nothing is left to refund".into(),
            escalation: None,
        };
    }
    match dispute_type {
        DisputeType::RefundRequest => {
            let request = min(requested.unwrap_or(refundable), refundable);
            match response {
                "ACCEPT" => refund(
                    "REFUND",
                    request,
                    "R1-accepted-refund",
                    format!("the provider accepted the refund of {request}"),
                ),
                "NO_RESPONSE" => {
                    let asked = requested.unwrap_or(refundable);
                    if asked.amount() <= Decimal::from(SMALL_CLAIM)
                        && asked.amount() <= refundable.amount()
                    {
                        refund("REFUND", asked, "R2-small-claim-unanswered", format!("the provider did not answer in 24 hours and {asked} is a small claim"))
                    } else {
                        escalate("R3-unanswered-claim", "PROVIDER_NO_RESPONSE", format!("the provider did not answer and {asked} is above the small-claim limit"))
                    }
                }
                "PARTIAL_OFFER" => {
                    match offer {
                        Some(o)
                            if !o.is_zero()
                                && o.amount() * Decimal::from(2) >= request.amount() =>
                        {
                            let o = min(o, refundable);
                            refund("PARTIAL_REFUND", o, "R5-offer-on-refund", format!("the provider offered {o}, at least half of the {request} asked"))
                        }
                        _ => escalate(
                            "R5-offer-on-refund",
                            "NO_AGREEMENT",
                            "the provider's offer is below half of the request".into(),
                        ),
                    }
                }
                _ => escalate(
                    "R4-refund-rejected",
                    "NO_AGREEMENT",
                    "the provider rejected the refund request".into(),
                ),
            }
        }
        DisputeType::ServiceComplaint => match response {
            "ACCEPT" => {
                let half = percent(refundable, 50);
                refund(
                    "PARTIAL_REFUND",
                    half,
                    "R6-complaint-accepted",
                    format!("the provider accepted the complaint: 50 % ({half}) is refunded"),
                )
            }
            "PARTIAL_OFFER" => match offer {
                Some(o)
                    if o.amount() * Decimal::from(4) >= refundable.amount()
                        && o.amount() <= refundable.amount()
                        && !o.is_zero() =>
                {
                    refund(
                        "PARTIAL_REFUND",
                        o,
                        "R7-complaint-offer",
                        format!("the provider offered {o}, within 25-100 % of {refundable}"),
                    )
                }
                _ => escalate(
                    "R8-complaint-unresolved",
                    "NO_AGREEMENT",
                    "the provider's offer is below 25 % of the refundable amount".into(),
                ),
            },
            "NO_RESPONSE" => escalate(
                "R8-complaint-unresolved",
                "PROVIDER_NO_RESPONSE",
                "the provider did not answer the complaint".into(),
            ),
            _ => escalate(
                "R8-complaint-unresolved",
                "NO_AGREEMENT",
                "the provider rejected the complaint".into(),
            ),
        },
    }
}

/// One of the dispute workflow's task-token waits answered through GraphQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// `awaitProviderResponse` (respondToDispute).
    Provider,
    /// `awaitAdminDecision` (resolveDispute).
    Admin,
}

impl Wait {
    fn answer(self, r: &DisputeRecord) -> Option<&RecordedAnswer> {
        match self {
            Wait::Provider => r.provider_response.as_ref(),
            Wait::Admin => r.admin_decision.as_ref(),
        }
    }

    fn answer_mut(self, r: &mut DisputeRecord) -> &mut Option<RecordedAnswer> {
        match self {
            Wait::Provider => &mut r.provider_response,
            Wait::Admin => &mut r.admin_decision,
        }
    }

    fn token_mut(self, r: &mut DisputeRecord) -> &mut Option<String> {
        match self {
            Wait::Provider => &mut r.provider_task_token,
            Wait::Admin => &mut r.admin_task_token,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Wait::Provider => "the provider's response",
            Wait::Admin => "the administrator's decision",
        }
    }
}

/// The dispute-handler function.
#[derive(Clone)]
pub struct DisputeHandler {
    ports: Ports,
    log: Logger,
    metrics: Metrics,
}

fn concurrent(e: StoreError) -> HandlerError {
    match e {
        StoreError::ConditionFailed { entity, id, .. } => HandlerError::transient(format!(
            "{entity} {id} changed while it was being updated; retry"
        )),
        other => other.into(),
    }
}

impl DisputeHandler {
    /// A dispute handler over `ports`.
    pub fn new(ports: Ports, log: Logger, metrics: Metrics) -> Self {
        Self {
            ports,
            log,
            metrics,
        }
    }

    /// Handles one task payload.
    pub async fn handle(
        &self,
        payload: Value,
        request_id: Option<&str>,
    ) -> Result<Value, HandlerError> {
        let inv = Invocation::new(&payload, request_id, self.log.clone(), self.metrics.clone());
        let action = payload
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let result = self.dispatch(&payload).await;
        inv.metrics.add_dimension("action", &action);
        match &result {
            Ok(out) => {
                inv.metrics.add("ActionSucceeded", Unit::Count, 1.0);
                inv.log.info(
                    &inv.context,
                    &format!("{action} done"),
                    &[("result", out.clone())],
                );
            }
            Err(e) => {
                inv.metrics.add("ActionFailed", Unit::Count, 1.0);
                inv.log_error(&action, e);
            }
        }
        inv.metrics.flush();
        result
    }

    async fn dispatch(&self, payload: &Value) -> Result<Value, HandlerError> {
        let task = TaskPayload::parse(payload)?;
        let corr = task.correlation_id.unwrap_or("").to_owned();
        let f = task.fields;
        match task.action {
            "createDispute" => self.create(&f, &corr).await,
            "awaitProviderResponse" => {
                let token = task.require_task_token()?;
                self.await_answer(&f, Wait::Provider, token).await
            }
            "awaitAdminDecision" => {
                let token = task.require_task_token()?;
                self.await_answer(&f, Wait::Admin, token).await
            }
            "evaluateDispute" => self.evaluate(&f).await,
            "escalateDispute" => self.escalate(&f, &corr).await,
            "resolveDispute" => self.resolve(&f, &corr).await,
            other => Err(HandlerError::validation(
                "action",
                format!("{other:?} is not an action of dispute-handler"),
            )),
        }
    }

    async fn load(&self, id: &str) -> Result<Versioned<DisputeRecord>, HandlerError> {
        self.ports
            .disputes
            .get_dispute(id)
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("dispute {id}")))
    }

    fn correlation(corr: &str, r: Option<&DisputeRecord>) -> Result<CorrelationId, HandlerError> {
        let c = if corr.is_empty() {
            r.map(|r| r.correlation_id.as_str()).unwrap_or("dispute")
        } else {
            corr
        };
        CorrelationId::new(c).map_err(|e| HandlerError::validation("correlationId", e.rule))
    }

    fn output(r: &DisputeRecord) -> Value {
        json!({
            "disputeId": r.dispute.id().as_str(),
            "bookingId": r.booking_id,
            "disputeType": r.dispute_type.as_str(),
            "customerId": r.customer_id,
            "providerId": r.provider_id,
            "paymentIntentId": r.payment_intent_id,
            "amountPaid": money_json(&r.amount_paid),
            "refundableAmount": money_json(&r.refundable_amount),
            "currency": r.amount_paid.currency().code(),
            "requestedRefundAmount": r.requested_refund_amount.as_ref().map(money_json),
            "description": r.description,
            "reviewDeadline": time_json(&r.review_deadline),
            "resolutionDeadline": time_json(&r.resolution_deadline),
        })
    }

    async fn refundable(
        &self,
        payment_intent: Option<&str>,
        paid: Money,
    ) -> Result<Money, HandlerError> {
        if let Some(pi) = payment_intent {
            if let Some(p) = self.ports.payments.get_payment(pi).await? {
                return Ok(p
                    .value
                    .amount
                    .checked_sub(&p.value.refunded)
                    .unwrap_or(Money::zero(paid.currency())));
            }
        }
        Ok(paid)
    }

    async fn create(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let id: DisputeId = f.parse("disputeId")?;
        let booking_id = f.str("bookingId")?;
        let dispute_type: DisputeType = f.parse("disputeType")?;
        let customer: CustomerId = f.parse("customerId")?;
        let description = f.str("description")?;
        let now = f.time("now")?;
        if let Some(existing) = self.ports.disputes.get_dispute(id.as_str()).await? {
            if existing.value.booking_id != booking_id
                || existing.value.customer_id != customer.as_str()
            {
                return Err(f.error(
                    "disputeId",
                    format!("{id} is already used by another dispute"),
                ));
            }
            return Ok(Self::output(&existing.value));
        }
        let booking = self
            .ports
            .bookings
            .get_booking(booking_id)
            .await?
            .ok_or_else(|| HandlerError::not_found(format!("booking {booking_id}")))?
            .value;
        if booking.booking.customer_id() != &customer {
            return Err(f.error("customerId", "must be the booking's customer"));
        }
        if !matches!(
            booking.booking.status(),
            BookingStatus::Confirmed | BookingStatus::Completed
        ) {
            return Err(f.error(
                "bookingId",
                format!(
                    "booking {booking_id} is {} and was not paid",
                    booking.booking.status()
                ),
            ));
        }
        if now > booking.booking.end_date_time() + Duration::days(DISPUTE_WINDOW_DAYS) {
            return Err(f.error("now", format!("disputes must be opened within {DISPUTE_WINDOW_DAYS} days after the service ended")));
        }
        let paid = booking.booking.price();
        let requested = f.opt_money("requestedRefundAmount", paid.currency())?;
        if requested.is_some_and(|r| r.is_zero()) {
            return Err(f.error("requestedRefundAmount", "must be > 0 (or null)"));
        }
        let pi = booking
            .booking
            .payment_intent_id()
            .map(|p| p.to_string())
            .or(booking.payment_intent_id.clone());
        let refundable = self.refundable(pi.as_deref(), paid).await?;
        let correlation = Self::correlation(corr, None)?;
        let (dispute, _) = Dispute::open(
            id.clone(),
            &booking.booking,
            dispute_type,
            description,
            now,
            correlation.clone(),
        )?;
        let record = DisputeRecord {
            dispute,
            booking_id: booking_id.to_owned(),
            dispute_type,
            customer_id: customer.to_string(),
            provider_id: booking.booking.provider_id().to_string(),
            payment_intent_id: pi,
            amount_paid: paid,
            refundable_amount: refundable,
            requested_refund_amount: requested,
            description: description.to_owned(),
            review_deadline: now + Duration::hours(REVIEW_WINDOW_HOURS),
            resolution_deadline: now + Duration::days(RESOLUTION_WINDOW_DAYS),
            provider_task_token: None,
            admin_task_token: None,
            escalation_level: None,
            provider_response: None,
            admin_decision: None,
            open: true,
            correlation_id: correlation.as_str().to_owned(),
        };
        match self.ports.disputes.create_dispute(&record).await {
            Ok(_) => Ok(Self::output(&record)),
            Err(StoreError::ConditionFailed { reason, .. }) => {
                match self.ports.disputes.get_dispute(id.as_str()).await? {
                    // a concurrent retry of this task created it
                    Some(existing) => Ok(Self::output(&existing.value)),
                    None => Err(f.error("bookingId", reason)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Arms a task-token wait: stores the token in the record, or, when the answer was given
    /// (through GraphQL) before the wait was armed, completes the task's own token with it.
    async fn await_answer(
        &self,
        f: &Fields<'_>,
        wait: Wait,
        token: &str,
    ) -> Result<Value, HandlerError> {
        let id = f.str("disputeId")?;
        // the output already sent with SendTaskSuccess: a conflicting write must not send again
        let mut sent: Option<String> = None;
        for _ in 0..5 {
            let current = self.load(id).await?;
            if current.value.dispute.status() == DisputeStatus::Resolved {
                return Err(HandlerError::new(
                    ErrorType::InvalidTransition,
                    format!("dispute {id} is already resolved"),
                ));
            }
            let mut next = current.value.clone();
            let pending = wait.answer(&next).filter(|a| !a.delivered).cloned();
            let out = match pending {
                Some(answer) => {
                    if sent.as_deref() != Some(answer.output.as_str()) {
                        if sent.is_some() {
                            // another answer replaced the one sent: the task has its answer
                            return Ok(json!({"waiting": false, "answeredBy": null}));
                        }
                        self.ports
                            .workflows
                            .send_task_success(token, &answer.output)
                            .await?;
                        sent = Some(answer.output.clone());
                    }
                    *wait.answer_mut(&mut next) = Some(RecordedAnswer {
                        delivered: true,
                        ..answer.clone()
                    });
                    *wait.token_mut(&mut next) = None;
                    json!({
                        "waiting": false,
                        "answeredBy": answer.answered_by,
                        "answeredAt": time_json(&answer.answered_at),
                    })
                }
                None if sent.is_some() => {
                    // recorded as delivered meanwhile (or cleared by a new escalation)
                    return Ok(json!({"waiting": false, "answeredBy": null}));
                }
                None => {
                    *wait.token_mut(&mut next) = Some(token.to_owned());
                    json!({"waiting": true})
                }
            };
            match self
                .ports
                .disputes
                .update_dispute(&next, current.version)
                .await
            {
                Ok(_) => return Ok(out),
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) if sent.is_some() => {
                    // the workflow has its answer; only the bookkeeping failed
                    self.log.warn(
                        &Default::default(),
                        &format!("dispute {id}: {} sent to the workflow but not recorded as delivered: {e}", wait.what()),
                        &[],
                    );
                    return Ok(out);
                }
                Err(e) => return Err(e.into()),
            }
        }
        if sent.is_some() {
            return Ok(json!({"waiting": false, "answeredBy": null}));
        }
        Err(HandlerError::transient(format!(
            "dispute {id} kept changing; retry"
        )))
    }

    async fn evaluate(&self, f: &Fields<'_>) -> Result<Value, HandlerError> {
        let id = f.str("disputeId")?;
        let current = self.load(id).await?;
        let r = &current.value;
        let currency = r.amount_paid.currency();
        let response_obj = f.object("providerResponse")?;
        let response_obj = Fields::under(response_obj.value(), "providerResponse");
        let response = response_obj.str("response")?.to_ascii_uppercase();
        if !matches!(
            response.as_str(),
            "ACCEPT" | "REJECT" | "PARTIAL_OFFER" | "NO_RESPONSE"
        ) {
            return Err(response_obj.error(
                "response",
                "must be ACCEPT, REJECT, PARTIAL_OFFER or NO_RESPONSE",
            ));
        }
        let offer = response_obj.opt_money("offerAmount", currency)?;
        let refundable = self
            .refundable(r.payment_intent_id.as_deref(), r.amount_paid)
            .await?;
        let d = decide(
            r.dispute_type,
            &response,
            offer,
            r.requested_refund_amount,
            refundable,
        );
        let resolution = match d.decision {
            "REFUND" | "PARTIAL_REFUND" if d.refund == r.amount_paid => {
                Some(DisputeResolution::Refunded)
            }
            "REFUND" | "PARTIAL_REFUND" => Some(DisputeResolution::PartiallyRefunded),
            "REJECT" => Some(DisputeResolution::Rejected),
            _ => None,
        };
        if response != "NO_RESPONSE" {
            // the GraphQL resolver may still be recording the delivered response: reload
            // and write again rather than fail the task
            let mut current = current.clone();
            for attempt in 1..=5 {
                if current.value.dispute.status() != DisputeStatus::Open {
                    break;
                }
                let mut next = current.value.clone();
                next.dispute.provider_responded(self.ports.clock.now())?;
                next.provider_task_token = None;
                match self
                    .ports
                    .disputes
                    .update_dispute(&next, current.version)
                    .await
                {
                    Ok(_) => break,
                    Err(e @ StoreError::ConditionFailed { .. }) if attempt == 5 => {
                        return Err(concurrent(e))
                    }
                    Err(StoreError::ConditionFailed { .. }) => current = self.load(id).await?,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(json!({
            "decision": d.decision,
            "resolution": resolution.map(|x| x.as_str()),
            "refundAmount": money_json(&d.refund),
            "currency": currency.code(),
            "rule": d.rule,
            "explanation": d.explanation,
            "escalationReason": d.escalation,
        }))
    }

    async fn escalate(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let id = f.str("disputeId")?;
        let reason = f.str("reason")?;
        let event_reason = match reason {
            "PROVIDER_NO_RESPONSE" => EscalationReason::ProviderNoResponse,
            "NO_AGREEMENT" => EscalationReason::NoAgreement,
            "AUTOMATION_ERROR" | "REVIEW_STALLED" | "REFUND_FAILED" | "RESOLUTION_DEADLINE_EXCEEDED" => EscalationReason::Manual,
            _ => {
                return Err(f.error(
                    "reason",
                    "must be PROVIDER_NO_RESPONSE, NO_AGREEMENT, AUTOMATION_ERROR, REVIEW_STALLED, REFUND_FAILED or RESOLUTION_DEADLINE_EXCEEDED",
                ))
            }
        };
        let level = f.opt_str("level")?.unwrap_or("MANUAL_REVIEW");
        if !matches!(level, "MANUAL_REVIEW" | "FINAL") {
            return Err(f.error("level", "must be MANUAL_REVIEW or FINAL"));
        }
        let now = f.time("now")?;
        let detail = match f.get("detail") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let mut notes = match reason {
            "RESOLUTION_DEADLINE_EXCEEDED" => {
                "the 7-day resolution deadline passed without a decision".to_owned()
            }
            other => format!("escalated for manual review: {other}"),
        };
        if let Some(d) = detail.filter(|d| !d.is_empty()) {
            notes.push_str(&format!(" ({})", d.chars().take(1000).collect::<String>()));
        }
        let current = self.load(id).await?;
        let mut next = current.value.clone();
        if next.dispute.status() == DisputeStatus::Resolved {
            return Err(HandlerError::new(
                ErrorType::InvalidTransition,
                format!("dispute {id} is already resolved"),
            ));
        }
        if next.dispute.status() != DisputeStatus::Escalated {
            let correlation = Self::correlation(corr, Some(&next))?;
            next.dispute
                .escalate(event_reason, Some(&notes), now, correlation)?;
        }
        next.escalation_level = Some(level.to_owned());
        next.admin_task_token = None;
        // a new review: the previous decision (delivered, or never applied because the
        // manual path failed before its wait) no longer applies
        if let Some(dropped) = next.admin_decision.take().filter(|a| !a.delivered) {
            notes.push_str(&format!(
                "; the decision recorded by {} at {} was not applied",
                dropped.answered_by,
                dropped.answered_at.to_rfc3339()
            ));
            self.log.warn(
                &Default::default(),
                &format!(
                    "dispute {id}: escalated to {level}; the pending decision by {} was not applied: {}",
                    dropped.answered_by, dropped.output
                ),
                &[],
            );
        }
        self.ports
            .disputes
            .update_dispute(&next, current.version)
            .await
            .map_err(concurrent)?;
        let left = (next.resolution_deadline - now).num_seconds();
        let deadline_passed = left < 120;
        let review = if deadline_passed { left.max(0) } else { left };
        Ok(json!({
            "escalationLevel": level,
            "eventReason": event_reason.as_str(),
            "notes": notes,
            "deadlinePassed": deadline_passed,
            "reviewTimeoutSeconds": review,
            "heartbeatSeconds": (review - 60).clamp(1, 172_800),
            "resolutionDeadline": time_json(&next.resolution_deadline),
        }))
    }

    async fn resolve(&self, f: &Fields<'_>, corr: &str) -> Result<Value, HandlerError> {
        let id = f.str("disputeId")?;
        let asked: DisputeResolution = f.parse("resolution")?;
        let current = self.load(id).await?;
        let r = &current.value;
        let currency = r.amount_paid.currency();
        if r.dispute.status() == DisputeStatus::Resolved {
            // a retried task: answer what was decided
            let refund = r.dispute.refund().unwrap_or(Money::zero(currency));
            return Ok(json!({
                "resolution": r.dispute.resolution().map(|x| x.as_str()),
                "refundAmount": money_json(&refund),
                "currency": currency.code(),
                "resolvedBy": f.opt_str("resolvedBy")?.unwrap_or("automation"),
                "resolvedAt": time_json(&self.ports.clock.now()),
            }));
        }
        let refunded = match f.get("refund") {
            Some(Value::Object(_)) => {
                let rf = Fields::under(f.get("refund").unwrap_or(&Value::Null), "refund");
                match rf.opt_str("status")? {
                    Some("failed") | Some("canceled") => Money::zero(currency),
                    _ => rf
                        .opt_money("amount", currency)?
                        .unwrap_or(Money::zero(currency)),
                }
            }
            _ => Money::zero(currency),
        };
        // the resolution follows what was actually refunded
        let resolution = if refunded.is_zero() {
            DisputeResolution::Rejected
        } else if refunded == r.amount_paid {
            DisputeResolution::Refunded
        } else {
            DisputeResolution::PartiallyRefunded
        };
        if resolution != asked {
            self.log.warn(
                &Default::default(),
                &format!(
                    "dispute {id}: resolution {} recorded as {} (refunded {refunded})",
                    asked.as_str(),
                    resolution.as_str()
                ),
                &[],
            );
        }
        let resolved_by = f.opt_str("resolvedBy")?.unwrap_or("automation").to_owned();
        let mut notes = f.opt_str("notes")?.unwrap_or("").to_owned();
        if let Some(rule) = f.opt_str("rule")? {
            notes = if notes.is_empty() {
                format!("rule {rule}")
            } else {
                format!("{notes} (rule {rule})")
            };
        }
        let now = self.ports.clock.now();
        let mut next = r.clone();
        let correlation = Self::correlation(corr, Some(r))?;
        next.dispute.resolve(
            resolution,
            refunded,
            Some(&resolved_by),
            (!notes.is_empty()).then_some(notes.as_str()),
            now,
            correlation,
        )?;
        next.open = false;
        next.provider_task_token = None;
        next.admin_task_token = None;
        self.ports
            .disputes
            .update_dispute(&next, current.version)
            .await
            .map_err(concurrent)?;
        Ok(json!({
            "resolution": resolution.as_str(),
            "refundAmount": money_json(&refunded),
            "currency": currency.code(),
            "resolvedBy": resolved_by,
            "resolvedAt": time_json(&now),
        }))
    }
}

/// When a dispute opened at `opened` must be resolved.
pub fn resolution_deadline(opened: DateTime<Utc>) -> DateTime<Utc> {
    opened + Duration::days(RESOLUTION_WINDOW_DAYS)
}

#[cfg(test)]
mod tests;
