//! Delivering a Stripe outcome to the workflow waiting for it, exactly once in effect.
//!
//! A `.waitForTaskToken` task stores its token on the payment record
//! ([`attach_task_token`]); whoever learns the outcome (the Stripe webhook, a payment
//! event, or the task itself when the outcome was already known) updates the record with
//! [`update_and_deliver`]. Both write conditionally on the record's version and deliver
//! when a token waits and the outcome is known, so the race between webhook and workflow
//! cannot lose the outcome; a second delivery to the same token gets `TaskTimedOut` /
//! `TaskDoesNotExist` / `InvalidToken`, which is ignored.

use crate::error::{ErrorType, HandlerError, StoreError};
use crate::fields::{money_json, time_json};
use crate::store::{PaymentKind, PaymentRecord};
use crate::Ports;
use serde_json::{json, Value};

/// How many times a conditional update is retried after a concurrent change.
const MAX_ATTEMPTS: usize = 8;

/// What a waiting task receives.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskResult {
    /// SendTaskSuccess with this output.
    Success(Value),
    /// SendTaskFailure with this error and JSON cause.
    Failure {
        /// The contract error name.
        error: ErrorType,
        /// `{"failureCode","failureMessage"}`.
        cause: Value,
    },
}

fn failure(error: ErrorType, r: &PaymentRecord, default_code: &str) -> TaskResult {
    TaskResult::Failure {
        error,
        cause: json!({
            "failureCode": r.failure_code.clone().unwrap_or_else(|| default_code.to_owned()),
            "failureMessage": r.failure_message.clone().unwrap_or_else(|| default_code.replace('_', " ")),
        }),
    }
}

/// The outcome of `record` for a waiting task, once Stripe decided it.
pub fn outcome_of(r: &PaymentRecord) -> Option<TaskResult> {
    match (r.kind, r.status.as_str()) {
        (PaymentKind::PaymentIntent, "succeeded") => Some(TaskResult::Success(json!({
            "paymentIntentId": r.id,
            "status": "succeeded",
            "chargeId": r.charge_id,
            "amount": money_json(&r.amount),
            "currency": r.amount.currency().code(),
        }))),
        (PaymentKind::PaymentIntent, "failed") => {
            Some(failure(ErrorType::PaymentDeclined, r, "card_declined"))
        }
        (PaymentKind::PaymentIntent, "canceled") => {
            Some(failure(ErrorType::PaymentDeclined, r, "canceled"))
        }
        (PaymentKind::Refund, "succeeded") => Some(TaskResult::Success(json!({
            "refundId": r.id,
            "status": "succeeded",
            "amount": money_json(&r.amount),
            "currency": r.amount.currency().code(),
        }))),
        (PaymentKind::Refund, "failed" | "canceled") => {
            Some(failure(ErrorType::PaymentProviderError, r, "refund_failed"))
        }
        (PaymentKind::Payout, "paid") => Some(TaskResult::Success(json!({
            "payoutId": r.id,
            "status": "paid",
            "amount": money_json(&r.amount),
            "currency": r.amount.currency().code(),
            "arrivalDate": r.arrival_date.as_ref().map(time_json),
        }))),
        (PaymentKind::Payout, "failed" | "canceled") => {
            Some(failure(ErrorType::PayoutFailed, r, "payout_failed"))
        }
        _ => None,
    }
}

