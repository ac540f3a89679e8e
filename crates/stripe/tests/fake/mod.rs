//! A local fake of the Stripe API on 127.0.0.1 (random port): it records every request
//! (method, path, headers, decoded form fields) and answers what the test's responder
//! returns, built from Stripe's documented object shapes below.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use marketplace_stripe::{StripeConfig, StripeGateway};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The secret key the tests configure.
pub const KEY: &str = "sk_test_51FakeKeyForTheLocalFake";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`.
    pub method: String,
    /// `/v1/payment_intents`.
    pub path: String,
    /// Lowercase header names.
    pub headers: BTreeMap<String, String>,
    /// The form-encoded body, decoded (`metadata[bookingId]` → value).
    pub form: BTreeMap<String, String>,
    /// The raw body.
    pub body: String,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// A form field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.get(name).map(String::as_str)
    }

    /// `(method, path)`.
    pub fn route(&self) -> (&str, &str) {
        (&self.method, &self.path)
    }
}

/// What the fake answers: a status and a JSON body, or raw text.
pub enum Answer {
    /// JSON with a status.
    Json(u16, Value),
    /// A non-JSON body (a proxy's error page).
    Text(u16, &'static str),
}

/// Decides the answer from the request and how many earlier requests had the same route.
pub type Responder = Arc<dyn Fn(&Recorded, usize) -> Answer + Send + Sync>;

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    responder: Responder,
}

/// A running fake.
pub struct Fake {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The only request; fails the test if there were none or several.
    pub fn single(&self) -> Recorded {
        let all = self.requests();
        assert_eq!(all.len(), 1, "expected exactly one request, got {all:#?}");
        all.into_iter().next().expect("one request")
    }

    /// A gateway pointed at this fake: no pause between retries, at most `attempts`.
    pub fn gateway(&self, attempts: u32) -> StripeGateway {
        let mut config = StripeConfig::new(KEY);
        config.api_base = Some(self.base.clone());
        config.max_attempts = attempts;
        config.initial_backoff = Duration::ZERO;
        config.attempt_timeout = Duration::from_secs(5);
        StripeGateway::new(config).expect("valid configuration")
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        form: form_urlencoded::parse(body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        body,
    };
    let seen = {
        let mut all = shared.requests.lock().unwrap_or_else(|p| p.into_inner());
        let seen = all.iter().filter(|r| r.route() == recorded.route()).count();
        all.push(recorded.clone());
        seen
    };
    let (status, content_type, text) = match (shared.responder)(&recorded, seen) {
        Answer::Json(status, v) => (status, "application/json", v.to_string()),
        Answer::Text(status, t) => (status, "text/html", t.to_owned()),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [
            ("content-type", content_type),
            ("request-id", "req_fake0001"),
        ],
        text,
    )
        .into_response()
}

/// Starts a fake answering with `responder`.
pub async fn start(responder: impl Fn(&Recorded, usize) -> Answer + Send + Sync + 'static) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let shared = Shared {
        requests: requests.clone(),
        responder: Arc::new(responder),
    };
    let app = Router::new().fallback(handle).with_state(shared);
    let task = tokio::spawn(async move {
        // ends when the test drops the fake (the task is aborted)
        let _ = axum::serve(listener, app).await;
    });
    Fake {
        base,
        requests,
        task,
    }
}

/// A port on 127.0.0.1 where nothing listens.
pub async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}")
}

// ---- Stripe's documented object shapes (API reference, "The … object") ----

/// The metadata of a request echoed back as Stripe does.
pub fn metadata_of(r: &Recorded) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in &r.form {
        if let Some(key) = k
            .strip_prefix("metadata[")
            .and_then(|k| k.strip_suffix(']'))
        {
            m.insert(key.to_owned(), Value::String(v.clone()));
        }
    }
    Value::Object(m)
}

/// A PaymentIntent.
pub fn payment_intent(id: &str, amount: i64, status: &str) -> Value {
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": if status == "succeeded" { amount } else { 0 },
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": {"allow_redirects": "never", "enabled": true},
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic_async",
        "client_secret": format!("{id}_secret_Fake0001"),
        "confirmation_method": "automatic",
        "created": 1_772_355_600,
        "currency": "usd",
        "customer": null,
        "description": null,
        "last_payment_error": null,
        "latest_charge": if status == "succeeded" { json!("ch_3Fake0001") } else { Value::Null },
        "livemode": false,
        "metadata": {},
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": "pm_1Fake0001",
        "payment_method_configuration_details": null,
        "payment_method_options": {
            "card": {
                "installments": null,
                "mandate_options": null,
                "network": null,
                "request_three_d_secure": "automatic"
            }
        },
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": status,
        "transfer_data": null,
        "transfer_group": null
    })
}

/// A Refund.
pub fn refund(id: &str, amount: i64, payment_intent: &str) -> Value {
    json!({
        "id": id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": "txn_1Fake0001",
        "charge": "ch_3Fake0001",
        "created": 1_772_355_700,
        "currency": "usd",
        "destination_details": {"card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"}, "type": "card"},
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": "requested_by_customer",
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null
    })
}

/// A Transfer.
pub fn transfer(id: &str, amount: i64, destination: &str, group: &str) -> Value {
    json!({
        "id": id,
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": "txn_1Fake0002",
        "created": 1_772_355_800,
        "currency": "usd",
        "description": null,
        "destination": destination,
        "destination_payment": "py_1Fake0001",
        "livemode": false,
        "metadata": {},
        "reversals": {
            "object": "list",
            "data": [],
            "has_more": false,
            "total_count": 0,
            "url": format!("/v1/transfers/{id}/reversals")
        },
        "reversed": false,
        "source_transaction": "ch_3Fake0001",
        "source_type": "card",
        "transfer_group": group
    })
}

/// A TransferReversal.
pub fn transfer_reversal(id: &str, amount: i64, transfer: &str) -> Value {
    json!({
        "id": id,
        "object": "transfer_reversal",
        "amount": amount,
        "balance_transaction": "txn_1Fake0003",
        "created": 1_772_355_900,
        "currency": "usd",
        "destination_payment_refund": "pyr_1Fake0001",
        "metadata": {},
        "source_refund": null,
        "transfer": transfer
    })
}

/// A Payout (on a connected account).
pub fn payout(id: &str, amount: i64, status: &str) -> Value {
    json!({
        "id": id,
        "object": "payout",
        "amount": amount,
        "application_fee": null,
        "application_fee_amount": null,
        "arrival_date": 1_772_496_000,
        "automatic": false,
        "balance_transaction": "txn_1Fake0004",
        "created": 1_772_356_000,
        "currency": "usd",
        "description": null,
        "destination": "ba_1Fake0001",
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "livemode": false,
        "metadata": {},
        "method": "standard",
        "original_payout": null,
        "reconciliation_status": "not_applicable",
        "reversed_by": null,
        "source_type": "card",
        "statement_descriptor": null,
        "status": status,
        "type": "bank_account"
    })
}

/// An Express Account as Stripe answers its creation.
pub fn account(id: &str, email: &str, charges_enabled: bool) -> Value {
    json!({
        "id": id,
        "object": "account",
        "business_profile": {
            "annual_revenue": null,
            "estimated_worker_count": null,
            "mcc": null,
            "name": null,
            "product_description": null,
            "support_address": null,
            "support_email": null,
            "support_phone": null,
            "support_url": null,
            "url": null
        },
        "business_type": "individual",
        "capabilities": {"card_payments": "inactive", "transfers": "inactive"},
        "charges_enabled": charges_enabled,
        "controller": {
            "fees": {"payer": "application"},
            "is_controller": true,
            "losses": {"payments": "application"},
            "requirement_collection": "stripe",
            "stripe_dashboard": {"type": "express"},
            "type": "application"
        },
        "country": "US",
        "created": 1_772_355_500,
        "default_currency": "usd",
        "details_submitted": charges_enabled,
        "email": email,
        "external_accounts": {
            "object": "list",
            "data": [],
            "has_more": false,
            "total_count": 0,
            "url": format!("/v1/accounts/{id}/external_accounts")
        },
        "metadata": {},
        "payouts_enabled": charges_enabled,
        "tos_acceptance": {"date": null, "ip": null, "user_agent": null},
        "type": "express"
    })
}

/// An AccountLink.
pub fn account_link(account: &str) -> Value {
    json!({
        "object": "account_link",
        "created": 1_772_355_600,
        "expires_at": 1_772_355_900,
        "url": format!("https://connect.stripe.com/setup/e/{account}/Fake0001")
    })
}

/// An error body: `{"error": {type, code, message, …}}`.
pub fn error(kind: &str, code: Option<&str>, message: &str) -> Value {
    let mut e = json!({
        "type": kind,
        "message": message,
        "request_log_url": "https://dashboard.stripe.com/test/logs/req_fake0001?t=1772355600"
    });
    if let Some(code) = code {
        e["code"] = json!(code);
        e["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        ));
    }
    json!({"error": e})
}

/// A card decline (402): `card_error` with `decline_code`, and the PaymentIntent when
/// one is involved (`requires_payment_method` with `last_payment_error`).
pub fn card_declined(decline_code: &str, message: &str, intent: Option<Value>) -> Value {
    let mut body = error("card_error", Some("card_declined"), message);
    body["error"]["decline_code"] = json!(decline_code);
    body["error"]["charge"] = json!("ch_3FakeDeclined");
    if let Some(mut pi) = intent {
        pi["status"] = json!("requires_payment_method");
        pi["latest_charge"] = json!("ch_3FakeDeclined");
        pi["last_payment_error"] = json!({
            "charge": "ch_3FakeDeclined",
            "code": "card_declined",
            "decline_code": decline_code,
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": message,
            "type": "card_error"
        });
        body["error"]["payment_intent"] = pi;
    }
    body
}
