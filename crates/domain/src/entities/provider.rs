//! Providers and their Stripe Connect onboarding.

use super::{EntityError, Lifecycle};
use crate::error::ValidationError;
use crate::events::{
    CountryCode, Email, ProviderAccountUpdated, ProviderOnboardingCompleted,
    ProviderOnboardingFailed, ProviderRegistered,
};
use crate::ids::{CorrelationId, ProviderId, StripeAccountId};
use crate::wire::ShortText;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

wire_enum! {
    /// The status of a provider.
    ProviderStatus {
        /// Signed up; no Stripe account yet.
        Registered = "REGISTERED",
        /// A Stripe connected account exists; onboarding is in progress (30 minutes).
        Onboarding = "ONBOARDING",
        /// Onboarding failed; it can be started again.
        OnboardingFailed = "ONBOARDING_FAILED",
        /// Can take bookings and receive payouts.
        Active = "ACTIVE",
        /// Stripe disabled charges or payouts; no new bookings until re-enabled.
        Restricted = "RESTRICTED",
    }
}

lifecycle!(ProviderStatus, "provider", Registered, [
    Registered => Onboarding,
    Registered => OnboardingFailed,
    Onboarding => Active,
    Onboarding => OnboardingFailed,
    OnboardingFailed => Onboarding,
    Active => Restricted,
    Restricted => Active,
]);

