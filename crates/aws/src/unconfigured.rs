//! Adapters for ports a function's environment does not provide (the CDK app gives
//! `SENDER_ADDRESS` only to functions that send e-mail, `USER_POOL_ID` only to those that
//! read the pool, the Stripe key only to payout-manager). Every call fails with an error
//! naming what is missing, so a mis-wired function fails loudly instead of pretending.

use async_trait::async_trait;
use marketplace_ports::notify::{EmailMessage, Notifier};
use marketplace_ports::payments::*;
use marketplace_ports::store::{UserContact, UserDirectory};
use marketplace_ports::{GatewayError, NotifyError, StoreError};

/// A user directory for a function without `USER_POOL_ID`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUserDirectory;

#[async_trait]
impl UserDirectory for NoUserDirectory {
    async fn get_user(&self, user_id: &str) -> Result<Option<UserContact>, StoreError> {
        Err(StoreError::Unavailable(format!(
            "looking up user {user_id}: this function has no user directory (USER_POOL_ID is not set)"
        )))
    }
    async fn group_members(&self, group: &str) -> Result<Vec<UserContact>, StoreError> {
        Err(StoreError::Unavailable(format!(
            "listing group {group}: this function has no user directory (USER_POOL_ID is not set)"
        )))
    }
}

/// A notifier for a function without `SENDER_ADDRESS`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotifier;

#[async_trait]
impl Notifier for NoNotifier {
    async fn send_email(&self, message: &EmailMessage) -> Result<String, NotifyError> {
        Err(NotifyError::Unavailable(format!(
            "sending {}: this function has no mail sender (SENDER_ADDRESS is not set)",
            message.idempotency_key
        )))
    }
}

/// A payment gateway for functions that move no money.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPaymentGateway;

fn refused(operation: &str) -> GatewayError {
    GatewayError::Permanent {
        status: 0,
        code: "gateway_not_configured".into(),
        message: format!("{operation}: this function has no payment gateway"),
        param: None,
    }
}

#[async_trait]
impl PaymentGateway for NoPaymentGateway {
    async fn create_payment_intent(
        &self,
        _: &CreatePaymentIntent,
    ) -> Result<PaymentIntent, GatewayError> {
        Err(refused("create PaymentIntent"))
    }
    async fn confirm_payment_intent(
        &self,
        id: &str,
        _: Option<&str>,
        _: &str,
    ) -> Result<PaymentIntent, GatewayError> {
        Err(refused(&format!("confirm {id}")))
    }
    async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, GatewayError> {
        Err(refused(&format!("retrieve {id}")))
    }
    async fn cancel_payment_intent(
        &self,
        id: &str,
        _: Option<&str>,
        _: &str,
    ) -> Result<PaymentIntent, GatewayError> {
        Err(refused(&format!("cancel {id}")))
    }
    async fn create_refund(&self, _: &CreateRefund) -> Result<Refund, GatewayError> {
        Err(refused("create Refund"))
    }
    async fn create_transfer(&self, _: &CreateTransfer) -> Result<Transfer, GatewayError> {
        Err(refused("create Transfer"))
    }
    async fn create_transfer_reversal(
        &self,
        id: &str,
        _: Option<i64>,
        _: &str,
    ) -> Result<TransferReversal, GatewayError> {
        Err(refused(&format!("reverse {id}")))
    }
    async fn create_payout(&self, _: &CreatePayout) -> Result<Payout, GatewayError> {
        Err(refused("create Payout"))
    }
    async fn create_account(&self, _: &CreateAccount) -> Result<Account, GatewayError> {
        Err(refused("create Account"))
    }
    async fn retrieve_account(&self, id: &str) -> Result<Account, GatewayError> {
        Err(refused(&format!("retrieve {id}")))
    }
    async fn create_account_link(
        &self,
        _: &CreateAccountLink,
    ) -> Result<AccountLink, GatewayError> {
        Err(refused("create AccountLink"))
    }
}
