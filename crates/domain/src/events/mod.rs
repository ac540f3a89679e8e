//! The typed event catalogue: every `(source, detail-type)` pair on the bus is a struct,
//! and [`MarketplaceEvent`] is the sum of them all.
//!
//! Each detail struct is declared once with the `detail!` macro as a list of fields
//! (Rust name, type, camelCase wire name, doc). From that list come the struct, its strict
//! decoder (unknown fields, missing fields, wrong types and broken rules are errors naming
//! the field), its encoder, its serde impls and its JSON Schema. Every detail also gets
//! `timestamp` and `correlationId`, added by the macro so none can forget them.
//! Rules that involve several fields (end after start, fee + earnings = amount, amounts
//! with the currency's decimals) are in each struct's `rules` function.

use crate::envelope::{EventEnvelope, PutEventsEntry};
use crate::error::ValidationError;
use crate::ids::CorrelationId;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

macro_rules! detail {
    (
        $(#[doc = $doc:literal])*
        $name:ident = $source:ident, $detail_type:literal {
            $( $(#[doc = $fdoc:literal])+ $field:ident : $ty:ty => $wire:literal, )*
        }
    ) => {
        $(#[doc = $doc])*
        ///
        #[doc = concat!("Published by [`Source::", stringify!($source), "`](crate::events::Source::", stringify!($source), ") with detail-type `", $detail_type, "`.")]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[doc = $fdoc])+ pub $field: $ty, )*
            /// When the event happened (RFC 3339; UTC inside).
            pub timestamp: ::chrono::DateTime<::chrono::Utc>,
            /// The correlation id of the business flow this event belongs to; events caused
            /// by this one keep it.
            pub correlation_id: $crate::ids::CorrelationId,
        }

        impl $crate::events::Detail for $name {
            const SOURCE: $crate::events::Source = $crate::events::Source::$source;
            const DETAIL_TYPE: &'static str = $detail_type;
            const FIELDS: &'static [&'static str] = &[$($wire,)* "timestamp", "correlationId"];

            fn decode_fields(
                obj: &::serde_json::Map<String, ::serde_json::Value>,
            ) -> Result<Self, $crate::error::ValidationError> {
                use $crate::wire::Wire as _;
                let detail = Self {
                    $( $field: <$ty>::decode_field(obj.get($wire)).map_err(|e| e.under($wire))?, )*
                    timestamp: <::chrono::DateTime<::chrono::Utc>>::decode_field(obj.get("timestamp"))
                        .map_err(|e| e.under("timestamp"))?,
                    correlation_id: <$crate::ids::CorrelationId>::decode_field(obj.get("correlationId"))
                        .map_err(|e| e.under("correlationId"))?,
                };
                detail.rules()?;
                Ok(detail)
            }

            fn encode_fields(&self, out: &mut ::serde_json::Map<String, ::serde_json::Value>) {
                use $crate::wire::Wire as _;
                $( if let Some(v) = self.$field.encode_field() { out.insert($wire.to_owned(), v); } )*
                out.insert("timestamp".to_owned(), self.timestamp.encode());
                out.insert("correlationId".to_owned(), self.correlation_id.encode());
            }

            fn field_schemas() -> Vec<$crate::events::FieldSchema> {
                use $crate::wire::Wire;
                vec![
                    $( $crate::events::FieldSchema {
                        name: $wire,
                        schema: <$ty as Wire>::schema(),
                        required: !<$ty as Wire>::OPTIONAL,
                        description: $crate::events::doc_text(&[$($fdoc),+]),
                    }, )*
                    $crate::events::FieldSchema {
                        name: "timestamp",
                        schema: <::chrono::DateTime<::chrono::Utc> as Wire>::schema(),
                        required: true,
                        description: "When the event happened (RFC 3339).".to_owned(),
                    },
                    $crate::events::FieldSchema {
                        name: "correlationId",
                        schema: <$crate::ids::CorrelationId as Wire>::schema(),
                        required: true,
                        description: "The correlation id of the business flow this event belongs to.".to_owned(),
                    },
                ]
            }

            fn description() -> String {
                $crate::events::doc_text(&[$($doc),*])
            }

            fn correlation_id(&self) -> &$crate::ids::CorrelationId {
                &self.correlation_id
            }

            fn set_correlation_id(&mut self, id: $crate::ids::CorrelationId) {
                self.correlation_id = id;
            }

            fn timestamp(&self) -> ::chrono::DateTime<::chrono::Utc> {
                self.timestamp
            }

            fn check(&self) -> Result<(), $crate::error::ValidationError> {
                self.rules()
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::events::Detail::to_value(self).serialize(s)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = ::serde_json::Value::deserialize(d)?;
                <$name as $crate::events::Detail>::from_value(&v)
                    .map_err(|e| <D::Error as ::serde::de::Error>::custom(e))
            }
        }

        impl From<$name> for $crate::events::MarketplaceEvent {
            fn from(d: $name) -> Self {
                $crate::events::MarketplaceEvent::$name(d)
            }
        }
    };
}

pub mod booking;
pub mod dispute;
pub mod payment;
pub mod provider;
pub mod workflow;

pub use booking::*;
pub use dispute::*;
pub use payment::*;
pub use provider::*;
pub use workflow::*;

wire_enum! {
    /// The event sources of the marketplace.
    Source {
        /// Bookings.
        Booking = "marketplace.booking",
        /// Payments, refunds and payouts.
        Payment = "marketplace.payment",
        /// Disputes.
        Dispute = "marketplace.dispute",
        /// Providers and their Stripe Connect accounts.
        Provider = "marketplace.provider",
        /// Workflow executions.
        Workflow = "marketplace.workflow",
    }
}

/// One field of a detail, for schemas and documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSchema {
    /// The camelCase wire name.
    pub name: &'static str,
    /// Its JSON Schema draft-04.
    pub schema: Value,
    /// Whether it must be present.
    pub required: bool,
    /// Its doc comment.
    pub description: String,
}

/// Joins doc-comment lines into one paragraph.
pub fn doc_text(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A detail type of the catalogue. Implemented by the `detail!` declarations only.
pub trait Detail: Sized + Clone + Into<MarketplaceEvent> {
    /// The event's source.
    const SOURCE: Source;
    /// The event's detail-type (`"Booking Created"`).
    const DETAIL_TYPE: &'static str;
    /// Every wire field, in wire order.
    const FIELDS: &'static [&'static str];

    /// Decodes the fields of a detail object and checks the detail's rules. Errors name
    /// the field relative to the detail.
    fn decode_fields(obj: &Map<String, Value>) -> Result<Self, ValidationError>;
    /// Writes the fields into `out`, in wire order.
    fn encode_fields(&self, out: &mut Map<String, Value>);
    /// Every field with its schema.
    fn field_schemas() -> Vec<FieldSchema>;
    /// What the event means.
    fn description() -> String;
    /// The correlation id.
    fn correlation_id(&self) -> &CorrelationId;
    /// Replaces the correlation id.
    fn set_correlation_id(&mut self, id: CorrelationId);
    /// When the event happened.
    fn timestamp(&self) -> DateTime<Utc>;
    /// Checks the rules between fields (end after start, amounts that add up, ...);
    /// each field is already valid by its type. Decoding calls it; call it before
    /// publishing a detail built in code.
    fn check(&self) -> Result<(), ValidationError>;

    /// Decodes a detail: an object with exactly the defined fields, each valid, and the
    /// detail's rules kept. Error fields are relative to the detail (`amount`).
    fn from_value(value: &Value) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new("", "must be a JSON object"))?;
        if let Some(unknown) = obj.keys().find(|k| !Self::FIELDS.contains(&k.as_str())) {
            return Err(ValidationError::new(
                unknown.clone(),
                format!("is not a field of {} {:?}", Self::SOURCE, Self::DETAIL_TYPE),
            ));
        }
        Self::decode_fields(obj)
    }

    /// Encodes the detail as a JSON object.
    fn to_value(&self) -> Value {
        let mut out = Map::new();
        self.encode_fields(&mut out);
        Value::Object(out)
    }

    /// The schema file's name: `<source>@<DetailTypeWithoutSpaces>` (no extension).
    fn schema_name() -> String {
        schema_name(Self::SOURCE, Self::DETAIL_TYPE)
    }

    /// The detail's JSON Schema draft-04 (the `detail` object alone).
    fn detail_schema() -> Value {
        let fields = Self::field_schemas();
        let mut properties = Map::new();
        for f in &fields {
            let mut s = f.schema.clone();
            if let Some(obj) = s.as_object_mut() {
                obj.insert(
                    "description".to_owned(),
                    Value::String(f.description.clone()),
                );
            }
            properties.insert(f.name.to_owned(), s);
        }
        let required: Vec<&str> = fields
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name)
            .collect();
        json!({
            "type": "object",
            "description": Self::description(),
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// The schema of the whole event as EventBridge delivers it, in the form the
    /// EventBridge schema registry takes for `JSONSchemaDraft4`: the envelope, with the
    /// detail under `definitions`.
    fn event_schema() -> Value {
        event_schema(Self::SOURCE, Self::DETAIL_TYPE, Self::detail_schema())
    }

    /// This detail as a caused event: it takes the correlation id of `cause`.
    fn caused_by(mut self, cause: &impl HasCorrelationId) -> Self {
        self.set_correlation_id(cause.correlation_id().clone());
        self
    }
}

/// Anything that carries a correlation id (details, events, envelopes of events).
pub trait HasCorrelationId {
    /// The correlation id.
    fn correlation_id(&self) -> &CorrelationId;
}

impl<D: Detail> HasCorrelationId for D {
    fn correlation_id(&self) -> &CorrelationId {
        Detail::correlation_id(self)
    }
}

/// `<source>@<DetailTypeWithoutSpaces>`, the name of a schema file under `schemas/`.
pub fn schema_name(source: Source, detail_type: &str) -> String {
    let compact: String = detail_type.chars().filter(|c| !c.is_whitespace()).collect();
    format!("{source}@{compact}")
}

fn event_schema(source: Source, detail_type: &str, detail: Value) -> Value {
    let title: String = detail_type.chars().filter(|c| !c.is_whitespace()).collect();
    json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": title,
        "description": format!("{source} / {detail_type}: the event as EventBridge delivers it"),
        "x-amazon-events-source": source.as_str(),
        "x-amazon-events-detail-type": detail_type,
        "type": "object",
        "definitions": { title.clone(): detail },
        "properties": {
            "version": {"type": "string", "enum": ["0"]},
            "id": {"type": "string", "minLength": 1},
            "detail-type": {"type": "string", "enum": [detail_type]},
            "source": {"type": "string", "enum": [source.as_str()]},
            "account": {"type": "string", "minLength": 1},
            "time": {"type": "string", "format": "date-time"},
            "region": {"type": "string", "minLength": 1},
            "resources": {"type": "array", "items": {"type": "string"}},
            "replay-name": {"type": "string"},
            "detail": {"$ref": format!("#/definitions/{title}")},
        },
        "required": ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"],
        "additionalProperties": false,
    })
}

