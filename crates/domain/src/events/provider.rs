//! `marketplace.provider` events.

use crate::error::ValidationError;
use crate::ids::{ProviderId, StripeAccountId};
use crate::wire::{ShortText, Text};

/// An e-mail address (checked loosely: `local@domain.tld`, at most 254 characters).
pub type Email = Text<254>;
/// An ISO 3166-1 alpha-2 country code (`US`, `DE`).
pub type CountryCode = Text<2>;

pub(crate) fn check_email(email: &Email, field: &str) -> Result<(), ValidationError> {
    let s = email.as_str();
    let ok = match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace())
                && !domain.contains('@')
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "must be an e-mail address (local@domain.tld)",
        ))
    }
}

detail! {
    /// A provider signed up; Stripe Connect onboarding starts.
    ProviderRegistered = Provider, "Provider Registered" {
        /// The new provider.
        provider_id: ProviderId => "providerId",
        /// Contact e-mail.
        email: Email => "email",
        /// Business or display name.
        business_name: ShortText => "businessName",
        /// ISO 3166-1 alpha-2 country of the business (`US`).
        country: CountryCode => "country",
    }
}

impl ProviderRegistered {
    fn rules(&self) -> Result<(), ValidationError> {
        check_email(&self.email, "email")?;
        let c = self.country.as_str();
        if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
            return Err(ValidationError::new(
                "country",
                "must be an ISO 3166-1 alpha-2 code (two capital letters)",
            ));
        }
        Ok(())
    }
}

detail! {
    /// The provider finished Stripe Connect onboarding and can take bookings.
    ProviderOnboardingCompleted = Provider, "Provider Onboarding Completed" {
        /// The provider.
        provider_id: ProviderId => "providerId",
        /// Their Stripe connected account.
        stripe_account_id: StripeAccountId => "stripeAccountId",
    }
}

impl ProviderOnboardingCompleted {
    fn rules(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

detail! {
    /// Onboarding failed (account rejected, link expired, workflow timed out).
    ProviderOnboardingFailed = Provider, "Provider Onboarding Failed" {
        /// The provider.
        provider_id: ProviderId => "providerId",
        /// Their Stripe connected account, when one was created.
        stripe_account_id: Option<StripeAccountId> => "stripeAccountId",
        /// Why, in words.
        reason: ShortText => "reason",
    }
}

impl ProviderOnboardingFailed {
    fn rules(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

detail! {
    /// Stripe reported a change of the provider's connected account (Connect
    /// `account.updated`).
    ProviderAccountUpdated = Provider, "Provider Account Updated" {
        /// The provider.
        provider_id: ProviderId => "providerId",
        /// Their Stripe connected account.
        stripe_account_id: StripeAccountId => "stripeAccountId",
        /// Whether the account can take charges.
        charges_enabled: bool => "chargesEnabled",
        /// Whether the account can receive payouts.
        payouts_enabled: bool => "payoutsEnabled",
        /// Whether the provider submitted all onboarding details.
        details_submitted: Option<bool> => "detailsSubmitted",
    }
}

impl ProviderAccountUpdated {
    fn rules(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}
