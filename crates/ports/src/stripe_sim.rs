//! `SimulatedStripe`: an in-memory payment gateway that behaves like Stripe test mode.
//!
//! - Payment methods (Stripe's test ids, or the test card numbers):
//!   `pm_card_visa` / `4242424242424242` succeed; `pm_card_chargeDeclined` /
//!   `4000000000000002` decline (`card_declined`, `generic_decline`);
//!   `pm_card_chargeDeclinedInsufficientFunds` / `4000000000009995` decline with
//!   `insufficient_funds`; `pm_card_authenticationRequired` / `4000002500003155` (and
//!   `pm_card_threeDSecure2Required` / `4000000000003220`) stay `requires_action` until
//!   [`SimulatedStripe::authenticate`]. Any other `pm_...` succeeds; anything else is
//!   `resource_missing`.
//! - Idempotency keys like Stripe: the same key with the same parameters returns the same
//!   object (and emits no second webhook); with different parameters it is a 400
//!   `idempotency_error`.
//! - Money: refunds never exceed what is left of the charge; transfers credit the
//!   connected account's balance and reversals debit it; payouts need the balance
//!   (`balance_insufficient`) and stay `pending` until [`SimulatedStripe::settle_payout`].
//! - Webhook events (`payment_intent.succeeded`, `payment_intent.payment_failed`,
//!   `charge.refunded`, `payout.paid`, `payout.failed`, `account.updated`) in Stripe's
//!   shape go to the sink set with [`SimulatedStripe::set_webhook_sink`] and are kept
//!   ([`SimulatedStripe::events`]).
//! - Failures can be injected per operation ([`SimulatedStripe::fail_next`]).

