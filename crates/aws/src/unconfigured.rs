//! Adapters for ports a function's environment does not provide (the CDK app gives
//! `SENDER_ADDRESS` only to functions that send e-mail, `USER_POOL_ID` only to those that
//! read the pool, the Stripe key only to payout-manager). Every call fails with an error
//! naming what is missing, so a mis-wired function fails loudly instead of pretending.
//! The same holds for a client the function's build leaves out (the features of this
//! crate): [`NoEventPublisher`], [`NoWorkflowClient`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_domain::{PutEventsEntry, WorkflowType};
use marketplace_ports::events::{EventPublisher, PutEventsResultEntry};
use marketplace_ports::notify::{EmailMessage, Notifier};
use marketplace_ports::payments::*;
use marketplace_ports::store::{UserContact, UserDirectory};
use marketplace_ports::workflow::{
    ExecutionDescription, ExecutionPage, HistoryPage, ListExecutionsRequest, StartedExecution,
    WorkflowClient,
};
use marketplace_ports::{GatewayError, NotifyError, PublishError, StoreError, WorkflowError};

/// The reason [`NoEventPublisher`] gives when the build has no EventBridge client.
pub const EVENTBRIDGE_NOT_BUILT: &str =
    "this function is built without the EventBridge client (feature `eventbridge` of marketplace-aws)";
/// The reason [`NoWorkflowClient`] gives when the build has no Step Functions client.
pub const SFN_NOT_BUILT: &str =
    "this function is built without the Step Functions client (feature `sfn` of marketplace-aws)";
/// The reason [`NoUserDirectory`] gives when the build has no Cognito client.
pub const COGNITO_NOT_BUILT: &str =
    "this function is built without the Cognito client (feature `cognito` of marketplace-aws)";
/// The reason [`NoNotifier`] gives when the build has no SES client.
pub const SES_NOT_BUILT: &str =
    "this function is built without the SES client (feature `ses` of marketplace-aws)";