/// Why an event was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The source is not one of [`Source::ALL`].
    #[error("source {given:?} is not a marketplace source ({})", Source::rule())]
    UnknownSource {
        /// The source given.
        given: String,
    },
    /// The source is known but the detail-type is not defined for it.
    #[error("detail-type {detail_type:?} is not defined for source {event_source}")]
    UnknownDetailType {
        /// The source.
        event_source: Source,
        /// The detail-type given.
        detail_type: String,
    },
    /// A field of the envelope or the detail is missing or broke a rule; the field path
    /// starts with `detail.` for detail fields (`detail.amount: must be > 0`).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl EventError {
    /// The field at fault (`detail.amount`, `source`, `detail-type`).
    pub fn field(&self) -> &str {
        match self {
            EventError::UnknownSource { .. } => "source",
            EventError::UnknownDetailType { .. } => "detail-type",
            EventError::Invalid(e) => &e.field,
        }
    }
}

macro_rules! catalogue {
    ( $( $name:ident ),+ $(,)? ) => {
        /// Every event of the marketplace, selected by its `(source, detail-type)` pair.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum MarketplaceEvent {
            $(
                #[doc = concat!("See [`", stringify!($name), "`].")]
                $name($name),
            )+
        }

        /// One entry of the catalogue, for tools that list or document it.
        #[derive(Debug, Clone, Copy)]
        pub struct CatalogueEntry {
            /// The source.
            pub source: Source,
            /// The detail-type.
            pub detail_type: &'static str,
            /// The Rust type's name.
            pub type_name: &'static str,
            /// The wire fields, in order.
            pub fields: &'static [&'static str],
            detail_schema: fn() -> Value,
            event_schema: fn() -> Value,
            description: fn() -> String,
        }

        impl CatalogueEntry {
            /// The JSON Schema of the detail alone.
            pub fn detail_schema(&self) -> Value {
                (self.detail_schema)()
            }
            /// The JSON Schema of the whole event (the file under `schemas/`).
            pub fn event_schema(&self) -> Value {
                (self.event_schema)()
            }
            /// What the event means.
            pub fn description(&self) -> String {
                (self.description)()
            }
            /// The schema file's name without extension.
            pub fn schema_name(&self) -> String {
                schema_name(self.source, self.detail_type)
            }
        }

        /// Every `(source, detail-type)` pair of the marketplace, grouped by source.
        pub const CATALOGUE: &[CatalogueEntry] = &[
            $( CatalogueEntry {
                source: <$name as Detail>::SOURCE,
                detail_type: <$name as Detail>::DETAIL_TYPE,
                type_name: stringify!($name),
                fields: <$name as Detail>::FIELDS,
                detail_schema: <$name as Detail>::detail_schema,
                event_schema: <$name as Detail>::event_schema,
                description: <$name as Detail>::description,
            }, )+
        ];

        impl MarketplaceEvent {
            /// Decodes `detail` as the detail of `(source, detail_type)`. Errors name the
            /// field with a `detail.` prefix.
            pub fn decode(source: &str, detail_type: &str, detail: &Value) -> Result<Self, EventError> {
                let src: Source = source.parse().map_err(|_| EventError::UnknownSource {
                    given: source.to_owned(),
                })?;
                $(
                    if src == <$name as Detail>::SOURCE && detail_type == <$name as Detail>::DETAIL_TYPE {
                        return <$name as Detail>::from_value(detail)
                            .map(MarketplaceEvent::$name)
                            .map_err(|e| EventError::Invalid(e.under("detail")));
                    }
                )+
                Err(EventError::UnknownDetailType { event_source: src, detail_type: detail_type.to_owned() })
            }

            /// The source.
            pub fn source(&self) -> Source {
                match self { $( MarketplaceEvent::$name(_) => <$name as Detail>::SOURCE, )+ }
            }

            /// The detail-type.
            pub fn detail_type(&self) -> &'static str {
                match self { $( MarketplaceEvent::$name(_) => <$name as Detail>::DETAIL_TYPE, )+ }
            }

            /// The detail as JSON.
            pub fn detail(&self) -> Value {
                match self { $( MarketplaceEvent::$name(d) => d.to_value(), )+ }
            }

            /// When the event happened.
            pub fn timestamp(&self) -> DateTime<Utc> {
                match self { $( MarketplaceEvent::$name(d) => Detail::timestamp(d), )+ }
            }

            /// Checks the detail's rules between fields (see [`Detail::check`]); the
            /// error's field starts with `detail.`.
            pub fn check(&self) -> Result<(), EventError> {
                match self { $( MarketplaceEvent::$name(d) => d.check(), )+ }
                    .map_err(|e| EventError::Invalid(e.under("detail")))
            }

            fn correlation_id_ref(&self) -> &CorrelationId {
                match self { $( MarketplaceEvent::$name(d) => Detail::correlation_id(d), )+ }
            }

            fn set_correlation(&mut self, id: CorrelationId) {
                match self { $( MarketplaceEvent::$name(d) => d.set_correlation_id(id), )+ }
            }
        }
    };
}

