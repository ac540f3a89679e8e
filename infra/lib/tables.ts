/**
 * DynamoDB key design. One table per aggregate, keys named as the domain names them
 * (camelCase), secondary indexes exactly for the queries the repositories make.
 */

/** A global secondary index (projection ALL unless stated). */
export interface IndexSpec {
  readonly name: string;
  readonly partitionKey: string;
  readonly sortKey?: string;
  /** The repository query this index serves. */
  readonly serves: string;
}

export interface TableSpec {
  /** Construct id and the suffix of the physical name. */
  readonly id: string;
  readonly tableName: string;
  /** Environment variable that tells the functions the table name. */
  readonly envVar: string;
  readonly partitionKey: string;
  readonly sortKey?: string;
  /** Attribute holding an epoch-seconds expiry (DynamoDB TTL). */
  readonly ttlAttribute?: string;
  readonly indexes: readonly IndexSpec[];
  readonly purpose: string;
}

export const TABLES: readonly TableSpec[] = [
  {
    id: 'Bookings',
    tableName: 'ecosystem-marketplace-bookings',
    envVar: 'BOOKINGS_TABLE',
    partitionKey: 'bookingId',
    indexes: [
      { name: 'byCustomer', partitionKey: 'customerId', sortKey: 'startDateTime', serves: "a customer's bookings by start time" },
      { name: 'byProvider', partitionKey: 'providerId', sortKey: 'startDateTime', serves: "a provider's bookings by start time (overlap checks, calendars)" },
    ],
    purpose: 'Booking records: status, times, amounts, confirmation code, paymentIntentId.',
  },
  {
    id: 'Slots',
    tableName: 'ecosystem-marketplace-slots',
    envVar: 'SLOTS_TABLE',
    partitionKey: 'providerId',
    sortKey: 'slotStart',
    ttlAttribute: 'expiresAt',
    indexes: [],
    purpose:
      'One item per 15-minute slot a booking occupies, written in one transaction with attribute_not_exists: two bookings can never hold the same slot. Bookings over 99 slots are claimed in chunks, with the claims removed again if a chunk fails. Every claim carries expiresAt = slot end + 7 days: a backstop that clears claims a crashed reservation or release left behind, never a slot still bookable.',
  },
  {
    id: 'Services',
    tableName: 'ecosystem-marketplace-services',
    envVar: 'SERVICES_TABLE',
    partitionKey: 'serviceId',
    indexes: [{ name: 'byProvider', partitionKey: 'providerId', sortKey: 'serviceId', serves: "a provider's services" }],
    purpose: 'Services offered: provider, price, currency, duration, active flag.',
  },
  {
    id: 'Providers',
    tableName: 'ecosystem-marketplace-providers',
    envVar: 'PROVIDERS_TABLE',
    partitionKey: 'providerId',
    indexes: [{ name: 'byStripeAccount', partitionKey: 'stripeAccountId', serves: 'account.updated webhooks find the provider of a connected account' }],
    purpose: 'Provider profiles: Stripe connected account, onboarding status, charges/payouts enabled.',
  },
  {
    id: 'Payments',
    tableName: 'ecosystem-marketplace-payments',
    envVar: 'PAYMENTS_TABLE',
    partitionKey: 'paymentId',
    indexes: [
      { name: 'byBooking', partitionKey: 'bookingId', sortKey: 'createdAt', serves: "a booking's payment intent, refunds and transfer" },
      { name: 'byProvider', partitionKey: 'providerId', sortKey: 'createdAt', serves: "a provider's payouts and transfers" },
    ],
    purpose:
      'Stripe objects we created (PaymentIntent pi_, Refund re_, Transfer tr_, Payout po_) keyed by their Stripe id, with status, amounts, idempotency key and the task token of a workflow waiting on them.',
  },
  {
    id: 'Ledger',
    tableName: 'ecosystem-marketplace-ledger',
    envVar: 'LEDGER_TABLE',
    partitionKey: 'providerId',
    sortKey: 'entryId',
    indexes: [],
    purpose: "Providers' earnings ledger, one entry per event id (conditional put: a redelivered event is booked once).",
  },
  {
    id: 'Disputes',
    tableName: 'ecosystem-marketplace-disputes',
    envVar: 'DISPUTES_TABLE',
    partitionKey: 'disputeId',
    indexes: [
      { name: 'byBooking', partitionKey: 'bookingId', sortKey: 'createdAt', serves: 'one open dispute per booking' },
      { name: 'byCustomer', partitionKey: 'customerId', sortKey: 'createdAt', serves: "a customer's disputes" },
      { name: 'byProvider', partitionKey: 'providerId', sortKey: 'createdAt', serves: "a provider's disputes" },
      { name: 'byStatus', partitionKey: 'status', sortKey: 'createdAt', serves: 'the admin review queue (ESCALATED first come, first served)' },
    ],
    purpose: 'Dispute records: type, status, provider response, decision, resolution, task tokens of the review waits.',
  },
  {
    id: 'Notifications',
    tableName: 'ecosystem-marketplace-notifications',
    envVar: 'NOTIFICATIONS_TABLE',
    partitionKey: 'notificationId',
    ttlAttribute: 'expiresAt',
    indexes: [{ name: 'byRecipient', partitionKey: 'recipientId', sortKey: 'createdAt', serves: "a user's messages (in-app inbox)" }],
    purpose: 'Sent notifications keyed by their idempotency key (subject id + template): sent once whichever path asks first; expire after 180 days.',
  },
  {
    id: 'Workflows',
    tableName: 'ecosystem-marketplace-workflows',
    envVar: 'WORKFLOWS_TABLE',
    partitionKey: 'executionArn',
    indexes: [
      { name: 'byOwner', partitionKey: 'ownerId', sortKey: 'startedAt', serves: 'listWorkflowExecutions for the caller (customers see their own)' },
      { name: 'byType', partitionKey: 'workflowType', sortKey: 'startedAt', serves: 'listWorkflowExecutions by type for admins' },
    ],
    purpose: 'Executions started through the API or by events: owner, type, status, correlationId (authorisation and listing).',
  },
  {
    id: 'Idempotency',
    tableName: 'ecosystem-marketplace-idempotency',
    envVar: 'IDEMPOTENCY_TABLE',
    partitionKey: 'id',
    ttlAttribute: 'expiration',
    indexes: [],
    purpose:
      'Idempotency records shared by the functions (id = function name + operation key): status IN_PROGRESS|COMPLETED, expiration (TTL), inProgressExpiration, payload hash, stored response.',
  },
];

/** What a function may do with a table: read, or read and write. */
export type TableAccess = 'read' | 'readWrite';

export const READ_ACTIONS = ['dynamodb:BatchGetItem', 'dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:Query'];
export const WRITE_ACTIONS = ['dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'];
