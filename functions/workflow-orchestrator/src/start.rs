//! Workflow inputs: key normalisation, validation per workflow type, ids filled in, and
//! the deterministic execution name that makes a retried start idempotent.
//!
//! | workflow | execution name |
//! |---|---|
//! | BOOKING_LIFECYCLE BOOK | `booking-{bookingId}` (bookingId derived from customer, service and start when absent) |
//! | BOOKING_LIFECYCLE CANCEL | `booking-{bookingId}-cancel` |
//! | PAYMENT_PROCESSING DIRECT | `payment-{bookingId}` |
//! | PAYMENT_PROCESSING PAYOUT / REFUND | `payout-{providerId}-{hash}` / `refund-{paymentIntentId}-{hash}` (hash of the input) |
//! | DISPUTE_RESOLUTION | `dispute-{disputeId}` (disputeId derived from booking, customer, type and text when absent) |
//! | PROVIDER_ONBOARDING | `onboarding-{providerId}` |
//!
//! Names longer than 80 characters are shortened with a hash. A missing correlationId
//! becomes the execution name (what the state machines default to as well).

use marketplace_domain::events::{CancelledBy, DisputeType, RefundReason};
use marketplace_domain::ids::{
    BookingId, CustomerId, DisputeId, PaymentIntentId, ProviderId, ServiceId, StripeAccountId,
};
use marketplace_domain::{ExecutionName, WorkflowType};
use marketplace_ports::fields::{money_json, Fields};
use marketplace_ports::idempotency::payload_hash;
use marketplace_ports::HandlerError;
use serde_json::{Map, Value};

/// Where onboarding links send the provider (defaults of the start input).
#[derive(Debug, Clone, PartialEq)]
pub struct OnboardingUrls {
    /// `refreshUrl`.
    pub refresh_url: String,
    /// `returnUrl`.
    pub return_url: String,
}

/// A validated start: the input to send and the execution name.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedStart {
    /// The execution input.
    pub input: Value,
    /// The execution name.
    pub name: String,
    /// The correlation id in the input.
    pub correlation_id: String,
}

