#!/usr/bin/env node
// Writes the four workflow definitions (statemachines/*.asl.json) from the building blocks
// below, so that every Retry/Catch policy and every event entry is written once.
//
//   node statemachines/generate.mjs          write the files
//   node statemachines/generate.mjs --check  exit 1 when a checked-in file differs
//
// The .asl.json files are the artefacts that AWS and the local interpreter run; this script is
// only how they are kept consistent. The contracts (actions, fields, error names) are
// documented in statemachines/README.md.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------
// Error names (stable contract between the functions and the workflows)
// ---------------------------------------------------------------------------------------------
export const LAMBDA_SERVICE_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
];
const TRANSIENT = 'Marketplace.TransientError';
const VALIDATION = 'Marketplace.ValidationError';

/** Lambda service hiccups: quick, few, jittered. */
const retryLambda = {
  ErrorEquals: LAMBDA_SERVICE_ERRORS,
  IntervalSeconds: 1,
  MaxAttempts: 4,
  BackoffRate: 2,
  MaxDelaySeconds: 20,
  JitterStrategy: 'FULL',
};
/** Our own transient errors (store throttling, Stripe 5xx/429/network): exponential, jittered. */
const retryTransient = (maxAttempts = 5) => ({
  ErrorEquals: [TRANSIENT],
  IntervalSeconds: 2,
  MaxAttempts: maxAttempts,
  BackoffRate: 2,
  MaxDelaySeconds: 60,
  JitterStrategy: 'FULL',
});
/** events:putEvents: a failed entry or an EventBridge service error is retried. */
const retryEvents = {
  ErrorEquals: ['EventBridge.FailedEntry', 'EventBridge.AmazonEventBridgeException'],
  IntervalSeconds: 1,
  MaxAttempts: 5,
  BackoffRate: 2,
  MaxDelaySeconds: 30,
  JitterStrategy: 'FULL',
};

const FN = {
  booking: '${BookingManagerFunctionArn}',
  payout: '${PayoutManagerFunctionArn}',
  notify: '${NotificationHandlerFunctionArn}',
  dispute: '${DisputeHandlerFunctionArn}',
};

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/** `{"a.$": "$.x"}` style parameters: values starting with `$` are paths, others literals. */
function params(fields) {
  const out = {};
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string' && (v.startsWith('$') || v.startsWith('States.'))) out[`${k}.$`] = v;
    else if (Array.isArray(v)) out[k] = v.map((e) => (e !== null && typeof e === 'object' ? params(e) : e));
    else if (v !== null && typeof v === 'object') out[k] = params(v);
    else out[k] = v;
  }
  return out;
}

/** Picks `fields` out of `base` (a Lambda result's `$.Payload`, a callback's `$`). */
function select(base, fields) {
  const out = {};
  for (const f of fields) out[`${f}.$`] = `${base}.${f}`;
  return out;
}

/**
 * A Lambda task calling `action` on `fn` with `payload`.
 * opts: resultPath, fields (what ResultSelector keeps), catch, next|end, retry (extra),
 *       token: { timeoutSeconds | timeoutSecondsPath, heartbeatSeconds } for .waitForTaskToken.
 */
function lambda(comment, fn, action, payload, opts) {
  const token = opts.token;
  const state = {
    Type: 'Task',
    Comment: comment,
    Resource: token
      ? 'arn:aws:states:::lambda:invoke.waitForTaskToken'
      : 'arn:aws:states:::lambda:invoke',
    Parameters: {
      FunctionName: fn,
      Payload: {
        action,
        ...params(payload),
        ...(token ? { 'taskToken.$': '$$.Task.Token' } : {}),
        'correlationId.$': '$.correlationId',
        'executionArn.$': '$$.Execution.Id',
      },
    },
  };
  if (opts.fields) {
    state.ResultSelector = select(token ? '$' : '$.Payload', opts.fields);
  }
  state.ResultPath = opts.resultPath === undefined ? null : opts.resultPath;
  if (token) {
    if (token.timeoutSecondsPath) state.TimeoutSecondsPath = token.timeoutSecondsPath;
    else state.TimeoutSeconds = token.timeoutSeconds;
    if (token.heartbeatSecondsPath) state.HeartbeatSecondsPath = token.heartbeatSecondsPath;
    else if (token.heartbeatSeconds) state.HeartbeatSeconds = token.heartbeatSeconds;
  } else {
    state.TimeoutSeconds = opts.timeoutSeconds ?? 30;
  }
  state.Retry = [retryLambda, ...(opts.noTransientRetry ? [] : [retryTransient(opts.attempts)])];
  if (opts.catch) state.Catch = opts.catch;
  return link(state, opts);
}

function link(state, opts) {
  if (opts.end) state.End = true;
  else state.Next = opts.next;
  return state;
}

/** A `Detail` object: every detail carries correlationId and the time of publication. */
function detail(fields) {
  return params({ ...fields, correlationId: '$.correlationId', timestamp: '$$.State.EnteredTime' });
}

/** An events:putEvents task publishing `entries` ([source, detailType, detailFields]). */
function publish(comment, entries, opts) {
  const state = {
    Type: 'Task',
    Comment: comment,
    Resource: 'arn:aws:states:::events:putEvents',
    Parameters: {
      Entries: entries.map(([source, detailType, fields]) => ({
        EventBusName: '${EventBusName}',
        Source: source,
        DetailType: detailType,
        Detail: detail(fields),
      })),
    },
    ResultPath: null,
    TimeoutSeconds: 30,
    Retry: [retryEvents],
  };
  if (opts.catch) state.Catch = opts.catch;
  return link(state, opts);
}

/** A notification (best effort: a failure is recorded in `$.notificationError` and the flow goes on). */
function notify(comment, template, recipients, data, opts) {
  return lambda(
    comment,
    FN.notify,
    'notify',
    {
      template,
      recipients,
      idempotencyKey: opts.idempotencyKey,
      data,
    },
    {
      resultPath: null,
      attempts: 3,
      catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.notificationError', Next: opts.next ?? opts.afterFailure }],
      ...opts,
    },
  );
}

/** First state of every workflow: make sure `$.correlationId` exists (default: execution name). */
function correlationPrologue(next) {
  return {
    EnsureCorrelationId: {
      Type: 'Choice',
      Comment: 'Every event and log line carries correlationId; default it to the execution name.',
      Choices: [{ Variable: '$.correlationId', IsPresent: true, Next: next }],
      Default: 'CaptureExecutionName',
    },
    CaptureExecutionName: {
      Type: 'Pass',
      Parameters: { 'value.$': '$$.Execution.Name' },
      ResultPath: '$.executionName',
      Next: 'DefaultCorrelationId',
    },
    DefaultCorrelationId: {
      Type: 'Pass',
      Comment: 'ResultPath applies to the raw input, so this copies the scalar into $.correlationId.',
      InputPath: '$.executionName.value',
      ResultPath: '$.correlationId',
      Next: next,
    },
  };
}

function clean(obj) {
  return JSON.parse(JSON.stringify(obj));
}

function machine(comment, timeoutSeconds, startAt, states) {
  return clean({ Comment: comment, QueryLanguage: 'JSONPath', TimeoutSeconds: timeoutSeconds, StartAt: startAt, States: states });
}

const BOOKING = 'marketplace.booking';
const PAYMENT = 'marketplace.payment';
const DISPUTE = 'marketplace.dispute';
const PROVIDER = 'marketplace.provider';

