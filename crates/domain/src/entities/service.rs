//! A bookable service offered by a provider.

use crate::error::ValidationError;
use crate::ids::{ProviderId, ServiceId};
use crate::money::Money;
use crate::wire::ShortText;
use serde::{Deserialize, Serialize};

/// A bookable service: a provider's offer at a price for a duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// The service.
    pub id: ServiceId,
    /// The provider offering it.
    pub provider_id: ProviderId,
    /// Its name.
    pub name: String,
    /// Price of one booking (`{"amount": 150, "currency": "USD"}`), > 0.
    pub price: Money,
    /// Length of one booking in minutes, 1 to 1440.
    pub duration_minutes: u32,
    /// Whether it can be booked.
    pub active: bool,
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
    use crate::money::Currency;

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
