//! Round trips on a full EventBridge envelope of every detail type, in the style of
//! aws-lambda-rust-runtime: read the fixture, parse, re-serialise, compare JSON values.
//! Every fixture is also validated against its checked-in JSON Schema.

use marketplace_domain::events::*;
use marketplace_domain::schema::validate;
use marketplace_domain::{EventEnvelope, MarketplaceEvent, PutEventsEntry};
use serde_json::Value;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture_path(source: Source, detail_type: &str) -> PathBuf {
    let compact: String = detail_type.chars().filter(|c| !c.is_whitespace()).collect();
    root()
        .join("tests/fixtures")
        .join(source.as_str())
        .join(format!("{compact}.json"))
}

macro_rules! round_trip {
    ($test:ident, $ty:ident, $file:literal) => {
        #[test]
        fn $test() {
            let bytes = include_bytes!(concat!("fixtures/", $file));
            let original: Value = serde_json::from_slice(bytes).unwrap();

            // typed envelope through serde
            let typed: EventEnvelope<$ty> = serde_json::from_slice(bytes).unwrap();
            assert_eq!(typed.source, <$ty as Detail>::SOURCE.as_str());
            assert_eq!(typed.detail_type, <$ty as Detail>::DETAIL_TYPE);
            assert_eq!(serde_json::to_value(&typed).unwrap(), original);

            // catalogue decoding, selected by the pair
            let event = EventEnvelope::decode_event(&original).unwrap();
            assert!(matches!(event, MarketplaceEvent::$ty(_)));
            assert_eq!(event.detail(), original["detail"]);
            assert_eq!(event.source().as_str(), original["source"]);
            assert_eq!(event.detail_type(), original["detail-type"]);
            assert_eq!(event, MarketplaceEvent::$ty(typed.detail.clone()));

            // PutEvents entry: Detail is a string; back to the same event and envelope
            let envelope = EventEnvelope::from_value(&original).unwrap();
            let entry = envelope.to_put_events_entry(Some("marketplace"));
            let entry_json = serde_json::to_value(&entry).unwrap();
            assert!(entry_json["Detail"].is_string());
            let entry: PutEventsEntry = serde_json::from_value(entry_json).unwrap();
            assert_eq!(entry.to_event().unwrap(), event);
            let again = entry
                .to_envelope(
                    envelope.id.clone(),
                    &envelope.account,
                    &envelope.region,
                    envelope.time,
                )
                .unwrap();
            assert_eq!(serde_json::to_value(&again).unwrap(), original);

            // the event's own entry decodes to itself
            let own = event.to_put_events_entry(None);
            assert_eq!(own.to_event().unwrap(), event);
        }
    };
}