/// A service provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    id: ProviderId,
    email: String,
    business_name: String,
    country: String,
    status: ProviderStatus,
    stripe_account_id: Option<StripeAccountId>,
    charges_enabled: bool,
    payouts_enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Provider {
    /// Registers a provider.
    pub fn register(
        id: ProviderId,
        email: &str,
        business_name: &str,
        country: &str,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<(Self, ProviderRegistered), EntityError> {
        let event = ProviderRegistered {
            provider_id: id.clone(),
            email: Email::new(email).map_err(|e| e.under("email"))?,
            business_name: ShortText::new(business_name).map_err(|e| e.under("businessName"))?,
            country: CountryCode::new(country).map_err(|e| e.under("country"))?,
            timestamp: at,
            correlation_id,
        };
        // the event's rules check the e-mail and the country code
        crate::events::Detail::check(&event)?;
        let provider = Self {
            id,
            email: email.to_owned(),
            business_name: business_name.to_owned(),
            country: country.to_owned(),
            status: ProviderStatus::INITIAL,
            stripe_account_id: None,
            charges_enabled: false,
            payouts_enabled: false,
            created_at: at,
            updated_at: at,
        };
        Ok((provider, event))
    }

    fn set_status(&mut self, next: ProviderStatus, at: DateTime<Utc>) -> Result<(), EntityError> {
        self.status = self.status.transition(self.id.as_str(), next)?;
        self.updated_at = at;
        Ok(())
    }

    /// REGISTERED or ONBOARDING_FAILED → ONBOARDING with a Stripe connected account.
    pub fn start_onboarding(
        &mut self,
        account: StripeAccountId,
        at: DateTime<Utc>,
    ) -> Result<(), EntityError> {
        self.set_status(ProviderStatus::Onboarding, at)?;
        self.stripe_account_id = Some(account);
        Ok(())
    }

    /// ONBOARDING → ACTIVE: Stripe enabled charges and payouts.
    pub fn complete_onboarding(
        &mut self,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<ProviderOnboardingCompleted, EntityError> {
        let account = self.stripe_account_id.clone().ok_or_else(|| {
            ValidationError::new("stripeAccountId", "is required to complete onboarding")
        })?;
        self.set_status(ProviderStatus::Active, at)?;
        self.charges_enabled = true;
        self.payouts_enabled = true;
        Ok(ProviderOnboardingCompleted {
            provider_id: self.id.clone(),
            stripe_account_id: account,
            timestamp: at,
            correlation_id,
        })
    }

    /// REGISTERED or ONBOARDING → ONBOARDING_FAILED.
    pub fn fail_onboarding(
        &mut self,
        reason: &str,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<ProviderOnboardingFailed, EntityError> {
        let reason = ShortText::new(reason).map_err(|e| e.under("reason"))?;
        self.set_status(ProviderStatus::OnboardingFailed, at)?;
        Ok(ProviderOnboardingFailed {
            provider_id: self.id.clone(),
            stripe_account_id: self.stripe_account_id.clone(),
            reason,
            timestamp: at,
            correlation_id,
        })
    }

    /// Applies Stripe's account state: an ACTIVE provider whose charges or payouts are
    /// disabled becomes RESTRICTED, a RESTRICTED one with both enabled becomes ACTIVE
    /// again; in other statuses only the flags are recorded. The account must be the
    /// provider's.
    pub fn account_updated(
        &mut self,
        account: &StripeAccountId,
        charges_enabled: bool,
        payouts_enabled: bool,
        details_submitted: Option<bool>,
        at: DateTime<Utc>,
        correlation_id: CorrelationId,
    ) -> Result<ProviderAccountUpdated, EntityError> {
        if self.stripe_account_id.as_ref() != Some(account) {
            return Err(ValidationError::new(
                "stripeAccountId",
                format!("{account} is not the account of provider {}", self.id),
            )
            .into());
        }
        let enabled = charges_enabled && payouts_enabled;
        match (self.status, enabled) {
            (ProviderStatus::Active, false) => self.set_status(ProviderStatus::Restricted, at)?,
            (ProviderStatus::Restricted, true) => self.set_status(ProviderStatus::Active, at)?,
            _ => self.updated_at = at,
        }
        self.charges_enabled = charges_enabled;
        self.payouts_enabled = payouts_enabled;
        Ok(ProviderAccountUpdated {
            provider_id: self.id.clone(),
            stripe_account_id: account.clone(),
            charges_enabled,
            payouts_enabled,
            details_submitted,
            timestamp: at,
            correlation_id,
        })
    }

    /// Whether customers can book this provider.
    pub fn can_accept_bookings(&self) -> bool {
        self.status == ProviderStatus::Active
    }
    /// The provider's id.
    pub fn id(&self) -> &ProviderId {
        &self.id
    }
    /// Its status.
    pub fn status(&self) -> ProviderStatus {
        self.status
    }
    /// Its Stripe connected account.
    pub fn stripe_account_id(&self) -> Option<&StripeAccountId> {
        self.stripe_account_id.as_ref()
    }
    /// Contact e-mail.
    pub fn email(&self) -> &str {
        &self.email
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 1, 9, m, 0).unwrap()
    }
    fn corr() -> CorrelationId {
        CorrelationId::new("corr-p").unwrap()
    }

    #[test]
    fn onboarding_happy_path_and_restriction() {
        let (mut p, _) = Provider::register(
            "prv".parse().unwrap(),
            "a@b.co",
            "Studio",
            "US",
            t(0),
            corr(),
        )
        .unwrap();
        assert!(p.complete_onboarding(t(1), corr()).is_err());
        let acct: StripeAccountId = "acct_1".parse().unwrap();
        p.start_onboarding(acct.clone(), t(1)).unwrap();
        p.complete_onboarding(t(2), corr()).unwrap();
        assert!(p.can_accept_bookings());
        p.account_updated(&acct, true, false, Some(true), t(3), corr())
            .unwrap();
        assert_eq!(p.status(), ProviderStatus::Restricted);
        assert!(!p.can_accept_bookings());
        p.account_updated(&acct, true, true, None, t(4), corr())
            .unwrap();
        assert_eq!(p.status(), ProviderStatus::Active);
        let other: StripeAccountId = "acct_2".parse().unwrap();
        assert_eq!(
            p.account_updated(&other, true, true, None, t(5), corr())
                .unwrap_err()
                .to_string(),
            "stripeAccountId: acct_2 is not the account of provider prv"
        );
    }

    #[test]
    fn failure_and_retry() {
        let (mut p, _) = Provider::register(
            "prv".parse().unwrap(),
            "a@b.co",
            "Studio",
            "DE",
            t(0),
            corr(),
        )
        .unwrap();
        p.start_onboarding("acct_1".parse().unwrap(), t(1)).unwrap();
        let ev = p.fail_onboarding("link expired", t(31), corr()).unwrap();
        assert_eq!(
            ev.stripe_account_id.as_ref().map(|a| a.as_str()),
            Some("acct_1")
        );
        assert_eq!(
            p.complete_onboarding(t(32), corr())
                .unwrap_err()
                .to_string(),
            "provider prv cannot go from ONBOARDING_FAILED to ACTIVE"
        );
        p.start_onboarding("acct_1".parse().unwrap(), t(33))
            .unwrap();
        assert_eq!(p.status(), ProviderStatus::Onboarding);
    }

    #[test]
    fn registration_is_validated() {
        let e = Provider::register("prv".parse().unwrap(), "nope", "Studio", "US", t(0), corr())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "email: must be an e-mail address (local@domain.tld)"
        );
        let e = Provider::register(
            "prv".parse().unwrap(),
            "a@b.co",
            "Studio",
            "USA",
            t(0),
            corr(),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("country: must be at most 2"),
            "{e}"
        );
    }
}
