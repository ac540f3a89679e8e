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
//! - Durable when built [`SimulatedStripe::with_store`]: every operation saves what it
//!   changed (objects, balances, idempotency keys, the sequence, the webhook events it
//!   emitted) through the [`SimStripeStore`] port in one transaction before it answers;
//!   a restart reloads the state, and [`SimulatedStripe::undelivered_webhooks`] lists the
//!   events the webhook endpoint has not acknowledged
//!   ([`SimulatedStripe::mark_webhook_delivered`]). Injected failures and the call log
//!   stay in memory.

use crate::clock::Clock;
use crate::error::GatewayError;
use crate::payments::*;
use async_trait::async_trait;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Receives each webhook event (Stripe's JSON `event` object).
pub type WebhookSink = Arc<dyn Fn(Value) + Send + Sync>;

/// A webhook to emit: (type, data.object, connected account).
type PendingEvent = (&'static str, Value, Option<String>);

/// What a persisted record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Counters (the id sequence).
    Meta,
    /// A PaymentIntent.
    Intent,
    /// A refund.
    Refund,
    /// The amount refunded of a PaymentIntent (minor units).
    Refunded,
    /// A transfer.
    Transfer,
    /// A payout.
    Payout,
    /// A connected account.
    Account,
    /// A connected account's available balance in one currency (minor units).
    Balance,
    /// A stored idempotent result.
    Idempotency,
    /// A webhook event and whether it was delivered.
    Webhook,
}

impl Kind {
    /// The stable name stored with the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Meta => "meta",
            Kind::Intent => "payment_intent",
            Kind::Refund => "refund",
            Kind::Refunded => "refunded",
            Kind::Transfer => "transfer",
            Kind::Payout => "payout",
            Kind::Account => "account",
            Kind::Balance => "balance",
            Kind::Idempotency => "idempotency",
            Kind::Webhook => "webhook",
        }
    }

    /// The kind of a stored name.
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "meta" => Kind::Meta,
            "payment_intent" => Kind::Intent,
            "refund" => Kind::Refund,
            "refunded" => Kind::Refunded,
            "transfer" => Kind::Transfer,
            "payout" => Kind::Payout,
            "account" => Kind::Account,
            "balance" => Kind::Balance,
            "idempotency" => Kind::Idempotency,
            "webhook" => Kind::Webhook,
            _ => return None,
        })
    }
}

/// One persisted object of the simulated Stripe: (kind, id) → JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    /// What it is.
    pub kind: Kind,
    /// Its id within the kind.
    pub id: String,
    /// The object.
    pub body: Value,
}

/// A store that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("simulated stripe store: {0}")]
pub struct SimStoreError(pub String);

/// The port through which a simulated Stripe keeps its state (the local runtime
/// implements it on SQLite; this crate stays storage-free).
pub trait SimStripeStore: Send + Sync {
    /// Every record, in the order each was first saved.
    fn load(&self) -> Result<Vec<SimRecord>, SimStoreError>;
    /// Inserts or replaces (by kind and id) the records, all or none.
    fn save(&self, records: &[SimRecord]) -> Result<(), SimStoreError>;
}

const SEQ_ID: &str = "seq";
/// Separates the parts of composite record ids (unit separator: in no id or currency).
const SEP: char = '\u{1f}';

fn idempotency_id(operation: &str, key: &str) -> String {
    format!("{operation}{SEP}{key}")
}

fn balance_id(account: &str, currency: &str) -> String {
    format!("{account}{SEP}{currency}")
}

fn error_to_value(e: &GatewayError) -> Value {
    match e {
        GatewayError::Transient { status, message } => {
            json!({"kind": "transient", "status": status, "message": message})
        }
        GatewayError::Declined {
            code,
            decline_code,
            message,
            payment_intent_id,
        } => json!({"kind": "declined", "code": code, "decline_code": decline_code,
                    "message": message, "payment_intent_id": payment_intent_id}),
        GatewayError::Permanent {
            status,
            code,
            message,
            param,
        } => json!({"kind": "permanent", "status": status, "code": code, "message": message,
                    "param": param}),
    }
}

