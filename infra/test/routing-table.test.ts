/**
 * Where each event of the catalogue goes: rules.json's patterns evaluated against the domain
 * crate's fixture events (EventBridge envelopes) with a small matcher for the operators the
 * file uses. An operator it does not know fails the test, so a new kind of pattern cannot
 * slip through unchecked. (The full EventBridge semantics live in crates/event-patterns.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, loadRules } from '../lib/config';

type Json = Record<string, unknown>;
const rules = loadRules();

function matchValue(matchers: unknown[], value: unknown, present: boolean): boolean {
  const values = Array.isArray(value) ? value : [value];
  return matchers.some((m) => {
    if (m === null || typeof m !== 'object') return present && values.some((v) => v === m);
    const [op, arg] = Object.entries(m as Json)[0];
    switch (op) {
      case 'exists':
        return arg === present;
      case 'prefix':
        return present && values.some((v) => typeof v === 'string' && v.startsWith(String(arg)));
      case 'wildcard': {
        const re = new RegExp(`^${String(arg).split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
        return present && values.some((v) => typeof v === 'string' && re.test(v));
      }
      default:
        throw new Error(`matcher operator ${op} is not supported by this test: extend it`);
    }
  });
}

function matches(pattern: Json, event: Json): boolean {
  return Object.entries(pattern).every(([key, sub]) => {
    if (key === '$or') return (sub as Json[]).some((alt) => matches(alt, event));
    const present = Object.prototype.hasOwnProperty.call(event, key);
    if (Array.isArray(sub)) return matchValue(sub, event[key], present);
    const inner = event[key];
    return inner !== null && typeof inner === 'object' && !Array.isArray(inner) && matches(sub as Json, inner as Json);
  });
}

function routes(event: Json, bus: string): string[] {
  return rules.rules.filter((r) => r.eventBus === bus && matches(r.pattern as Json, event)).map((r) => r.name).sort();
}

const FIXTURES = join(REPO_ROOT, 'crates', 'domain', 'tests', 'fixtures');
const fixtures: Json[] = readdirSync(FIXTURES).flatMap((dir) =>
  readdirSync(join(FIXTURES, dir))
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(FIXTURES, dir, f), 'utf8')) as Json),
);

const NOTIFY = {
  booking: 'booking-events-to-notification-handler',
  payment: 'payment-events-to-notification-handler',
  dispute: 'dispute-events-to-notification-handler',
  provider: 'provider-events-to-notification-handler',
};
const LEDGER = 'payment-events-to-payout-manager';
const RESUME = 'payment-events-to-booking-workflow';

/** The routing of issue 7, written out per detail type. */
const EXPECTED: Record<string, string[]> = {
  'Booking Created': [NOTIFY.booking],
  'Booking Confirmed': [NOTIFY.booking],
  'Booking Cancelled': [NOTIFY.booking],
  'Booking Expired': [NOTIFY.booking],
  'Booking Completed': [NOTIFY.booking],
  'Booking Updated': [NOTIFY.booking],
  'Payment Intent Created': [],
  'Payment Succeeded': [LEDGER, RESUME],
  'Payment Failed': [RESUME, NOTIFY.payment],
  'Refund Issued': [LEDGER, NOTIFY.payment],
  'Payout Completed': [LEDGER, NOTIFY.payment],
  'Payout Failed': [LEDGER, NOTIFY.payment],
  'Dispute Created': [NOTIFY.dispute],
  'Dispute Escalated': [NOTIFY.dispute],
  'Dispute Resolved': [NOTIFY.dispute],
  'Provider Registered': [NOTIFY.provider, 'workflow-auto-trigger'],
  'Provider Onboarding Completed': [NOTIFY.provider],
  'Provider Onboarding Failed': [NOTIFY.provider],
  'Provider Account Updated': [NOTIFY.provider],
  'Workflow Started': [],
  'Workflow Succeeded': [],
  'Workflow Failed': [],
  'Workflow Timed Out': [],
  'Workflow Aborted': [],
};

test('there is a fixture event for every detail type of the catalogue', () => {
  expect(fixtures.map((f) => f['detail-type']).sort()).toEqual(Object.keys(EXPECTED).sort());
});

for (const event of fixtures) {
  const detailType = String(event['detail-type']);
  test(`${event.source} / ${detailType} goes to ${EXPECTED[detailType]?.join(', ') || 'no rule'}`, () => {
    expect(routes(event, rules.eventBus.name)).toEqual([...(EXPECTED[detailType] ?? ['(unexpected detail type)'])].sort());
    expect(routes(event, 'default')).toEqual([]);
  });
}

describe('Step Functions status changes (default bus)', () => {
  const statusChange = (stateMachine: string, status: string): Json => ({
    version: '0',
    id: 'a1b2',
    'detail-type': 'Step Functions Execution Status Change',
    source: 'aws.states',
    account: '123456789012',
    time: '2026-03-05T08:30:00Z',
    region: 'us-east-1',
    resources: [`arn:aws:states:us-east-1:123456789012:execution:${stateMachine}:x`],
    detail: {
      executionArn: `arn:aws:states:us-east-1:123456789012:execution:${stateMachine}:x`,
      stateMachineArn: `arn:aws:states:us-east-1:123456789012:stateMachine:${stateMachine}`,
      name: 'x',
      status,
    },
  });

  for (const status of ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED']) {
    test(`${status} of a marketplace workflow reaches the orchestrator`, () => {
      expect(routes(statusChange('ecosystem-dispute-resolution', status), 'default')).toEqual(['workflow-execution-status']);
    });
  }

  test("another team's state machine does not", () => {
    expect(routes(statusChange('billing-export', 'FAILED'), 'default')).toEqual([]);
  });

  test('a redrive (PENDING_REDRIVE) is not reported as a new outcome', () => {
    expect(routes(statusChange('ecosystem-booking-lifecycle', 'PENDING_REDRIVE'), 'default')).toEqual([]);
  });
});

test('a payment event without a booking does not try to resume a booking workflow', () => {
  const succeeded = fixtures.find((f) => f['detail-type'] === 'Payment Succeeded') as Json;
  const { bookingId: _omitted, ...detail } = succeeded.detail as Json;
  expect(routes({ ...succeeded, detail }, rules.eventBus.name)).toEqual([LEDGER]);
});

test('the archive keeps every marketplace event', () => {
  const pattern = rules.eventBus.archive.pattern as Json;
  for (const event of fixtures) expect(matches(pattern, event)).toBe(true);
});
