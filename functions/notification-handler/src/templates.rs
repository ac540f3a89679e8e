//! The notification templates: subject and body per template and recipient role.

use marketplace_domain::{Currency, Money};
use marketplace_ports::fields::Fields;
use marketplace_ports::HandlerError;

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The booking's customer.
    Customer,
    /// The provider.
    Provider,
    /// An administrator.
    Admin,
}

impl Role {
    /// Parses `CUSTOMER`, `PROVIDER`, `ADMIN`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "CUSTOMER" => Some(Role::Customer),
            "PROVIDER" => Some(Role::Provider),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Every template.
pub const TEMPLATES: &[&str] = &[
    "BOOKING_CONFIRMED",
    "BOOKING_EXPIRED",
    "BOOKING_CANCELLED",
    "BOOKING_COMPLETED",
    "BOOKING_UPDATED",
    "PAYMENT_DECLINED",
    "BOOKING_FAILED_REFUNDED",
    "REFUND_ISSUED",
    "PAYOUT_COMPLETED",
    "PAYOUT_FAILED",
    "DISPUTE_OPENED_PROVIDER",
    "DISPUTE_NEEDS_REVIEW",
    "DISPUTE_RESOLVED",
    "DISPUTE_ESCALATED_FINAL",
    "PROVIDER_WELCOME",
    "PROVIDER_ONBOARDING_FAILED",
    "PROVIDER_ONBOARDING_COMPLETED",
    "PROVIDER_ACCOUNT_UPDATED",
];

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain text.
    pub text: String,
    /// HTML.
    pub html: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn amount(d: &Fields<'_>, field: &str) -> Result<String, HandlerError> {
    let currency: Currency = d.currency("currency")?;
    let m: Money = d.money(field, currency)?;
    Ok(m.to_string())
}

/// Renders `template` for a recipient with `role` and `name`; `data` holds the template
/// fields (errors name `data.<field>`).
pub fn render(
    template: &str,
    role: Role,
    name: &str,
    data: &Fields<'_>,
) -> Result<Rendered, HandlerError> {
    let s = |f: &str| data.str(f).map(str::to_owned);
    let o = |f: &str| data.opt_str(f).map(|v| v.map(str::to_owned));
    let (subject, lines): (String, Vec<String>) = match template {
        "BOOKING_CONFIRMED" => {
            let id = s("bookingId")?;
            let code = s("confirmationCode")?;
            let when = match (o("startDateTime")?, o("endDateTime")?) {
                (Some(a), Some(b)) => format!(" from {a} to {b}"),
                (Some(a), None) => format!(" starting {a}"),
                _ => String::new(),
            };
            match role {
                Role::Provider => (
                    format!("New booking {id} confirmed"),
                    vec![
                        format!("Booking {id}{when} is paid and confirmed."),
                        format!("Confirmation code: {code}."),
                    ],
                ),
                _ => (
                    format!("Your booking {id} is confirmed"),
                    vec![
                        format!("Your booking {id}{when} is confirmed."),
                        format!("Your confirmation code is {code}."),
                    ],
                ),
            }
        }
        "BOOKING_EXPIRED" => {
            let id = s("bookingId")?;
            (format!("Booking {id} expired"), vec![format!("We did not receive the payment for booking {id} in time, so the slot was released."), "You have not been charged.".into()])
        }
        "BOOKING_CANCELLED" => {
            let id = s("bookingId")?;
            let by = s("cancelledBy")?;
            let refund = match (data.get("refundAmount"), data.get("currency")) {
                (Some(_), Some(_)) => format!(
                    " A refund of {} is on its way.",
                    amount(data, "refundAmount")?
                ),
                _ => match data.get("refundPercent").and_then(|v| v.as_u64()) {
                    Some(p) if p > 0 => format!(" {p} % of the price is refunded."),
                    _ => String::new(),
                },
            };
            (
                format!("Booking {id} cancelled"),
                vec![format!(
                    "Booking {id} was cancelled by the {}.{refund}",
                    by.to_lowercase()
                )],
            )
        }
        "BOOKING_COMPLETED" => {
            let id = s("bookingId")?;
            match role {
                Role::Provider => (format!("Booking {id} completed"), vec![format!("Booking {id} is complete; your earnings are released for payout.")]),
                _ => (format!("Thank you: booking {id} completed"), vec![format!("Booking {id} is complete. If something went wrong, you can open a dispute within 30 days.")]),
            }
        }
        "BOOKING_UPDATED" => {
            let id = s("bookingId")?;
            let start = s("startDateTime")?;
            (
                format!("Booking {id} updated"),
                vec![format!("Booking {id} now starts at {start}.")],
            )
        }
        "PAYMENT_DECLINED" => {
            let id = s("bookingId")?;
            let why = o("failureMessage")?
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            (format!("Payment for booking {id} declined"), vec![format!("Your payment for booking {id} was declined{why}. The booking was cancelled and nothing was charged.")])
        }
        "BOOKING_FAILED_REFUNDED" => {
            let id = s("bookingId")?;
            let a = amount(data, "refundAmount")?;
            (format!("Booking {id} could not be confirmed"), vec![format!("We could not confirm booking {id}. Your payment of {a} has been refunded in full.")])
        }
        "REFUND_ISSUED" => {
            let id = s("bookingId")?;
            let a = amount(data, "refundAmount")?;
            (
                format!("Refund of {a} for booking {id}"),
                vec![format!(
                    "We refunded {a} for booking {id}. It reaches your card in 5-10 business days."
                )],
            )
        }
        "PAYOUT_COMPLETED" => {
            let id = s("payoutId")?;
            let a = amount(data, "amount")?;
            (
                format!("Payout of {a} sent"),
                vec![format!("Payout {id} of {a} was paid to your bank account.")],
            )
        }
        "PAYOUT_FAILED" => {
            let id = s("payoutId")?;
            let a = amount(data, "amount")?;
            let why = o("failureMessage")?.unwrap_or_else(|| "the bank refused it".into());
            (format!("Payout of {a} failed"), vec![format!("Payout {id} of {a} failed: {why}. The amount is back in your balance; please check your bank details.")])
        }
        "DISPUTE_OPENED_PROVIDER" => {
            let id = s("disputeId")?;
            let b = s("bookingId")?;
            let t = s("disputeType")?;
            let by = s("reviewDeadline")?;
            (format!("A customer opened dispute {id}"), vec![format!("The customer of booking {b} opened a {} ({id}).", t.replace('_', " ").to_lowercase()), format!("Please respond by {by}; after that the dispute is decided without your answer.")])
        }
        "DISPUTE_NEEDS_REVIEW" => {
            let id = s("disputeId")?;
            let b = s("bookingId")?;
            let by = o("resolutionDeadline")?
                .map(|d| format!(" It must be resolved by {d}."))
                .unwrap_or_default();
            (
                format!("Dispute {id} needs a decision"),
                vec![format!(
                    "Dispute {id} on booking {b} was escalated for manual review.{by}"
                )],
            )
        }
        "DISPUTE_RESOLVED" => {
            let id = s("disputeId")?;
            let r = s("resolution")?;
            let a = amount(data, "refundAmount")?;
            (
                format!("Dispute {id} resolved"),
                vec![format!(
                    "Dispute {id} was resolved: {} (refund {a}).",
                    r.replace('_', " ").to_lowercase()
                )],
            )
        }
        "DISPUTE_ESCALATED_FINAL" => {
            let id = s("disputeId")?;
            let b = s("bookingId")?;
            match role {
                Role::Admin => (format!("URGENT: dispute {id} passed its deadline"), vec![format!("Dispute {id} on booking {b} was not resolved within 7 days and needs an operator now.")]),
                _ => (format!("Dispute {id} is with our team"), vec![format!("Dispute {id} on booking {b} was passed to our support team, who will contact you.")]),
            }
        }
        "PROVIDER_WELCOME" => {
            let url = s("onboardingUrl")?;
            let until = o("onboardingUrlExpiresAt")?
                .map(|t| format!(" (the link is valid until {t})"))
                .unwrap_or_default();
            ("Welcome to the marketplace".into(), vec!["Welcome! To take bookings and get paid, finish setting up your payout account:".into(), format!("{url}{until}")])
        }
        "PROVIDER_ONBOARDING_FAILED" => {
            let why = o("errorType")?
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            ("We could not set up your payout account".into(), vec![format!("Setting up your payout account failed{why}. Our team has been told and will get back to you.")])
        }
        "PROVIDER_ONBOARDING_COMPLETED" => (
            "Your account is ready".into(),
            vec![
                "Your payout account is verified: you can now take bookings and receive payouts."
                    .into(),
            ],
        ),
        "PROVIDER_ACCOUNT_UPDATED" => {
            let charges = data.bool("chargesEnabled")?;
            let payouts = data.bool("payoutsEnabled")?;
            let state = |b: bool| if b { "enabled" } else { "disabled" };
            (
                "Your payout account changed".into(),
                vec![format!(
                    "Charges are {} and payouts are {} on your account.",
                    state(charges),
                    state(payouts)
                )],
            )
        }
        other => {
            return Err(HandlerError::validation(
                "template",
                format!(
                    "{other:?} is not a template (one of {})",
                    TEMPLATES.join(", ")
                ),
            ))
        }
    };
    let greeting = format!("Hello {name},");
    let text = format!(
        "{greeting}\n\n{}\n\n— The Marketplace team\n",
        lines.join("\n")
    );
    let html = format!(
        "<!doctype html><html><body><p>{}</p>{}<p>— The Marketplace team</p></body></html>",
        escape(&greeting),
        lines
            .iter()
            .map(|l| format!("<p>{}</p>", escape(l)))
            .collect::<String>()
    );
    Ok(Rendered {
        subject,
        text,
        html,
    })
}
