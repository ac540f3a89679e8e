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

#[cfg(test)]
mod tests {
    use super::*;
    use marketplace_ports::{ErrorType, HasErrorType};

    /// async-stripe's error for an error answer `body` with `status`.
    fn answered(status: u16, body: &str) -> StripeError {
        let e: stripe_shared::Error = miniserde::json::from_str(body).expect("Stripe error JSON");
        StripeError::Stripe(e.error, status)
    }

    #[test]
    fn classifies_by_status_type_and_code() {
        let lock = answered(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"lock_timeout","message":"This object cannot be accessed right now because another API request or Stripe process is currently accessing it."}}"#,
        );
        assert!(is_transient(&lock));
        let conflict = answered(
            409,
            r#"{"error":{"type":"idempotency_error","message":"There is currently another in-progress request using this Stripe-Idempotency-Key"}}"#,
        );
        assert!(matches!(
            to_gateway_error(conflict),
            GatewayError::Transient { status: 409, .. }
        ));
        let invalid = answered(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"parameter_invalid_integer","param":"amount","message":"Invalid integer: -5"}}"#,
        );
        assert!(!is_transient(&invalid));
        let e = to_gateway_error(invalid);
        assert_eq!(e.error_type(), ErrorType::PaymentProviderError);
        assert_eq!(
            e,
            GatewayError::Permanent {
                status: 400,
                code: "parameter_invalid_integer".into(),
                message: "Invalid integer: -5".into(),
                param: Some("amount".into()),
            }
        );
    }

    #[test]
    fn card_errors_are_declines_with_their_decline_code() {
        let e = answered(
            402,
            r#"{"error":{"type":"card_error","code":"expired_card","decline_code":"expired_card","charge":"ch_1","message":"Your card has expired."}}"#,
        );
        assert!(declined_intent(&e).is_none());
        assert_eq!(
            to_gateway_error(e),
            GatewayError::Declined {
                code: "expired_card".into(),
                decline_code: Some("expired_card".into()),
                message: "Your card has expired.".into(),
                payment_intent_id: None,
            }
        );
    }

    #[test]
    fn transport_failures_are_transient_and_config_errors_are_not() {
        for e in [
            StripeError::Timeout,
            StripeError::ClientError("connection refused".into()),
            StripeError::JSONDeserialize("error deserializing Stripe error".into()),
        ] {
            assert_eq!(to_gateway_error(e).error_type(), ErrorType::TransientError);
        }
        let unread = to_gateway_error(StripeError::JSONDeserialize(
            "error deserializing request data".into(),
        ));
        assert_eq!(unread.code(), Some("unexpected_response"));
        assert_eq!(
            to_gateway_error(StripeError::ConfigError("bad account id".into())).code(),
            Some("client_configuration")
        );
    }
}
