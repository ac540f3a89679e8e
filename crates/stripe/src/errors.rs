//! From async-stripe's errors to the port's [`GatewayError`], whose classes decide the
//! stable `errorType` the workflows' Retry/Catch match on:
//!
//! | Stripe answers | [`GatewayError`] | `errorType` |
//! |---|---|---|
//! | 429, 409, 424, 5xx, `api_error`, `lock_timeout`, `rate_limit`, network failure, timeout | `Transient` | `Marketplace.TransientError` |
//! | 402 `card_error` (`card_declined`, `expired_card`, … with `decline_code`) | `Declined` | `Marketplace.PaymentDeclined` |
//! | 400 `balance_insufficient` | `Permanent` | `Marketplace.InsufficientBalance` |
//! | 404 `resource_missing` | `Permanent` | `Marketplace.NotFound` |
//! | any other 4xx (`invalid_request_error`, `idempotency_error`, 401, 403) | `Permanent` | `Marketplace.PaymentProviderError` |
//!
//! A declined PaymentIntent confirmation is not an error of the port: Stripe attaches the
//! intent to the 402 and the adapter returns it (see [`declined_intent`]).

use marketplace_ports::GatewayError;
use stripe::StripeError;
use stripe_shared::{ApiErrors, ApiErrorsType};

/// Stripe's `code`, or the error `type` when Stripe sent no code.
fn code_of(e: &ApiErrors) -> String {
    match &e.code {
        Some(code) => code.as_str().to_owned(),
        None => e.type_.as_str().to_owned(),
    }
}

fn message_of(e: &ApiErrors) -> String {
    e.message
        .clone()
        .unwrap_or_else(|| format!("Stripe answered {}", code_of(e)))
}

/// Whether repeating the same request (with the same idempotency key) may succeed.
pub fn is_transient(e: &StripeError) -> bool {
    match e {
        StripeError::Stripe(api, status) => {
            matches!(*status, 409 | 424 | 429 | 500..=599)
                || api.type_ == ApiErrorsType::ApiError
                || matches!(
                    api.code.as_ref().map(|c| c.as_str()),
                    Some("lock_timeout" | "rate_limit")
                )
        }
        StripeError::ClientError(_) | StripeError::Timeout => true,
        // async-stripe reports an error answer whose body is not Stripe's error JSON (a
        // proxy's 502 page, a cut connection) this way, without its status: retry it
        StripeError::JSONDeserialize(m) => m.contains("Stripe error"),
        StripeError::ConfigError(_) => false,
    }
}

/// The port's error for a failed call.
pub fn to_gateway_error(e: StripeError) -> GatewayError {
    let transient = is_transient(&e);
    match e {
        StripeError::Stripe(api, status) => {
            if transient {
                return GatewayError::Transient {
                    status,
                    message: format!("{}: {}", code_of(&api), message_of(&api)),
                };
            }
            if api.type_ == ApiErrorsType::CardError {
                return GatewayError::Declined {
                    code: code_of(&api),
                    decline_code: api.decline_code.clone(),
                    message: message_of(&api),
                    payment_intent_id: api
                        .payment_intent
                        .as_ref()
                        .map(|pi| pi.id.as_str().to_owned()),
                };
            }
            GatewayError::Permanent {
                status,
                code: code_of(&api),
                message: message_of(&api),
                param: api.param.clone(),
            }
        }
        StripeError::ClientError(m) => GatewayError::Transient {
            status: 0,
            message: format!("network: {m}"),
        },
        StripeError::Timeout => GatewayError::Transient {
            status: 0,
            message: "no answer from Stripe within the attempt timeout".into(),
        },
        StripeError::JSONDeserialize(m) if transient => GatewayError::Transient {
            status: 0,
            message: format!("unreadable error answer: {m}"),
        },
        // the call succeeded at Stripe but its answer does not have the shape this
        // version expects; repeating it replays the same answer
        StripeError::JSONDeserialize(m) => GatewayError::Permanent {
            status: 200,
            code: "unexpected_response".into(),
            message: format!("Stripe's answer could not be read: {m}"),
            param: None,
        },
        StripeError::ConfigError(m) => GatewayError::Permanent {
            status: 0,
            code: "client_configuration".into(),
            message: m,
            param: None,
        },
    }
}

/// The PaymentIntent Stripe attaches to a 402 `card_error` answering a confirmation: the
/// decline is the intent's state (`requires_payment_method` with `last_payment_error`).
pub fn declined_intent(e: &StripeError) -> Option<&stripe_shared::PaymentIntent> {
    match e {
        StripeError::Stripe(api, _) if api.type_ == ApiErrorsType::CardError => {
            api.payment_intent.as_ref()
        }
        _ => None,
    }
}
