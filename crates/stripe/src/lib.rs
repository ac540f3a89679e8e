//! # marketplace-stripe
//!
//! The Stripe Connect adapter of the marketplace's
//! [`PaymentGateway`](marketplace_ports::PaymentGateway) port, on async-stripe 1.0 (the
//! `async-stripe` client over hyper and rustls, the typed requests of `async-stripe-core`
//! and `async-stripe-connect`). Only payout-manager's Lambda binary links it; the local
//! runtime uses the port's simulated gateway.
//!
//! What every call does:
//!
//! - amounts in integer minor units and lowercase currency codes, as the port gives them;
//! - the port's idempotency key (derived by the handler from the business operation) as
//!   the `Idempotency-Key` header of every mutating call, the same key on every retry;
//! - `Stripe-Account: acct_…` for the calls made on a connected account (payouts);
//! - transient failures (429, 409, 5xx, `lock_timeout`, network, timeouts) retried up to
//!   [`StripeConfig::max_attempts`] with a doubling pause; then, like every other failure,
//!   mapped to a [`GatewayError`] whose class gives the stable `errorType` (see [`errors`]).
//!
//! The marketplace charges with **separate charges and transfers** (payout-manager's
//! design): PaymentIntents on the platform with `transfer_group`, transfers with
//! `source_transaction`, explicit transfer reversals after a refund. The adapter also
//! sends destination-charge fields (`application_fee_amount`, `transfer_data[destination]`)
//! when a request carries them.
//!
//! Account links carry no idempotency key on purpose: a link expires within minutes, and
//! a replayed answer would hand a provider an expired link for the key's 24 hours.
#![warn(missing_docs)]

pub mod config;
mod convert;
pub mod errors;

pub use config::{ConfigError, StripeConfig};