round_trip!(
    booking_created,
    BookingCreated,
    "marketplace.booking/BookingCreated.json"
);
round_trip!(
    booking_confirmed,
    BookingConfirmed,
    "marketplace.booking/BookingConfirmed.json"
);
round_trip!(
    booking_cancelled,
    BookingCancelled,
    "marketplace.booking/BookingCancelled.json"
);
round_trip!(
    booking_expired,
    BookingExpired,
    "marketplace.booking/BookingExpired.json"
);
round_trip!(
    booking_completed,
    BookingCompleted,
    "marketplace.booking/BookingCompleted.json"
);
round_trip!(
    booking_updated,
    BookingUpdated,
    "marketplace.booking/BookingUpdated.json"
);
round_trip!(
    payment_intent_created,
    PaymentIntentCreated,
    "marketplace.payment/PaymentIntentCreated.json"
);
round_trip!(
    payment_succeeded,
    PaymentSucceeded,
    "marketplace.payment/PaymentSucceeded.json"
);
round_trip!(
    payment_failed,
    PaymentFailed,
    "marketplace.payment/PaymentFailed.json"
);
round_trip!(
    refund_issued,
    RefundIssued,
    "marketplace.payment/RefundIssued.json"
);
round_trip!(
    payout_completed,
    PayoutCompleted,
    "marketplace.payment/PayoutCompleted.json"
);
round_trip!(
    payout_failed,
    PayoutFailed,
    "marketplace.payment/PayoutFailed.json"
);
round_trip!(
    dispute_created,
    DisputeCreated,
    "marketplace.dispute/DisputeCreated.json"
);
round_trip!(
    dispute_escalated,
    DisputeEscalated,
    "marketplace.dispute/DisputeEscalated.json"
);
round_trip!(
    dispute_resolved,
    DisputeResolved,
    "marketplace.dispute/DisputeResolved.json"
);
round_trip!(
    provider_registered,
    ProviderRegistered,
    "marketplace.provider/ProviderRegistered.json"
);
round_trip!(
    provider_onboarding_completed,
    ProviderOnboardingCompleted,
    "marketplace.provider/ProviderOnboardingCompleted.json"
);
round_trip!(
    provider_onboarding_failed,
    ProviderOnboardingFailed,
    "marketplace.provider/ProviderOnboardingFailed.json"
);
round_trip!(
    provider_account_updated,
    ProviderAccountUpdated,
    "marketplace.provider/ProviderAccountUpdated.json"
);
round_trip!(
    workflow_started,
    WorkflowStarted,
    "marketplace.workflow/WorkflowStarted.json"
);
round_trip!(
    workflow_succeeded,
    WorkflowSucceeded,
    "marketplace.workflow/WorkflowSucceeded.json"
);
round_trip!(
    workflow_failed,
    WorkflowFailed,
    "marketplace.workflow/WorkflowFailed.json"
);
round_trip!(
    workflow_timed_out,
    WorkflowTimedOut,
    "marketplace.workflow/WorkflowTimedOut.json"
);
round_trip!(
    workflow_aborted,
    WorkflowAborted,
    "marketplace.workflow/WorkflowAborted.json"
);

#[test]
fn every_catalogue_entry_has_a_fixture_valid_against_its_schema() {
    for entry in CATALOGUE {
        let path = fixture_path(entry.source, entry.detail_type);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing fixture {}", path.display()));
        let event: Value = serde_json::from_str(&text).unwrap();
        let schema_path = root()
            .join("../../schemas")
            .join(format!("{}.json", entry.schema_name()));
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
        if let Err(e) = validate(&schema, &event) {
            panic!(
                "{} does not match {}: {e}",
                path.display(),
                schema_path.display()
            );
        }
        // and the freshly generated schema agrees too
        validate(&entry.event_schema(), &event).unwrap();
    }
}

#[test]
fn no_fixture_without_a_catalogue_entry() {
    for source_dir in std::fs::read_dir(root().join("tests/fixtures"))
        .unwrap()
        .flatten()
    {
        let source: Source = source_dir.file_name().to_string_lossy().parse().unwrap();
        for file in std::fs::read_dir(source_dir.path()).unwrap().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let known = CATALOGUE.iter().any(|e| {
                e.source == source
                    && fixture_path(source, e.detail_type)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        == name
            });
            assert!(known, "fixture {source}/{name} has no catalogue entry");
        }
    }
}

#[test]
fn schemas_reject_what_the_decoder_rejects() {
    // A mutated fixture must fail both the decoder and the schema, for rules a schema can
    // express (types, required, enums, bounds, patterns, unknown fields).
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_path(Source::Booking, "Booking Created")).unwrap(),
    )
    .unwrap();
    let schema = BookingCreated::event_schema();
    let mutations: Vec<(&str, Value)> = vec![
        ("amount", serde_json::json!(-5)),
        ("amount", serde_json::json!(0)),
        ("amount", serde_json::json!("150")),
        ("currency", serde_json::json!("XYZ")),
        ("bookingId", serde_json::json!("")),
        ("bookingId", serde_json::json!("bk 1")),
        ("startDateTime", serde_json::json!("tomorrow")),
        ("unexpected", serde_json::json!(1)),
    ];
    for (field, value) in mutations {
        let mut event = base.clone();
        event["detail"][field] = value.clone();
        let decoded = EventEnvelope::decode_event(&event);
        let validated = validate(&schema, &event);
        assert!(decoded.is_err(), "decoder accepted {field} = {value}");
        assert!(validated.is_err(), "schema accepted {field} = {value}");
        assert_eq!(decoded.unwrap_err().field(), format!("detail.{field}"));
        assert_eq!(validated.unwrap_err().field, format!("detail.{field}"));
    }
}
