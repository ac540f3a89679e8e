//! Builders of valid records for tests (here, in the functions and in adapters' suites).

use crate::store::{BookingRecord, PaymentKind, PaymentRecord, ProviderRecord};
use chrono::{DateTime, Duration, TimeZone, Utc};
use marketplace_domain::entities::{Booking, Provider, Service};
use marketplace_domain::ids::CorrelationId;
use marketplace_domain::{Currency, FeeRate, Money};

/// 2026-03-01T09:00:00Z, the fixtures' "now".
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    match s.parse() {
        Ok(v) => v,
        Err(e) => panic!("fixture id {s:?} is invalid: {e:?}"),
    }
}

/// An active 60-minute service of `provider_id` at 120.00 USD.
pub fn service(service_id: &str, provider_id: &str) -> Service {
    match Service::new(
        id(service_id),
        id(provider_id),
        "Deep tissue massage",
        Money::new(rust_decimal::Decimal::new(12_000, 2), Currency::Usd)
            .unwrap_or(Money::zero(Currency::Usd)),
        60,
    ) {
        Ok(s) => s,
        Err(e) => panic!("fixture service: {e}"),
    }
}

/// The platform's fee rate used by the fixtures: 15 %.
pub fn fee_rate() -> FeeRate {
    FeeRate::from_basis_points(1500).unwrap_or_else(|e| panic!("fee rate: {e}"))
}

/// A PENDING_PAYMENT booking of `service` from `start` (created at [`t0`]).
pub fn booking_record(
    booking_id: &str,
    service: &Service,
    customer_id: &str,
    start: DateTime<Utc>,
) -> BookingRecord {
    let (booking, _) = Booking::create(
        id(booking_id),
        service,
        id(customer_id),
        start,
        t0(),
        CorrelationId::new(format!("corr-{booking_id}")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("fixture booking: {e}"));
    let split = booking.price().split_fee(fee_rate());
    BookingRecord {
        booking,
        platform_fee: split.platform_fee,
        provider_earnings: split.provider_earnings,
        stripe_account_id: Some("acct_fixture".into()),
        payment_intent_id: None,
        charge_id: None,
        reserved_until: t0() + Duration::minutes(15),
        slot_released: false,
        correlation_id: format!("corr-{booking_id}"),
    }
}

/// A PaymentIntent record of $120.00 for `booking_id`, waiting for its payment method
/// (created at [`t0`]); tests set the fields they need with struct update syntax.
pub fn payment_record(id: &str, booking_id: &str) -> PaymentRecord {
    let usd = |c: i64| Money::from_minor(c, Currency::Usd).unwrap_or(Money::zero(Currency::Usd));
    PaymentRecord {
        id: id.to_owned(),
        kind: PaymentKind::PaymentIntent,
        booking_id: Some(booking_id.to_owned()),
        customer_id: None,
        provider_id: None,
        stripe_account_id: None,
        payment_intent_id: None,
        amount: usd(12_000),
        platform_fee: None,
        provider_earnings: None,
        refunded: usd(0),
        status: "requires_payment_method".into(),
        charge_id: None,
        transfer_id: None,
        failure_code: None,
        failure_message: None,
        arrival_date: None,
        task_token: None,
        outcome_delivered: false,
        correlation_id: format!("corr-{booking_id}"),
        created_at: t0(),
        updated_at: t0(),
    }
}

/// A registered provider (no account yet).
pub fn provider_record(provider_id: &str) -> ProviderRecord {
    let (provider, _) = Provider::register(
        id(provider_id),
        &format!("{provider_id}@example.com"),
        "Sam's Studio",
        "US",
        t0(),
        CorrelationId::new(format!("corr-{provider_id}")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("fixture provider: {e}"));
    ProviderRecord {
        provider,
        charges_enabled: false,
        payouts_enabled: false,
        onboarding_url: None,
        onboarding_url_expires_at: None,
        correlation_id: None,
    }
}

/// An ACTIVE provider with `stripe_account_id`, charges and payouts enabled.
pub fn active_provider_record(provider_id: &str, stripe_account_id: &str) -> ProviderRecord {
    let mut r = provider_record(provider_id);
    let corr = CorrelationId::new("corr-fixture").unwrap_or_else(|e| panic!("{e}"));
    r.provider
        .start_onboarding(id(stripe_account_id), t0())
        .unwrap_or_else(|e| panic!("{e}"));
    r.provider
        .complete_onboarding(t0(), corr)
        .unwrap_or_else(|e| panic!("{e}"));
    r.charges_enabled = true;
    r.payouts_enabled = true;
    r
}
