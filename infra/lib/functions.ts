/**
 * What each Rust function is allowed to do. The stack turns this table into IAM statements,
 * so the permissions are reviewed here in one place, and the tests check the template
 * against it.
 */
import { FunctionName, WorkflowDefinition } from './config';
import { TableAccess } from './tables';

export interface FunctionSpec {
  readonly name: FunctionName;
  readonly description: string;
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  /**
   * Reserved concurrency: caps how hard a function can hit Stripe (Stripe's default limit is
   * 100 read / 100 write requests per second in live mode) and guarantees it capacity.
   */
  readonly reservedConcurrency?: number;
  /** Tables by construct id (see tables.ts). */
  readonly tables: Readonly<Record<string, TableAccess>>;
  /** Sources it may publish on the bus (`*` = any: the admin-only publishEvent mutation). */
  readonly publishes: readonly string[];
  /**
   * Workflows whose task tokens it completes (SendTaskSuccess/Failure/Heartbeat). IAM cannot
   * scope these APIs to a state machine (AWS requires Resource "*"); the list says who may.
   */
  readonly completesTasksOf: readonly WorkflowDefinition['workflowType'][];
  /** Starts, describes, stops and lists executions of every workflow. */
  readonly controlsWorkflows?: boolean;
  readonly readsStripeApiKey?: boolean;
  readonly readsStripeWebhookSecret?: boolean;
  readonly sendsEmail?: boolean;
  /** Looks up recipients' e-mail addresses and the admin group in the user pool. */
  readonly readsUserPool?: boolean;
  /** Public HTTPS endpoint (Function URL, no IAM auth: requests are verified by signature). */
  readonly functionUrl?: boolean;
}

export const FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'workflow-orchestrator',
    description: 'AppSync direct resolver (start/status/stop/list/history, publishEvent, respond/resolve dispute) and EventBridge target for workflow triggers',
    memoryMb: 256,
    // AppSync gives a resolver 30 s in total.
    timeoutSeconds: 25,
    tables: { Workflows: 'readWrite', Bookings: 'read', Disputes: 'readWrite', Payments: 'read', Idempotency: 'readWrite' },
    publishes: ['*'],
    completesTasksOf: ['BOOKING_LIFECYCLE', 'PAYMENT_PROCESSING', 'DISPUTE_RESOLUTION'],
    controlsWorkflows: true,
  },
  {
    name: 'booking-manager',
    description: 'Booking validation, slot reservation (conditional writes), confirmation, expiry, cancellation policy, completion',
    memoryMb: 256,
    timeoutSeconds: 20,
    tables: { Bookings: 'readWrite', Slots: 'readWrite', Services: 'read', Providers: 'read', Payments: 'read', Idempotency: 'readWrite' },
    publishes: [],
    completesTasksOf: ['BOOKING_LIFECYCLE'],
  },
  {
    name: 'payout-manager',
    description: 'Stripe Connect money movement: payment intents, refunds, transfers, payouts, connected accounts; earnings ledger',
    memoryMb: 512,
    timeoutSeconds: 25,
    reservedConcurrency: 20,
    tables: { Payments: 'readWrite', Ledger: 'readWrite', Providers: 'readWrite', Bookings: 'read', Idempotency: 'readWrite' },
    publishes: ['marketplace.payment'],
    completesTasksOf: ['BOOKING_LIFECYCLE', 'PAYMENT_PROCESSING'],
    readsStripeApiKey: true,
  },
  {
    name: 'dispute-handler',
    description: 'Dispute records, automated resolution rules, escalation and resolution',
    memoryMb: 256,
    timeoutSeconds: 20,
    tables: { Disputes: 'readWrite', Bookings: 'read', Payments: 'read', Idempotency: 'readWrite' },
    publishes: ['marketplace.dispute'],
    // an answer recorded before the wait stored its token completes that token at once
    completesTasksOf: ['DISPUTE_RESOLUTION'],
  },
  {
    name: 'notification-handler',
    description: 'Renders and sends notifications (SES) for workflow steps and domain events, once per idempotency key',
    memoryMb: 256,
    timeoutSeconds: 20,
    tables: { Notifications: 'readWrite', Bookings: 'read', Services: 'read', Providers: 'read', Idempotency: 'readWrite' },
    publishes: [],
    completesTasksOf: [],
    sendsEmail: true,
    readsUserPool: true,
  },
  {
    name: 'stripe-webhook',
    description: 'Verifies Stripe-Signature, maps Stripe events to marketplace events and completes waiting task tokens',
    memoryMb: 256,
    timeoutSeconds: 15,
    reservedConcurrency: 20,
    tables: { Payments: 'readWrite', Providers: 'readWrite', Bookings: 'read', Idempotency: 'readWrite' },
    publishes: ['marketplace.payment', 'marketplace.provider', 'marketplace.dispute'],
    completesTasksOf: ['BOOKING_LIFECYCLE', 'PAYMENT_PROCESSING'],
    readsStripeWebhookSecret: true,
    functionUrl: true,
  },
];

/** `booking-manager` → `BookingManager` (used in construct ids and substitution names). */
export function pascal(name: string): string {
  return name
    .split('-')
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
}

/** The definition substitution that carries a function's ARN: `${BookingManagerFunctionArn}`. */
export function functionArnSubstitution(name: FunctionName): string {
  return `${pascal(name)}FunctionArn`;
}