/// `snake_case` and `kebab-case` keys → `camelCase` (top level).
pub fn normalise_keys(input: &Map<String, Value>) -> Map<String, Value> {
    input
        .iter()
        .map(|(k, v)| {
            let mut out = String::with_capacity(k.len());
            let mut upper = false;
            for c in k.chars() {
                if c == '_' || c == '-' {
                    upper = !out.is_empty();
                } else if upper {
                    out.extend(c.to_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            (out, v.clone())
        })
        .collect()
}

fn short_hash(v: &Value) -> String {
    payload_hash(v)[..12].to_owned()
}

/// A valid execution name from `name`, shortened with a hash past 80 characters.
pub fn execution_name(name: &str) -> String {
    if name.chars().count() <= 80 {
        return name.to_owned();
    }
    let head: String = name.chars().take(66).collect();
    format!("{head}-{}", short_hash(&Value::String(name.to_owned())))
}

fn check<T: std::str::FromStr>(f: &Fields<'_>, field: &str) -> Result<(), HandlerError>
where
    T::Err: std::fmt::Display,
{
    f.parse::<T>(field).map(|_| ())
}

fn canonical_amount(
    o: &mut Map<String, Value>,
    f: &Fields<'_>,
    field: &str,
    required: bool,
) -> Result<(), HandlerError> {
    if f.get(field).is_none() && !required {
        return Ok(());
    }
    let currency = f.currency("currency")?;
    let m = f.money(field, currency)?;
    o.insert(field.into(), money_json(&m));
    Ok(())
}

fn positive(f: &Fields<'_>, field: &str) -> Result<(), HandlerError> {
    if f.decimal(field)?.is_sign_negative() || f.decimal(field)?.is_zero() {
        return Err(f.error(field, "must be > 0"));
    }
    Ok(())
}

/// Validates and completes the input of `workflow_type`; `explicit_name` is the caller's
/// executionName, if any.
pub fn prepare(
    workflow_type: WorkflowType,
    input: &Value,
    explicit_name: Option<&str>,
    urls: &OnboardingUrls,
) -> Result<PreparedStart, HandlerError> {
    let obj = input
        .as_object()
        .ok_or_else(|| HandlerError::validation("input", "must be a JSON object"))?;
    let mut o = normalise_keys(obj);
    let snapshot = Value::Object(o.clone());
    let f = Fields::under(&snapshot, "input");
    if let Some(c) = f.opt_str("currency")? {
        o.insert("currency".into(), Value::String(c.to_ascii_uppercase()));
    }
    let snapshot = Value::Object(o.clone());
    let f = Fields::under(&snapshot, "input");
    let derived = match workflow_type {
        WorkflowType::BookingLifecycle => {
            let op = f
                .opt_str("operation")?
                .unwrap_or("BOOK")
                .to_ascii_uppercase();
            o.insert("operation".into(), Value::String(op.clone()));
            match op.as_str() {
                "BOOK" => {
                    check::<ServiceId>(&f, "serviceId")?;
                    check::<CustomerId>(&f, "customerId")?;
                    check::<ProviderId>(&f, "providerId")?;
                    let start = f.time("startDateTime")?;
                    let end = f.time("endDateTime")?;
                    if end <= start {
                        return Err(f.error("endDateTime", "must be after startDateTime"));
                    }
                    positive(&f, "amount")?;
                    canonical_amount(&mut o, &f, "amount", true)?;
                    o.insert(
                        "startDateTime".into(),
                        marketplace_ports::fields::time_json(&start),
                    );
                    o.insert(
                        "endDateTime".into(),
                        marketplace_ports::fields::time_json(&end),
                    );
                    let booking_id = match f.opt_str("bookingId")? {
                        Some(_) => f.parse::<BookingId>("bookingId")?.to_string(),
                        None => {
                            let key = serde_json::json!([
                                f.str("customerId")?,
                                f.str("serviceId")?,
                                o["startDateTime"]
                            ]);
                            let id = format!("bk_{}", &payload_hash(&key)[..20]);
                            o.insert("bookingId".into(), Value::String(id.clone()));
                            id
                        }
                    };
                    format!("booking-{booking_id}")
                }
                "CANCEL" => {
                    let booking: BookingId = f.parse("bookingId")?;
                    let _: CancelledBy = f.parse("cancelledBy")?;
                    f.str("reason")?;
                    f.str("requestedBy")?;
                    format!("booking-{booking}-cancel")
                }
                other => {
                    return Err(f.error(
                        "operation",
                        format!("must be BOOK or CANCEL (got {other:?})"),
                    ))
                }
            }
        }
        WorkflowType::PaymentProcessing => {
            let kind = f.str("paymentType")?.to_ascii_uppercase();
            o.insert("paymentType".into(), Value::String(kind.clone()));
            match kind.as_str() {
                "DIRECT" => {
                    let booking: BookingId = f.parse("bookingId")?;
                    check::<CustomerId>(&f, "customerId")?;
                    check::<ProviderId>(&f, "providerId")?;
                    check::<StripeAccountId>(&f, "stripeAccountId")?;
                    f.str("paymentMethodId")?;
                    positive(&f, "amount")?;
                    canonical_amount(&mut o, &f, "amount", true)?;
                    canonical_amount(&mut o, &f, "platformFee", true)?;
                    if f.decimal("platformFee")? > f.decimal("amount")? {
                        return Err(f.error("platformFee", "must not exceed amount"));
                    }
                    format!("payment-{booking}")
                }
                "PAYOUT" => {
                    let provider: ProviderId = f.parse("providerId")?;
                    check::<StripeAccountId>(&f, "stripeAccountId")?;
                    positive(&f, "amount")?;
                    canonical_amount(&mut o, &f, "amount", true)?;
                    let mut key = o.clone();
                    key.remove("correlationId");
                    format!("payout-{provider}-{}", short_hash(&Value::Object(key)))
                }
                "REFUND" => {
                    let pi: PaymentIntentId = f.parse("paymentIntentId")?;
                    check::<BookingId>(&f, "bookingId")?;
                    positive(&f, "amount")?;
                    canonical_amount(&mut o, &f, "amount", true)?;
                    let _: RefundReason = f.parse("reason")?;
                    let mut key = o.clone();
                    key.remove("correlationId");
                    format!("refund-{pi}-{}", short_hash(&Value::Object(key)))
                }
                other => {
                    return Err(f.error(
                        "paymentType",
                        format!("must be DIRECT, PAYOUT or REFUND (got {other:?})"),
                    ))
                }
            }
        }
        WorkflowType::DisputeResolution => {
            let booking: BookingId = f.parse("bookingId")?;
            let customer: CustomerId = f.parse("customerId")?;
            let dt: DisputeType = f.parse("disputeType")?;
            let description = f.str("description")?;
            if description.chars().count() > 5000 {
                return Err(f.error("description", "must be at most 5000 characters"));
            }
            match f.get("requestedRefundAmount") {
                None => {
                    o.insert("requestedRefundAmount".into(), Value::Null);
                }
                Some(_) => {
                    let d = f.decimal("requestedRefundAmount")?;
                    if d.is_sign_negative() || d.is_zero() {
                        return Err(f.error("requestedRefundAmount", "must be > 0 (or null)"));
                    }
                }
            }
            let dispute_id = match f.opt_str("disputeId")? {
                Some(_) => f.parse::<DisputeId>("disputeId")?.to_string(),
                None => {
                    let key = serde_json::json!([
                        booking.as_str(),
                        customer.as_str(),
                        dt.as_str(),
                        description
                    ]);
                    let id = format!("dsp_{}", &payload_hash(&key)[..20]);
                    o.insert("disputeId".into(), Value::String(id.clone()));
                    id
                }
            };
            format!("dispute-{dispute_id}")
        }
        WorkflowType::ProviderOnboarding => {
            let provider: ProviderId = f.parse("providerId")?;
            let email = f.str("email")?;
            if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
                return Err(f.error("email", "must be an e-mail address"));
            }
            let country = f.str("country")?;
            if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(f.error("country", "must be a two-letter ISO 3166 code in capitals"));
            }
            let bt = f.opt_str("businessType")?.unwrap_or("individual");
            if !matches!(
                bt,
                "individual" | "company" | "non_profit" | "government_entity"
            ) {
                return Err(f.error(
                    "businessType",
                    "must be individual, company, non_profit or government_entity",
                ));
            }
            o.insert("businessType".into(), Value::String(bt.to_owned()));
            for (field, default) in [
                ("refreshUrl", &urls.refresh_url),
                ("returnUrl", &urls.return_url),
            ] {
                let url = f.opt_str(field)?.unwrap_or(default);
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(f.error(field, "must be an http(s) URL"));
                }
                o.insert(field.into(), Value::String(url.to_owned()));
            }
            format!("onboarding-{provider}")
        }
    };
    let name = match explicit_name {
        Some(n) => ExecutionName::new(n)
            .map_err(|e| HandlerError::validation("executionName", e.rule))?
            .as_str()
            .to_owned(),
        None => execution_name(&derived),
    };
    let correlation_id = match f.opt_str("correlationId")? {
        Some(c) => c.to_owned(),
        None => name.clone(),
    };
    o.insert(
        "correlationId".into(),
        Value::String(correlation_id.clone()),
    );
    Ok(PreparedStart {
        input: Value::Object(o),
        name,
        correlation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn urls() -> OnboardingUrls {
        OnboardingUrls {
            refresh_url: "https://app.example.com/onboarding/refresh".into(),
            return_url: "https://app.example.com/onboarding/done".into(),
        }
    }

    fn book() -> Value {
        json!({"service_id": "svc_1", "customerId": "cus_1", "providerId": "prv_1",
               "startDateTime": "2026-03-03T10:00:00+01:00", "endDateTime": "2026-03-03T11:00:00+01:00",
               "amount": 120.50, "currency": "usd"})
    }

    #[test]
    fn booking_inputs_are_normalised_and_named_deterministically() {
        let a = prepare(WorkflowType::BookingLifecycle, &book(), None, &urls()).unwrap();
        let b = prepare(WorkflowType::BookingLifecycle, &book(), None, &urls()).unwrap();
        assert_eq!(a, b, "the same request twice gives the same execution");
        assert!(a.name.starts_with("booking-bk_"));
        assert_eq!(a.input["serviceId"], "svc_1");
        assert_eq!(a.input["currency"], "USD");
        assert_eq!(a.input["operation"], "BOOK");
        assert_eq!(a.input["amount"], json!(120.5));
        assert_eq!(a.input["startDateTime"], "2026-03-03T09:00:00Z");
        assert_eq!(a.input["correlationId"], json!(a.name));
        let mut other = book();
        other["startDateTime"] = json!("2026-03-04T10:00:00Z");
        other["endDateTime"] = json!("2026-03-04T11:00:00Z");
        assert_ne!(
            prepare(WorkflowType::BookingLifecycle, &other, None, &urls())
                .unwrap()
                .name,
            a.name
        );
        let cancel = json!({"operation": "CANCEL", "bookingId": "bk_9", "cancelledBy": "CUSTOMER", "reason": "r", "requestedBy": "cus_1", "correlationId": "c-1"});
        let c = prepare(WorkflowType::BookingLifecycle, &cancel, None, &urls()).unwrap();
        assert_eq!(
            (c.name.as_str(), c.correlation_id.as_str()),
            ("booking-bk_9-cancel", "c-1")
        );
    }

    #[test]
    fn invalid_inputs_name_field_and_rule() {
        let cases = [
            (
                WorkflowType::BookingLifecycle,
                json!({"customerId": "c"}),
                "input.serviceId: is required",
            ),
            (
                WorkflowType::BookingLifecycle,
                {
                    let mut b = book();
                    b["amount"] = json!(0);
                    b
                },
                "input.amount: must be > 0",
            ),
            (
                WorkflowType::BookingLifecycle,
                {
                    let mut b = book();
                    b["endDateTime"] = b["startDateTime"].clone();
                    b
                },
                "input.endDateTime: must be after startDateTime",
            ),
            (
                WorkflowType::BookingLifecycle,
                json!({"operation": "MOVE"}),
                "input.operation: must be BOOK or CANCEL (got \"MOVE\")",
            ),
            (
                WorkflowType::PaymentProcessing,
                json!({"paymentType": "GIFT"}),
                "input.paymentType: must be DIRECT, PAYOUT or REFUND (got \"GIFT\")",
            ),
            (
                WorkflowType::PaymentProcessing,
                json!({"paymentType": "REFUND", "paymentIntentId": "ch_1"}),
                "input.paymentIntentId: must start with \"pi_\"",
            ),
            (
                WorkflowType::DisputeResolution,
                json!({"bookingId": "bk_1", "customerId": "c", "disputeType": "ANGRY", "description": "d"}),
                "input.disputeType: must be one of",
            ),
            (
                WorkflowType::ProviderOnboarding,
                json!({"providerId": "p", "email": "x", "country": "US"}),
                "input.email: must be an e-mail address",
            ),
            (
                WorkflowType::ProviderOnboarding,
                json!({"providerId": "p", "email": "x@y.z", "country": "usa"}),
                "input.country: must be a two-letter",
            ),
        ];
        for (wt, input, want) in cases {
            let e = prepare(wt, &input, None, &urls()).unwrap_err();
            assert!(
                e.message.starts_with(want),
                "{:?} should start with {want:?}",
                e.message
            );
        }
        assert_eq!(
            prepare(WorkflowType::BookingLifecycle, &json!([1]), None, &urls())
                .unwrap_err()
                .message,
            "input: must be a JSON object"
        );
        assert!(prepare(
            WorkflowType::BookingLifecycle,
            &book(),
            Some("bad name"),
            &urls()
        )
        .unwrap_err()
        .message
        .starts_with("executionName: "));
    }

    #[test]
    fn other_workflows() {
        let o = prepare(
            WorkflowType::ProviderOnboarding,
            &json!({"providerId": "prv_1", "email": "p@x.io", "country": "US"}),
            None,
            &urls(),
        )
        .unwrap();
        assert_eq!(o.name, "onboarding-prv_1");
        assert_eq!(o.input["businessType"], "individual");
        assert_eq!(
            o.input["returnUrl"],
            "https://app.example.com/onboarding/done"
        );
        let d = prepare(WorkflowType::DisputeResolution, &json!({"bookingId": "bk_1", "customerId": "cus_1", "disputeType": "REFUND_REQUEST", "description": "late"}), None, &urls()).unwrap();
        assert!(d.name.starts_with("dispute-dsp_"));
        assert_eq!(d.input["requestedRefundAmount"], Value::Null);
        let r = json!({"paymentType": "REFUND", "paymentIntentId": "pi_1", "bookingId": "bk_1", "amount": 10, "currency": "USD", "reason": "DUPLICATE"});
        let r1 = prepare(WorkflowType::PaymentProcessing, &r, None, &urls()).unwrap();
        let mut r2in = r.clone();
        r2in["correlationId"] = json!("other");
        assert_eq!(
            prepare(WorkflowType::PaymentProcessing, &r2in, None, &urls())
                .unwrap()
                .name,
            r1.name,
            "the correlation id does not change the name"
        );
        assert!(r1.name.starts_with("refund-pi_1-"));
        let long = "x".repeat(100);
        assert_eq!(execution_name(&long).chars().count(), 79);
    }
}
