//! The environment the CDK app gives every function (`infra/lib/marketplace-stack.ts`):
//! table names, the bus, the state machine ARNs, the sender address and the user pool.

use marketplace_domain::WorkflowType;
use std::collections::BTreeMap;

/// A required variable is missing or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The variable is not set (or empty).
    #[error("environment variable {0} is required (set by the CDK app) but missing or empty")]
    Missing(&'static str),
}

/// DynamoDB table names (`infra/lib/tables.ts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// `BOOKINGS_TABLE`: key `bookingId`; GSIs `byCustomer`, `byProvider` (sort `startDateTime`).
    pub bookings: String,
    /// `SLOTS_TABLE`: key `providerId` + `slotStart`.
    pub slots: String,
    /// `SERVICES_TABLE`: key `serviceId`; GSI `byProvider` (`providerId`, `serviceId`).
    pub services: String,
    /// `PROVIDERS_TABLE`: key `providerId`; GSI `byStripeAccount` (`stripeAccountId`).
    pub providers: String,
    /// `PAYMENTS_TABLE`: key `paymentId`; GSIs `byBooking`, `byProvider` (sort `createdAt`).
    pub payments: String,
    /// `LEDGER_TABLE`: key `providerId` + `entryId`.
    pub ledger: String,
    /// `DISPUTES_TABLE`: key `disputeId`; GSIs `byBooking`, `byCustomer`, `byProvider`, `byStatus`.
    pub disputes: String,
    /// `IDEMPOTENCY_TABLE`: key `id`, TTL `expiration`.
    pub idempotency: String,
}

/// Everything a function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The tables.
    pub tables: TableNames,
    /// `EVENT_BUS_NAME`.
    pub event_bus_name: String,
    /// `*_STATE_MACHINE_ARN` per workflow.
    pub state_machines: BTreeMap<WorkflowType, String>,
    /// `METRICS_NAMESPACE` (default `EcosystemMarketplace`).
    pub metrics_namespace: String,
    /// `SERVICE_NAME` (the function's name).
    pub service_name: String,
    /// `SENDER_ADDRESS`, for functions that send e-mail.
    pub sender_address: Option<String>,
    /// `USER_POOL_ID`, for functions that read the user pool.
    pub user_pool_id: Option<String>,
    /// `STRIPE_API_KEY_SECRET_ARN`.
    pub stripe_api_key_secret_arn: Option<String>,
    /// `STRIPE_WEBHOOK_SECRET_ARN`.
    pub stripe_webhook_secret_arn: Option<String>,
}

/// The variable holding the state machine ARN of `workflow` (as `infra/lib/config.ts`).
pub fn state_machine_env_var(workflow: WorkflowType) -> &'static str {
    match workflow {
        WorkflowType::BookingLifecycle => "BOOKING_LIFECYCLE_STATE_MACHINE_ARN",
        WorkflowType::PaymentProcessing => "PAYMENT_PROCESSING_STATE_MACHINE_ARN",
        WorkflowType::DisputeResolution => "DISPUTE_RESOLUTION_STATE_MACHINE_ARN",
        WorkflowType::ProviderOnboarding => "PROVIDER_ONBOARDING_STATE_MACHINE_ARN",
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let optional = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let required = |k: &'static str| optional(k).ok_or(SettingsError::Missing(k));
        let tables = TableNames {
            bookings: required("BOOKINGS_TABLE")?,
            slots: required("SLOTS_TABLE")?,
            services: required("SERVICES_TABLE")?,
            providers: required("PROVIDERS_TABLE")?,
            payments: required("PAYMENTS_TABLE")?,
            ledger: required("LEDGER_TABLE")?,
            disputes: required("DISPUTES_TABLE")?,
            idempotency: required("IDEMPOTENCY_TABLE")?,
        };
        let mut state_machines = BTreeMap::new();
        for wf in WorkflowType::ALL {
            state_machines.insert(*wf, required(state_machine_env_var(*wf))?);
        }
        Ok(Self {
            tables,
            event_bus_name: required("EVENT_BUS_NAME")?,
            state_machines,
            metrics_namespace: optional("METRICS_NAMESPACE")
                .unwrap_or_else(|| "EcosystemMarketplace".to_owned()),
            service_name: optional("SERVICE_NAME")
                .or_else(|| optional("AWS_LAMBDA_FUNCTION_NAME"))
                .unwrap_or_else(|| "marketplace".to_owned()),
            sender_address: optional("SENDER_ADDRESS"),
            user_pool_id: optional("USER_POOL_ID"),
            stripe_api_key_secret_arn: optional("STRIPE_API_KEY_SECRET_ARN"),
            stripe_webhook_secret_arn: optional("STRIPE_WEBHOOK_SECRET_ARN"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, String> {
        let mut m = HashMap::new();
        for k in [
            "BOOKINGS_TABLE",
            "SLOTS_TABLE",
            "SERVICES_TABLE",
            "PROVIDERS_TABLE",
            "PAYMENTS_TABLE",
            "LEDGER_TABLE",
            "DISPUTES_TABLE",
            "IDEMPOTENCY_TABLE",
            "EVENT_BUS_NAME",
        ] {
            m.insert(k, format!("{k}-value"));
        }
        for wf in WorkflowType::ALL {
            m.insert(state_machine_env_var(*wf), format!("arn:{wf}"));
        }
        m
    }

    #[test]
    fn reads_every_variable_and_defaults() {
        let env = full();
        let s = Settings::from_lookup(|k| env.get(k).cloned()).expect("settings");
        assert_eq!(s.tables.slots, "SLOTS_TABLE-value");
        assert_eq!(s.metrics_namespace, "EcosystemMarketplace");
        assert_eq!(
            s.state_machines[&WorkflowType::DisputeResolution],
            "arn:DISPUTE_RESOLUTION"
        );
        assert_eq!(s.sender_address, None);
    }

    #[test]
    fn names_the_missing_variable() {
        let mut env = full();
        env.insert("LEDGER_TABLE", " ".into());
        assert_eq!(
            Settings::from_lookup(|k| env.get(k).cloned()),
            Err(SettingsError::Missing("LEDGER_TABLE"))
        );
    }
}
