//! From async-stripe's resource types to the port's.

use marketplace_ports::payments::{
    Account, AccountLink, PaymentError, PaymentIntent, PaymentIntentStatus, Payout, Refund,
    Transfer, TransferReversal,
};
use marketplace_ports::GatewayError;
use std::collections::{BTreeMap, HashMap};
use stripe_shared::PaymentIntentStatus as S;

fn unexpected(what: &str) -> GatewayError {
    GatewayError::Permanent {
        status: 200,
        code: "unexpected_response".into(),
        message: format!("Stripe's answer: {what}"),
        param: None,
    }
}

fn sorted(m: HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

/// A PaymentIntent; an unknown status (a newer API version) is an error, not a guess.
pub fn payment_intent(pi: stripe_shared::PaymentIntent) -> Result<PaymentIntent, GatewayError> {
    let status = match &pi.status {
        S::RequiresPaymentMethod => PaymentIntentStatus::RequiresPaymentMethod,
        S::RequiresConfirmation => PaymentIntentStatus::RequiresConfirmation,
        S::RequiresAction => PaymentIntentStatus::RequiresAction,
        S::Processing => PaymentIntentStatus::Processing,
        S::RequiresCapture => PaymentIntentStatus::RequiresCapture,
        S::Canceled => PaymentIntentStatus::Canceled,
        S::Succeeded => PaymentIntentStatus::Succeeded,
        other => {
            return Err(unexpected(&format!(
                "PaymentIntent {} has the unknown status {:?}",
                pi.id.as_str(),
                other.as_str()
            )))
        }
    };
    let last_payment_error = pi.last_payment_error.map(|e| PaymentError {
        code: e
            .code
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_else(|| e.type_.as_str().to_owned()),
        decline_code: e.decline_code.clone(),
        message: e.message.clone().unwrap_or_default(),
    });
    Ok(PaymentIntent {
        id: pi.id.as_str().to_owned(),
        amount: pi.amount,
        amount_received: pi.amount_received,
        currency: pi.currency.to_string(),
        status,
        client_secret: pi.client_secret.unwrap_or_default(),
        latest_charge: pi.latest_charge.map(|c| c.id().as_str().to_owned()),
        last_payment_error,
        payment_method: pi.payment_method.map(|p| p.id().as_str().to_owned()),
        transfer_group: pi.transfer_group,
        metadata: sorted(pi.metadata),
        created: pi.created,
    })
}

/// A refund of `payment_intent` (Stripe omits the intent for refunds of bare charges).
pub fn refund(r: stripe_shared::Refund, payment_intent: &str) -> Refund {
    Refund {
        id: r.id.as_str().to_owned(),
        amount: r.amount,
        currency: r.currency.to_string(),
        payment_intent: r
            .payment_intent
            .map(|p| p.id().as_str().to_owned())
            .unwrap_or_else(|| payment_intent.to_owned()),
        status: r.status.unwrap_or_else(|| "pending".to_owned()),
        failure_reason: r.failure_reason,
        metadata: sorted(r.metadata.unwrap_or_default()),
    }
}

/// A transfer to `destination`.
pub fn transfer(t: stripe_shared::Transfer, destination: &str) -> Transfer {
    Transfer {
        id: t.id.as_str().to_owned(),
        amount: t.amount,
        amount_reversed: t.amount_reversed,
        currency: t.currency.to_string(),
        destination: t
            .destination
            .map(|d| d.id().as_str().to_owned())
            .unwrap_or_else(|| destination.to_owned()),
        transfer_group: t.transfer_group,
    }
}

/// A transfer reversal.
pub fn transfer_reversal(r: stripe_shared::TransferReversal) -> TransferReversal {
    TransferReversal {
        id: r.id.as_str().to_owned(),
        amount: r.amount,
        transfer: r.transfer.id().as_str().to_owned(),
    }
}

/// A payout made on `stripe_account`.
pub fn payout(p: stripe_shared::Payout, stripe_account: &str) -> Payout {
    Payout {
        id: p.id.as_str().to_owned(),
        amount: p.amount,
        currency: p.currency.to_string(),
        status: p.status,
        arrival_date: p.arrival_date,
        failure_code: p.failure_code,
        failure_message: p.failure_message,
        stripe_account: stripe_account.to_owned(),
        metadata: sorted(p.metadata.unwrap_or_default()),
    }
}

/// A connected account (Stripe omits the flags it has not computed yet: false).
pub fn account(a: stripe_shared::Account) -> Account {
    Account {
        id: a.id.as_str().to_owned(),
        country: a.country.unwrap_or_default(),
        email: a.email.unwrap_or_default(),
        charges_enabled: a.charges_enabled.unwrap_or(false),
        payouts_enabled: a.payouts_enabled.unwrap_or(false),
        details_submitted: a.details_submitted.unwrap_or(false),
        metadata: sorted(a.metadata.unwrap_or_default()),
    }
}

/// An account link.
pub fn account_link(l: stripe_connect::AccountLink) -> AccountLink {
    AccountLink {
        url: l.url,
        created: l.created,
        expires_at: l.expires_at,
    }
}
