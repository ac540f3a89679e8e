//! The two shapes an event has around EventBridge: the envelope a target receives
//! ([`EventEnvelope`]) and the request entry a publisher sends ([`PutEventsEntry`]).

use crate::error::ValidationError;
use crate::events::{EventError, MarketplaceEvent};
use crate::wire::{format_time, Wire};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An event as EventBridge delivers it to a target (Lambda, Step Functions, SQS):
///
/// ```json
/// {"version": "0", "id": "…", "detail-type": "Booking Created",
///  "source": "marketplace.booking", "account": "123456789012",
///  "time": "2026-03-01T14:00:00Z", "region": "us-east-1", "resources": [],
///  "detail": {…}}
/// ```
///
/// `D` is the detail's type: `Value` (the default) for any event, or a detail struct.
/// A replayed event also has `replay-name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope<D = Value> {
    /// Always `"0"`.
    pub version: String,
    /// Unique id EventBridge gave the event.
    pub id: String,
    /// The detail type (`"Booking Created"`).
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// The source (`"marketplace.booking"`).
    pub source: String,
    /// The AWS account id of the bus.
    pub account: String,
    /// When the event happened (the PutEvents `Time`, or when it was received).
    #[serde(with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// The AWS region of the bus.
    pub region: String,
    /// ARNs the event concerns.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The event's own data.
    pub detail: D,
    /// Name of the replay, on replayed events only.
    #[serde(
        rename = "replay-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub replay_name: Option<String>,
}

const ENVELOPE_FIELDS: &[&str] = &[
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
    "replay-name",
];

impl EventEnvelope<Value> {
    /// Reads an envelope strictly from JSON; errors name the field (`detail-type: is required`).
    pub fn from_value(value: &Value) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new("", "event must be a JSON object"))?;
        if let Some(k) = obj.keys().find(|k| !ENVELOPE_FIELDS.contains(&k.as_str())) {
            return Err(ValidationError::new(
                k.clone(),
                "is not a field of an EventBridge event",
            ));
        }
        let text = |name: &str| -> Result<String, ValidationError> {
            match obj.get(name) {
                None => Err(ValidationError::new(name, "is required")),
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::String(_)) => Err(ValidationError::new(name, "must not be empty")),
                Some(_) => Err(ValidationError::new(name, "must be a string")),
            }
        };
        let version = text("version")?;
        if version != "0" {
            return Err(ValidationError::new("version", "must be \"0\""));
        }
        let resources = match obj.get("resources") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        ValidationError::new(format!("resources[{i}]"), "must be a string")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ValidationError::new(
                    "resources",
                    "must be an array of strings",
                ))
            }
        };
        let detail = obj
            .get("detail")
            .cloned()
            .ok_or_else(|| ValidationError::new("detail", "is required"))?;
        if !detail.is_object() {
            return Err(ValidationError::new("detail", "must be a JSON object"));
        }
        let replay_name = match obj.get("replay-name") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ValidationError::new("replay-name", "must be a string")),
        };
        Ok(Self {
            version,
            id: text("id")?,
            detail_type: text("detail-type")?,
            source: text("source")?,
            account: text("account")?,
            time: DateTime::<Utc>::decode_field(obj.get("time")).map_err(|e| e.under("time"))?,
            region: text("region")?,
            resources,
            detail,
            replay_name,
        })
    }

    /// Decodes the detail into the typed catalogue.
    pub fn to_event(&self) -> Result<MarketplaceEvent, EventError> {
        MarketplaceEvent::from_envelope(self)
    }

    /// Reads an envelope and decodes its detail in one step.
    pub fn decode_event(value: &Value) -> Result<MarketplaceEvent, EventError> {
        Self::from_value(value)?.to_event()
    }
}

impl<D: Serialize> EventEnvelope<D> {
    /// The PutEvents entry that would publish this event again (`Detail` as a string).
    pub fn to_put_events_entry(&self, event_bus_name: Option<&str>) -> PutEventsEntry {
        PutEventsEntry {
            source: self.source.clone(),
            detail_type: self.detail_type.clone(),
            detail: serde_json::to_string(&self.detail).unwrap_or_else(|_| "{}".to_owned()),
            event_bus_name: event_bus_name.map(str::to_owned),
            resources: self.resources.clone(),
            time: Some(self.time),
            trace_header: None,
        }
    }
}

