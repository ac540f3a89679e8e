//! Invalid events are rejected with an error naming the field and the rule.

use marketplace_domain::events::*;
use marketplace_domain::ids::CorrelationId;
use marketplace_domain::{EventEnvelope, EventError, MarketplaceEvent, PutEventsEntry};
use serde_json::{json, Value};

fn fixture(path: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Decodes `path` with `detail[field] = value` (or the field removed when `value` is
/// `None`) and returns the error text.
fn reject(path: &str, field: &str, value: Option<Value>) -> String {
    let mut event = fixture(path);
    let detail = event["detail"].as_object_mut().unwrap();
    match value {
        Some(v) => {
            detail.insert(field.to_owned(), v);
        }
        None => {
            detail.remove(field);
        }
    }
    match EventEnvelope::decode_event(&event) {
        Ok(e) => panic!("accepted {path} with {field} changed: {e:?}"),
        Err(e) => e.to_string(),
    }
}

const CREATED: &str = "marketplace.booking/BookingCreated.json";

#[test]
fn missing_field() {
    assert_eq!(
        reject(CREATED, "bookingId", None),
        "detail.bookingId: is required"
    );
    assert_eq!(
        reject(CREATED, "correlationId", None),
        "detail.correlationId: is required"
    );
    assert_eq!(
        reject(CREATED, "timestamp", None),
        "detail.timestamp: is required"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        reject(CREATED, "amount", Some(json!("150.00"))),
        "detail.amount: must be a number"
    );
    assert_eq!(
        reject(CREATED, "bookingId", Some(json!(17))),
        "detail.bookingId: must be a string"
    );
    assert_eq!(
        reject(
            "marketplace.provider/ProviderAccountUpdated.json",
            "chargesEnabled",
            Some(json!("yes"))
        ),
        "detail.chargesEnabled: must be a boolean"
    );
    assert!(reject(CREATED, "startDateTime", Some(json!(1_700_000_000)))
        .starts_with("detail.startDateTime: must be an RFC 3339 date-time"));
}

#[test]
fn negative_and_zero_amounts() {
    assert_eq!(
        reject(CREATED, "amount", Some(json!(-150))),
        "detail.amount: must not be negative"
    );
    assert_eq!(
        reject(CREATED, "amount", Some(json!(0))),
        "detail.amount: must be > 0"
    );
    assert_eq!(
        reject(
            "marketplace.booking/BookingCancelled.json",
            "refundAmount",
            Some(json!(-1))
        ),
        "detail.refundAmount: must not be negative"
    );
}

#[test]
fn end_before_start() {
    assert_eq!(
        reject(CREATED, "endDateTime", Some(json!("2026-03-10T08:00:00Z"))),
        "detail.endDateTime: must be after startDateTime"
    );
    assert_eq!(
        reject(CREATED, "endDateTime", Some(json!("2026-03-10T09:00:00Z"))),
        "detail.endDateTime: must be after startDateTime"
    );
    assert_eq!(
        reject(
            "marketplace.booking/BookingUpdated.json",
            "previousEndDateTime",
            None
        ),
        "detail.previousEndDateTime: is required when previousStartDateTime is given"
    );
    assert_eq!(
        reject(
            "marketplace.workflow/WorkflowSucceeded.json",
            "stopDate",
            Some(json!("2026-03-01T13:00:00Z"))
        ),
        "detail.stopDate: must not be before startDate"
    );
}

#[test]
fn unknown_detail_type_and_source() {
    let mut event = fixture(CREATED);
    event["detail-type"] = json!("Booking Exploded");
    let err = EventEnvelope::decode_event(&event).unwrap_err();
    assert_eq!(
        err.to_string(),
        "detail-type \"Booking Exploded\" is not defined for source marketplace.booking"
    );
    assert!(matches!(err, EventError::UnknownDetailType { .. }));

    event["source"] = json!("marketplace.bookings");
    let err = EventEnvelope::decode_event(&event).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("source \"marketplace.bookings\" is not a marketplace source"),
        "{err}"
    );
}

#[test]
fn currency_rules() {
    // more decimals than the currency has
    let mut event = fixture(CREATED);
    event["detail"]["currency"] = json!("JPY");
    event["detail"]["amount"] = json!(150.5);
    assert_eq!(
        EventEnvelope::decode_event(&event).unwrap_err().to_string(),
        "detail.amount: must have at most 0 decimal places for JPY"
    );
    assert_eq!(
        reject(CREATED, "amount", Some(json!(150.555))),
        "detail.amount: must have at most 2 decimal places for USD"
    );
    assert_eq!(
        reject(CREATED, "currency", Some(json!("usd"))),
        "detail.currency: must be one of USD, EUR, GBP, JPY, CAD, AUD, NZD, CHF, SEK, NOK, DKK, KRW, KWD, BHD, JOD (got \"usd\")"
    );
    // amounts that do not add up
    assert_eq!(
        reject(
            "marketplace.payment/PaymentSucceeded.json",
            "providerEarnings",
            Some(json!(127))
        ),
        "detail.providerEarnings: must equal amount - platformFee (127.50)"
    );
    assert_eq!(
        reject(
            "marketplace.payment/PaymentSucceeded.json",
            "platformFee",
            Some(json!(151))
        ),
        "detail.platformFee: must not exceed amount"
    );
}

#[test]
fn bad_ids() {
    assert_eq!(
        reject(CREATED, "bookingId", Some(json!(""))),
        "detail.bookingId: must not be empty"
    );
    assert!(reject(CREATED, "customerId", Some(json!("cus 42")))
        .starts_with("detail.customerId: must contain only"));
    assert_eq!(
        reject(
            "marketplace.booking/BookingConfirmed.json",
            "paymentIntentId",
            Some(json!("ch_123"))
        ),
        "detail.paymentIntentId: must start with \"pi_\" followed by at least one character"
    );
    assert!(reject(CREATED, "providerId", Some(json!("p".repeat(129))))
        .contains("at most 128 characters"));
}

#[test]
fn unknown_fields_and_nulls() {
    assert_eq!(
        reject(CREATED, "bookingID", Some(json!("bk_1"))),
        "detail.bookingID: is not a field of marketplace.booking \"Booking Created\""
    );
    assert_eq!(
        reject(
            "marketplace.booking/BookingUpdated.json",
            "notes",
            Some(Value::Null)
        ),
        "detail.notes: must not be null (leave the field out instead)"
    );
}

#[test]
fn rules_between_fields() {
    let resolved = "marketplace.dispute/DisputeResolved.json";
    let mut event = fixture(resolved);
    event["detail"]["resolution"] = json!("REJECTED");
    assert_eq!(
        EventEnvelope::decode_event(&event).unwrap_err().to_string(),
        "detail.refundAmount: must be 0 when resolution is REJECTED"
    );
    assert_eq!(
        reject(resolved, "refundAmount", Some(json!(0))),
        "detail.refundAmount: must be > 0 when resolution is PARTIALLY_REFUNDED"
    );
    assert_eq!(
        reject("marketplace.payment/RefundIssued.json", "disputeId", None),
        "detail.disputeId: is required when reason is DISPUTE_RESOLVED"
    );
    assert!(reject(
        "marketplace.workflow/WorkflowStarted.json",
        "executionName",
        Some(json!("other"))
    )
    .starts_with("detail.executionName: must match the name in executionArn"));
    assert_eq!(
        reject(
            "marketplace.workflow/WorkflowStarted.json",
            "workflowType",
            Some(json!("PAYMENT_PROCESSING"))
        ),
        "detail.workflowType: must match the state machine in executionArn (BOOKING_LIFECYCLE)"
    );
    assert_eq!(
        reject(
            "marketplace.provider/ProviderRegistered.json",
            "email",
            Some(json!("studio.example.com"))
        ),
        "detail.email: must be an e-mail address (local@domain.tld)"
    );
    assert_eq!(
        reject(
            "marketplace.provider/ProviderRegistered.json",
            "country",
            Some(json!("us"))
        ),
        "detail.country: must be an ISO 3166-1 alpha-2 code (two capital letters)"
    );
}

#[test]
fn put_events_detail_must_be_a_json_object() {
    let entry = PutEventsEntry {
        source: "marketplace.booking".into(),
        detail_type: "Booking Created".into(),
        detail: "\"bk_1\"".into(),
        event_bus_name: None,
        resources: vec![],
        time: None,
        trace_header: None,
    };
    assert_eq!(
        entry.to_event().unwrap_err().to_string(),
        "Detail: must be a JSON object"
    );
}

#[test]
fn caused_events_keep_the_correlation_id() {
    let created = EventEnvelope::decode_event(&fixture(CREATED)).unwrap();
    let MarketplaceEvent::BookingCreated(b) = &created else {
        panic!("wrong variant")
    };
    let confirmed = BookingConfirmed {
        booking_id: b.booking_id.clone(),
        payment_intent_id: "pi_1".parse().unwrap(),
        confirmation_code: ConfirmationCode::new("CONF-1").unwrap(),
        timestamp: b.timestamp,
        correlation_id: CorrelationId::new("something-else").unwrap(),
    };
    let caused = created.cause(confirmed.clone());
    assert_eq!(caused.correlation_id(), created.correlation_id());
    assert_eq!(
        caused.detail()["correlationId"],
        json!("corr-01HV3K8J9QX7Z2M4N6P8R0T2V4")
    );
    let caused = confirmed.caused_by(b);
    assert_eq!(caused.correlation_id, b.correlation_id);
}

#[test]
fn details_built_in_code_are_checked_before_publishing() {
    let MarketplaceEvent::BookingCreated(mut b) =
        EventEnvelope::decode_event(&fixture(CREATED)).unwrap()
    else {
        panic!("wrong variant")
    };
    b.end_date_time = b.start_date_time;
    assert_eq!(
        b.check().unwrap_err().to_string(),
        "endDateTime: must be after startDateTime"
    );
    let event = MarketplaceEvent::from(b);
    assert_eq!(
        event.check().unwrap_err().to_string(),
        "detail.endDateTime: must be after startDateTime"
    );
    // and the entry it would publish is refused by the catalogue
    assert!(event.to_put_events_entry(None).to_event().is_err());
}