// ---------------------------------------------------------------------------------------------
// Booking lifecycle
// ---------------------------------------------------------------------------------------------
function bookingLifecycle() {
  const b = '$.booking';
  const errorTo = (next) => [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: next }];
  const states = {
    ...correlationPrologue('RouteOperation'),
    RouteOperation: {
      Type: 'Choice',
      Comment: 'BOOK (default) runs the whole lifecycle; CANCEL cancels an existing booking.',
      Choices: [
        { And: [{ Variable: '$.operation', IsPresent: true }, { Variable: '$.operation', StringEquals: 'CANCEL' }], Next: 'CancelBooking' },
        { Or: [{ Not: { Variable: '$.operation', IsPresent: true } }, { Variable: '$.operation', StringEquals: 'BOOK' }], Next: 'ValidateBooking' },
      ],
      Default: 'UnknownOperation',
    },
    UnknownOperation: {
      Type: 'Fail',
      Error: VALIDATION,
      Cause: 'operation: must be BOOK or CANCEL',
    },

    // ---- booking phase -----------------------------------------------------------------
    ValidateBooking: lambda(
      'Service active, provider can take charges, times in the future and ordered, price consistent.',
      FN.booking,
      'validateBooking',
      {
        bookingId: '$.bookingId',
        serviceId: '$.serviceId',
        customerId: '$.customerId',
        providerId: '$.providerId',
        startDateTime: '$.startDateTime',
        endDateTime: '$.endDateTime',
        amount: '$.amount',
        currency: '$.currency',
        now: '$$.Execution.StartTime',
      },
      {
        resultPath: '$.booking',
        fields: ['bookingId', 'serviceId', 'customerId', 'providerId', 'startDateTime', 'endDateTime', 'amount', 'currency', 'platformFee', 'providerEarnings', 'stripeAccountId'],
        catch: errorTo('BookingRejected'),
        next: 'ReserveSlot',
      },
    ),
    BookingRejected: {
      Type: 'Fail',
      Comment: 'Invalid request, unknown/inactive service, provider not onboarded, or slot taken: nothing was reserved or charged.',
      ErrorPath: '$.error.Error',
      CausePath: '$.error.Cause',
    },
    ReserveSlot: lambda(
      'Creates the booking (PENDING_PAYMENT) and claims the provider slot with a conditional write.',
      FN.booking,
      'reserveSlot',
      {
        bookingId: `${b}.bookingId`,
        serviceId: `${b}.serviceId`,
        customerId: `${b}.customerId`,
        providerId: `${b}.providerId`,
        startDateTime: `${b}.startDateTime`,
        endDateTime: `${b}.endDateTime`,
        amount: `${b}.amount`,
        currency: `${b}.currency`,
        platformFee: `${b}.platformFee`,
        providerEarnings: `${b}.providerEarnings`,
      },
      { resultPath: '$.reservation', fields: ['status', 'reservedUntil'], catch: errorTo('BookingRejected'), next: 'PublishBookingCreated' },
    ),
    PublishBookingCreated: publish(
      'Booking Created',
      [[BOOKING, 'Booking Created', {
        bookingId: `${b}.bookingId`, serviceId: `${b}.serviceId`, customerId: `${b}.customerId`,
        providerId: `${b}.providerId`, startDateTime: `${b}.startDateTime`, endDateTime: `${b}.endDateTime`,
        amount: `${b}.amount`, currency: `${b}.currency`,
      }]],
      { next: 'CreatePaymentIntent', catch: errorTo('ReleaseSlotAfterFailure') },
    ),
    CreatePaymentIntent: lambda(
      'Stripe PaymentIntent on the platform account (separate charges and transfers; transfer_group = bookingId).',
      FN.payout,
      'createPaymentIntent',
      {
        bookingId: `${b}.bookingId`,
        customerId: `${b}.customerId`,
        providerId: `${b}.providerId`,
        amount: `${b}.amount`,
        currency: `${b}.currency`,
        platformFee: `${b}.platformFee`,
        stripeAccountId: `${b}.stripeAccountId`,
        confirm: false,
        idempotencyKey: 'States.Format(\'booking-{}-payment-intent\', $.booking.bookingId)',
      },
      { resultPath: '$.payment', fields: ['paymentIntentId', 'clientSecret', 'status'], catch: errorTo('ReleaseSlotAfterFailure'), next: 'PublishPaymentIntentCreated', attempts: 6 },
    ),
    PublishPaymentIntentCreated: publish(
      'Payment Intent Created (the client confirms the payment with the client secret)',
      [[PAYMENT, 'Payment Intent Created', {
        paymentIntentId: '$.payment.paymentIntentId', bookingId: `${b}.bookingId`, customerId: `${b}.customerId`,
        providerId: `${b}.providerId`, amount: `${b}.amount`, currency: `${b}.currency`,
      }]],
      { next: 'AwaitPaymentConfirmation', catch: errorTo('CancelPaymentAfterFailure') },
    ),
    AwaitPaymentConfirmation: lambda(
      'Stores the task token on the payment record; the Stripe webhook (or a Payment Succeeded/Failed event) completes it. 15-minute payment window.',
      FN.payout,
      'awaitPaymentConfirmation',
      { paymentIntentId: '$.payment.paymentIntentId', bookingId: `${b}.bookingId` },
      {
        token: { timeoutSeconds: 900 },
        resultPath: '$.paymentResult',
        fields: ['paymentIntentId', 'status', 'chargeId', 'amount', 'currency'],
        catch: [
          { ErrorEquals: ['States.Timeout'], ResultPath: '$.error', Next: 'CancelUnpaidPaymentIntent' },
          { ErrorEquals: ['Marketplace.PaymentDeclined'], ResultPath: '$.error', Next: 'FailDeclinedBooking' },
          { ErrorEquals: ['Marketplace.BookingCancelled'], ResultPath: '$.error', Next: 'CancelledWhileAwaitingPayment' },
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'CancelPaymentAfterFailure' },
        ],
        next: 'ConfirmBooking',
      },
    ),
    CancelledWhileAwaitingPayment: {
      Type: 'Succeed',
      Comment: 'A CANCEL execution cancelled the booking while this one waited; it owns the PaymentIntent cancellation or refund.',
    },

    // payment window elapsed: cancel the PaymentIntent; if it raced to success, honour it
    CancelUnpaidPaymentIntent: lambda(
      'Cancels the PaymentIntent; reports `succeeded` when the payment completed at the last moment.',
      FN.payout,
      'cancelPaymentIntent',
      { paymentIntentId: '$.payment.paymentIntentId', reason: 'abandoned' },
      { resultPath: '$.paymentCancellation', fields: ['paymentIntentId', 'status', 'chargeId', 'amount', 'currency'], catch: errorTo('ExpireBooking'), next: 'PaidAtTheLastMoment' },
    ),
    PaidAtTheLastMoment: {
      Type: 'Choice',
      Choices: [{ Variable: '$.paymentCancellation.status', StringEquals: 'succeeded', Next: 'AdoptLatePayment' }],
      Default: 'ExpireBooking',
    },
    AdoptLatePayment: {
      Type: 'Pass',
      InputPath: '$.paymentCancellation',
      ResultPath: '$.paymentResult',
      Next: 'ConfirmBooking',
    },
    ExpireBooking: lambda(
      'Status EXPIRED, slot released (conditional on PENDING_PAYMENT, so a concurrent cancel wins cleanly).',
      FN.booking,
      'expireBooking',
      { bookingId: `${b}.bookingId`, reason: 'PAYMENT_NOT_RECEIVED' },
      { resultPath: '$.expiry', fields: ['status', 'slotReleased'], next: 'PublishBookingExpired', attempts: 8 },
    ),
    PublishBookingExpired: publish(
      'Booking Expired',
      [[BOOKING, 'Booking Expired', { bookingId: `${b}.bookingId`, customerId: `${b}.customerId`, providerId: `${b}.providerId`, reason: 'PAYMENT_NOT_RECEIVED' }]],
      { next: 'NotifyBookingExpired' },
    ),
    NotifyBookingExpired: notify('Tell the customer the hold lapsed.', 'BOOKING_EXPIRED',
      [{ role: 'CUSTOMER', userId: `${b}.customerId` }], { bookingId: `${b}.bookingId` },
      { idempotencyKey: 'States.Format(\'{}:BOOKING_EXPIRED\', $.booking.bookingId)', next: 'BookingExpired' }),
    BookingExpired: { Type: 'Succeed', Comment: 'A business outcome, not a system failure.' },

    // payment declined: release the slot, publish Payment Failed, cancel the booking
    FailDeclinedBooking: lambda(
      'Status CANCELLED (SYSTEM, PAYMENT_DECLINED), slot released.',
      FN.booking,
      'failBooking',
      { bookingId: `${b}.bookingId`, reason: 'PAYMENT_DECLINED' },
      { resultPath: '$.failure', fields: ['status', 'slotReleased'], next: 'ParseDeclineCause', attempts: 8 },
    ),
    ParseDeclineCause: {
      Type: 'Pass',
      Comment: 'Marketplace.PaymentDeclined carries {"failureCode", "failureMessage"} as its cause (JSON).',
      Parameters: { 'f.$': 'States.StringToJson($.error.Cause)' },
      ResultPath: '$.failureCause',
      Next: 'PublishPaymentDeclined',
    },
    PublishPaymentDeclined: publish(
      'Payment Failed + Booking Cancelled',
      [
        [PAYMENT, 'Payment Failed', { paymentIntentId: '$.payment.paymentIntentId', bookingId: `${b}.bookingId`, amount: `${b}.amount`, currency: `${b}.currency`, failureCode: '$.failureCause.f.failureCode', failureMessage: '$.failureCause.f.failureMessage' }],
        [BOOKING, 'Booking Cancelled', { bookingId: `${b}.bookingId`, cancelledBy: 'SYSTEM', reason: 'PAYMENT_DECLINED', refundAmount: 0, currency: `${b}.currency` }],
      ],
      { next: 'NotifyPaymentDeclined' },
    ),
    NotifyPaymentDeclined: notify('Tell the customer the payment was declined.', 'PAYMENT_DECLINED',
      [{ role: 'CUSTOMER', userId: `${b}.customerId` }], { bookingId: `${b}.bookingId`, paymentIntentId: '$.payment.paymentIntentId' },
      { idempotencyKey: 'States.Format(\'{}:PAYMENT_DECLINED\', $.booking.bookingId)', next: 'PaymentDeclined' }),
    PaymentDeclined: { Type: 'Fail', Error: 'Marketplace.PaymentDeclined', Cause: 'The payment was declined; the booking was cancelled and the slot released.' },

    // a permanent failure before any money moved: cancel the PaymentIntent, release the slot
    CancelPaymentAfterFailure: lambda(
      'Compensation: cancel the PaymentIntent; refund it if it already succeeded.',
      FN.payout,
      'cancelPaymentIntent',
      { paymentIntentId: '$.payment.paymentIntentId', reason: 'abandoned' },
      { resultPath: '$.paymentCancellation', fields: ['paymentIntentId', 'status', 'chargeId', 'amount', 'currency'], catch: errorTo('CompensationFailed'), next: 'WasChargedBeforeFailure', attempts: 8 },
    ),
    WasChargedBeforeFailure: {
      Type: 'Choice',
      Choices: [{ Variable: '$.paymentCancellation.status', StringEquals: 'succeeded', Next: 'RefundFailedBooking' }],
      Default: 'ReleaseSlotAfterFailure',
    },
    ReleaseSlotAfterFailure: lambda(
      'Compensation: booking CANCELLED (SYSTEM), slot released. Idempotent; a booking never created is a no-op.',
      FN.booking,
      'failBooking',
      { bookingId: `${b}.bookingId`, reason: 'WORKFLOW_FAILURE' },
      { resultPath: '$.failure', fields: ['status', 'slotReleased'], catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.compensationError', Next: 'CompensationFailed' }], next: 'PublishBookingFailed', attempts: 8 },
    ),
    PublishBookingFailed: publish(
      'Booking Cancelled (SYSTEM) without refund: nothing was charged',
      [[BOOKING, 'Booking Cancelled', { bookingId: `${b}.bookingId`, cancelledBy: 'SYSTEM', reason: 'WORKFLOW_FAILURE', refundAmount: 0, currency: `${b}.currency` }]],
      { next: 'BookingFailed' },
    ),
    BookingFailed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },

    // ---- confirmation --------------------------------------------------------------------
    ConfirmBooking: lambda(
      'Status CONFIRMED with a confirmation code (conditional on PENDING_PAYMENT).',
      FN.booking,
      'confirmBooking',
      { bookingId: `${b}.bookingId`, paymentIntentId: '$.paymentResult.paymentIntentId', chargeId: '$.paymentResult.chargeId' },
      {
        resultPath: '$.confirmation',
        fields: ['status', 'confirmationCode'],
        catch: [
          { ErrorEquals: ['Marketplace.BookingCancelled'], ResultPath: '$.error', Next: 'CancelledWhileAwaitingPayment' },
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RefundFailedBooking' },
        ],
        next: 'PublishBookingConfirmed',
        attempts: 6,
      },
    ),
    PublishBookingConfirmed: publish(
      'Payment Succeeded + Booking Confirmed',
      [
        [PAYMENT, 'Payment Succeeded', {
          paymentIntentId: '$.paymentResult.paymentIntentId', bookingId: `${b}.bookingId`, amount: `${b}.amount`,
          currency: `${b}.currency`, platformFee: `${b}.platformFee`, providerEarnings: `${b}.providerEarnings`,
        }],
        [BOOKING, 'Booking Confirmed', { bookingId: `${b}.bookingId`, paymentIntentId: '$.paymentResult.paymentIntentId', confirmationCode: '$.confirmation.confirmationCode' }],
      ],
      { next: 'NotifyBookingConfirmed' },
    ),
    NotifyBookingConfirmed: notify('Confirmation to customer and provider (same idempotency key as the event-driven path).', 'BOOKING_CONFIRMED',
      [{ role: 'CUSTOMER', userId: `${b}.customerId` }, { role: 'PROVIDER', userId: `${b}.providerId` }],
      { bookingId: `${b}.bookingId`, confirmationCode: '$.confirmation.confirmationCode', startDateTime: `${b}.startDateTime`, endDateTime: `${b}.endDateTime` },
      { idempotencyKey: 'States.Format(\'{}:BOOKING_CONFIRMED\', $.booking.bookingId)', next: 'WaitForServiceEnd' }),

    // payment taken but the booking cannot be honoured: full refund
    RefundFailedBooking: lambda(
      'Compensation: a payment taken for a booking that then failed is refunded in full.',
      FN.payout,
      'refundPayment',
      {
        paymentIntentId: '$.payment.paymentIntentId',
        bookingId: `${b}.bookingId`,
        amount: `${b}.amount`,
        currency: `${b}.currency`,
        reason: 'BOOKING_CANCELLED',
        idempotencyKey: 'States.Format(\'booking-{}-compensation-refund\', $.booking.bookingId)',
      },
      { resultPath: '$.refund', fields: ['refundId', 'amount', 'currency', 'status'], catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.compensationError', Next: 'CompensationFailed' }], next: 'ReleaseSlotAfterRefund', attempts: 8 },
    ),
    ReleaseSlotAfterRefund: lambda(
      'Booking CANCELLED (SYSTEM), slot released.',
      FN.booking,
      'failBooking',
      { bookingId: `${b}.bookingId`, reason: 'BOOKING_FAILED' },
      { resultPath: '$.failure', fields: ['status', 'slotReleased'], catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.compensationError', Next: 'CompensationFailed' }], next: 'PublishCompensationRefund', attempts: 8 },
    ),
    PublishCompensationRefund: publish(
      'Refund Issued + Booking Cancelled (SYSTEM, full refund)',
      [
        [PAYMENT, 'Refund Issued', { refundId: '$.refund.refundId', paymentIntentId: '$.payment.paymentIntentId', bookingId: `${b}.bookingId`, amount: '$.refund.amount', currency: '$.refund.currency', reason: 'BOOKING_CANCELLED' }],
        [BOOKING, 'Booking Cancelled', { bookingId: `${b}.bookingId`, cancelledBy: 'SYSTEM', reason: 'BOOKING_FAILED', refundAmount: '$.refund.amount', currency: '$.refund.currency' }],
      ],
      { next: 'NotifyCompensationRefund' },
    ),
    NotifyCompensationRefund: notify('Tell the customer the booking failed and was refunded.', 'BOOKING_FAILED_REFUNDED',
      [{ role: 'CUSTOMER', userId: `${b}.customerId` }], { bookingId: `${b}.bookingId`, refundAmount: '$.refund.amount', currency: '$.refund.currency' },
      { idempotencyKey: 'States.Format(\'{}:BOOKING_FAILED_REFUNDED\', $.booking.bookingId)', next: 'BookingFailedAndRefunded' }),
    BookingFailedAndRefunded: { Type: 'Fail', Error: 'Marketplace.BookingFailed', Cause: 'The booking could not be confirmed; the payment was refunded in full and the slot released.' },
    CompensationFailed: {
      Type: 'Fail',
      Comment: 'Compensation itself failed: the failure alarm pages an operator; the records say what is left to do.',
      Error: 'Marketplace.CompensationFailed',
      Cause: 'A compensating step (refund, PaymentIntent cancellation or slot release) failed after its retries.',
    },

    // ---- fulfilment ---------------------------------------------------------------------
    WaitForServiceEnd: {
      Type: 'Wait',
      Comment: 'Until the (UTC, normalised by validateBooking) end of the service.',
      TimestampPath: `${b}.endDateTime`,
      Next: 'CompleteBooking',
    },
    CompleteBooking: lambda(
      'Status COMPLETED when still CONFIRMED; `completed: false` when it was cancelled meanwhile.',
      FN.booking,
      'completeBooking',
      { bookingId: `${b}.bookingId`, now: '$$.State.EnteredTime' },
      { resultPath: '$.completion', fields: ['completed', 'status'], attempts: 8, next: 'WasCompleted' },
    ),
    WasCompleted: {
      Type: 'Choice',
      Choices: [{ Variable: '$.completion.completed', BooleanEquals: true, Next: 'ReleaseEarnings' }],
      Default: 'NotCompleted',
    },
    NotCompleted: { Type: 'Succeed', Comment: 'Cancelled after confirmation; the CANCEL execution refunded it.' },
    ReleaseEarnings: lambda(
      'Transfer of providerEarnings to the connected account (idempotency key per booking).',
      FN.payout,
      'releaseEarnings',
      {
        bookingId: `${b}.bookingId`,
        providerId: `${b}.providerId`,
        stripeAccountId: `${b}.stripeAccountId`,
        paymentIntentId: '$.paymentResult.paymentIntentId',
        chargeId: '$.paymentResult.chargeId',
        amount: `${b}.providerEarnings`,
        currency: `${b}.currency`,
        idempotencyKey: 'States.Format(\'booking-{}-earnings\', $.booking.bookingId)',
      },
      { resultPath: '$.earnings', fields: ['transferId', 'amount', 'currency'], attempts: 8, catch: errorTo('EarningsReleaseFailed'), next: 'PublishBookingCompleted' },
    ),
    EarningsReleaseFailed: {
      Type: 'Fail',
      Comment: 'The booking is COMPLETED; the transfer can be re-run from the payment-processing workflow (PAYOUT).',
      Error: 'Marketplace.EarningsReleaseFailed',
      CausePath: '$.error.Cause',
    },
    PublishBookingCompleted: publish(
      'Booking Completed',
      [[BOOKING, 'Booking Completed', { bookingId: `${b}.bookingId`, customerId: `${b}.customerId`, providerId: `${b}.providerId`, amount: `${b}.amount`, currency: `${b}.currency` }]],
      { next: 'BookingCompleted' },
    ),
    BookingCompleted: { Type: 'Succeed' },

    // ---- cancellation (operation CANCEL) -----------------------------------------------------
    CancelBooking: lambda(
      'Applies the refund policy, moves the booking to CANCELLED, releases the slot and fails a waiting payment token.',
      FN.booking,
      'cancelBooking',
      { bookingId: '$.bookingId', cancelledBy: '$.cancelledBy', reason: '$.reason', requestedBy: '$.requestedBy', now: '$$.Execution.StartTime' },
      {
        resultPath: '$.cancellation',
        fields: ['bookingId', 'previousStatus', 'customerId', 'providerId', 'paymentIntentId', 'refundRequired', 'refundAmount', 'refundPercent', 'currency', 'cancelledBy'],
        catch: errorTo('CancellationRejected'),
        next: 'CancellationNeedsRefund',
      },
    ),
    CancellationRejected: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
    CancellationNeedsRefund: {
      Type: 'Choice',
      Choices: [
        { Variable: '$.cancellation.refundRequired', BooleanEquals: true, Next: 'RefundCancellation' },
        { Variable: '$.cancellation.previousStatus', StringEquals: 'PENDING_PAYMENT', Next: 'CancelPendingPaymentIntent' },
      ],
      Default: 'PublishCancellationWithoutRefund',
    },
    CancelPendingPaymentIntent: lambda(
      'The booking was still unpaid: cancel its PaymentIntent (refund it if it succeeded meanwhile).',
      FN.payout,
      'cancelPaymentIntent',
      { paymentIntentId: '$.cancellation.paymentIntentId', reason: 'requested_by_customer' },
      { resultPath: '$.paymentCancellation', fields: ['paymentIntentId', 'status', 'chargeId', 'amount', 'currency'], attempts: 8, catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.compensationError', Next: 'CompensationFailed' }], next: 'PendingPaymentRaced' },
    ),
    PendingPaymentRaced: {
      Type: 'Choice',
      Choices: [{ Variable: '$.paymentCancellation.status', StringEquals: 'succeeded', Next: 'AdoptRacedPaymentForRefund' }],
      Default: 'PublishCancellationWithoutRefund',
    },
    AdoptRacedPaymentForRefund: {
      Type: 'Pass',
      Comment: 'Paid while being cancelled: refund the whole charge.',
      Parameters: { 'amount.$': '$.paymentCancellation.amount' },
      ResultPath: '$.racedRefund',
      Next: 'RefundRacedPayment',
    },
    RefundRacedPayment: lambda(
      'Full refund of a payment that completed while the unpaid booking was being cancelled.',
      FN.payout,
      'refundPayment',
      {
        paymentIntentId: '$.cancellation.paymentIntentId',
        bookingId: '$.cancellation.bookingId',
        amount: '$.racedRefund.amount',
        currency: '$.cancellation.currency',
        reason: 'BOOKING_CANCELLED',
        idempotencyKey: 'States.Format(\'booking-{}-cancellation-refund\', $.cancellation.bookingId)',
      },
      { resultPath: '$.refund', fields: ['refundId', 'amount', 'currency', 'status'], attempts: 8, catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.compensationError', Next: 'CompensationFailed' }], next: 'PublishCancellationWithRefund' },
    ),
    RefundCancellation: lambda(
      'Refund per policy: 100% (provider/system, or customer >= 24 h before start), 50% otherwise.',
      FN.payout,
      'refundPayment',
      {
        paymentIntentId: '$.cancellation.paymentIntentId',
        bookingId: '$.cancellation.bookingId',
        amount: '$.cancellation.refundAmount',
        currency: '$.cancellation.currency',
        reason: 'BOOKING_CANCELLED',
        idempotencyKey: 'States.Format(\'booking-{}-cancellation-refund\', $.cancellation.bookingId)',
      },
      { resultPath: '$.refund', fields: ['refundId', 'amount', 'currency', 'status'], attempts: 8, catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.compensationError', Next: 'CompensationFailed' }], next: 'PublishCancellationWithRefund' },
    ),
    PublishCancellationWithRefund: publish(
      'Booking Cancelled + Refund Issued',
      [
        [BOOKING, 'Booking Cancelled', { bookingId: '$.cancellation.bookingId', cancelledBy: '$.cancellation.cancelledBy', reason: '$.reason', refundAmount: '$.refund.amount', currency: '$.refund.currency' }],
        [PAYMENT, 'Refund Issued', { refundId: '$.refund.refundId', paymentIntentId: '$.cancellation.paymentIntentId', bookingId: '$.cancellation.bookingId', amount: '$.refund.amount', currency: '$.refund.currency', reason: 'BOOKING_CANCELLED' }],
      ],
      { next: 'NotifyCancellation' },
    ),
    PublishCancellationWithoutRefund: publish(
      'Booking Cancelled (nothing to refund)',
      [[BOOKING, 'Booking Cancelled', { bookingId: '$.cancellation.bookingId', cancelledBy: '$.cancellation.cancelledBy', reason: '$.reason', refundAmount: 0, currency: '$.cancellation.currency' }]],
      { next: 'NotifyCancellation' },
    ),
    NotifyCancellation: notify('Tell both parties.', 'BOOKING_CANCELLED',
      [{ role: 'CUSTOMER', userId: '$.cancellation.customerId' }, { role: 'PROVIDER', userId: '$.cancellation.providerId' }],
      { bookingId: '$.cancellation.bookingId', cancelledBy: '$.cancellation.cancelledBy', refundPercent: '$.cancellation.refundPercent' },
      { idempotencyKey: 'States.Format(\'{}:BOOKING_CANCELLED\', $.cancellation.bookingId)', next: 'BookingCancelled' }),
    BookingCancelled: { Type: 'Succeed' },
  };
  return machine(
    'ecosystem-booking-lifecycle: validate, reserve, pay (15-minute window), confirm, notify, wait for the service end, complete and release earnings; or cancel with the refund policy.',
    17366400, // 201 days: bookings may start at most 180 days ahead and last at most 14 days
    'EnsureCorrelationId',
    states,
  );
}

// ---------------------------------------------------------------------------------------------
// Payment processing
// ---------------------------------------------------------------------------------------------
function paymentProcessing() {
  const errorTo = (next) => [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: next }];
  const states = {
    ...correlationPrologue('RoutePaymentType'),
    RoutePaymentType: {
      Type: 'Choice',
      Choices: [
        { And: [{ Variable: '$.paymentType', IsPresent: true }, { Variable: '$.paymentType', StringEquals: 'DIRECT' }], Next: 'CreateDirectPayment' },
        { And: [{ Variable: '$.paymentType', IsPresent: true }, { Variable: '$.paymentType', StringEquals: 'PAYOUT' }], Next: 'CreatePayout' },
        { And: [{ Variable: '$.paymentType', IsPresent: true }, { Variable: '$.paymentType', StringEquals: 'REFUND' }], Next: 'CreateRefund' },
      ],
      Default: 'UnknownPaymentType',
    },
    UnknownPaymentType: { Type: 'Fail', Error: VALIDATION, Cause: 'paymentType: must be DIRECT, PAYOUT or REFUND' },

    // ---- DIRECT ------------------------------------------------------------------------------
    CreateDirectPayment: lambda(
      'PaymentIntent created and confirmed with the saved payment method.',
      FN.payout,
      'createPaymentIntent',
      {
        bookingId: '$.bookingId',
        customerId: '$.customerId',
        providerId: '$.providerId',
        amount: '$.amount',
        currency: '$.currency',
        platformFee: '$.platformFee',
        stripeAccountId: '$.stripeAccountId',
        paymentMethodId: '$.paymentMethodId',
        confirm: true,
        idempotencyKey: 'States.Format(\'payment-{}-intent\', $$.Execution.Name)',
      },
      { resultPath: '$.payment', fields: ['paymentIntentId', 'status', 'chargeId', 'amount', 'currency', 'platformFee', 'providerEarnings'], catch: errorTo('DirectPaymentNotCreated'), next: 'PublishDirectIntentCreated', attempts: 6 },
    ),
    DirectPaymentNotCreated: {
      Type: 'Fail',
      Comment: 'No PaymentIntent exists, so there is no Payment Failed event to publish; the execution fails (alarm, Workflow Failed).',
      ErrorPath: '$.error.Error',
      CausePath: '$.error.Cause',
    },
    PublishDirectIntentCreated: publish(
      'Payment Intent Created',
      [[PAYMENT, 'Payment Intent Created', { paymentIntentId: '$.payment.paymentIntentId', bookingId: '$.bookingId', customerId: '$.customerId', providerId: '$.providerId', amount: '$.payment.amount', currency: '$.payment.currency' }]],
      { next: 'DirectPaymentSettled' },
    ),
    DirectPaymentSettled: {
      Type: 'Choice',
      Choices: [
        { Variable: '$.payment.status', StringEquals: 'succeeded', Next: 'AdoptImmediatePayment' },
        { Or: [
          { Variable: '$.payment.status', StringEquals: 'processing' },
          { Variable: '$.payment.status', StringEquals: 'requires_action' },
          { Variable: '$.payment.status', StringEquals: 'requires_confirmation' },
        ], Next: 'AwaitDirectPayment' },
      ],
      Default: 'DirectPaymentNotCompleted',
    },
    DirectPaymentNotCompleted: {
      Type: 'Pass',
      Comment: 'Confirmation left the PaymentIntent unpaid (e.g. requires_payment_method after a decline).',
      Parameters: { f: { 'failureCode.$': '$.payment.status', 'failureMessage.$': "States.Format('PaymentIntent ended in status {}', $.payment.status)" } },
      ResultPath: '$.failureCause',
      Next: 'PublishPaymentFailed',
    },
    AdoptImmediatePayment: {
      Type: 'Pass',
      InputPath: '$.payment',
      ResultPath: '$.paymentResult',
      Next: 'PublishPaymentSucceeded',
    },
    AwaitDirectPayment: lambda(
      'Asynchronous confirmation (3-D Secure, bank debits): the Stripe webhook completes the token.',
      FN.payout,
      'awaitPaymentConfirmation',
      { paymentIntentId: '$.payment.paymentIntentId', bookingId: '$.bookingId' },
      {
        token: { timeoutSeconds: 480 },
        resultPath: '$.paymentResult',
        fields: ['paymentIntentId', 'status', 'chargeId', 'amount', 'currency'],
        catch: [
          { ErrorEquals: ['States.Timeout'], ResultPath: '$.error', Next: 'CancelTimedOutPayment' },
          { ErrorEquals: ['Marketplace.PaymentDeclined'], ResultPath: '$.error', Next: 'ParseDirectDecline' },
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'DirectPaymentError' },
        ],
        next: 'PublishPaymentSucceeded',
      },
    ),
    ParseDirectDecline: {
      Type: 'Pass',
      Comment: 'Marketplace.PaymentDeclined carries {"failureCode", "failureMessage"} as its cause (JSON).',
      Parameters: { 'f.$': 'States.StringToJson($.error.Cause)' },
      ResultPath: '$.failureCause',
      Next: 'PublishPaymentFailed',
    },
    DirectPaymentError: {
      Type: 'Pass',
      Parameters: { f: { 'failureCode.$': '$.error.Error', 'failureMessage.$': '$.error.Cause' } },
      ResultPath: '$.failureCause',
      Next: 'PublishPaymentFailed',
    },
    CancelTimedOutPayment: lambda(
      'No confirmation in time: cancel the PaymentIntent (a last-moment success is kept).',
      FN.payout,
      'cancelPaymentIntent',
      { paymentIntentId: '$.payment.paymentIntentId', reason: 'abandoned' },
      { resultPath: '$.paymentCancellation', fields: ['paymentIntentId', 'status', 'chargeId', 'amount', 'currency'], catch: errorTo('DirectPaymentError'), next: 'TimedOutPaymentRaced', attempts: 6 },
    ),
    TimedOutPaymentRaced: {
      Type: 'Choice',
      Choices: [{ Variable: '$.paymentCancellation.status', StringEquals: 'succeeded', Next: 'AdoptRacedDirectPayment' }],
      Default: 'DirectPaymentTimedOut',
    },
    DirectPaymentTimedOut: {
      Type: 'Pass',
      Result: { f: { failureCode: 'payment_timeout', failureMessage: 'The payment was not confirmed within 8 minutes; the PaymentIntent was cancelled.' } },
      ResultPath: '$.failureCause',
      Next: 'PublishPaymentFailed',
    },
    AdoptRacedDirectPayment: { Type: 'Pass', InputPath: '$.paymentCancellation', ResultPath: '$.paymentResult', Next: 'PublishPaymentSucceeded' },
    PublishPaymentSucceeded: publish(
      'Payment Succeeded',
      [[PAYMENT, 'Payment Succeeded', { paymentIntentId: '$.paymentResult.paymentIntentId', bookingId: '$.bookingId', amount: '$.payment.amount', currency: '$.payment.currency', platformFee: '$.payment.platformFee', providerEarnings: '$.payment.providerEarnings' }]],
      { next: 'PaymentSucceeded' },
    ),
    PaymentSucceeded: { Type: 'Succeed' },
    PublishPaymentFailed: publish(
      'Payment Failed',
      [[PAYMENT, 'Payment Failed', { paymentIntentId: '$.payment.paymentIntentId', bookingId: '$.bookingId', amount: '$.payment.amount', currency: '$.payment.currency', failureCode: '$.failureCause.f.failureCode', failureMessage: '$.failureCause.f.failureMessage' }]],
      { next: 'PaymentFailed' },
    ),
    PaymentFailed: { Type: 'Fail', Error: 'Marketplace.PaymentFailed', CausePath: '$.failureCause.f.failureMessage' },

    // ---- PAYOUT ------------------------------------------------------------------------------
    CreatePayout: lambda(
      'Payout from the connected account balance to the provider bank account.',
      FN.payout,
      'createPayout',
      {
        providerId: '$.providerId',
        stripeAccountId: '$.stripeAccountId',
        amount: '$.amount',
        currency: '$.currency',
        idempotencyKey: 'States.Format(\'payout-{}\', $$.Execution.Name)',
      },
      { resultPath: '$.payout', fields: ['payoutId', 'status', 'amount', 'currency', 'arrivalDate', 'failureCode', 'failureMessage'], catch: errorTo('PayoutNotCreated'), next: 'PayoutSettled', attempts: 6 },
    ),
    PayoutNotCreated: {
      Type: 'Fail',
      Comment: 'Stripe refused to create the payout (e.g. insufficient available balance): no payout id exists for a Payout Failed event; the execution fails (alarm, Workflow Failed).',
      ErrorPath: '$.error.Error',
      CausePath: '$.error.Cause',
    },
    PayoutSettled: {
      Type: 'Choice',
      Choices: [
        { Variable: '$.payout.status', StringEquals: 'paid', Next: 'AdoptImmediatePayout' },
        { Or: [{ Variable: '$.payout.status', StringEquals: 'failed' }, { Variable: '$.payout.status', StringEquals: 'canceled' }], Next: 'PayoutRejected' },
      ],
      Default: 'AwaitPayoutSettlement',
    },
    PayoutRejected: {
      Type: 'Pass',
      Parameters: { f: { 'failureCode.$': '$.payout.failureCode', 'failureMessage.$': '$.payout.failureMessage' } },
      ResultPath: '$.failureCause',
      Next: 'PublishPayoutFailed',
    },
    AdoptImmediatePayout: { Type: 'Pass', InputPath: '$.payout', ResultPath: '$.payoutResult', Next: 'PublishPayoutCompleted' },
    AwaitPayoutSettlement: lambda(
      'payout.paid / payout.failed from the Stripe webhook completes the token.',
      FN.payout,
      'awaitPayoutSettlement',
      { payoutId: '$.payout.payoutId', providerId: '$.providerId' },
      {
        token: { timeoutSeconds: 480 },
        resultPath: '$.payoutResult',
        fields: ['payoutId', 'status', 'amount', 'currency', 'arrivalDate'],
        catch: [
          { ErrorEquals: ['States.Timeout'], ResultPath: '$.error', Next: 'PayoutInTransit' },
          { ErrorEquals: ['Marketplace.PayoutFailed'], ResultPath: '$.error', Next: 'ParsePayoutFailure' },
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'PayoutError' },
        ],
        next: 'PublishPayoutCompleted',
      },
    ),
    PayoutInTransit: {
      Type: 'Succeed',
      Comment: 'Standard payouts settle in days: the webhook publishes Payout Completed/Failed when Stripe reports it (no token is waiting any more).',
    },
    ParsePayoutFailure: {
      Type: 'Pass',
      Comment: 'Marketplace.PayoutFailed carries {"failureCode", "failureMessage"} as its cause (JSON).',
      Parameters: { 'f.$': 'States.StringToJson($.error.Cause)' },
      ResultPath: '$.failureCause',
      Next: 'PublishPayoutFailed',
    },
    PayoutError: {
      Type: 'Pass',
      Parameters: { f: { 'failureCode.$': '$.error.Error', 'failureMessage.$': '$.error.Cause' } },
      ResultPath: '$.failureCause',
      Next: 'PublishPayoutFailed',
    },
    PublishPayoutCompleted: publish(
      'Payout Completed',
      [[PAYMENT, 'Payout Completed', { payoutId: '$.payoutResult.payoutId', providerId: '$.providerId', amount: '$.payoutResult.amount', currency: '$.payoutResult.currency' }]],
      { next: 'PayoutCompleted' },
    ),
    PayoutCompleted: { Type: 'Succeed' },
    PublishPayoutFailed: publish(
      'Payout Failed',
      [[PAYMENT, 'Payout Failed', { payoutId: '$.payout.payoutId', providerId: '$.providerId', amount: '$.payout.amount', currency: '$.payout.currency', failureCode: '$.failureCause.f.failureCode', failureMessage: '$.failureCause.f.failureMessage' }]],
      { next: 'PayoutFailed' },
    ),
    PayoutFailed: { Type: 'Fail', Error: 'Marketplace.PayoutFailed', CausePath: '$.failureCause.f.failureMessage' },

    // ---- REFUND ------------------------------------------------------------------------------
    CreateRefund: lambda(
      'Full or partial refund (never above the amount still refundable), with transfer reversal when earnings were released.',
      FN.payout,
      'refundPayment',
      {
        paymentIntentId: '$.paymentIntentId',
        bookingId: '$.bookingId',
        amount: '$.amount',
        currency: '$.currency',
        reason: '$.reason',
        idempotencyKey: 'States.Format(\'refund-{}\', $$.Execution.Name)',
      },
      { resultPath: '$.refund', fields: ['refundId', 'status', 'amount', 'currency'], catch: errorTo('RefundFailed'), next: 'RefundSettled', attempts: 6 },
    ),
    RefundSettled: {
      Type: 'Choice',
      Choices: [
        { Variable: '$.refund.status', StringEquals: 'succeeded', Next: 'AdoptImmediateRefund' },
        { Or: [{ Variable: '$.refund.status', StringEquals: 'failed' }, { Variable: '$.refund.status', StringEquals: 'canceled' }], Next: 'RefundRejected' },
      ],
      Default: 'AwaitRefundSettlement',
    },
    RefundRejected: {
      Type: 'Pass',
      Parameters: { Error: 'Marketplace.RefundFailed', 'Cause.$': "States.Format('Refund status {}', $.refund.status)" },
      ResultPath: '$.error',
      Next: 'RefundFailed',
    },
    AdoptImmediateRefund: { Type: 'Pass', InputPath: '$.refund', ResultPath: '$.refundResult', Next: 'PublishRefundIssued' },
    AwaitRefundSettlement: lambda(
      'charge.refund.updated from the Stripe webhook completes the token.',
      FN.payout,
      'awaitRefundSettlement',
      { refundId: '$.refund.refundId', paymentIntentId: '$.paymentIntentId' },
      {
        token: { timeoutSeconds: 480 },
        resultPath: '$.refundResult',
        fields: ['refundId', 'status', 'amount', 'currency'],
        catch: [
          { ErrorEquals: ['States.Timeout'], ResultPath: '$.error', Next: 'RefundPending' },
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RefundFailed' },
        ],
        next: 'PublishRefundIssued',
      },
    ),
    RefundPending: { Type: 'Succeed', Comment: 'Still pending at Stripe: the webhook publishes Refund Issued when it succeeds.' },
    PublishRefundIssued: publish(
      'Refund Issued',
      [[PAYMENT, 'Refund Issued', { refundId: '$.refundResult.refundId', paymentIntentId: '$.paymentIntentId', bookingId: '$.bookingId', amount: '$.refundResult.amount', currency: '$.refundResult.currency', reason: '$.reason' }]],
      { next: 'RefundIssued' },
    ),
    RefundIssued: { Type: 'Succeed' },
    RefundFailed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
  };
  return machine(
    'ecosystem-payment-processing: DIRECT payment, PAYOUT to a provider or REFUND, waiting for Stripe where it is asynchronous, and the matching events.',
    600,
    'EnsureCorrelationId',
    states,
  );
}

