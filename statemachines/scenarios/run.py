#!/usr/bin/env python3
"""Business scenarios of the four workflows, run with `marketplace states run` and a mock config.

Each scenario mocks the functions' answers (in the AWS Step Functions Local MockConfigFile
format, as the contract in statemachines/README.md says they answer), runs the definition on
the virtual clock and checks what a business cares about: how the execution ends, which
events are published in which order, that every event is valid against schemas/*.json and
carries the flow's correlationId, and the money sent to payout-manager.

    python3 statemachines/scenarios/run.py [--marketplace PATH] [-k NAME]

The binary defaults to $MARKETPLACE, then target/release/marketplace, then
target/debug/marketplace. Without one (the `asl` crate not built yet) the run is skipped.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCHEMAS = os.path.join(ROOT, "schemas")

try:
    import jsonschema
except ImportError:  # installed on demand, once
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "jsonschema"], check=True)
    import jsonschema


# ---- mocked answers -------------------------------------------------------------------------

def ok(payload):
    """A Lambda invoke result (request-response)."""
    return {"Return": {"StatusCode": 200, "Payload": payload}}


def callback(output):
    """The output a SendTaskSuccess gave a .waitForTaskToken task."""
    return {"Return": output}


def throw(error, cause="mocked failure"):
    return {"Throw": {"Error": error, "Cause": cause}}


PUBLISHED = {"Return": {"Entries": [{"EventId": "11111111-2222-3333-4444-555555555555"}], "FailedEntryCount": 0}}
NOTIFIED = ok({"notificationIds": ["n-1"], "sent": 1})

BOOKING = {
    "bookingId": "bk_1001", "serviceId": "svc_42", "customerId": "cus_7", "providerId": "prov_9",
    "startDateTime": "2024-01-03T10:00:00Z", "endDateTime": "2024-01-03T11:00:00Z",
    "amount": 120.0, "currency": "USD", "correlationId": "corr-booking-1001",
}
VALIDATED = ok({**{k: v for k, v in BOOKING.items() if k != "correlationId"},
                "platformFee": 18.0, "providerEarnings": 102.0, "stripeAccountId": "acct_prov9"})
RESERVED = ok({"status": "PENDING_PAYMENT", "reservedUntil": "2024-01-01T00:15:00Z"})
INTENT = ok({"paymentIntentId": "pi_3Nabc", "clientSecret": "pi_3Nabc_secret_x", "status": "requires_payment_method",
             "chargeId": None, "amount": 120.0, "currency": "USD", "platformFee": 18.0, "providerEarnings": 102.0})
PAID = callback({"paymentIntentId": "pi_3Nabc", "status": "succeeded", "chargeId": "ch_1", "amount": 120.0, "currency": "USD"})
CONFIRMED = ok({"status": "CONFIRMED", "confirmationCode": "K7Q2M9XA"})
COMPLETED = ok({"completed": True, "status": "COMPLETED"})
EARNINGS = ok({"transferId": "tr_1", "amount": 102.0, "currency": "USD"})

BOOKING_HAPPY = {
    "ValidateBooking": VALIDATED, "ReserveSlot": RESERVED, "PublishBookingCreated": PUBLISHED,
    "CreatePaymentIntent": INTENT, "PublishPaymentIntentCreated": PUBLISHED, "AwaitPaymentConfirmation": PAID,
    "ConfirmBooking": CONFIRMED, "PublishBookingConfirmed": PUBLISHED, "NotifyBookingConfirmed": NOTIFIED,
    "CompleteBooking": COMPLETED, "ReleaseEarnings": EARNINGS, "PublishBookingCompleted": PUBLISHED,
}


def cancellation(cancelled_by, percent, refund, previous="CONFIRMED", payment="pi_3Nabc"):
    return ok({"bookingId": "bk_1001", "previousStatus": previous, "customerId": "cus_7", "providerId": "prov_9",
               "paymentIntentId": payment, "refundRequired": refund > 0, "refundAmount": refund,
               "refundPercent": percent, "currency": "USD", "cancelledBy": cancelled_by})


def cancel_input(by, reason):
    return {"operation": "CANCEL", "bookingId": "bk_1001", "cancelledBy": by, "reason": reason,
            "requestedBy": "user-1", "correlationId": "corr-cancel-1001"}


DISPUTE_INPUT = {"disputeId": "dsp_1", "bookingId": "bk_1001", "disputeType": "REFUND_REQUEST", "customerId": "cus_7",
                 "description": "The provider did not show up", "requestedRefundAmount": None, "correlationId": "corr-dispute-1"}
DISPUTE = ok({"disputeId": "dsp_1", "bookingId": "bk_1001", "disputeType": "REFUND_REQUEST", "customerId": "cus_7",
              "providerId": "prov_9", "paymentIntentId": "pi_3Nabc", "amountPaid": 120.0, "refundableAmount": 120.0,
              "currency": "USD", "requestedRefundAmount": None, "description": "The provider did not show up",
              "reviewDeadline": "2024-01-02T00:00:00Z", "resolutionDeadline": "2024-01-08T00:00:00Z"})


def decision(kind, resolution, amount, escalation=None):
    return ok({"decision": kind, "resolution": resolution, "refundAmount": amount, "currency": "USD",
               "rule": "R1", "explanation": "mocked rule", "escalationReason": escalation})


def escalation(passed=False):
    return ok({"escalationLevel": "MANUAL_REVIEW", "eventReason": "PROVIDER_NO_RESPONSE", "notes": "No answer in 24 hours",
               "deadlinePassed": passed, "reviewTimeoutSeconds": 500000, "heartbeatSeconds": 172800,
               "resolutionDeadline": "2024-01-08T00:00:00Z"})


def refund(amount):
    return ok({"refundId": "re_1", "amount": amount, "currency": "USD", "status": "succeeded"})


def resolved(resolution, amount, by="AUTOMATED"):
    return ok({"resolution": resolution, "refundAmount": amount, "currency": "USD", "resolvedBy": by,
               "resolvedAt": "2024-01-02T00:00:00Z"})


ONBOARDING_INPUT = {"providerId": "prov_9", "email": "pro@example.com", "country": "US", "businessType": "individual",
                    "refreshUrl": "https://app.example.com/onboarding/refresh", "returnUrl": "https://app.example.com/onboarding/done",
                    "correlationId": "corr-onboard-9"}

PAYOUT_INPUT = {"paymentType": "PAYOUT", "providerId": "prov_9", "stripeAccountId": "acct_prov9", "amount": 102.0,
                "currency": "USD", "correlationId": "corr-payout-1"}
DIRECT_INPUT = {"paymentType": "DIRECT", "bookingId": "bk_1001", "customerId": "cus_7", "providerId": "prov_9",
                "stripeAccountId": "acct_prov9", "amount": 120.0, "currency": "USD", "platformFee": 18.0,
                "paymentMethodId": "pm_card_visa", "correlationId": "corr-direct-1"}
REFUND_INPUT = {"paymentType": "REFUND", "paymentIntentId": "pi_3Nabc", "bookingId": "bk_1001", "amount": 60.0,
                "currency": "USD", "reason": "REQUESTED_BY_CUSTOMER", "correlationId": "corr-refund-1"}


# ---- scenarios ------------------------------------------------------------------------------
# name, definition, input, mocks, expected status, expected error, expected events, extra checks
SCENARIOS = [
    ("booking: paid, confirmed, completed, earnings released", "booking-lifecycle", BOOKING, BOOKING_HAPPY,
     "SUCCEEDED", None, ["Booking Created", "Payment Intent Created", "Payment Succeeded", "Booking Confirmed", "Booking Completed"],
     {"ReleaseEarnings": {"amount": 102.0, "idempotencyKey": "booking-bk_1001-earnings"}}),
    ("booking: transient errors are retried", "booking-lifecycle", BOOKING,
     {**BOOKING_HAPPY, "ValidateBooking": {"0-1": throw("Marketplace.TransientError"), "2": VALIDATED}},
     "SUCCEEDED", None, ["Booking Created", "Payment Intent Created", "Payment Succeeded", "Booking Confirmed", "Booking Completed"],
     {"#ValidateBooking": 3}),
    ("booking: slot taken -> rejected, nothing published", "booking-lifecycle", BOOKING,
     {"ValidateBooking": VALIDATED, "ReserveSlot": throw("Marketplace.SlotUnavailable", "providerId: slot 2024-01-03T10:00Z is taken")},
     "FAILED", "Marketplace.SlotUnavailable", [], {}),
    ("booking: payment window elapses -> expired, slot released", "booking-lifecycle", BOOKING,
     {**BOOKING_HAPPY, "AwaitPaymentConfirmation": throw("States.Timeout", "no callback in 900 s"),
      "CancelUnpaidPaymentIntent": ok({"paymentIntentId": "pi_3Nabc", "status": "canceled", "chargeId": None, "amount": 120.0, "currency": "USD"}),
      "ExpireBooking": ok({"status": "EXPIRED", "slotReleased": True}), "PublishBookingExpired": PUBLISHED,
      "NotifyBookingExpired": NOTIFIED},
     "SUCCEEDED", None, ["Booking Created", "Payment Intent Created", "Booking Expired"], {}),
    ("booking: paid at the last moment of the window -> confirmed", "booking-lifecycle", BOOKING,
     {**BOOKING_HAPPY, "AwaitPaymentConfirmation": throw("States.Timeout", "no callback in 900 s"),
      "CancelUnpaidPaymentIntent": ok({"paymentIntentId": "pi_3Nabc", "status": "succeeded", "chargeId": "ch_1", "amount": 120.0, "currency": "USD"})},
     "SUCCEEDED", None, ["Booking Created", "Payment Intent Created", "Payment Succeeded", "Booking Confirmed", "Booking Completed"], {}),
    ("booking: payment declined -> cancelled, slot released", "booking-lifecycle", BOOKING,
     {**BOOKING_HAPPY, "AwaitPaymentConfirmation": throw("Marketplace.PaymentDeclined", json.dumps({"failureCode": "card_declined", "failureMessage": "Your card was declined."})),
      "FailDeclinedBooking": ok({"status": "CANCELLED", "slotReleased": True}), "PublishPaymentDeclined": PUBLISHED,
      "NotifyPaymentDeclined": NOTIFIED},
     "FAILED", "Marketplace.PaymentDeclined", ["Booking Created", "Payment Intent Created", "Payment Failed", "Booking Cancelled"], {}),
    ("booking: confirmation fails after payment -> full refund (compensation)", "booking-lifecycle", BOOKING,
     {**BOOKING_HAPPY, "ConfirmBooking": throw("Marketplace.InvalidTransition", "status: EXPIRED cannot become CONFIRMED"),
      "RefundFailedBooking": refund(120.0), "ReleaseSlotAfterRefund": ok({"status": "CANCELLED", "slotReleased": True}),
      "PublishCompensationRefund": PUBLISHED, "NotifyCompensationRefund": NOTIFIED},
     "FAILED", "Marketplace.BookingFailed", ["Booking Created", "Payment Intent Created", "Refund Issued", "Booking Cancelled"],
     {"RefundFailedBooking": {"amount": 120.0, "idempotencyKey": "booking-bk_1001-compensation-refund"}}),
    ("booking: compensation itself fails -> CompensationFailed", "booking-lifecycle", BOOKING,
     {**BOOKING_HAPPY, "ConfirmBooking": throw("Marketplace.InvalidTransition"),
      "RefundFailedBooking": throw("Marketplace.PaymentProviderError", "charge_already_refunded")},
     "FAILED", "Marketplace.CompensationFailed", ["Booking Created", "Payment Intent Created"], {}),
    ("booking: cancelled before the service ends -> no completion", "booking-lifecycle", BOOKING,
     {**BOOKING_HAPPY, "CompleteBooking": ok({"completed": False, "status": "CANCELLED"})},
     "SUCCEEDED", None, ["Booking Created", "Payment Intent Created", "Payment Succeeded", "Booking Confirmed"], {"#ReleaseEarnings": 0}),
    ("cancel: provider cancels -> full refund", "booking-lifecycle", cancel_input("PROVIDER", "Provider is ill"),
     {"CancelBooking": cancellation("PROVIDER", 100, 120.0), "RefundCancellation": refund(120.0),
      "PublishCancellationWithRefund": PUBLISHED, "NotifyCancellation": NOTIFIED},
     "SUCCEEDED", None, ["Booking Cancelled", "Refund Issued"], {"RefundCancellation": {"amount": 120.0}}),
    ("cancel: customer cancels late -> 50 % refund", "booking-lifecycle", cancel_input("CUSTOMER", "Change of plans"),
     {"CancelBooking": cancellation("CUSTOMER", 50, 60.0), "RefundCancellation": refund(60.0),
      "PublishCancellationWithRefund": PUBLISHED, "NotifyCancellation": NOTIFIED},
     "SUCCEEDED", None, ["Booking Cancelled", "Refund Issued"], {"RefundCancellation": {"amount": 60.0, "idempotencyKey": "booking-bk_1001-cancellation-refund"}}),
    ("cancel: unpaid booking -> PaymentIntent cancelled, nothing refunded", "booking-lifecycle", cancel_input("CUSTOMER", "Found another slot"),
     {"CancelBooking": cancellation("CUSTOMER", 0, 0, previous="PENDING_PAYMENT"),
      "CancelPendingPaymentIntent": ok({"paymentIntentId": "pi_3Nabc", "status": "canceled", "chargeId": None, "amount": 120.0, "currency": "USD"}),
      "PublishCancellationWithoutRefund": PUBLISHED, "NotifyCancellation": NOTIFIED},
     "SUCCEEDED", None, ["Booking Cancelled"], {"#RefundCancellation": 0}),
    ("cancel: after the start -> refused", "booking-lifecycle", cancel_input("CUSTOMER", "Too late"),
     {"CancelBooking": throw("Marketplace.ValidationError", "startDateTime: the service has started; open a dispute")},
     "FAILED", "Marketplace.ValidationError", [], {}),

    ("payment: DIRECT succeeds at once", "payment-processing", DIRECT_INPUT,
     {"CreateDirectPayment": ok({"paymentIntentId": "pi_9", "status": "succeeded", "chargeId": "ch_9", "amount": 120.0, "currency": "USD", "platformFee": 18.0, "providerEarnings": 102.0}),
      "PublishDirectIntentCreated": PUBLISHED, "PublishPaymentSucceeded": PUBLISHED},
     "SUCCEEDED", None, ["Payment Intent Created", "Payment Succeeded"], {}),
    ("payment: DIRECT needs 3-D Secure, then declined", "payment-processing", DIRECT_INPUT,
     {"CreateDirectPayment": ok({"paymentIntentId": "pi_9", "status": "requires_action", "chargeId": None, "amount": 120.0, "currency": "USD", "platformFee": 18.0, "providerEarnings": 102.0}),
      "PublishDirectIntentCreated": PUBLISHED,
      "AwaitDirectPayment": throw("Marketplace.PaymentDeclined", json.dumps({"failureCode": "authentication_required", "failureMessage": "3-D Secure failed"})),
      "PublishPaymentFailed": PUBLISHED},
     "FAILED", "Marketplace.PaymentFailed", ["Payment Intent Created", "Payment Failed"], {}),
    ("payment: PAYOUT settles while waiting", "payment-processing", PAYOUT_INPUT,
     {"CreatePayout": ok({"payoutId": "po_1", "status": "pending", "amount": 102.0, "currency": "USD", "arrivalDate": "2024-01-02", "failureCode": None, "failureMessage": None}),
      "AwaitPayoutSettlement": callback({"payoutId": "po_1", "status": "paid", "amount": 102.0, "currency": "USD", "arrivalDate": "2024-01-02"}),
      "PublishPayoutCompleted": PUBLISHED},
     "SUCCEEDED", None, ["Payout Completed"], {}),
    ("payment: PAYOUT fails at the bank", "payment-processing", PAYOUT_INPUT,
     {"CreatePayout": ok({"payoutId": "po_1", "status": "pending", "amount": 102.0, "currency": "USD", "arrivalDate": "2024-01-02", "failureCode": None, "failureMessage": None}),
      "AwaitPayoutSettlement": throw("Marketplace.PayoutFailed", json.dumps({"failureCode": "account_closed", "failureMessage": "The bank account has been closed"})),
      "PublishPayoutFailed": PUBLISHED},
     "FAILED", "Marketplace.PayoutFailed", ["Payout Failed"], {}),
    ("payment: REFUND still pending after the wait -> left to the webhook", "payment-processing", REFUND_INPUT,
     {"CreateRefund": ok({"refundId": "re_5", "status": "pending", "amount": 60.0, "currency": "USD"}),
      "AwaitRefundSettlement": throw("States.Timeout")},
     "SUCCEEDED", None, [], {}),
    ("payment: REFUND succeeds", "payment-processing", REFUND_INPUT,
     {"CreateRefund": ok({"refundId": "re_5", "status": "succeeded", "amount": 60.0, "currency": "USD"}), "PublishRefundIssued": PUBLISHED},
     "SUCCEEDED", None, ["Refund Issued"], {}),
    ("payment: unknown type -> validation error", "payment-processing", {"paymentType": "CRYPTO"}, {},
     "FAILED", "Marketplace.ValidationError", [], {}),

    ("dispute: provider accepts -> automatic refund", "dispute-resolution", DISPUTE_INPUT,
     {"CreateDispute": DISPUTE, "PublishDisputeCreated": PUBLISHED, "NotifyProviderOfDispute": NOTIFIED,
      "AwaitProviderResponse": callback({"response": "ACCEPT", "offerAmount": None, "message": "Sorry"}),
      "EvaluateDispute": decision("REFUND", "REFUNDED", 120.0), "RefundDispute": refund(120.0), "PublishDisputeRefund": PUBLISHED,
      "ResolveDispute": resolved("REFUNDED", 120.0), "PublishDisputeResolved": PUBLISHED, "NotifyDisputeResolved": NOTIFIED},
     "SUCCEEDED", None, ["Dispute Created", "Refund Issued", "Dispute Resolved"], {"RefundDispute": {"amount": 120.0, "idempotencyKey": "dispute-dsp_1-refund"}}),
    ("dispute: no answer in 24 h -> escalated, admin refunds part", "dispute-resolution", DISPUTE_INPUT,
     {"CreateDispute": DISPUTE, "PublishDisputeCreated": PUBLISHED, "NotifyProviderOfDispute": NOTIFIED,
      "AwaitProviderResponse": throw("States.Timeout"), "EvaluateDispute": decision("ESCALATE", None, 0, "PROVIDER_NO_RESPONSE"),
      "EscalateDispute": escalation(), "PublishDisputeEscalated": PUBLISHED, "NotifyAdmins": NOTIFIED,
      "AwaitAdminDecision": callback({"resolution": "PARTIALLY_REFUNDED", "refundAmount": 40.0, "adminId": "admin-1", "notes": "Half an hour late"}),
      "RefundDispute": refund(40.0), "PublishDisputeRefund": PUBLISHED, "ResolveDispute": resolved("PARTIALLY_REFUNDED", 40.0, "ADMIN:admin-1"),
      "PublishDisputeResolved": PUBLISHED, "NotifyDisputeResolved": NOTIFIED},
     "SUCCEEDED", None, ["Dispute Created", "Dispute Escalated", "Refund Issued", "Dispute Resolved"], {"RefundDispute": {"amount": 40.0}}),
    ("dispute: review stalls, admins reminded, then rejected", "dispute-resolution", DISPUTE_INPUT,
     {"CreateDispute": DISPUTE, "PublishDisputeCreated": PUBLISHED, "NotifyProviderOfDispute": NOTIFIED,
      "AwaitProviderResponse": callback({"response": "REJECT", "offerAmount": None, "message": "I was there"}),
      "EvaluateDispute": decision("ESCALATE", None, 0, "NO_AGREEMENT"),
      "EscalateDispute": {"0": escalation(), "1": escalation()}, "PublishDisputeEscalated": {"0": PUBLISHED, "1": PUBLISHED},
      "NotifyAdmins": {"0": NOTIFIED, "1": NOTIFIED},
      "AwaitAdminDecision": {"0": throw("States.HeartbeatTimeout"), "1": callback({"resolution": "REJECTED", "refundAmount": 0, "adminId": "admin-2", "notes": "Provider proved attendance"})},
      "ResolveDispute": resolved("REJECTED", 0, "ADMIN:admin-2"), "PublishDisputeResolved": PUBLISHED, "NotifyDisputeResolved": NOTIFIED},
     "SUCCEEDED", None, ["Dispute Created", "Dispute Escalated", "Dispute Escalated", "Dispute Resolved"], {"#RefundDispute": 0}),
    ("dispute: 7-day deadline -> final escalation, never silence", "dispute-resolution", DISPUTE_INPUT,
     {"CreateDispute": DISPUTE, "PublishDisputeCreated": PUBLISHED, "NotifyProviderOfDispute": NOTIFIED,
      "AwaitProviderResponse": throw("States.Timeout"), "EvaluateDispute": decision("ESCALATE", None, 0, "PROVIDER_NO_RESPONSE"),
      "EscalateDispute": escalation(), "PublishDisputeEscalated": PUBLISHED, "NotifyAdmins": NOTIFIED,
      "AwaitAdminDecision": throw("States.Timeout", "no decision before the deadline"),
      "FinalEscalation": ok({"escalationLevel": "FINAL", "resolutionDeadline": "2024-01-08T00:00:00Z"}),
      "PublishFinalEscalation": PUBLISHED, "NotifyFinalEscalation": NOTIFIED},
     "FAILED", "Marketplace.DisputeEscalated", ["Dispute Created", "Dispute Escalated", "Dispute Escalated"], {}),
    ("dispute: invalid -> rejected before any record", "dispute-resolution", DISPUTE_INPUT,
     {"CreateDispute": throw("Marketplace.ValidationError", "bookingId: booking bk_1001 was never paid")},
     "FAILED", "Marketplace.ValidationError", [], {}),

    ("onboarding: account, link, profile, welcome", "provider-onboarding", ONBOARDING_INPUT,
     {"CreateConnectedAccount": ok({"stripeAccountId": "acct_prov9", "created": True, "chargesEnabled": False, "payoutsEnabled": False}),
      "CreateAccountLink": ok({"url": "https://connect.stripe.com/setup/e/acct_prov9/x", "expiresAt": "2024-01-01T00:05:00Z"}),
      "UpdateProviderProfile": ok({"onboardingStatus": "PENDING_VERIFICATION"}), "SendWelcomeNotification": NOTIFIED},
     "SUCCEEDED", None, [], {"CreateConnectedAccount": {"idempotencyKey": "provider-prov_9-connect-account"}}),
    ("onboarding: Stripe fails, retried, then permanent -> Provider Onboarding Failed", "provider-onboarding", ONBOARDING_INPUT,
     {"CreateConnectedAccount": {"0-2": throw("Marketplace.TransientError", "Stripe 503"), "3": throw("Marketplace.PaymentProviderError", "country: not supported")},
      "PublishOnboardingFailed": PUBLISHED, "NotifyOnboardingFailed": NOTIFIED},
     "FAILED", "Marketplace.ProviderOnboardingFailed", ["Provider Onboarding Failed"], {"#CreateConnectedAccount": 4}),
]


def find_binary(explicit):
    candidates = [explicit, os.environ.get("MARKETPLACE"),
                  os.path.join(ROOT, "target", "release", "marketplace"), os.path.join(ROOT, "target", "debug", "marketplace")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            probe = subprocess.run([c, "states", "run", "--help"], capture_output=True, text=True)
            if probe.returncode == 0 and "--mock-config" in probe.stdout:
                return c
    return None


def substituted(definition_file, tmp):
    """The definition with every ${Name} replaced as the CDK app would (fake account)."""
    text = open(definition_file, encoding="utf-8").read()

    def arn(m):
        name = m.group(1)
        if name == "EventBusName":
            return "ecosystem-marketplace-events"
        fn = re.sub(r"FunctionArn$", "", name)
        kebab = re.sub(r"(?<!^)([A-Z])", r"-\1", fn).lower()
        return f"arn:aws:lambda:us-east-1:123456789012:function:ecosystem-marketplace-{kebab}"

    out = os.path.join(tmp, os.path.basename(definition_file))
    with open(out, "w", encoding="utf-8") as f:
        f.write(re.sub(r"\$\{([A-Za-z0-9_]+)\}", arn, text))
    return out


def schema_for(source, detail_type):
    path = os.path.join(SCHEMAS, f"{source}@{detail_type.replace(' ', '')}.json")
    schema = json.load(open(path, encoding="utf-8"))
    return {**schema["definitions"][schema["title"]], "definitions": schema["definitions"], "$schema": schema["$schema"]}


def run(binary, scenario, tmp):
    name, machine, execution_input, mocks, status, error, events, checks = scenario
    responses, case = {}, {}
    for state, mock in mocks.items():
        key = f"{state}Response"
        responses[key] = mock if not ("Return" in mock or "Throw" in mock) else {"0": mock}
        case[state] = key
    config = {"StateMachines": {machine: {"TestCases": {"case": case}}}, "MockedResponses": responses}
    config_file = os.path.join(tmp, "mock-config.json")
    json.dump(config, open(config_file, "w", encoding="utf-8"))
    definition = substituted(os.path.join(ROOT, "statemachines", f"{machine}.asl.json"), tmp)
    proc = subprocess.run([binary, "states", "run", "--definition", definition, "--input", json.dumps(execution_input),
                           "--mock-config", config_file, "--state-machine-name", machine, "--test-case", "case"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode not in (0, 1):
        return [f"exit {proc.returncode}: {proc.stderr.strip()[:500]}"]
    result = json.loads(proc.stdout)
    problems = []
    if result["status"] != status:
        problems.append(f"status {result['status']} ({result.get('error')}: {result.get('cause')}), expected {status}")
    if error is not None and result.get("error") != error:
        problems.append(f"error {result.get('error')!r}, expected {error!r}")

    # Walk the history: which state scheduled which task with which parameters.
    current, scheduled, published = None, {}, []
    for event in result["history"]:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            current = entered["name"]
        if event["type"] == "TaskScheduled":
            params = json.loads(event["taskScheduledEventDetails"]["parameters"])
            scheduled.setdefault(current, []).append(params)
            if "Entries" in params:
                published.extend(params["Entries"])
    # Events only count once their task succeeded; every mocked putEvents here succeeds.
    detail_types = [e["DetailType"] for e in published]
    if detail_types != events:
        problems.append(f"events {detail_types}, expected {events}")
    correlation = execution_input.get("correlationId")
    for e in published:
        detail = e["Detail"] if isinstance(e["Detail"], dict) else json.loads(e["Detail"])
        try:
            jsonschema.Draft4Validator(schema_for(e["Source"], e["DetailType"])).validate(detail)
        except jsonschema.ValidationError as exc:
            problems.append(f"{e['DetailType']} detail invalid: {'.'.join(map(str, exc.path))}: {exc.message}")
        if correlation and detail.get("correlationId") != correlation:
            problems.append(f"{e['DetailType']} correlationId {detail.get('correlationId')!r}, expected {correlation!r}")
        if e.get("EventBusName") != "ecosystem-marketplace-events":
            problems.append(f"{e['DetailType']} sent to {e.get('EventBusName')!r}")
    for key, expected in checks.items():
        if key.startswith("#"):
            count = len(scheduled.get(key[1:], []))
            if count != expected:
                problems.append(f"{key[1:]} invoked {count} times, expected {expected}")
            continue
        calls = scheduled.get(key, [])
        if not calls:
            problems.append(f"{key} was never invoked")
            continue
        payload = calls[-1].get("Payload", {})
        for field, value in expected.items():
            if payload.get(field) != value:
                problems.append(f"{key}.{field} = {payload.get(field)!r}, expected {value!r}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--marketplace")
    parser.add_argument("-k", dest="only", help="run the scenarios whose name contains this text")
    args = parser.parse_args()
    binary = find_binary(args.marketplace)
    if binary is None:
        print("workflow scenarios: skipped (no marketplace binary with `states run --mock-config` yet)")
        return 0
    passed = failed = 0
    definitions = [os.path.join(ROOT, "statemachines", f) for f in sorted(os.listdir(os.path.join(ROOT, "statemachines"))) if f.endswith(".asl.json")]
    validation = subprocess.run([binary, "states", "validate", *definitions], capture_output=True, text=True)
    if validation.returncode == 0:
        passed += 1
        print("ok   marketplace states validate statemachines/*.asl.json")
    else:
        failed += 1
        print(f"FAIL marketplace states validate: {(validation.stdout + validation.stderr).strip()[:500]}")
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in SCENARIOS:
            if args.only and args.only not in scenario[0]:
                continue
            problems = run(binary, scenario, tmp)
            if problems:
                failed += 1
                print(f"FAIL {scenario[0]}")
                for p in problems:
                    print(f"     {p}")
            else:
                passed += 1
                print(f"ok   {scenario[0]}")
    print(f"workflow scenarios: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