fn error_from_value(v: &Value) -> Option<GatewayError> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let status = || {
        v.get("status")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
    };
    Some(match v.get("kind")?.as_str()? {
        "transient" => GatewayError::Transient {
            status: status()?,
            message: text("message")?,
        },
        "declined" => GatewayError::Declined {
            code: text("code")?,
            decline_code: text("decline_code"),
            message: text("message")?,
            payment_intent_id: text("payment_intent_id"),
        },
        "permanent" => GatewayError::Permanent {
            status: status()?,
            code: text("code")?,
            message: text("message")?,
            param: text("param"),
        },
        _ => return None,
    })
}

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
    /// Position of each event in `events`, by id.
    event_index: HashMap<String, usize>,
    /// Ids of emitted events the webhook endpoint has not acknowledged.
    undelivered: BTreeSet<String>,
    /// The last [`CALLS_KEPT`] calls, oldest first.
    calls: VecDeque<(String, Option<String>)>,
    /// Records changed since the last save.
    dirty: BTreeSet<(Kind, String)>,
}

fn corrupt(kind: Kind, id: &str, e: impl std::fmt::Display) -> SimStoreError {
    SimStoreError(format!("{} {id}: {e}", kind.as_str()))
}

fn parse<T: serde::de::DeserializeOwned>(r: &SimRecord) -> Result<T, SimStoreError> {
    serde_json::from_value(r.body.clone()).map_err(|e| corrupt(r.kind, &r.id, e))
}

/// Calls the simulator remembers for [`SimulatedStripe::calls`] (a long-running server
/// must not keep every call it ever saw).
pub const CALLS_KEPT: usize = 10_000;

impl SimState {
    fn record_call(&mut self, operation: &str, key: Option<&str>) {
        if self.calls.len() >= CALLS_KEPT {
            self.calls.pop_front();
        }
        self.calls
            .push_back((operation.to_owned(), key.map(str::to_owned)));
    }

    fn touch(&mut self, kind: Kind, id: &str) {
        self.dirty.insert((kind, id.to_owned()));
    }

    fn add_balance(&mut self, account: &str, currency: &str, amount: i64) {
        *self
            .balances
            .entry((account.to_owned(), currency.to_owned()))
            .or_default() += amount;
        self.touch(Kind::Balance, &balance_id(account, currency));
    }

    /// The record of (kind, id) as it is now.
    fn record(&self, kind: Kind, id: &str) -> Option<SimRecord> {
        let body = match kind {
            Kind::Meta => json!(self.seq),
            Kind::Intent => to_value(self.intents.get(id)?),
            Kind::Refund => to_value(self.refunds.get(id)?),
            Kind::Refunded => json!(self.refunded.get(id)?),
            Kind::Transfer => to_value(self.transfers.get(id)?),
            Kind::Payout => to_value(self.payouts.get(id)?),
            Kind::Account => to_value(self.accounts.get(id)?),
            Kind::Balance => {
                let (a, c) = id.split_once(SEP)?;
                json!(self.balances.get(&(a.to_owned(), c.to_owned()))?)
            }
            Kind::Idempotency => {
                let (op, key) = id.split_once(SEP)?;
                let (fp, result) = self.idempotency.get(&(op.to_owned(), key.to_owned()))?;
                match result {
                    Ok(v) => json!({"fingerprint": fp, "ok": v}),
                    Err(e) => json!({"fingerprint": fp, "error": error_to_value(e)}),
                }
            }
            Kind::Webhook => {
                let event = self.events.get(*self.event_index.get(id)?)?;
                json!({"event": event, "delivered": !self.undelivered.contains(id)})
            }
        };
        Some(SimRecord {
            kind,
            id: id.to_owned(),
            body,
        })
    }