// ---------------------------------------------------------------------------------------------
// Dispute resolution
// ---------------------------------------------------------------------------------------------
function disputeResolution() {
  const d = '$.dispute';
  const errorTo = (next) => [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: next }];
  const states = {
    ...correlationPrologue('CreateDispute'),
    CreateDispute: lambda(
      'Dispute record (OPEN) for a paid booking; computes the review deadline (24 h) and the overall deadline (7 days).',
      FN.dispute,
      'createDispute',
      {
        disputeId: '$.disputeId',
        bookingId: '$.bookingId',
        disputeType: '$.disputeType',
        customerId: '$.customerId',
        description: '$.description',
        requestedRefundAmount: '$.requestedRefundAmount',
        now: '$$.Execution.StartTime',
      },
      {
        resultPath: '$.dispute',
        fields: ['disputeId', 'bookingId', 'disputeType', 'customerId', 'providerId', 'paymentIntentId', 'amountPaid', 'refundableAmount', 'currency', 'requestedRefundAmount', 'description', 'reviewDeadline', 'resolutionDeadline'],
        catch: errorTo('DisputeRejected'),
        next: 'PublishDisputeCreated',
      },
    ),
    DisputeRejected: { Type: 'Fail', Comment: 'Invalid dispute (unknown booking, not paid, already disputed, out of window).', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
    PublishDisputeCreated: publish(
      'Dispute Created',
      [[DISPUTE, 'Dispute Created', { disputeId: `${d}.disputeId`, bookingId: `${d}.bookingId`, disputeType: `${d}.disputeType`, customerId: `${d}.customerId`, providerId: `${d}.providerId`, description: `${d}.description` }]],
      { next: 'NotifyProviderOfDispute' },
    ),
    NotifyProviderOfDispute: notify('The provider has 24 hours to respond.', 'DISPUTE_OPENED_PROVIDER',
      [{ role: 'PROVIDER', userId: `${d}.providerId` }],
      { disputeId: `${d}.disputeId`, bookingId: `${d}.bookingId`, disputeType: `${d}.disputeType`, reviewDeadline: `${d}.reviewDeadline` },
      { idempotencyKey: 'States.Format(\'{}:DISPUTE_OPENED_PROVIDER\', $.dispute.disputeId)', next: 'AwaitProviderResponse' }),
    AwaitProviderResponse: lambda(
      '24-hour review: the provider answers through GraphQL (respondToDispute), which completes the token.',
      FN.dispute,
      'awaitProviderResponse',
      { disputeId: `${d}.disputeId`, reviewDeadline: `${d}.reviewDeadline` },
      {
        token: { timeoutSeconds: 86400 },
        resultPath: '$.providerResponse',
        fields: ['response', 'offerAmount', 'message'],
        catch: [
          { ErrorEquals: ['States.Timeout'], ResultPath: '$.reviewTimeout', Next: 'NoProviderResponse' },
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'EscalateAfterError' },
        ],
        next: 'EvaluateDispute',
      },
    ),
    NoProviderResponse: {
      Type: 'Pass',
      Result: { response: 'NO_RESPONSE', offerAmount: null, message: null },
      ResultPath: '$.providerResponse',
      Next: 'EvaluateDispute',
    },
    EvaluateDispute: lambda(
      'Automated rules by dispute type (statemachines/README.md): REFUND, PARTIAL_REFUND, REJECT or ESCALATE.',
      FN.dispute,
      'evaluateDispute',
      { disputeId: `${d}.disputeId`, providerResponse: '$.providerResponse', now: '$$.State.EnteredTime' },
      { resultPath: '$.decision', fields: ['decision', 'resolution', 'refundAmount', 'currency', 'rule', 'explanation', 'escalationReason'], catch: errorTo('EscalateAfterError'), next: 'RouteDecision' },
    ),
    RouteDecision: {
      Type: 'Choice',
      Choices: [
        { Variable: '$.decision.decision', StringEquals: 'REFUND', Next: 'PrepareAutomatedRefund' },
        { Variable: '$.decision.decision', StringEquals: 'PARTIAL_REFUND', Next: 'PrepareAutomatedRefund' },
        { Variable: '$.decision.decision', StringEquals: 'REJECT', Next: 'PrepareAutomatedRejection' },
      ],
      Default: 'PrepareEscalation',
    },
    PrepareAutomatedRefund: {
      Type: 'Pass',
      Parameters: {
        'resolution.$': '$.decision.resolution',
        'refundAmount.$': '$.decision.refundAmount',
        resolvedBy: 'AUTOMATED',
        'rule.$': '$.decision.rule',
        'notes.$': '$.decision.explanation',
      },
      ResultPath: '$.outcome',
      Next: 'RefundDispute',
    },
    PrepareAutomatedRejection: {
      Type: 'Pass',
      Parameters: { resolution: 'REJECTED', refundAmount: 0, resolvedBy: 'AUTOMATED', 'rule.$': '$.decision.rule', 'notes.$': '$.decision.explanation' },
      ResultPath: '$.outcome',
      Next: 'NoRefund',
    },
    NoRefund: {
      Type: 'Pass',
      Result: { refundId: null, amount: 0, currency: null, status: 'NONE' },
      ResultPath: '$.refund',
      Next: 'ResolveDispute',
    },
    PrepareEscalation: {
      Type: 'Pass',
      Parameters: { 'reason.$': '$.decision.escalationReason', 'detail.$': '$.decision.explanation' },
      ResultPath: '$.escalationReason',
      Next: 'EscalateDispute',
    },
    EscalateAfterError: {
      Type: 'Pass',
      Comment: 'A failure of the automated path never ends the dispute: a human takes over.',
      Parameters: { reason: 'AUTOMATION_ERROR', 'detail.$': '$.error.Cause' },
      ResultPath: '$.escalationReason',
      Next: 'EscalateDispute',
    },
    EscalateDispute: lambda(
      'Status ESCALATED; returns the seconds left before the 7-day deadline (minus the final-escalation margin).',
      FN.dispute,
      'escalateDispute',
      { disputeId: `${d}.disputeId`, reason: '$.escalationReason.reason', detail: '$.escalationReason.detail', level: 'MANUAL_REVIEW', now: '$$.State.EnteredTime' },
      { resultPath: '$.escalation', fields: ['escalationLevel', 'eventReason', 'notes', 'deadlinePassed', 'reviewTimeoutSeconds', 'heartbeatSeconds', 'resolutionDeadline'], attempts: 8, catch: errorTo('FinalEscalation'), next: 'DeadlineAlreadyPassed' },
    ),
    DeadlineAlreadyPassed: {
      Type: 'Choice',
      Comment: 'Less than two minutes left before the 7-day deadline: go straight to the final escalation.',
      Choices: [{ Variable: '$.escalation.deadlinePassed', BooleanEquals: true, Next: 'DeadlineReached' }],
      Default: 'PublishDisputeEscalated',
    },
    DeadlineReached: {
      Type: 'Pass',
      Result: { Error: 'States.Timeout', Cause: 'The 7-day resolution deadline was reached during manual review.' },
      ResultPath: '$.error',
      Next: 'FinalEscalation',
    },
    PublishDisputeEscalated: publish(
      'Dispute Escalated (manual review)',
      [[DISPUTE, 'Dispute Escalated', { disputeId: `${d}.disputeId`, bookingId: `${d}.bookingId`, reason: '$.escalation.eventReason', notes: '$.escalation.notes' }]],
      { next: 'NotifyAdmins' },
    ),
    NotifyAdmins: notify('Ask the admins for a decision.', 'DISPUTE_NEEDS_REVIEW',
      [{ role: 'ADMIN', userId: 'admins' }],
      { disputeId: `${d}.disputeId`, bookingId: `${d}.bookingId`, resolutionDeadline: '$.escalation.resolutionDeadline' },
      { idempotencyKey: 'States.Format(\'{}:DISPUTE_NEEDS_REVIEW:{}\', $.dispute.disputeId, $$.State.EnteredTime)', next: 'AwaitAdminDecision' }),
    AwaitAdminDecision: lambda(
      'Manual review: resolveDispute (GraphQL, admin group) completes the token; without a heartbeat for 48 h the admins are reminded.',
      FN.dispute,
      'awaitAdminDecision',
      { disputeId: `${d}.disputeId`, resolutionDeadline: '$.escalation.resolutionDeadline' },
      {
        token: { timeoutSecondsPath: '$.escalation.reviewTimeoutSeconds', heartbeatSecondsPath: '$.escalation.heartbeatSeconds' },
        resultPath: '$.adminDecision',
        fields: ['resolution', 'refundAmount', 'adminId', 'notes'],
        catch: [
          { ErrorEquals: ['States.HeartbeatTimeout'], ResultPath: '$.reviewStalled', Next: 'ReviewStalled' },
          { ErrorEquals: ['States.Timeout'], ResultPath: '$.error', Next: 'FinalEscalation' },
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'FinalEscalation' },
        ],
        next: 'PrepareAdminOutcome',
      },
    ),
    ReviewStalled: {
      Type: 'Pass',
      Comment: 'No heartbeat for 48 h: re-escalate (fresh remaining time, admins reminded) rather than wait in silence.',
      Parameters: { reason: 'REVIEW_STALLED', detail: 'No reviewer activity for 48 hours' },
      ResultPath: '$.escalationReason',
      Next: 'EscalateDispute',
    },
    PrepareAdminOutcome: {
      Type: 'Pass',
      Parameters: {
        'resolution.$': '$.adminDecision.resolution',
        'refundAmount.$': '$.adminDecision.refundAmount',
        'resolvedBy.$': "States.Format('ADMIN:{}', $.adminDecision.adminId)",
        rule: 'MANUAL_REVIEW',
        'notes.$': '$.adminDecision.notes',
      },
      ResultPath: '$.outcome',
      Next: 'AdminOrderedRefund',
    },
    AdminOrderedRefund: {
      Type: 'Choice',
      Choices: [
        { Or: [
          { Variable: '$.outcome.resolution', StringEquals: 'REFUNDED' },
          { Variable: '$.outcome.resolution', StringEquals: 'PARTIALLY_REFUNDED' },
        ], Next: 'RefundDispute' },
      ],
      Default: 'NoRefund',
    },
    RefundDispute: lambda(
      'Refund (full or partial, capped at what is still refundable; transfer reversal if earnings were released).',
      FN.payout,
      'refundPayment',
      {
        paymentIntentId: `${d}.paymentIntentId`,
        bookingId: `${d}.bookingId`,
        amount: '$.outcome.refundAmount',
        currency: `${d}.currency`,
        reason: 'DISPUTE_RESOLVED',
        idempotencyKey: 'States.Format(\'dispute-{}-refund\', $.dispute.disputeId)',
      },
      { resultPath: '$.refund', fields: ['refundId', 'amount', 'currency', 'status'], attempts: 8, catch: errorTo('EscalateAfterRefundError'), next: 'PublishDisputeRefund' },
    ),
    EscalateAfterRefundError: {
      Type: 'Pass',
      Parameters: { reason: 'REFUND_FAILED', 'detail.$': '$.error.Cause' },
      ResultPath: '$.escalationReason',
      Next: 'EscalateDispute',
    },
    PublishDisputeRefund: publish(
      'Refund Issued',
      [[PAYMENT, 'Refund Issued', { refundId: '$.refund.refundId', paymentIntentId: `${d}.paymentIntentId`, bookingId: `${d}.bookingId`, amount: '$.refund.amount', currency: '$.refund.currency', reason: 'DISPUTE_RESOLVED', disputeId: `${d}.disputeId` }]],
      { next: 'ResolveDispute' },
    ),
    ResolveDispute: lambda(
      'Status RESOLVED with the resolution (REFUNDED | PARTIALLY_REFUNDED | REJECTED) and the amount actually refunded.',
      FN.dispute,
      'resolveDispute',
      {
        disputeId: `${d}.disputeId`,
        resolution: '$.outcome.resolution',
        requestedRefundAmount: '$.outcome.refundAmount',
        refund: '$.refund',
        resolvedBy: '$.outcome.resolvedBy',
        rule: '$.outcome.rule',
        notes: '$.outcome.notes',
      },
      { resultPath: '$.resolution', fields: ['resolution', 'refundAmount', 'currency', 'resolvedBy', 'resolvedAt'], attempts: 8, catch: errorTo('FinalEscalation'), next: 'PublishDisputeResolved' },
    ),
    PublishDisputeResolved: publish(
      'Dispute Resolved',
      [[DISPUTE, 'Dispute Resolved', { disputeId: `${d}.disputeId`, bookingId: `${d}.bookingId`, resolution: '$.resolution.resolution', refundAmount: '$.resolution.refundAmount', currency: '$.resolution.currency', resolvedBy: '$.resolution.resolvedBy' }]],
      { next: 'NotifyDisputeResolved' },
    ),
    NotifyDisputeResolved: notify('Tell both parties the outcome.', 'DISPUTE_RESOLVED',
      [{ role: 'CUSTOMER', userId: `${d}.customerId` }, { role: 'PROVIDER', userId: `${d}.providerId` }],
      { disputeId: `${d}.disputeId`, resolution: '$.resolution.resolution', refundAmount: '$.resolution.refundAmount', currency: '$.resolution.currency' },
      { idempotencyKey: 'States.Format(\'{}:DISPUTE_RESOLVED\', $.dispute.disputeId)', next: 'DisputeResolved' }),
    DisputeResolved: { Type: 'Succeed' },

    // ---- the 7-day deadline: escalation, never silence ---------------------------------------
    FinalEscalation: lambda(
      'Deadline reached (or the manual path failed): status ESCALATED at the final level, recorded for the operations team.',
      FN.dispute,
      'escalateDispute',
      { disputeId: `${d}.disputeId`, reason: 'RESOLUTION_DEADLINE_EXCEEDED', detail: '$.error.Cause', level: 'FINAL', now: '$$.State.EnteredTime' },
      { resultPath: '$.finalEscalation', fields: ['escalationLevel', 'resolutionDeadline'], attempts: 4, timeoutSeconds: 20, catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.finalEscalationError', Next: 'PublishFinalEscalation' }], next: 'PublishFinalEscalation' },
    ),
    PublishFinalEscalation: publish(
      'Dispute Escalated (FINAL): the 7-day deadline passed unresolved',
      [[DISPUTE, 'Dispute Escalated', { disputeId: `${d}.disputeId`, bookingId: `${d}.bookingId`, reason: 'MANUAL', notes: 'FINAL escalation: the dispute was not resolved within its 7-day deadline.' }]],
      { next: 'NotifyFinalEscalation', catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.finalEscalationError', Next: 'NotifyFinalEscalation' }] },
    ),
    NotifyFinalEscalation: notify('Operations and both parties learn the case is escalated.', 'DISPUTE_ESCALATED_FINAL',
      [{ role: 'ADMIN', userId: 'operations' }, { role: 'CUSTOMER', userId: `${d}.customerId` }, { role: 'PROVIDER', userId: `${d}.providerId` }],
      { disputeId: `${d}.disputeId`, bookingId: `${d}.bookingId` },
      { idempotencyKey: 'States.Format(\'{}:DISPUTE_ESCALATED_FINAL\', $.dispute.disputeId)', next: 'DisputeUnresolvedInTime', attempts: 2, timeoutSeconds: 20 }),
    DisputeUnresolvedInTime: {
      Type: 'Fail',
      Comment: 'Ends FAILED on purpose so the workflow-failure alarm fires as well.',
      Error: 'Marketplace.DisputeEscalated',
      Cause: 'The dispute was not resolved within 7 days and was escalated to the final level.',
    },
  };
  return machine(
    'ecosystem-dispute-resolution: record, notify the provider, 24-hour review, automated rules, manual review by an admin, resolution; the 7-day deadline ends in escalation.',
    608400, // 7 days + 1 hour: the manual-review wait is bounded by the 7-day deadline itself
    'EnsureCorrelationId',
    states,
  );
}