/// An event publisher for a function built without EventBridge.
#[derive(Debug, Clone, Copy)]
pub struct NoEventPublisher(pub &'static str);

#[async_trait]
impl EventPublisher for NoEventPublisher {
    async fn put_events(
        &self,
        entries: &[PutEventsEntry],
    ) -> Result<Vec<PutEventsResultEntry>, PublishError> {
        Err(PublishError::Unavailable(format!(
            "publishing {} event(s): {}",
            entries.len(),
            self.0
        )))
    }
}

/// A workflow client for a function built without Step Functions.
#[derive(Debug, Clone, Copy)]
pub struct NoWorkflowClient(pub &'static str);

impl NoWorkflowClient {
    fn refuse<T>(&self, operation: &str) -> Result<T, WorkflowError> {
        Err(WorkflowError::Unavailable(format!(
            "{operation}: {}",
            self.0
        )))
    }
}

#[async_trait]
impl WorkflowClient for NoWorkflowClient {
    fn state_machine_arn(&self, workflow_type: WorkflowType) -> String {
        format!("unconfigured:{workflow_type}")
    }
    async fn start_execution(
        &self,
        workflow_type: WorkflowType,
        name: &str,
        _: &str,
    ) -> Result<StartedExecution, WorkflowError> {
        self.refuse(&format!("StartExecution {workflow_type} {name}"))
    }
    async fn describe_execution(&self, arn: &str) -> Result<ExecutionDescription, WorkflowError> {
        self.refuse(&format!("DescribeExecution {arn}"))
    }
    async fn stop_execution(
        &self,
        arn: &str,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<DateTime<Utc>, WorkflowError> {
        self.refuse(&format!("StopExecution {arn}"))
    }
    async fn send_task_success(&self, _: &str, _: &str) -> Result<(), WorkflowError> {
        self.refuse("SendTaskSuccess")
    }
    async fn send_task_failure(&self, _: &str, _: &str, _: &str) -> Result<(), WorkflowError> {
        self.refuse("SendTaskFailure")
    }
    async fn send_task_heartbeat(&self, _: &str) -> Result<(), WorkflowError> {
        self.refuse("SendTaskHeartbeat")
    }
    async fn get_execution_history(
        &self,
        arn: &str,
        _: u32,
        _: Option<&str>,
        _: bool,
    ) -> Result<HistoryPage, WorkflowError> {
        self.refuse(&format!("GetExecutionHistory {arn}"))
    }
    async fn list_executions(
        &self,
        _: &ListExecutionsRequest,
    ) -> Result<ExecutionPage, WorkflowError> {
        self.refuse("ListExecutions")
    }
}

/// A user directory for a function without `USER_POOL_ID` (or built without Cognito:
/// [`NoUserDirectory::not_built`]).
#[derive(Debug, Clone, Copy)]
pub struct NoUserDirectory(pub &'static str);

impl Default for NoUserDirectory {
    fn default() -> Self {
        Self("this function has no user directory (USER_POOL_ID is not set)")
    }
}

impl NoUserDirectory {
    /// The directory of a build without the Cognito client.
    pub fn not_built() -> Self {
        Self(COGNITO_NOT_BUILT)
    }
}

#[async_trait]
impl UserDirectory for NoUserDirectory {
    async fn get_user(&self, user_id: &str) -> Result<Option<UserContact>, StoreError> {
        Err(StoreError::Unavailable(format!(
            "looking up user {user_id}: {}",
            self.0
        )))
    }
    async fn group_members(&self, group: &str) -> Result<Vec<UserContact>, StoreError> {
        Err(StoreError::Unavailable(format!(
            "listing group {group}: {}",
            self.0
        )))
    }
}

/// A notifier for a function without `SENDER_ADDRESS` (or built without SES:
/// [`NoNotifier::not_built`]).
#[derive(Debug, Clone, Copy)]
pub struct NoNotifier(pub &'static str);

impl Default for NoNotifier {
    fn default() -> Self {
        Self("this function has no mail sender (SENDER_ADDRESS is not set)")
    }
}

impl NoNotifier {
    /// The notifier of a build without the SES client.
    pub fn not_built() -> Self {
        Self(SES_NOT_BUILT)
    }
}

#[async_trait]
impl Notifier for NoNotifier {
    async fn send_email(&self, message: &EmailMessage) -> Result<String, NotifyError> {
        Err(NotifyError::Unavailable(format!(
            "sending {}: {}",
            message.idempotency_key, self.0
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

#[cfg(test)]
mod tests {
    use super::*;
    use marketplace_ports::{ErrorType, HandlerError, HasErrorType};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_client_left_out_of_the_build_fails_every_call_naming_its_feature() {
        let workflows = NoWorkflowClient(SFN_NOT_BUILT);
        let e = block_on(workflows.start_execution(WorkflowType::BookingLifecycle, "b-1", "{}"))
            .expect_err("no Step Functions");
        assert!(
            e.to_string().contains("feature `sfn` of marketplace-aws"),
            "{e}"
        );
        let e = block_on(workflows.send_task_success("tok", "{}")).expect_err("no tokens");
        assert!(e
            .to_string()
            .starts_with("workflow service unavailable: SendTaskSuccess"));
        let events = NoEventPublisher(EVENTBRIDGE_NOT_BUILT);
        let e = block_on(events.put_events(&[])).expect_err("no EventBridge");
        assert_eq!(e.error_type(), ErrorType::TransientError);
        assert!(e.to_string().contains("feature `eventbridge`"), "{e}");
        let users = NoUserDirectory::not_built();
        let e = block_on(users.get_user("cus_1")).expect_err("no Cognito");
        assert!(e.to_string().contains("feature `cognito`"), "{e}");
        let mail = NoNotifier::default();
        let message = EmailMessage {
            to: vec!["a@example.com".into()],
            subject: "s".into(),
            text_body: "t".into(),
            html_body: None,
            idempotency_key: "k1".into(),
            template: "BOOKING_CONFIRMED".into(),
            correlation_id: None,
        };
        let e: HandlerError = block_on(mail.send_email(&message))
            .expect_err("no sender")
            .into();
        assert!(
            e.message.contains("SENDER_ADDRESS is not set"),
            "{}",
            e.message
        );
    }
}
