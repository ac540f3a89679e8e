//! Properties over generated input: decoding never panics on any JSON, and every event an
//! entity produces is accepted by the decoder and survives the wire.

use chrono::{TimeZone, Utc};
use marketplace_domain::entities::{Booking, Payment, Service};
use marketplace_domain::events::CATALOGUE;
use marketplace_domain::ids::CorrelationId;
use marketplace_domain::{Currency, Detail, FeeRate, MarketplaceEvent, Money};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e13f64..1e13).prop_map(Value::from),
        "[a-zA-Z0-9_ :.-]{0,12}".prop_map(Value::String),
        Just(Value::String("2026-03-10T09:00:00Z".into())),
        Just(Value::String("USD".into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,8}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A detail with every field of `entry` set to a generated value.
fn detail_for(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(json_value(), fields.len()).prop_map(move |values| {
        Value::Object(fields.iter().map(|f| f.to_string()).zip(values).collect())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoding_any_json_never_panics(i in 0..CATALOGUE.len(), detail in json_value()) {
        let e = &CATALOGUE[i];
        let _ = MarketplaceEvent::decode(e.source.as_str(), e.detail_type, &detail);
    }

    #[test]
    fn decoding_detail_shaped_json_never_panics_and_errors_name_a_field(
        (i, detail) in (0..CATALOGUE.len()).prop_flat_map(|i| (Just(i), detail_for(CATALOGUE[i].fields)))
    ) {
        let e = &CATALOGUE[i];
        match MarketplaceEvent::decode(e.source.as_str(), e.detail_type, &detail) {
            Ok(event) => prop_assert_eq!(event.detail(), detail),
            Err(err) => prop_assert!(err.field().starts_with("detail."), "{}", err),
        }
    }

    #[test]
    fn events_from_entities_decode_to_themselves(
        minor in 1i64..100_000_000_000,
        ppm in 0u32..=1_000_000,
        cur in prop::sample::select(Currency::ALL.to_vec()),
    ) {
        let price = Money::from_minor(minor, cur).unwrap();
        prop_assume!(price.amount() < Decimal::from(1_000_000_000_000i64));
        let corr = CorrelationId::new("corr-prop").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 14, 0, 0).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
        let service = Service::new("svc".parse().unwrap(), "prv".parse().unwrap(), "S", price, 45).unwrap();
        let (booking, created) =
            Booking::create("bk".parse().unwrap(), &service, "cus".parse().unwrap(), start, now, corr.clone()).unwrap();
        let (mut payment, intent) = Payment::create("pi_1".parse().unwrap(), &booking, now, corr.clone()).unwrap();
        let rate = FeeRate::new(Decimal::new(i64::from(ppm), 6)).unwrap();
        let succeeded = payment.succeed(rate, now, corr).unwrap();
        prop_assert_eq!(succeeded.split(), price.split_fee(rate));
        for event in [MarketplaceEvent::from(created), intent.into(), succeeded.into()] {
            let wire: Value = serde_json::from_str(&event.detail().to_string()).unwrap();
            let back = MarketplaceEvent::decode(event.source().as_str(), event.detail_type(), &wire).unwrap();
            prop_assert_eq!(back, event);
        }
    }
}

#[test]
fn every_detail_type_has_fields_and_a_description() {
    for e in CATALOGUE {
        assert!(e.fields.len() >= 3, "{}", e.type_name);
        assert!(!e.description().is_empty(), "{}", e.type_name);
        let schema = e.detail_schema();
        for f in e.fields {
            assert!(
                schema["properties"][*f]["description"].is_string(),
                "{}.{f} has no description",
                e.type_name
            );
        }
    }
    // the trait's constants agree with the catalogue
    assert_eq!(
        <marketplace_domain::events::BookingCreated as Detail>::FIELDS,
        CATALOGUE[0].fields
    );
}