/// Sends `result` to `token`; Ok(false) when the token was already used or expired.
async fn send(ports: &Ports, token: &str, result: &TaskResult) -> Result<bool, HandlerError> {
    let sent = match result {
        TaskResult::Success(output) => {
            ports
                .workflows
                .send_task_success(token, &output.to_string())
                .await
        }
        TaskResult::Failure { error, cause } => {
            ports
                .workflows
                .send_task_failure(token, error.as_str(), &cause.to_string())
                .await
        }
    };
    match sent {
        Ok(()) => Ok(true),
        Err(e) if e.is_stale_token() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Delivers the record's outcome to its token if one waits and it was not delivered,
/// then marks it delivered. Returns whether a waiting task accepted it.
async fn deliver(ports: &Ports, id: &str) -> Result<bool, HandlerError> {
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) = ports.payments.get_payment(id).await? else {
            return Ok(false);
        };
        let r = &current.value;
        let (Some(token), false, Some(result)) =
            (r.task_token.clone(), r.outcome_delivered, outcome_of(r))
        else {
            return Ok(false);
        };
        // send first: a send that fails leaves the record undelivered for the retry;
        // a duplicate send to a used token is ignored
        let accepted = send(ports, &token, &result).await?;
        let mut done = r.clone();
        done.outcome_delivered = true;
        done.updated_at = ports.clock.now();
        match ports
            .payments
            .put_payment(&done, Some(current.version))
            .await
        {
            Ok(_) => return Ok(accepted),
            Err(StoreError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::transient(format!(
        "payment {id} kept changing; retry"
    )))
}

/// Applies `update` to payment record `id` (conditional write, retried on concurrent
/// changes) and delivers the outcome to a waiting token. Returns the updated record,
/// or None when there is no such record.
pub async fn update_and_deliver(
    ports: &Ports,
    id: &str,
    update: impl Fn(&mut PaymentRecord),
) -> Result<Option<PaymentRecord>, HandlerError> {
    Ok(update_and_report(ports, id, update)
        .await?
        .map(|d| d.record))
}

/// What [`update_and_report`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The record after the update.
    pub record: PaymentRecord,
    /// Whether a waiting task accepted the outcome in this call (false: nobody waits,
    /// the outcome is not known yet, it was delivered before, or the token expired).
    pub accepted: bool,
}

/// As [`update_and_deliver`], also telling whether a waiting workflow took the outcome
/// (callers publish an event themselves when none did).
pub async fn update_and_report(
    ports: &Ports,
    id: &str,
    update: impl Fn(&mut PaymentRecord),
) -> Result<Option<Delivery>, HandlerError> {
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) = ports.payments.get_payment(id).await? else {
            return Ok(None);
        };
        let mut next = current.value.clone();
        update(&mut next);
        if next != current.value {
            next.updated_at = ports.clock.now();
            match ports
                .payments
                .put_payment(&next, Some(current.version))
                .await
            {
                Ok(_) => {}
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let accepted = deliver(ports, id).await?;
        return Ok(ports.payments.get_payment(id).await?.map(|v| Delivery {
            record: v.value,
            accepted,
        }));
    }
    Err(HandlerError::transient(format!(
        "payment {id} kept changing; retry"
    )))
}

/// Stores `token` on record `id` for a new wait and, if the outcome is already known,
/// delivers it at once.
pub async fn attach_task_token(
    ports: &Ports,
    id: &str,
    token: &str,
) -> Result<PaymentRecord, HandlerError> {
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) = ports.payments.get_payment(id).await? else {
            return Err(HandlerError::not_found(format!("payment {id}")));
        };
        let mut next = current.value.clone();
        if next.task_token.as_deref() != Some(token) {
            next.task_token = Some(token.to_owned());
            next.outcome_delivered = false;
            next.updated_at = ports.clock.now();
            match ports
                .payments
                .put_payment(&next, Some(current.version))
                .await
            {
                Ok(_) => {}
                Err(StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        deliver(ports, id).await?;
        return ports
            .payments
            .get_payment(id)
            .await?
            .map(|v| v.value)
            .ok_or_else(|| HandlerError::not_found(format!("payment {id}")));
    }
    Err(HandlerError::transient(format!(
        "payment {id} kept changing; retry"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryPorts, TaskOutcome};
    use crate::{PaymentRepository, WorkflowClient};
    use marketplace_domain::WorkflowType;

    fn record(id: &str) -> PaymentRecord {
        crate::fixtures::payment_record(id, "bk_1")
    }

    async fn waiting(m: &MemoryPorts, token: &str) {
        let e = m
            .workflows
            .start_execution(WorkflowType::BookingLifecycle, &format!("x-{token}"), "{}")
            .await
            .unwrap();
        m.workflows.register_task(token, &e.execution_arn);
    }

    #[tokio::test]
    async fn webhook_first_then_task_delivers_from_the_task() {
        let m = MemoryPorts::new(crate::fixtures::t0());
        m.store.put_payment(&record("pi_1"), None).await.unwrap();
        waiting(&m, "tok").await;
        update_and_deliver(&m.ports, "pi_1", |r| {
            r.status = "succeeded".into();
            r.charge_id = Some("ch_1".into());
        })
        .await
        .unwrap();
        assert_eq!(m.workflows.task_outcome("tok"), None, "no token yet");
        let r = attach_task_token(&m.ports, "pi_1", "tok").await.unwrap();
        assert!(r.outcome_delivered);
        match m.workflows.task_outcome("tok") {
            Some(TaskOutcome::Success(v)) => {
                assert_eq!(v["chargeId"], "ch_1");
                assert_eq!(v["amount"], json!(120));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn task_first_then_webhook_delivers_once() {
        let m = MemoryPorts::new(crate::fixtures::t0());
        m.store.put_payment(&record("pi_1"), None).await.unwrap();
        waiting(&m, "tok").await;
        attach_task_token(&m.ports, "pi_1", "tok").await.unwrap();
        assert_eq!(
            m.workflows.task_outcome("tok"),
            None,
            "outcome unknown: keep waiting"
        );
        let decline = |r: &mut PaymentRecord| {
            r.status = "failed".into();
            r.failure_code = Some("insufficient_funds".into());
            r.failure_message = Some("Your card has insufficient funds.".into());
        };
        update_and_deliver(&m.ports, "pi_1", decline).await.unwrap();
        // redelivered webhook: nothing changes, nothing is sent again
        update_and_deliver(&m.ports, "pi_1", decline).await.unwrap();
        match m.workflows.task_outcome("tok") {
            Some(TaskOutcome::Failure { error, cause }) => {
                assert_eq!(error, "Marketplace.PaymentDeclined");
                let c: Value = serde_json::from_str(&cause).unwrap();
                assert_eq!(c["failureCode"], "insufficient_funds");
            }
            other => panic!("{other:?}"),
        }
        assert!(update_and_deliver(&m.ports, "pi_missing", decline)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn an_expired_token_is_not_an_error_but_is_reported() {
        let m = MemoryPorts::new(crate::fixtures::t0());
        let mut r = record("po_1");
        r.kind = PaymentKind::Payout;
        r.status = "pending".into();
        r.task_token = Some("gone".into());
        m.store.put_payment(&r, None).await.unwrap();
        let d = update_and_report(&m.ports, "po_1", |r| r.status = "paid".into())
            .await
            .unwrap()
            .unwrap();
        assert!(!d.accepted, "nobody waits on the token any more");
        assert!(d.record.outcome_delivered, "and it is not retried");
        waiting(&m, "live").await;
        let mut r2 = record("po_2");
        r2.kind = PaymentKind::Payout;
        r2.task_token = Some("live".into());
        m.store.put_payment(&r2, None).await.unwrap();
        let d = update_and_report(&m.ports, "po_2", |r| r.status = "paid".into())
            .await
            .unwrap()
            .unwrap();
        assert!(d.accepted);
    }
}