catalogue! {
    BookingCreated, BookingConfirmed, BookingCancelled, BookingExpired, BookingCompleted, BookingUpdated,
    PaymentIntentCreated, PaymentSucceeded, PaymentFailed, RefundIssued, PayoutCompleted, PayoutFailed,
    DisputeCreated, DisputeEscalated, DisputeResolved,
    ProviderRegistered, ProviderOnboardingCompleted, ProviderOnboardingFailed, ProviderAccountUpdated,
    WorkflowStarted, WorkflowSucceeded, WorkflowFailed, WorkflowTimedOut, WorkflowAborted,
}

impl HasCorrelationId for MarketplaceEvent {
    fn correlation_id(&self) -> &CorrelationId {
        self.correlation_id_ref()
    }
}

impl MarketplaceEvent {
    /// The catalogue entry of `(source, detail_type)`, if defined.
    pub fn lookup(source: &str, detail_type: &str) -> Option<&'static CatalogueEntry> {
        CATALOGUE
            .iter()
            .find(|e| e.source.as_str() == source && e.detail_type == detail_type)
    }

    /// Decodes a delivered event (envelope). Errors name the field (`detail.amount`).
    pub fn from_envelope(envelope: &EventEnvelope) -> Result<Self, EventError> {
        Self::decode(&envelope.source, &envelope.detail_type, &envelope.detail)
    }

    /// Decodes a PutEvents request entry; its `Detail` string must hold a JSON object.
    pub fn from_put_events_entry(entry: &PutEventsEntry) -> Result<Self, EventError> {
        let detail = entry.detail_value().map_err(EventError::Invalid)?;
        Self::decode(&entry.source, &entry.detail_type, &detail)
    }

    /// `event` as a caused event of `self`: it takes this event's correlation id.
    pub fn cause(&self, event: impl Into<MarketplaceEvent>) -> MarketplaceEvent {
        let mut event = event.into();
        event.set_correlation(self.correlation_id().clone());
        event
    }

    /// The PutEvents request entry that publishes this event on `event_bus_name`
    /// (`None`: the default bus). `Time` is the detail's timestamp.
    pub fn to_put_events_entry(&self, event_bus_name: Option<&str>) -> PutEventsEntry {
        PutEventsEntry {
            source: self.source().as_str().to_owned(),
            detail_type: self.detail_type().to_owned(),
            detail: serde_json::to_string(&self.detail()).unwrap_or_default(),
            event_bus_name: event_bus_name.map(str::to_owned),
            resources: Vec::new(),
            time: Some(self.timestamp()),
            trace_header: None,
        }
    }
}