impl MarketplaceEvent {
    /// This event in an envelope, as the bus in `account`/`region` delivers it with `id`.
    /// `time` is the detail's timestamp.
    pub fn to_envelope(&self, id: impl Into<String>, account: &str, region: &str) -> EventEnvelope {
        EventEnvelope {
            version: "0".to_owned(),
            id: id.into(),
            detail_type: self.detail_type().to_owned(),
            source: self.source().as_str().to_owned(),
            account: account.to_owned(),
            time: self.timestamp(),
            region: region.to_owned(),
            resources: Vec::new(),
            detail: self.detail(),
            replay_name: None,
        }
    }
}

/// One entry of a PutEvents request, in the API's field names:
///
/// ```json
/// {"Source": "marketplace.booking", "DetailType": "Booking Created",
///  "Detail": "{\"bookingId\":\"…\"}", "EventBusName": "marketplace",
///  "Resources": [], "Time": "2026-03-01T14:00:00Z"}
/// ```
///
/// `Detail` is a JSON *string* holding an object. `Time` is read as an RFC 3339 string
/// or as epoch seconds (the wire form of the JSON protocol), and written as RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsEntry {
    /// The source.
    pub source: String,
    /// The detail type.
    pub detail_type: String,
    /// The detail, as JSON text.
    pub detail: String,
    /// The bus's name or ARN; absent for the default bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_bus_name: Option<String>,
    /// ARNs the event concerns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// When the event happened; EventBridge uses the time it received it when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_time",
        deserialize_with = "de_opt_time"
    )]
    pub time: Option<DateTime<Utc>>,
    /// An X-Ray trace header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
}

/// Largest PutEvents entry EventBridge accepts, in bytes (256 KiB).
pub const MAX_ENTRY_SIZE: usize = 256 * 1024;

impl PutEventsEntry {
    /// The entry for `event` (see [`MarketplaceEvent::to_put_events_entry`]).
    pub fn from_event(event: &MarketplaceEvent, event_bus_name: Option<&str>) -> Self {
        event.to_put_events_entry(event_bus_name)
    }

    /// The detail parsed; it must be a JSON object.
    pub fn detail_value(&self) -> Result<Value, ValidationError> {
        let v: Value = serde_json::from_str(&self.detail)
            .map_err(|e| ValidationError::new("Detail", format!("must be JSON text ({e})")))?;
        if !v.is_object() {
            return Err(ValidationError::new("Detail", "must be a JSON object"));
        }
        Ok(v)
    }

    /// The entry's size as EventBridge counts it: UTF-8 bytes of Source, DetailType,
    /// Detail and Resources, plus 14 bytes for Time when present.
    pub fn size(&self) -> usize {
        self.source.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
            + if self.time.is_some() { 14 } else { 0 }
    }

    /// Checks the entry the way PutEvents does: Source (1–256 characters), DetailType
    /// (1–128), Detail a JSON object, size at most 256 KiB.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let bounded = |field: &str, value: &str, max: usize| {
            if value.is_empty() {
                Err(ValidationError::new(field, "is required"))
            } else if value.chars().count() > max {
                Err(ValidationError::new(
                    field,
                    format!("must be at most {max} characters long"),
                ))
            } else {
                Ok(())
            }
        };
        bounded("Source", &self.source, 256)?;
        bounded("DetailType", &self.detail_type, 128)?;
        self.detail_value()?;
        if self.size() > MAX_ENTRY_SIZE {
            return Err(ValidationError::new(
                "",
                format!(
                    "entry must be at most {MAX_ENTRY_SIZE} bytes (is {})",
                    self.size()
                ),
            ));
        }
        Ok(())
    }

    /// The envelope a target receives for this entry, given what the bus adds: the event
    /// id, its account and region, and the time it received the entry (used when the
    /// entry has no `Time`).
    pub fn to_envelope(
        &self,
        id: impl Into<String>,
        account: &str,
        region: &str,
        received_at: DateTime<Utc>,
    ) -> Result<EventEnvelope, ValidationError> {
        self.validate()?;
        Ok(EventEnvelope {
            version: "0".to_owned(),
            id: id.into(),
            detail_type: self.detail_type.clone(),
            source: self.source.clone(),
            account: account.to_owned(),
            time: self.time.unwrap_or(received_at),
            region: region.to_owned(),
            resources: self.resources.clone(),
            detail: self.detail_value()?,
            replay_name: None,
        })
    }

    /// Decodes the entry into the typed catalogue.
    pub fn to_event(&self) -> Result<MarketplaceEvent, EventError> {
        MarketplaceEvent::from_put_events_entry(self)
    }
}

mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| serde::de::Error::custom(format!("time must be RFC 3339, got {s:?}")))
    }
}

fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_time(t)),
        None => s.serialize_none(),
    }
}

