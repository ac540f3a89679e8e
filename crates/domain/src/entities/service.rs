//! A bookable service offered by a provider.

use crate::error::ValidationError;
use crate::ids::{ProviderId, ServiceId};
use crate::money::{Currency, Money};
use crate::wire::{decimal_from_json, decimal_to_json, ShortText};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A bookable service: a provider's offer at a price for a duration.
///
/// In JSON: `{"id", "providerId", "name", "price": 150, "currency": "USD",
/// "durationMinutes": 60, "active": true}`; reading it validates every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ServiceWire", into = "ServiceWire")]
pub struct Service {
    /// The service.
    pub id: ServiceId,
    /// The provider offering it.
    pub provider_id: ProviderId,
    /// Its name.
    pub name: String,
    /// Price of one booking, > 0 (`price` and `currency` in JSON).
    pub price: Money,
    /// Length of one booking in minutes, 1 to 1440.
    pub duration_minutes: u32,
    /// Whether it can be booked.
    pub active: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ServiceWire {
    id: ServiceId,
    provider_id: ProviderId,
    name: String,
    price: Value,
    currency: Currency,
    duration_minutes: u32,
    active: bool,
}

impl TryFrom<ServiceWire> for Service {
    type Error = ValidationError;
    fn try_from(w: ServiceWire) -> Result<Self, Self::Error> {
        let amount = decimal_from_json(&w.price).map_err(|e| e.under("price"))?;
        let price = Money::new(amount, w.currency).map_err(|e| e.at("price"))?;
        let mut service = Service::new(w.id, w.provider_id, &w.name, price, w.duration_minutes)?;
        service.active = w.active;
        Ok(service)
    }
}

impl From<Service> for ServiceWire {
    fn from(s: Service) -> Self {
        ServiceWire {
            id: s.id,
            provider_id: s.provider_id,
            name: s.name,
            price: decimal_to_json(s.price.amount()),
            currency: s.price.currency(),
            duration_minutes: s.duration_minutes,
            active: s.active,
        }
    }
}

impl Service {
    /// Validates and builds an active service.
    pub fn new(
        id: ServiceId,
        provider_id: ProviderId,
        name: &str,
        price: Money,
        duration_minutes: u32,
    ) -> Result<Self, ValidationError> {
        let name = ShortText::new(name).map_err(|e| e.under("name"))?;
        if price.is_zero() {
            return Err(ValidationError::new("price", "must be > 0"));
        }
        if !(1..=1440).contains(&duration_minutes) {
            return Err(ValidationError::new(
                "durationMinutes",
                "must be between 1 and 1440",
            ));
        }
        Ok(Self {
            id,
            provider_id,
            name: name.as_str().to_owned(),
            price,
            duration_minutes,
            active: true,
        })
    }

    /// The duration as a chrono duration.
    pub fn duration(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.duration_minutes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_flat_and_validated() {
        let p = Money::parse("19.99", Currency::Eur).unwrap();
        let s = Service::new("s1".parse().unwrap(), "p1".parse().unwrap(), "Yoga", p, 45).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            json!({"id": "s1", "providerId": "p1", "name": "Yoga", "price": 19.99, "currency": "EUR",
                   "durationMinutes": 45, "active": true})
        );
        assert_eq!(serde_json::from_value::<Service>(v.clone()).unwrap(), s);
        let mut bad = v.clone();
        bad["currency"] = json!("JPY");
        let e = serde_json::from_value::<Service>(bad).unwrap_err();
        assert!(
            e.to_string()
                .contains("price: must have at most 0 decimal places for JPY"),
            "{e}"
        );
        let mut bad = v;
        bad["price"] = json!(-1);
        assert!(serde_json::from_value::<Service>(bad).is_err());
    }

    #[test]
    fn validation() {
        let p = Money::parse("10", Currency::Usd).unwrap();
        let ok = Service::new("s1".parse().unwrap(), "p1".parse().unwrap(), "Yoga", p, 60).unwrap();
        assert!(ok.active);
        assert_eq!(ok.duration(), chrono::Duration::hours(1));
        let e =
            Service::new("s1".parse().unwrap(), "p1".parse().unwrap(), "Yoga", p, 0).unwrap_err();
        assert_eq!(e.to_string(), "durationMinutes: must be between 1 and 1440");
        let e = Service::new(
            "s1".parse().unwrap(),
            "p1".parse().unwrap(),
            "Yoga",
            Money::zero(Currency::Usd),
            60,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "price: must be > 0");
        let e = Service::new("s1".parse().unwrap(), "p1".parse().unwrap(), " ", p, 60).unwrap_err();
        assert_eq!(e.to_string(), "name: must not be blank");
    }
}