// ---------------------------------------------------------------------------------------------
// Provider onboarding
// ---------------------------------------------------------------------------------------------
function providerOnboarding() {
  const errorTo = (next) => [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: next }];
  const stripeRetry = { attempts: 6 };
  const states = {
    ...correlationPrologue('CreateConnectedAccount'),
    CreateConnectedAccount: lambda(
      'Stripe Connect Express account; idempotent per provider (an existing account is returned).',
      FN.payout,
      'createConnectedAccount',
      {
        providerId: '$.providerId',
        email: '$.email',
        country: '$.country',
        businessType: '$.businessType',
        idempotencyKey: 'States.Format(\'provider-{}-connect-account\', $.providerId)',
      },
      { resultPath: '$.account', fields: ['stripeAccountId', 'created', 'chargesEnabled', 'payoutsEnabled'], catch: errorTo('PublishOnboardingFailed'), next: 'CreateAccountLink', ...stripeRetry },
    ),
    CreateAccountLink: lambda(
      'Hosted onboarding link (account_onboarding).',
      FN.payout,
      'createAccountLink',
      { providerId: '$.providerId', stripeAccountId: '$.account.stripeAccountId', refreshUrl: '$.refreshUrl', returnUrl: '$.returnUrl' },
      { resultPath: '$.accountLink', fields: ['url', 'expiresAt'], catch: errorTo('PublishOnboardingFailed'), next: 'UpdateProviderProfile', ...stripeRetry },
    ),
    UpdateProviderProfile: lambda(
      'Provider profile: stripeAccountId, onboarding status PENDING_VERIFICATION (charges enabled later by account.updated).',
      FN.payout,
      'updateProviderProfile',
      {
        providerId: '$.providerId',
        stripeAccountId: '$.account.stripeAccountId',
        onboardingUrl: '$.accountLink.url',
        onboardingUrlExpiresAt: '$.accountLink.expiresAt',
        chargesEnabled: '$.account.chargesEnabled',
        payoutsEnabled: '$.account.payoutsEnabled',
      },
      { resultPath: '$.profile', fields: ['onboardingStatus'], catch: errorTo('PublishOnboardingFailed'), next: 'SendWelcomeNotification', attempts: 6 },
    ),
    SendWelcomeNotification: notify('Welcome e-mail with the onboarding link.', 'PROVIDER_WELCOME',
      [{ role: 'PROVIDER', userId: '$.providerId' }],
      { providerId: '$.providerId', onboardingUrl: '$.accountLink.url', onboardingUrlExpiresAt: '$.accountLink.expiresAt' },
      { idempotencyKey: 'States.Format(\'{}:PROVIDER_WELCOME\', $.providerId)', next: 'OnboardingStarted' }),
    OnboardingStarted: {
      Type: 'Succeed',
      Comment: 'Provider Onboarding Completed is published by the Stripe webhook when account.updated reports charges and payouts enabled.',
    },
    PublishOnboardingFailed: publish(
      'Provider Onboarding Failed',
      [[PROVIDER, 'Provider Onboarding Failed', { providerId: '$.providerId', reason: '$.error.Cause' }]],
      { next: 'NotifyOnboardingFailed' },
    ),
    NotifyOnboardingFailed: notify('Tell the provider (and support) onboarding must be retried.', 'PROVIDER_ONBOARDING_FAILED',
      [{ role: 'PROVIDER', userId: '$.providerId' }],
      { providerId: '$.providerId', errorType: '$.error.Error' },
      { idempotencyKey: 'States.Format(\'{}:PROVIDER_ONBOARDING_FAILED:{}\', $.providerId, $$.Execution.Name)', next: 'OnboardingFailed' }),
    OnboardingFailed: { Type: 'Fail', Error: 'Marketplace.ProviderOnboardingFailed', CausePath: '$.error.Cause' },
  };
  return machine(
    'ecosystem-provider-onboarding: Stripe Connect account (idempotent), onboarding link, profile, welcome; Provider Onboarding Failed on permanent failure.',
    1800,
    'EnsureCorrelationId',
    states,
  );
}

export const WORKFLOWS = {
  'booking-lifecycle': bookingLifecycle,
  'payment-processing': paymentProcessing,
  'dispute-resolution': disputeResolution,
  'provider-onboarding': providerOnboarding,
};

function main() {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [name, build] of Object.entries(WORKFLOWS)) {
    const file = join(here, `${name}.asl.json`);
    const text = `${JSON.stringify(build(), null, 2)}\n`;
    if (check) {
      let current = '';
      try {
        current = readFileSync(file, 'utf8');
      } catch {
        current = '';
      }
      if (current !== text) {
        console.error(`${file} is out of date: run node statemachines/generate.mjs`);
        stale += 1;
      }
    } else {
      writeFileSync(file, text);
      console.log(`wrote ${file}`);
    }
  }
  if (stale) process.exit(1);
}

main();