/// Checks that `end` is after `start`; the error names `end_field`.
pub(crate) fn end_after_start(
    start: &DateTime<Utc>,
    end: &DateTime<Utc>,
    start_field: &str,
    end_field: &str,
) -> Result<(), ValidationError> {
    if end <= start {
        return Err(ValidationError::new(
            end_field,
            format!("must be after {start_field}"),
        ));
    }
    Ok(())
}

/// Checks that `amount` has no more decimals than `currency` allows; names `field`.
pub(crate) fn fits_currency(
    amount: rust_decimal::Decimal,
    currency: crate::money::Currency,
    field: &str,
) -> Result<crate::money::Money, ValidationError> {
    crate::money::Money::new(amount, currency).map_err(|e| e.at(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_complete_and_unique() {
        assert_eq!(CATALOGUE.len(), 24);
        let mut names: Vec<String> = CATALOGUE.iter().map(|e| e.schema_name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        for e in CATALOGUE {
            assert_eq!(e.fields.last(), Some(&"correlationId"), "{}", e.type_name);
            assert!(e.fields.contains(&"timestamp"));
        }
        assert_eq!(
            schema_name(Source::Booking, "Booking Created"),
            "marketplace.booking@BookingCreated"
        );
    }

    #[test]
    fn unknown_pairs_are_rejected_by_name() {
        let e = MarketplaceEvent::decode("marketplace.booking", "Booking Exploded", &json!({}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "detail-type \"Booking Exploded\" is not defined for source marketplace.booking"
        );
        assert_eq!(e.field(), "detail-type");
        let e = MarketplaceEvent::decode("marketplace.payment", "Booking Created", &json!({}))
            .unwrap_err();
        assert!(matches!(e, EventError::UnknownDetailType { .. }));
        let e = MarketplaceEvent::decode("aws.s3", "Object Created", &json!({})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("source \"aws.s3\" is not a marketplace source"),
            "{e}"
        );
    }

    #[test]
    fn non_object_details_are_rejected() {
        let e = MarketplaceEvent::decode("marketplace.booking", "Booking Completed", &json!([1]))
            .unwrap_err();
        assert_eq!(e.to_string(), "detail: must be a JSON object");
    }
}