use async_trait::async_trait;
use marketplace_ports::payments::*;
use marketplace_ports::GatewayError;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use stripe::{AccountId, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_connect::account::{
    CreateAccount as StripeCreateAccount, CreateAccountCapabilities,
    CreateAccountCapabilitiesCardPayments, CreateAccountCapabilitiesTransfers, CreateAccountType,
    RetrieveAccount,
};
use stripe_connect::account_link::{
    CreateAccountLink as StripeCreateAccountLink, CreateAccountLinkType,
};
use stripe_connect::transfer::CreateTransfer as StripeCreateTransfer;
use stripe_connect::transfer_reversal::CreateIdTransferReversal;
use stripe_core::payment_intent::{
    CancelPaymentIntent, CancelPaymentIntentCancellationReason, ConfirmPaymentIntent,
    CreatePaymentIntent as StripeCreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
    CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, CreatePaymentIntentTransferData,
    RetrievePaymentIntent,
};
use stripe_core::payout::CreatePayout as StripeCreatePayout;
use stripe_core::refund::{CreateRefund as StripeCreateRefund, CreateRefundReason};
use stripe_types::Currency;

/// The Stripe gateway (see the crate docs). Cheap to clone; share one per process.
#[derive(Clone)]
pub struct StripeGateway {
    client: stripe::Client,
    config: StripeConfig,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeGateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Who a call acts as, and with which idempotency key.
#[derive(Clone, Copy, Default)]
struct CallOptions<'a> {
    /// The `Idempotency-Key` header (mutating calls).
    idempotency_key: Option<&'a str>,
    /// The `Stripe-Account` header (calls on a connected account).
    stripe_account: Option<&'a str>,
}

impl<'a> CallOptions<'a> {
    fn keyed(key: &'a str) -> Self {
        Self {
            idempotency_key: Some(key),
            stripe_account: None,
        }
    }
}

fn hash_map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn currency(code: &str) -> Currency {
    // infallible: a code Stripe's list lacks is sent as given and Stripe judges it
    Currency::from_str(code).unwrap_or_else(|never| match never {})
}

fn invalid_key(key: &str, rule: impl std::fmt::Display) -> GatewayError {
    GatewayError::Permanent {
        status: 0,
        code: "idempotency_key_invalid".into(),
        message: format!("idempotency key {key:?}: {rule}"),
        param: Some("Idempotency-Key".into()),
    }
}

impl StripeGateway {
    /// A gateway calling Stripe with `config` (validated first).
    pub fn new(config: StripeConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut builder = stripe::ClientBuilder::new(config.secret_key.clone())
            .request_strategy(RequestStrategy::Once)
            .timeout(config.attempt_timeout)
            .app_info(
                "ecosystem-marketplace",
                Some(env!("CARGO_PKG_VERSION").to_owned()),
                None,
            );
        if let Some(base) = config.normalized_api_base() {
            builder = builder.url(base);
        }
        // the rustls connector reads the system's root certificates and panics when it
        // finds none; report that as a configuration error instead
        let client = std::panic::catch_unwind(move || builder.build())
            .map_err(|_| {
                ConfigError::Client(
                    "no usable root certificates found on this system (rustls native roots)".into(),
                )
            })?
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(Self { client, config })
    }

    /// The configuration in use.
    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// Sends `request`, retrying transient failures with the same idempotency key.
    async fn send<R>(&self, request: &R, options: CallOptions<'_>) -> Result<R::Output, StripeError>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize,
    {
        let strategy = match options.idempotency_key {
            Some(key) => RequestStrategy::Idempotent(
                IdempotencyKey::new(key).map_err(|e| StripeError::ConfigError(e.to_string()))?,
            ),
            None => RequestStrategy::Once,
        };
        let mut attempt = 1;
        loop {
            let mut call = request.customize().request_strategy(strategy.clone());
            if let Some(account) = options.stripe_account {
                call = call.account_id(AccountId::from(account));
            }
            match call.send(&self.client).await {
                Ok(out) => return Ok(out),
                Err(e) if attempt < self.config.max_attempts && errors::is_transient(&e) => {
                    tokio::time::sleep(self.config.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Checks a key before anything is sent (Stripe allows 1–255 characters).
    fn check_key(key: &str) -> Result<(), GatewayError> {
        IdempotencyKey::new(key)
            .map(|_| ())
            .map_err(|e| invalid_key(key, e))
    }

    /// A PaymentIntent call: a 402 decline that carries the intent is the intent.
    async fn intent_call<R>(
        &self,
        request: &R,
        options: CallOptions<'_>,
    ) -> Result<PaymentIntent, GatewayError>
    where
        R: StripeRequest<Output = stripe_shared::PaymentIntent>,
    {
        match self.send(request, options).await {
            Ok(pi) => convert::payment_intent(pi),
            Err(e) => match errors::declined_intent(&e) {
                Some(pi) => convert::payment_intent(pi.clone()),
                None => Err(errors::to_gateway_error(e)),
            },
        }
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    async fn create_payment_intent(
        &self,
        request: &CreatePaymentIntent,
    ) -> Result<PaymentIntent, GatewayError> {
        Self::check_key(&request.idempotency_key)?;
        let mut r = StripeCreatePaymentIntent::new(request.amount, currency(&request.currency))
            .metadata(hash_map(&request.metadata));
        if let Some(customer) = &request.customer {
            r = r.customer(customer.clone());
        }
        if let Some(pm) = &request.payment_method {
            r = r.payment_method(pm.clone());
        }
        if request.confirm {
            // confirmed by the server: no page to come back to, so no redirect methods
            let mut apm = CreatePaymentIntentAutomaticPaymentMethods::new(true);
            apm.allow_redirects =
                Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
            r = r.confirm(true).automatic_payment_methods(apm);
        }
        if let Some(group) = &request.transfer_group {
            r = r.transfer_group(group.clone());
        }
        if let Some(fee) = request.application_fee_amount {
            r = r.application_fee_amount(fee);
        }
        if let Some(destination) = &request.transfer_destination {
            r = r.transfer_data(CreatePaymentIntentTransferData::new(destination.clone()));
        }
        self.intent_call(&r, CallOptions::keyed(&request.idempotency_key))
            .await
    }

    async fn confirm_payment_intent(
        &self,
        id: &str,
        payment_method: Option<&str>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, GatewayError> {
        Self::check_key(idempotency_key)?;
        let mut r = ConfirmPaymentIntent::new(id);
        if let Some(pm) = payment_method {
            r = r.payment_method(pm);
        }
        self.intent_call(&r, CallOptions::keyed(idempotency_key))
            .await
    }

    async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, GatewayError> {
        self.intent_call(&RetrievePaymentIntent::new(id), CallOptions::default())
            .await
    }

    async fn cancel_payment_intent(
        &self,
        id: &str,
        reason: Option<&str>,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, GatewayError> {
        Self::check_key(idempotency_key)?;
        let mut r = CancelPaymentIntent::new(id);
        if let Some(reason) = reason {
            r = r.cancellation_reason(
                CancelPaymentIntentCancellationReason::from_str(reason)
                    .unwrap_or_else(|never| match never {}),
            );
        }
        self.intent_call(&r, CallOptions::keyed(idempotency_key))
            .await
    }

    async fn create_refund(&self, request: &CreateRefund) -> Result<Refund, GatewayError> {
        Self::check_key(&request.idempotency_key)?;
        let mut r = StripeCreateRefund::new()
            .payment_intent(request.payment_intent.clone())
            .metadata(hash_map(&request.metadata));
        if let Some(amount) = request.amount {
            r = r.amount(amount);
        }
        if let Some(reason) = &request.reason {
            r = r.reason(
                CreateRefundReason::from_str(reason).unwrap_or_else(|never| match never {}),
            );
        }
        let refund = self
            .send(&r, CallOptions::keyed(&request.idempotency_key))
            .await
            .map_err(errors::to_gateway_error)?;
        Ok(convert::refund(refund, &request.payment_intent))
    }

    async fn create_transfer(&self, request: &CreateTransfer) -> Result<Transfer, GatewayError> {
        Self::check_key(&request.idempotency_key)?;
        let mut r =
            StripeCreateTransfer::new(currency(&request.currency), request.destination.clone())
                .amount(request.amount)
                .metadata(hash_map(&request.metadata));
        if let Some(group) = &request.transfer_group {
            r = r.transfer_group(group.clone());
        }
        if let Some(charge) = &request.source_transaction {
            r = r.source_transaction(charge.clone());
        }
        let transfer = self
            .send(&r, CallOptions::keyed(&request.idempotency_key))
            .await
            .map_err(errors::to_gateway_error)?;
        Ok(convert::transfer(transfer, &request.destination))
    }

    async fn create_transfer_reversal(
        &self,
        transfer_id: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<TransferReversal, GatewayError> {
        Self::check_key(idempotency_key)?;
        let mut r = CreateIdTransferReversal::new(transfer_id);
        if let Some(amount) = amount {
            r = r.amount(amount);
        }
        let reversal = self
            .send(&r, CallOptions::keyed(idempotency_key))
            .await
            .map_err(errors::to_gateway_error)?;
        Ok(convert::transfer_reversal(reversal))
    }

    async fn create_payout(&self, request: &CreatePayout) -> Result<Payout, GatewayError> {
        Self::check_key(&request.idempotency_key)?;
        let r = StripeCreatePayout::new(request.amount, currency(&request.currency))
            .metadata(hash_map(&request.metadata));
        let options = CallOptions {
            idempotency_key: Some(&request.idempotency_key),
            stripe_account: Some(&request.stripe_account),
        };
        let payout = self
            .send(&r, options)
            .await
            .map_err(errors::to_gateway_error)?;
        Ok(convert::payout(payout, &request.stripe_account))
    }

    async fn create_account(&self, request: &CreateAccount) -> Result<Account, GatewayError> {
        Self::check_key(&request.idempotency_key)?;
        let mut capabilities = CreateAccountCapabilities::new();
        capabilities.card_payments = Some(CreateAccountCapabilitiesCardPayments {
            requested: Some(true),
        });
        capabilities.transfers = Some(CreateAccountCapabilitiesTransfers {
            requested: Some(true),
        });
        let r = StripeCreateAccount::new()
            .type_(CreateAccountType::Express)
            .country(request.country.clone())
            .email(request.email.clone())
            .business_type(
                stripe_shared::AccountBusinessType::from_str(&request.business_type)
                    .unwrap_or_else(|never| match never {}),
            )
            .capabilities(capabilities)
            .metadata(hash_map(&request.metadata));
        let account = self
            .send(&r, CallOptions::keyed(&request.idempotency_key))
            .await
            .map_err(errors::to_gateway_error)?;
        Ok(convert::account(account))
    }

    async fn retrieve_account(&self, id: &str) -> Result<Account, GatewayError> {
        let account = self
            .send(&RetrieveAccount::new(id), CallOptions::default())
            .await
            .map_err(errors::to_gateway_error)?;
        Ok(convert::account(account))
    }

    async fn create_account_link(
        &self,
        request: &CreateAccountLink,
    ) -> Result<AccountLink, GatewayError> {
        let r = StripeCreateAccountLink::new(
            request.account.clone(),
            CreateAccountLinkType::AccountOnboarding,
        )
        .refresh_url(request.refresh_url.clone())
        .return_url(request.return_url.clone());
        let link = self
            .send(&r, CallOptions::default())
            .await
            .map_err(errors::to_gateway_error)?;
        Ok(convert::account_link(link))
    }
}