    /// Rebuilds the state from saved records.
    fn from_records(records: Vec<SimRecord>) -> Result<SimState, SimStoreError> {
        let mut s = SimState::default();
        for r in records {
            let int = |r: &SimRecord| {
                r.body
                    .as_i64()
                    .ok_or_else(|| corrupt(r.kind, &r.id, "not an integer"))
            };
            let pair = |r: &SimRecord| {
                r.id.split_once(SEP)
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| corrupt(r.kind, &r.id, "not a composite id"))
            };
            match r.kind {
                Kind::Meta => {
                    s.seq = r
                        .body
                        .as_u64()
                        .ok_or_else(|| corrupt(r.kind, &r.id, "not a counter"))?
                }
                Kind::Intent => {
                    s.intents.insert(r.id.clone(), parse(&r)?);
                }
                Kind::Refund => {
                    s.refunds.insert(r.id.clone(), parse(&r)?);
                }
                Kind::Refunded => {
                    s.refunded.insert(r.id.clone(), int(&r)?);
                }
                Kind::Transfer => {
                    s.transfers.insert(r.id.clone(), parse(&r)?);
                }
                Kind::Payout => {
                    s.payouts.insert(r.id.clone(), parse(&r)?);
                }
                Kind::Account => {
                    s.accounts.insert(r.id.clone(), parse(&r)?);
                }
                Kind::Balance => {
                    s.balances.insert(pair(&r)?, int(&r)?);
                }
                Kind::Idempotency => {
                    let fp = r.body["fingerprint"]
                        .as_str()
                        .ok_or_else(|| corrupt(r.kind, &r.id, "no fingerprint"))?
                        .to_owned();
                    let result = match (r.body.get("ok"), r.body.get("error")) {
                        (Some(v), _) => Ok(v.clone()),
                        (None, Some(e)) => Err(error_from_value(e)
                            .ok_or_else(|| corrupt(r.kind, &r.id, "unreadable error"))?),
                        (None, None) => return Err(corrupt(r.kind, &r.id, "no result")),
                    };
                    s.idempotency.insert(pair(&r)?, (fp, result));
                }
                Kind::Webhook => {
                    let event = r.body.get("event").cloned().unwrap_or(Value::Null);
                    if event.get("id").and_then(Value::as_str) != Some(r.id.as_str()) {
                        return Err(corrupt(r.kind, &r.id, "the event has another id"));
                    }
                    if r.body.get("delivered") != Some(&Value::Bool(true)) {
                        s.undelivered.insert(r.id.clone());
                    }
                    s.event_index.insert(r.id.clone(), s.events.len());
                    s.events.push(event);
                }
            }
        }
        Ok(s)
    }
}