use crate::clock::Clock;
use crate::error::GatewayError;
use crate::payments::*;
use async_trait::async_trait;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Receives each webhook event (Stripe's JSON `event` object).
pub type WebhookSink = Arc<dyn Fn(Value) + Send + Sync>;

/// A webhook to emit: (type, data.object, connected account).
type PendingEvent = (&'static str, Value, Option<String>);

#[derive(Default)]
struct SimState {
    seq: u64,
    intents: BTreeMap<String, PaymentIntent>,
    /// pi id → refunded minor units
    refunded: HashMap<String, i64>,
    refunds: BTreeMap<String, Refund>,
    transfers: BTreeMap<String, Transfer>,
    payouts: BTreeMap<String, Payout>,
    accounts: BTreeMap<String, Account>,
    /// (account, currency) → available minor units
    balances: HashMap<(String, String), i64>,
    /// (operation, key) → (params fingerprint, response)
    idempotency: HashMap<(String, String), (String, Result<Value, GatewayError>)>,
    failures: HashMap<String, VecDeque<GatewayError>>,
    events: Vec<Value>,
    calls: Vec<(String, Option<String>)>,
}

/// A simulated Stripe (see the module docs).
#[derive(Clone)]
pub struct SimulatedStripe {
    state: Arc<Mutex<SimState>>,
    sink: Arc<Mutex<Option<WebhookSink>>>,
    clock: Arc<dyn Clock>,
}

enum Card {
    Success,
    Decline(&'static str, &'static str),
    RequiresAction,
}

fn card_behaviour(pm: &str) -> Option<Card> {
    Some(match pm {
        "pm_card_visa" | "4242424242424242" | "pm_card_mastercard" | "5555555555554444" => {
            Card::Success
        }
        "pm_card_chargeDeclined" | "4000000000000002" => {
            Card::Decline("generic_decline", "Your card was declined.")
        }
        "pm_card_chargeDeclinedInsufficientFunds" | "4000000000009995" => {
            Card::Decline("insufficient_funds", "Your card has insufficient funds.")
        }
        "pm_card_authenticationRequired"
        | "4000002500003155"
        | "pm_card_threeDSecure2Required"
        | "4000000000003220" => Card::RequiresAction,
        other if other.starts_with("pm_") => Card::Success,
        _ => return None,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, GatewayError> {
    serde_json::from_value(v).map_err(|e| GatewayError::Transient {
        status: 500,
        message: format!("simulated stripe: stored response unreadable: {e}"),
    })
}

fn missing(kind: &str, id: &str) -> GatewayError {
    GatewayError::Permanent {
        status: 404,
        code: "resource_missing".into(),
        message: format!("No such {kind}: '{id}'"),
        param: Some("id".into()),
    }
}

impl SimulatedStripe {
    /// A fresh simulated account on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Arc::default(),
            sink: Arc::default(),
            clock,
        }
    }

    /// Where webhook events go (the local runtime signs and delivers them).
    pub fn set_webhook_sink(&self, sink: WebhookSink) {
        *lock(&self.sink) = Some(sink);
    }

    /// Every webhook event emitted, in order.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.state).events.clone()
    }

    /// Every call made: (operation, idempotency key), in order.
    pub fn calls(&self) -> Vec<(String, Option<String>)> {
        lock(&self.state).calls.clone()
    }

    /// The next call of `operation` (`create_payment_intent`, `create_refund`,
    /// `create_transfer`, `create_payout`, `create_account`, `create_account_link`,
    /// `cancel_payment_intent`, ...) fails with `error` (queued; one per call).
    pub fn fail_next(&self, operation: &str, error: GatewayError) {
        lock(&self.state)
            .failures
            .entry(operation.to_owned())
            .or_default()
            .push_back(error);
    }

    /// A connected account's available balance in `currency` (minor units).
    pub fn balance(&self, account: &str, currency: &str) -> i64 {
        lock(&self.state)
            .balances
            .get(&(account.to_owned(), currency.to_lowercase()))
            .copied()
            .unwrap_or(0)
    }

    /// Adds to a connected account's balance (test top-up).
    pub fn credit(&self, account: &str, currency: &str, amount: i64) {
        *lock(&self.state)
            .balances
            .entry((account.to_owned(), currency.to_lowercase()))
            .or_default() += amount;
    }

    /// What was refunded of a PaymentIntent (minor units).
    pub fn refunded(&self, payment_intent: &str) -> i64 {
        lock(&self.state)
            .refunded
            .get(payment_intent)
            .copied()
            .unwrap_or(0)
    }

    /// The customer completes (or fails) 3-D Secure on a `requires_action` intent.
    pub fn authenticate(
        &self,
        payment_intent: &str,
        success: bool,
    ) -> Result<PaymentIntent, GatewayError> {
        let event;
        let pi = {
            let mut s = lock(&self.state);
            let seq = Self::next(&mut s);
            let pi = s
                .intents
                .get_mut(payment_intent)
                .ok_or_else(|| missing("payment_intent", payment_intent))?;
            if pi.status != PaymentIntentStatus::RequiresAction {
                return Err(GatewayError::permanent(
                    400,
                    "payment_intent_unexpected_state",
                    format!("PaymentIntent {payment_intent} is {}", pi.status.as_str()),
                ));
            }
            if success {
                pi.status = PaymentIntentStatus::Succeeded;
                pi.amount_received = pi.amount;
                pi.latest_charge = Some(format!("ch_sim{seq:08}"));
                event = ("payment_intent.succeeded", to_value(&*pi));
            } else {
                pi.status = PaymentIntentStatus::RequiresPaymentMethod;
                pi.last_payment_error = Some(PaymentError {
                    code: "payment_intent_authentication_failure".into(),
                    decline_code: None,
                    message: "The provided PaymentMethod has failed authentication.".into(),
                });
                event = ("payment_intent.payment_failed", to_value(&*pi));
            }
            pi.clone()
        };
        self.emit(event.0, event.1, None);
        Ok(pi)
    }

    /// The bank reports a pending payout paid (or failed, refunding the balance).
    pub fn settle_payout(&self, payout: &str, paid: bool) -> Result<Payout, GatewayError> {
        let (po, account) = {
            let mut s = lock(&self.state);
            let po = s
                .payouts
                .get_mut(payout)
                .ok_or_else(|| missing("payout", payout))?;
            if po.status != "pending" && po.status != "in_transit" {
                return Err(GatewayError::permanent(
                    400,
                    "payout_unexpected_state",
                    format!("payout {payout} is {}", po.status),
                ));
            }
            if paid {
                po.status = "paid".into();
            } else {
                po.status = "failed".into();
                po.failure_code = Some("account_closed".into());
                po.failure_message = Some("The bank account has been closed.".into());
            }
            let po = po.clone();
            if !paid {
                *s.balances
                    .entry((po.stripe_account.clone(), po.currency.clone()))
                    .or_default() += po.amount;
            }
            (po.clone(), po.stripe_account)
        };
        let kind = if paid { "payout.paid" } else { "payout.failed" };
        self.emit(kind, to_value(&po), Some(account));
        Ok(po)
    }

    /// The account holder finishes onboarding: charges and payouts enabled, `account.updated`.
    pub fn complete_onboarding(&self, account: &str) -> Result<Account, GatewayError> {
        self.set_capabilities(account, true, true)
    }

    /// Sets an account's capabilities and emits `account.updated`.
    pub fn set_capabilities(
        &self,
        account: &str,
        charges_enabled: bool,
        payouts_enabled: bool,
    ) -> Result<Account, GatewayError> {
        let acct = {
            let mut s = lock(&self.state);
            let a = s
                .accounts
                .get_mut(account)
                .ok_or_else(|| missing("account", account))?;
            a.charges_enabled = charges_enabled;
            a.payouts_enabled = payouts_enabled;
            a.details_submitted = true;
            a.clone()
        };
        self.emit("account.updated", to_value(&acct), Some(account.to_owned()));
        Ok(acct)
    }

    fn next(s: &mut SimState) -> u64 {
        s.seq += 1;
        s.seq
    }

    fn emit(&self, kind: &str, object: Value, account: Option<String>) {
        let event = {
            let mut s = lock(&self.state);
            let seq = Self::next(&mut s);
            let mut event = json!({
                "id": format!("evt_sim{seq:08}"),
                "object": "event",
                "api_version": "2025-03-31.basil",
                "created": self.clock.now().timestamp(),
                "livemode": false,
                "pending_webhooks": 1,
                "type": kind,
                "data": {"object": object},
            });
            if let Some(a) = account {
                event["account"] = Value::String(a);
            }
            s.events.push(event.clone());
            event
        };
        let sink = lock(&self.sink).clone();
        if let Some(sink) = sink {
            sink(event);
        }
    }

    /// Runs `op` once per idempotency key: the same key and parameters return the stored
    /// result; other parameters are an `idempotency_error`. Injected failures come first
    /// and are not stored (a transient failure may be retried with the same key).
    fn idempotent<T, F>(
        &self,
        operation: &str,
        key: &str,
        params: Value,
        op: F,
    ) -> Result<T, GatewayError>
    where
        T: Serialize + serde::de::DeserializeOwned,
        F: FnOnce(&mut SimState) -> Result<(T, Vec<PendingEvent>), GatewayError>,
    {
        let events;
        let result = {
            let mut s = lock(&self.state);
            s.calls.push((operation.to_owned(), Some(key.to_owned())));
            if let Some(e) = s.failures.get_mut(operation).and_then(|q| q.pop_front()) {
                return Err(e);
            }
            let fp = params.to_string();
            let slot = (operation.to_owned(), key.to_owned());
            if let Some((stored_fp, stored)) = s.idempotency.get(&slot) {
                if *stored_fp != fp {
                    return Err(GatewayError::Permanent {
                        status: 400,
                        code: "idempotency_error".into(),
                        message: format!(
                            "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                        ),
                        param: None,
                    });
                }
                return match stored.clone() {
                    Ok(v) => from_value(v),
                    Err(e) => Err(e),
                };
            }
            let (result, ev) = match op(&mut s) {
                Ok((value, ev)) => (Ok(to_value(&value)), ev),
                Err(e) => (Err(e), Vec::new()),
            };
            // like Stripe: transient failures are not cached, others are
            if !matches!(result, Err(GatewayError::Transient { .. })) {
                s.idempotency.insert(slot, (fp, result.clone()));
            }
            events = ev;
            result
        };
        for (kind, obj, account) in events {
            self.emit(kind, obj, account);
        }
        match result {
            Ok(v) => from_value(v),
            Err(e) => Err(e),
        }
    }

    fn take_failure(&self, operation: &str) -> Result<(), GatewayError> {
        let mut s = lock(&self.state);
        s.calls.push((operation.to_owned(), None));
        match s.failures.get_mut(operation).and_then(|q| q.pop_front()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn apply_card(
        seq: u64,
        pi: &mut PaymentIntent,
        pm: &str,
    ) -> Result<Option<PendingEvent>, GatewayError> {
        let behaviour = card_behaviour(pm).ok_or_else(|| GatewayError::Permanent {
            status: 400,
            code: "resource_missing".into(),
            message: format!("No such PaymentMethod: '{pm}'"),
            param: Some("payment_method".into()),
        })?;
        pi.payment_method = Some(pm.to_owned());
        Ok(match behaviour {
            Card::Success => {
                pi.status = PaymentIntentStatus::Succeeded;
                pi.amount_received = pi.amount;
                pi.latest_charge = Some(format!("ch_sim{seq:08}"));
                pi.last_payment_error = None;
                Some(("payment_intent.succeeded", to_value(&*pi), None))
            }
            Card::Decline(decline_code, message) => {
                pi.status = PaymentIntentStatus::RequiresPaymentMethod;
                pi.last_payment_error = Some(PaymentError {
                    code: "card_declined".into(),
                    decline_code: Some(decline_code.into()),
                    message: message.into(),
                });
                Some(("payment_intent.payment_failed", to_value(&*pi), None))
            }
            Card::RequiresAction => {
                pi.status = PaymentIntentStatus::RequiresAction;
                None
            }
        })
    }
}

fn check_amount(amount: i64, param: &str) -> Result<(), GatewayError> {
    if !(1..=99_999_999_999).contains(&amount) {
        return Err(GatewayError::Permanent {
            status: 400,
            code: "parameter_invalid_integer".into(),
            message: format!(
                "Invalid integer: {amount}; {param} must be between 1 and 99999999999"
            ),
            param: Some(param.into()),
        });
    }
    Ok(())
}

fn check_currency(currency: &str) -> Result<(), GatewayError> {
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_lowercase()) {
        return Err(GatewayError::Permanent {
            status: 400,
            code: "parameter_invalid_string".into(),
            message: format!("Invalid currency: {currency}"),
            param: Some("currency".into()),
        });
    }
    Ok(())
}

#[async_trait]
impl PaymentGateway for SimulatedStripe {
    async fn create_payment_intent(
        &self,
        request: &CreatePaymentIntent,
    ) -> Result<PaymentIntent, GatewayError> {
        let mut params = to_value(request);
        params.as_object_mut().map(|o| o.remove("idempotency_key"));
        let now = self.clock.now().timestamp();
        self.idempotent("create_payment_intent", &request.idempotency_key, params, |s| {
            check_amount(request.amount, "amount")?;
            check_currency(&request.currency)?;
            if let Some(fee) = request.application_fee_amount {
                if fee < 0 || fee > request.amount {
                    return Err(GatewayError::Permanent {
                        status: 400,
                        code: "parameter_invalid_integer".into(),
                        message: "application_fee_amount must be between 0 and amount".into(),
                        param: Some("application_fee_amount".into()),
                    });
                }
            }
            let seq = Self::next(s);
            let id = format!("pi_sim{seq:08}");
            let mut pi = PaymentIntent {
                id: id.clone(),
                amount: request.amount,
                amount_received: 0,
                currency: request.currency.clone(),
                status: PaymentIntentStatus::RequiresPaymentMethod,
                client_secret: format!("{id}_secret_sim{seq:08}"),
                latest_charge: None,
                last_payment_error: None,
                payment_method: None,
                transfer_group: request.transfer_group.clone(),
                metadata: request.metadata.clone(),
                created: now,
            };
            let mut events = Vec::new();
            match (&request.payment_method, request.confirm) {
                (Some(pm), true) => {
                    if let Some(e) = Self::apply_card(seq, &mut pi, pm)? {
                        events.push(e);
                    }
                }
                (Some(pm), false) => {
                    card_behaviour(pm).ok_or_else(|| GatewayError::Permanent {
                        status: 400,
                        code: "resource_missing".into(),
                        message: format!("No such PaymentMethod: '{pm}'"),
                        param: Some("payment_method".into()),
                    })?;
                    pi.payment_method = Some(pm.clone());
                    pi.status = PaymentIntentStatus::RequiresConfirmation;
                }
                (None, true) => {
                    return Err(GatewayError::permanent(
                        400,
                        "payment_intent_unexpected_state",
                        "You cannot confirm this PaymentIntent because it's missing a payment method.",
                    ))
                }
                (None, false) => {}
            }
            s.intents.insert(id, pi.clone());
            Ok((pi, events))
        })
    }

    async fn confirm_payment_intent(
        &self,
        id: &str,
        payment_method: Option<&str>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, GatewayError> {
        let params = json!({"id": id, "payment_method": payment_method});
        self.idempotent("confirm_payment_intent", idempotency_key, params, |s| {
            let seq = Self::next(s);
            let pi = s.intents.get_mut(id).ok_or_else(|| missing("payment_intent", id))?;
            if !matches!(
                pi.status,
                PaymentIntentStatus::RequiresPaymentMethod | PaymentIntentStatus::RequiresConfirmation
            ) {
                return Err(GatewayError::permanent(
                    400,
                    "payment_intent_unexpected_state",
                    format!("This PaymentIntent's status is {}; it cannot be confirmed.", pi.status.as_str()),
                ));
            }
            let pm = payment_method
                .map(str::to_owned)
                .or_else(|| pi.payment_method.clone())
                .ok_or_else(|| {
                    GatewayError::permanent(
                        400,
                        "payment_intent_unexpected_state",
                        "You cannot confirm this PaymentIntent because it's missing a payment method.",
                    )
                })?;
            let event = Self::apply_card(seq, pi, &pm)?;
            Ok((pi.clone(), event.into_iter().collect()))
        })
    }

    async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, GatewayError> {
        self.take_failure("retrieve_payment_intent")?;
        lock(&self.state)
            .intents
            .get(id)
            .cloned()
            .ok_or_else(|| missing("payment_intent", id))
    }

    async fn cancel_payment_intent(
        &self,
        id: &str,
        reason: Option<&str>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, GatewayError> {
        let params = json!({"id": id, "cancellation_reason": reason});
        self.idempotent("cancel_payment_intent", idempotency_key, params, |s| {
            let pi = s
                .intents
                .get_mut(id)
                .ok_or_else(|| missing("payment_intent", id))?;
            if matches!(
                pi.status,
                PaymentIntentStatus::Succeeded
                    | PaymentIntentStatus::Canceled
                    | PaymentIntentStatus::Processing
            ) {
                return Err(GatewayError::permanent(
                    400,
                    "payment_intent_unexpected_state",
                    format!(
                        "You cannot cancel this PaymentIntent because it has a status of {}.",
                        pi.status.as_str()
                    ),
                ));
            }
            pi.status = PaymentIntentStatus::Canceled;
            Ok((pi.clone(), Vec::new()))
        })
    }

    async fn create_refund(&self, request: &CreateRefund) -> Result<Refund, GatewayError> {
        let mut params = to_value(request);
        params.as_object_mut().map(|o| o.remove("idempotency_key"));
        self.idempotent("create_refund", &request.idempotency_key, params, |s| {
            let pi = s
                .intents
                .get(&request.payment_intent)
                .cloned()
                .ok_or_else(|| missing("payment_intent", &request.payment_intent))?;
            if pi.status != PaymentIntentStatus::Succeeded {
                return Err(GatewayError::permanent(
                    400,
                    "charge_not_refundable",
                    format!("PaymentIntent {} has no successful charge to refund.", pi.id),
                ));
            }
            let already = s.refunded.get(&pi.id).copied().unwrap_or(0);
            let left = pi.amount_received - already;
            if left <= 0 {
                return Err(GatewayError::permanent(
                    400,
                    "charge_already_refunded",
                    format!("Charge {} has already been refunded.", pi.latest_charge.clone().unwrap_or_default()),
                ));
            }
            let amount = request.amount.unwrap_or(left);
            check_amount(amount, "amount")?;
            if amount > left {
                return Err(GatewayError::Permanent {
                    status: 400,
                    code: "amount_too_large".into(),
                    message: format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"),
                    param: Some("amount".into()),
                });
            }
            let seq = Self::next(s);
            let refund = Refund {
                id: format!("re_sim{seq:08}"),
                amount,
                currency: pi.currency.clone(),
                payment_intent: pi.id.clone(),
                status: "succeeded".into(),
                failure_reason: None,
                metadata: request.metadata.clone(),
            };
            s.refunded.insert(pi.id.clone(), already + amount);
            s.refunds.insert(refund.id.clone(), refund.clone());
            let charge = json!({
                "id": pi.latest_charge,
                "object": "charge",
                "amount": pi.amount,
                "amount_refunded": already + amount,
                "currency": pi.currency,
                "payment_intent": pi.id,
                "refunded": already + amount == pi.amount_received,
                "refunds": {"object": "list", "data": [to_value(&refund)]},
                "metadata": pi.metadata,
            });
            Ok((refund, vec![("charge.refunded", charge, None)]))
        })
    }

    async fn create_transfer(&self, request: &CreateTransfer) -> Result<Transfer, GatewayError> {
        let mut params = to_value(request);
        params.as_object_mut().map(|o| o.remove("idempotency_key"));
        self.idempotent("create_transfer", &request.idempotency_key, params, |s| {
            check_amount(request.amount, "amount")?;
            check_currency(&request.currency)?;
            if !s.accounts.contains_key(&request.destination) {
                return Err(missing("account", &request.destination));
            }
            let seq = Self::next(s);
            let t = Transfer {
                id: format!("tr_sim{seq:08}"),
                amount: request.amount,
                amount_reversed: 0,
                currency: request.currency.clone(),
                destination: request.destination.clone(),
                transfer_group: request.transfer_group.clone(),
            };
            *s.balances
                .entry((request.destination.clone(), request.currency.clone()))
                .or_default() += request.amount;
            s.transfers.insert(t.id.clone(), t.clone());
            Ok((t, Vec::new()))
        })
    }

    async fn create_transfer_reversal(
        &self,
        transfer_id: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<TransferReversal, GatewayError> {
        let params = json!({"transfer": transfer_id, "amount": amount});
        self.idempotent("create_transfer_reversal", idempotency_key, params, |s| {
            let t = s
                .transfers
                .get(transfer_id)
                .cloned()
                .ok_or_else(|| missing("transfer", transfer_id))?;
            let left = t.amount - t.amount_reversed;
            let amount = amount.unwrap_or(left);
            check_amount(amount, "amount")?;
            if amount > left {
                return Err(GatewayError::Permanent {
                    status: 400,
                    code: "amount_too_large".into(),
                    message: format!("Reversal amount ({amount}) is greater than the transfer's unreversed amount ({left})"),
                    param: Some("amount".into()),
                });
            }
            let seq = Self::next(s);
            if let Some(t) = s.transfers.get_mut(transfer_id) {
                t.amount_reversed += amount;
            }
            *s.balances
                .entry((t.destination.clone(), t.currency.clone()))
                .or_default() -= amount;
            Ok((
                TransferReversal {
                    id: format!("trr_sim{seq:08}"),
                    amount,
                    transfer: transfer_id.to_owned(),
                },
                Vec::new(),
            ))
        })
    }

    async fn create_payout(&self, request: &CreatePayout) -> Result<Payout, GatewayError> {
        let mut params = to_value(request);
        params.as_object_mut().map(|o| o.remove("idempotency_key"));
        let now = self.clock.now().timestamp();
        let key = format!("{}|{}", request.stripe_account, request.idempotency_key);
        self.idempotent("create_payout", &key, params, |s| {
            check_amount(request.amount, "amount")?;
            check_currency(&request.currency)?;
            if !s.accounts.contains_key(&request.stripe_account) {
                return Err(missing("account", &request.stripe_account));
            }
            let slot = (request.stripe_account.clone(), request.currency.clone());
            let available = s.balances.get(&slot).copied().unwrap_or(0);
            if available < request.amount {
                return Err(GatewayError::Permanent {
                    status: 400,
                    code: "balance_insufficient".into(),
                    message: format!(
                        "You have insufficient funds in your Stripe account for this transfer. Your card balance is too low. (available {available}, requested {})",
                        request.amount
                    ),
                    param: None,
                });
            }
            s.balances.insert(slot, available - request.amount);
            let seq = Self::next(s);
            let p = Payout {
                id: format!("po_sim{seq:08}"),
                amount: request.amount,
                currency: request.currency.clone(),
                status: "pending".into(),
                arrival_date: now + 2 * 86_400,
                failure_code: None,
                failure_message: None,
                stripe_account: request.stripe_account.clone(),
                metadata: request.metadata.clone(),
            };
            s.payouts.insert(p.id.clone(), p.clone());
            Ok((p, Vec::new()))
        })
    }

    async fn create_account(&self, request: &CreateAccount) -> Result<Account, GatewayError> {
        let mut params = to_value(request);
        params.as_object_mut().map(|o| o.remove("idempotency_key"));
        self.idempotent("create_account", &request.idempotency_key, params, |s| {
            if request.country.len() != 2
                || !request.country.chars().all(|c| c.is_ascii_uppercase())
            {
                return Err(GatewayError::Permanent {
                    status: 400,
                    code: "country_unsupported".into(),
                    message: format!("Country '{}' is unknown or not supported.", request.country),
                    param: Some("country".into()),
                });
            }
            if !matches!(
                request.business_type.as_str(),
                "individual" | "company" | "non_profit" | "government_entity"
            ) {
                return Err(GatewayError::Permanent {
                    status: 400,
                    code: "parameter_invalid_string".into(),
                    message: format!("Invalid business_type: {}", request.business_type),
                    param: Some("business_type".into()),
                });
            }
            let seq = Self::next(s);
            let a = Account {
                id: format!("acct_sim{seq:08}"),
                country: request.country.clone(),
                email: request.email.clone(),
                charges_enabled: false,
                payouts_enabled: false,
                details_submitted: false,
                metadata: request.metadata.clone(),
            };
            s.accounts.insert(a.id.clone(), a.clone());
            Ok((a, Vec::new()))
        })
    }

    async fn retrieve_account(&self, id: &str) -> Result<Account, GatewayError> {
        self.take_failure("retrieve_account")?;
        lock(&self.state)
            .accounts
            .get(id)
            .cloned()
            .ok_or_else(|| missing("account", id))
    }

    async fn create_account_link(
        &self,
        request: &CreateAccountLink,
    ) -> Result<AccountLink, GatewayError> {
        self.take_failure("create_account_link")?;
        let now = self.clock.now().timestamp();
        let mut s = lock(&self.state);
        if !s.accounts.contains_key(&request.account) {
            return Err(missing("account", &request.account));
        }
        for (param, url) in [
            ("refresh_url", &request.refresh_url),
            ("return_url", &request.return_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(GatewayError::Permanent {
                    status: 400,
                    code: "url_invalid".into(),
                    message: format!("Not a valid URL: {url}"),
                    param: Some(param.into()),
                });
            }
        }
        let seq = Self::next(&mut s);
        Ok(AccountLink {
            url: format!(
                "https://connect.stripe.test/setup/e/{}/sim{seq:08}",
                request.account
            ),
            created: now,
            expires_at: now + 300,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::TimeZone;

    fn sim() -> SimulatedStripe {
        SimulatedStripe::new(Arc::new(ManualClock::new(
            chrono::Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap(),
        )))
    }

    fn pi_req(pm: &str, key: &str) -> CreatePaymentIntent {
        CreatePaymentIntent {
            amount: 12_050,
            currency: "usd".into(),
            customer: None,
            payment_method: Some(pm.into()),
            confirm: true,
            transfer_group: Some("bk_1".into()),
            application_fee_amount: None,
            transfer_destination: None,
            metadata: BTreeMap::new(),
            idempotency_key: key.into(),
        }
    }

    #[tokio::test]
    async fn test_cards_succeed_decline_and_require_action() {
        let s = sim();
        let ok = s
            .create_payment_intent(&pi_req("pm_card_visa", "k1"))
            .await
            .unwrap();
        assert_eq!(ok.status, PaymentIntentStatus::Succeeded);
        assert!(ok.latest_charge.is_some());
        let declined = s
            .create_payment_intent(&pi_req("pm_card_chargeDeclinedInsufficientFunds", "k2"))
            .await
            .unwrap();
        assert_eq!(declined.status, PaymentIntentStatus::RequiresPaymentMethod);
        assert_eq!(
            declined
                .last_payment_error
                .as_ref()
                .and_then(|e| e.decline_code.as_deref()),
            Some("insufficient_funds")
        );
        let pending = s
            .create_payment_intent(&pi_req("4000002500003155", "k3"))
            .await
            .unwrap();
        assert_eq!(pending.status, PaymentIntentStatus::RequiresAction);
        let types: Vec<String> = s
            .events()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            types,
            ["payment_intent.succeeded", "payment_intent.payment_failed"]
        );
        let done = s.authenticate(&pending.id, true).unwrap();
        assert_eq!(done.status, PaymentIntentStatus::Succeeded);
        assert_eq!(s.events().len(), 3);
        assert_eq!(s.events()[2]["data"]["object"]["id"], pending.id.as_str());
    }

    #[tokio::test]
    async fn idempotency_keys_behave_like_stripe() {
        let s = sim();
        let a = s
            .create_payment_intent(&pi_req("pm_card_visa", "same"))
            .await
            .unwrap();
        let b = s
            .create_payment_intent(&pi_req("pm_card_visa", "same"))
            .await
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            s.events().len(),
            1,
            "a replayed request emits no second webhook"
        );
        let mut other = pi_req("pm_card_visa", "same");
        other.amount = 1;
        let err = s.create_payment_intent(&other).await.unwrap_err();
        assert_eq!(err.code(), Some("idempotency_error"));
        // a transient failure is not cached: the retry with the same key succeeds
        s.fail_next(
            "create_refund",
            GatewayError::Transient {
                status: 503,
                message: "down".into(),
            },
        );
        let req = CreateRefund {
            payment_intent: a.id.clone(),
            amount: Some(5_000),
            reason: None,
            metadata: BTreeMap::new(),
            idempotency_key: "r1".into(),
        };
        assert!(matches!(
            s.create_refund(&req).await,
            Err(GatewayError::Transient { .. })
        ));
        let r1 = s.create_refund(&req).await.unwrap();
        let r1again = s.create_refund(&req).await.unwrap();
        assert_eq!(r1, r1again);
        assert_eq!(s.refunded(&a.id), 5_000, "one refund despite three calls");
    }

    #[tokio::test]
    async fn refunds_never_exceed_the_charge() {
        let s = sim();
        let pi = s
            .create_payment_intent(&pi_req("pm_card_visa", "k"))
            .await
            .unwrap();
        let refund = |amount: Option<i64>, key: &str| CreateRefund {
            payment_intent: pi.id.clone(),
            amount,
            reason: None,
            metadata: BTreeMap::new(),
            idempotency_key: key.into(),
        };
        s.create_refund(&refund(Some(12_000), "a")).await.unwrap();
        let err = s.create_refund(&refund(Some(51), "b")).await.unwrap_err();
        assert_eq!(err.code(), Some("amount_too_large"));
        let rest = s.create_refund(&refund(None, "c")).await.unwrap();
        assert_eq!(rest.amount, 50);
        let err = s.create_refund(&refund(None, "d")).await.unwrap_err();
        assert_eq!(err.code(), Some("charge_already_refunded"));
        assert_eq!(s.refunded(&pi.id), 12_050);
    }

    #[tokio::test]
    async fn connect_transfers_payouts_and_accounts() {
        let s = sim();
        let acct = s
            .create_account(&CreateAccount {
                country: "US".into(),
                email: "p@example.com".into(),
                business_type: "individual".into(),
                metadata: BTreeMap::new(),
                idempotency_key: "acct-p1".into(),
            })
            .await
            .unwrap();
        assert!(!acct.charges_enabled);
        let t = s
            .create_transfer(&CreateTransfer {
                amount: 10_000,
                currency: "usd".into(),
                destination: acct.id.clone(),
                transfer_group: None,
                source_transaction: None,
                metadata: BTreeMap::new(),
                idempotency_key: "t1".into(),
            })
            .await
            .unwrap();
        assert_eq!(s.balance(&acct.id, "usd"), 10_000);
        s.create_transfer_reversal(&t.id, Some(2_000), "rev1")
            .await
            .unwrap();
        assert_eq!(s.balance(&acct.id, "usd"), 8_000);
        let payout = |amount: i64, key: &str| CreatePayout {
            amount,
            currency: "usd".into(),
            stripe_account: acct.id.clone(),
            metadata: BTreeMap::new(),
            idempotency_key: key.into(),
        };
        let err = s.create_payout(&payout(9_000, "p0")).await.unwrap_err();
        assert_eq!(err.code(), Some("balance_insufficient"));
        let p = s.create_payout(&payout(8_000, "p1")).await.unwrap();
        assert_eq!(p.status, "pending");
        s.settle_payout(&p.id, false).unwrap();
        assert_eq!(
            s.balance(&acct.id, "usd"),
            8_000,
            "a failed payout returns the money"
        );
        s.complete_onboarding(&acct.id).unwrap();
        let types: Vec<String> = s
            .events()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(types, ["payout.failed", "account.updated"]);
        assert_eq!(s.events()[1]["account"], acct.id.as_str());
    }
}