fn de_opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(None),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "Time must be RFC 3339 or epoch seconds, got {s:?}"
                ))
            }),
        Value::Number(n) => {
            let secs = n
                .as_f64()
                .ok_or_else(|| serde::de::Error::custom("Time must be epoch seconds"))?;
            let whole = secs.floor();
            let nanos = ((secs - whole) * 1e9).round() as u32;
            Utc.timestamp_opt(whole as i64, nanos.min(999_999_999))
                .single()
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("Time is out of range"))
        }
        _ => Err(serde::de::Error::custom(
            "Time must be RFC 3339 or epoch seconds",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope_json() -> Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "Booking Expired",
            "source": "marketplace.booking",
            "account": "123456789012",
            "time": "2026-03-01T14:15:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "bookingId": "bk_1", "customerId": "cus_1", "providerId": "prv_1",
                "reason": "PAYMENT_NOT_RECEIVED", "timestamp": "2026-03-01T14:15:00Z",
                "correlationId": "corr-1"
            }
        })
    }

    #[test]
    fn envelope_serde_is_exactly_eventbridges() {
        let v = envelope_json();
        let e: EventEnvelope = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(e.detail_type, "Booking Expired");
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
        assert_eq!(EventEnvelope::from_value(&v).unwrap(), e);
    }

    #[test]
    fn envelope_errors_name_the_field() {
        let mut v = envelope_json();
        v.as_object_mut().unwrap().remove("detail-type");
        assert_eq!(
            EventEnvelope::from_value(&v).unwrap_err().to_string(),
            "detail-type: is required"
        );
        let mut v = envelope_json();
        v["time"] = json!("soon");
        assert!(EventEnvelope::from_value(&v)
            .unwrap_err()
            .to_string()
            .starts_with("time: must be an RFC 3339"));
        let mut v = envelope_json();
        v["resources"] = json!(["arn:x", 3]);
        assert_eq!(
            EventEnvelope::from_value(&v).unwrap_err().to_string(),
            "resources[1]: must be a string"
        );
        let mut v = envelope_json();
        v["version"] = json!("1");
        assert!(EventEnvelope::from_value(&v).is_err());
        let mut v = envelope_json();
        v["detail"]["reason"] = json!("BORED");
        let e = EventEnvelope::decode_event(&v).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("detail.reason: must be one of PAYMENT_NOT_RECEIVED"),
            "{e}"
        );
    }

    #[test]
    fn put_events_entry_both_ways() {
        let env = EventEnvelope::from_value(&envelope_json()).unwrap();
        let entry = env.to_put_events_entry(Some("marketplace"));
        let wire = serde_json::to_value(&entry).unwrap();
        assert_eq!(wire["Source"], "marketplace.booking");
        assert_eq!(wire["DetailType"], "Booking Expired");
        assert!(wire["Detail"].is_string());
        assert_eq!(wire["EventBusName"], "marketplace");
        assert_eq!(wire["Time"], "2026-03-01T14:15:00Z");
        assert!(wire.get("Resources").is_none());
        let back: PutEventsEntry = serde_json::from_value(wire).unwrap();
        assert_eq!(back, entry);
        let received = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let again = back
            .to_envelope(env.id.clone(), "123456789012", "us-east-1", received)
            .unwrap();
        assert_eq!(again, env);
        assert_eq!(back.to_event().unwrap(), env.to_event().unwrap());
    }

    #[test]
    fn put_events_time_defaults_to_receipt_and_reads_epoch_seconds() {
        let entry: PutEventsEntry = serde_json::from_value(json!({
            "Source": "marketplace.booking", "DetailType": "X", "Detail": "{}"
        }))
        .unwrap();
        let received = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            entry.to_envelope("1", "a", "r", received).unwrap().time,
            received
        );
        let entry: PutEventsEntry = serde_json::from_value(json!({
            "Source": "s", "DetailType": "X", "Detail": "{}", "Time": 1_893_456_000
        }))
        .unwrap();
        assert_eq!(entry.time, Some(received));
    }

    #[test]
    fn put_events_validation() {
        let mut entry = PutEventsEntry {
            source: "marketplace.booking".into(),
            detail_type: "Booking Created".into(),
            detail: "[1]".into(),
            event_bus_name: None,
            resources: vec![],
            time: None,
            trace_header: None,
        };
        assert_eq!(
            entry.validate().unwrap_err().to_string(),
            "Detail: must be a JSON object"
        );
        entry.detail = "{not json".into();
        assert!(entry
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("Detail: must be JSON text"));
        entry.detail = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_ENTRY_SIZE));
        assert!(entry
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at most 262144 bytes"));
        entry.detail = "{}".into();
        entry.source = String::new();
        assert_eq!(
            entry.validate().unwrap_err().to_string(),
            "Source: is required"
        );
    }
}