/// A simulated Stripe (see the module docs).
#[derive(Clone)]
pub struct SimulatedStripe {
    state: Arc<Mutex<SimState>>,
    sink: Arc<Mutex<Option<WebhookSink>>>,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn SimStripeStore>>,
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
            store: None,
        }
    }

    /// A simulated account kept in `store`: the state saved there is loaded, and every
    /// operation saves its changes before it answers.
    pub fn with_store(
        clock: Arc<dyn Clock>,
        store: Arc<dyn SimStripeStore>,
    ) -> Result<Self, SimStoreError> {
        let state = SimState::from_records(store.load()?)?;
        Ok(Self {
            state: Arc::new(Mutex::new(state)),
            sink: Arc::default(),
            clock,
            store: Some(store),
        })
    }

    /// Where webhook events go (the local runtime signs and delivers them).
    pub fn set_webhook_sink(&self, sink: WebhookSink) {
        *lock(&self.sink) = Some(sink);
    }

    /// Every webhook event emitted, in order.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.state).events.clone()
    }

    /// The calls made (operation, idempotency key), in order: the last [`CALLS_KEPT`].
    pub fn calls(&self) -> Vec<(String, Option<String>)> {
        lock(&self.state).calls.iter().cloned().collect()
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

    /// Adds to a connected account's balance (test top-up). With a store, a failed save
    /// undoes it: use [`SimulatedStripe::try_credit`] to see the error.
    pub fn credit(&self, account: &str, currency: &str, amount: i64) {
        let _ = self.try_credit(account, currency, amount);
    }

    /// Adds to a connected account's balance and saves it.
    pub fn try_credit(
        &self,
        account: &str,
        currency: &str,
        amount: i64,
    ) -> Result<(), GatewayError> {
        self.mutate(|s| {
            s.add_balance(account, &currency.to_lowercase(), amount);
            Ok(((), Vec::new()))
        })
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
        self.mutate(|s| {
            let seq = Self::next(s);
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
            let kind = if success {
                pi.status = PaymentIntentStatus::Succeeded;
                pi.amount_received = pi.amount;
                pi.latest_charge = Some(format!("ch_sim{seq:08}"));
                "payment_intent.succeeded"
            } else {
                pi.status = PaymentIntentStatus::RequiresPaymentMethod;
                pi.last_payment_error = Some(PaymentError {
                    code: "payment_intent_authentication_failure".into(),
                    decline_code: None,
                    message: "The provided PaymentMethod has failed authentication.".into(),
                });
                "payment_intent.payment_failed"
            };
            let pi = pi.clone();
            s.touch(Kind::Intent, payment_intent);
            let event = (kind, to_value(&pi), None);
            Ok((pi, vec![event]))
        })
    }

    /// The bank reports a pending payout paid (or failed, refunding the balance).
    pub fn settle_payout(&self, payout: &str, paid: bool) -> Result<Payout, GatewayError> {
        self.mutate(|s| {
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
            s.touch(Kind::Payout, payout);
            if !paid {
                s.add_balance(&po.stripe_account, &po.currency, po.amount);
            }
            let kind = if paid { "payout.paid" } else { "payout.failed" };
            let event = (kind, to_value(&po), Some(po.stripe_account.clone()));
            Ok((po, vec![event]))
        })
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
        self.mutate(|s| {
            let a = s
                .accounts
                .get_mut(account)
                .ok_or_else(|| missing("account", account))?;
            a.charges_enabled = charges_enabled;
            a.payouts_enabled = payouts_enabled;
            a.details_submitted = true;
            let a = a.clone();
            s.touch(Kind::Account, account);
            let event = ("account.updated", to_value(&a), Some(account.to_owned()));
            Ok((a, vec![event]))
        })
    }

    /// Every webhook event not yet acknowledged with [`SimulatedStripe::mark_webhook_delivered`],
    /// in the order emitted (after a restart: what must be delivered again).
    pub fn undelivered_webhooks(&self) -> Vec<Value> {
        let s = lock(&self.state);
        s.events
            .iter()
            .filter(|e| {
                e.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| s.undelivered.contains(id))
            })
            .cloned()
            .collect()
    }

    /// Records that the webhook endpoint accepted event `event_id`; false when it was not
    /// waiting for delivery.
    pub fn mark_webhook_delivered(&self, event_id: &str) -> Result<bool, GatewayError> {
        self.mutate(|s| {
            let was = s.undelivered.remove(event_id);
            if was {
                s.touch(Kind::Webhook, event_id);
            }
            Ok((was, Vec::new()))
        })
    }

    fn next(s: &mut SimState) -> u64 {
        s.seq += 1;
        s.touch(Kind::Meta, SEQ_ID);
        s.seq
    }

    /// Adds a webhook event to the state (persisted with the operation that caused it).
    fn emit_locked(
        &self,
        s: &mut SimState,
        kind: &str,
        object: Value,
        account: Option<String>,
    ) -> Value {
        let seq = Self::next(s);
        let id = format!("evt_sim{seq:08}");
        let mut event = json!({
            "id": id,
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
        s.event_index.insert(id.clone(), s.events.len());
        s.events.push(event.clone());
        s.undelivered.insert(id.clone());
        s.touch(Kind::Webhook, &id);
        event
    }

    /// Hands events to the webhook sink (after their operation was saved and unlocked).
    fn deliver(&self, events: Vec<Value>) {
        if events.is_empty() {
            return;
        }
        let sink = lock(&self.sink).clone();
        if let Some(sink) = sink {
            for e in events {
                sink(e);
            }
        }
    }

    /// Saves what changed since the last save in one transaction of the store. When the
    /// store fails, the state is reloaded from it (the operation did not happen) and the
    /// caller gets a transient error, as from Stripe's 500s.
    fn commit(&self, s: &mut SimState) -> Result<(), GatewayError> {
        let dirty = std::mem::take(&mut s.dirty);
        let Some(store) = &self.store else {
            return Ok(());
        };
        if dirty.is_empty() {
            return Ok(());
        }
        let records: Vec<SimRecord> = dirty
            .iter()
            .filter_map(|(k, id)| s.record(*k, id))
            .collect();
        if let Err(e) = store.save(&records) {
            let kept = (
                std::mem::take(&mut s.calls),
                std::mem::take(&mut s.failures),
            );
            if let Ok(fresh) = store.load().and_then(SimState::from_records) {
                *s = fresh;
            }
            (s.calls, s.failures) = kept;
            return Err(GatewayError::Transient {
                status: 500,
                message: format!("simulated stripe: the state could not be saved: {e}"),
            });
        }
        Ok(())
    }

    /// Runs a state change: `op` under the lock, then its events are added, everything is
    /// saved, and the events go to the webhook sink.
    fn mutate<R>(
        &self,
        op: impl FnOnce(&mut SimState) -> Result<(R, Vec<PendingEvent>), GatewayError>,
    ) -> Result<R, GatewayError> {
        let events = {
            let mut s = lock(&self.state);
            let (out, pending) = match op(&mut s) {
                Ok(x) => x,
                Err(e) => {
                    // Nothing an error path changed may stay unsaved (e.g. a sequence bump).
                    self.commit(&mut s)?;
                    return Err(e);
                }
            };
            let events: Vec<Value> = pending
                .into_iter()
                .map(|(kind, obj, account)| self.emit_locked(&mut s, kind, obj, account))
                .collect();
            self.commit(&mut s)?;
            (out, events)
        };
        let (out, events) = events;
        self.deliver(events);
        Ok(out)
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
        let result = self.mutate(|s| {
            s.record_call(operation, Some(key));
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
                return Ok((stored.clone(), Vec::new()));
            }
            let (result, ev) = match op(s) {
                Ok((value, ev)) => (Ok(to_value(&value)), ev),
                Err(e) => (Err(e), Vec::new()),
            };
            // like Stripe: transient failures are not cached, others are
            if !matches!(result, Err(GatewayError::Transient { .. })) {
                s.touch(Kind::Idempotency, &idempotency_id(operation, key));
                s.idempotency.insert(slot, (fp, result.clone()));
            }
            Ok((result, ev))
        })?;
        match result {
            Ok(v) => from_value(v),
            Err(e) => Err(e),
        }
    }

    fn take_failure(&self, operation: &str) -> Result<(), GatewayError> {
        let mut s = lock(&self.state);
        s.record_call(operation, None);
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
            s.touch(Kind::Intent, &id);
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
            let pi = pi.clone();
            s.touch(Kind::Intent, id);
            Ok((pi, event.into_iter().collect()))
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
            let pi = pi.clone();
            s.touch(Kind::Intent, id);
            Ok((pi, Vec::new()))
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
            s.touch(Kind::Refunded, &pi.id);
            s.touch(Kind::Refund, &refund.id);
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
            s.add_balance(&request.destination, &request.currency, request.amount);
            s.touch(Kind::Transfer, &t.id);
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
            s.touch(Kind::Transfer, transfer_id);
            s.add_balance(&t.destination, &t.currency, -amount);
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
            s.add_balance(&request.stripe_account, &request.currency, -request.amount);
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
            s.touch(Kind::Payout, &p.id);
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
            s.touch(Kind::Account, &a.id);
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
        self.mutate(|s| {
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
            let seq = Self::next(s);
            let link = AccountLink {
                url: format!(
                    "https://connect.stripe.test/setup/e/{}/sim{seq:08}",
                    request.account
                ),
                created: now,
                expires_at: now + 300,
            };
            Ok((link, Vec::new()))
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

    #[tokio::test]
    async fn the_call_log_keeps_the_newest_calls_only() {
        let s = sim();
        for i in 0..CALLS_KEPT + 5 {
            let _ = s.retrieve_payment_intent(&format!("pi_{i}")).await;
        }
        let calls = s.calls();
        assert_eq!(calls.len(), CALLS_KEPT);
        assert_eq!(calls[0].0, "retrieve_payment_intent");
        let _ = s.retrieve_account("acct_x").await;
        assert_eq!(
            s.calls().last().map(|c| c.0.as_str()),
            Some("retrieve_account")
        );
        assert_eq!(s.calls().len(), CALLS_KEPT);
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

    /// A store in memory, failing on demand, keeping first-save order like SQLite's rowid.
    #[derive(Default)]
    struct MemStore {
        rows: Mutex<Vec<SimRecord>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl SimStripeStore for MemStore {
        fn load(&self) -> Result<Vec<SimRecord>, SimStoreError> {
            Ok(lock(&self.rows).clone())
        }
        fn save(&self, records: &[SimRecord]) -> Result<(), SimStoreError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(SimStoreError("disk full".into()));
            }
            let mut rows = lock(&self.rows);
            for r in records {
                match rows.iter_mut().find(|x| x.kind == r.kind && x.id == r.id) {
                    Some(x) => x.body = r.body.clone(),
                    None => rows.push(r.clone()),
                }
            }
            Ok(())
        }
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(ManualClock::new(
            chrono::Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap(),
        ))
    }

    #[tokio::test]
    async fn a_stored_simulation_comes_back_whole_after_a_restart() {
        let store = Arc::new(MemStore::default());
        let s = SimulatedStripe::with_store(clock(), store.clone()).unwrap();
        let paid = s
            .create_payment_intent(&pi_req("pm_card_visa", "k1"))
            .await
            .unwrap();
        let mut open = pi_req("pm_card_visa", "k2");
        open.confirm = false;
        let open = s.create_payment_intent(&open).await.unwrap();
        let pending = s
            .create_payment_intent(&pi_req("4000002500003155", "k3"))
            .await
            .unwrap();
        s.authenticate(&pending.id, true).unwrap();
        let refund = CreateRefund {
            payment_intent: paid.id.clone(),
            amount: Some(50),
            reason: None,
            metadata: BTreeMap::new(),
            idempotency_key: "r1".into(),
        };
        s.create_refund(&refund).await.unwrap();
        let acct = s
            .create_account(&CreateAccount {
                country: "US".into(),
                email: "p@example.com".into(),
                business_type: "individual".into(),
                metadata: BTreeMap::new(),
                idempotency_key: "a1".into(),
            })
            .await
            .unwrap();
        s.complete_onboarding(&acct.id).unwrap();
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
        s.create_transfer_reversal(&t.id, Some(1_000), "rv1")
            .await
            .unwrap();
        let payout = CreatePayout {
            amount: 4_000,
            currency: "usd".into(),
            stripe_account: acct.id.clone(),
            metadata: BTreeMap::new(),
            idempotency_key: "p1".into(),
        };
        let po = s.create_payout(&payout).await.unwrap();
        s.settle_payout(&po.id, true).unwrap();
        // A refused request is remembered under its key too.
        let mut too_big = refund.clone();
        too_big.idempotency_key = "r2".into();
        too_big.amount = Some(1_000_000);
        let refused = s.create_refund(&too_big).await.unwrap_err();
        s.try_credit(&acct.id, "USD", 7).unwrap();
        let events = s.events();
        assert_eq!(events.len(), 5);
        drop(s);

        let r = SimulatedStripe::with_store(clock(), store.clone()).unwrap();
        assert_eq!(r.events(), events);
        assert_eq!(r.balance(&acct.id, "usd"), 10_000 - 1_000 - 4_000 + 7);
        assert_eq!(r.refunded(&paid.id), 50);
        assert_eq!(r.retrieve_payment_intent(&open.id).await.unwrap(), open);
        assert_eq!(
            r.retrieve_payment_intent(&pending.id).await.unwrap().status,
            PaymentIntentStatus::Succeeded
        );
        let account = r.retrieve_account(&acct.id).await.unwrap();
        assert!(account.charges_enabled && account.payouts_enabled);
        // Idempotency keys: the same request answers the same, with no new webhook ...
        assert_eq!(
            r.create_payment_intent(&pi_req("pm_card_visa", "k1"))
                .await
                .unwrap(),
            paid
        );
        assert_eq!(r.create_refund(&too_big).await.unwrap_err(), refused);
        let mut other = pi_req("pm_card_visa", "k1");
        other.amount = 1;
        assert_eq!(
            r.create_payment_intent(&other).await.unwrap_err().code(),
            Some("idempotency_error")
        );
        assert_eq!(r.events().len(), 5);
        // ... and the state carries on: the open intent is confirmed, ids do not repeat,
        // the payout cannot be settled twice, the reversal limit holds.
        let confirmed = r
            .confirm_payment_intent(&open.id, None, "c1")
            .await
            .unwrap();
        assert_eq!(confirmed.status, PaymentIntentStatus::Succeeded);
        let ids: BTreeSet<String> = r
            .events()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 6, "a new event id after the restart");
        assert!(r.settle_payout(&po.id, true).is_err());
        assert_eq!(
            r.create_transfer_reversal(&t.id, Some(9_001), "rv2")
                .await
                .unwrap_err()
                .code(),
            Some("amount_too_large")
        );
    }

    #[tokio::test]
    async fn undelivered_webhooks_survive_a_restart() {
        let store = Arc::new(MemStore::default());
        let s = SimulatedStripe::with_store(clock(), store.clone()).unwrap();
        let a = s
            .create_payment_intent(&pi_req("pm_card_visa", "k1"))
            .await
            .unwrap();
        let b = s
            .create_payment_intent(&pi_req("pm_card_chargeDeclined", "k2"))
            .await
            .unwrap();
        let evs = s.undelivered_webhooks();
        assert_eq!(evs.len(), 2);
        let first = evs[0]["id"].as_str().unwrap().to_owned();
        assert!(s.mark_webhook_delivered(&first).unwrap());
        assert!(
            !s.mark_webhook_delivered(&first).unwrap(),
            "already delivered"
        );
        drop(s);
        let r = SimulatedStripe::with_store(clock(), store).unwrap();
        let left = r.undelivered_webhooks();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["data"]["object"]["id"], b.id.as_str());
        assert_eq!(r.events()[0]["data"]["object"]["id"], a.id.as_str());
    }

    #[tokio::test]
    async fn a_failed_save_undoes_the_operation_and_sends_no_webhook() {
        let store = Arc::new(MemStore::default());
        let s = SimulatedStripe::with_store(clock(), store.clone()).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        s.set_webhook_sink(Arc::new(move |e| lock(&sink).push(e)));
        store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = s
            .create_payment_intent(&pi_req("pm_card_visa", "k1"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, GatewayError::Transient { status: 500, .. }),
            "{err}"
        );
        assert!(s.events().is_empty());
        assert!(lock(&seen).is_empty());
        assert!(s.try_credit("acct_x", "usd", 5).is_err());
        assert_eq!(s.balance("acct_x", "usd"), 0);
        store.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        let pi = s
            .create_payment_intent(&pi_req("pm_card_visa", "k1"))
            .await
            .unwrap();
        assert_eq!(pi.status, PaymentIntentStatus::Succeeded);
        assert_eq!(lock(&seen).len(), 1, "the webhook goes out once saved");
        let r = SimulatedStripe::with_store(clock(), store).unwrap();
        assert_eq!(r.retrieve_payment_intent(&pi.id).await.unwrap(), pi);
    }

    #[test]
    fn unreadable_records_are_refused_naming_the_record() {
        let store = Arc::new(MemStore::default());
        store
            .save(&[SimRecord {
                kind: Kind::Balance,
                id: "acct_1".into(),
                body: json!(5),
            }])
            .unwrap();
        let err = SimulatedStripe::with_store(clock(), store)
            .err()
            .expect("corrupt");
        assert!(err.to_string().contains("balance acct_1"), "{err}");
        assert_eq!(Kind::parse("payment_intent"), Some(Kind::Intent));
        assert_eq!(Kind::parse("nope"), None);
    }
}
