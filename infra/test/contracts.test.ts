/**
 * The contracts between the definition files and everything that reads them: rules.json
 * against its JSON Schema and EventBridge's pattern grammar, every `${...}` placeholder of
 * statemachines/ supplied by the CDK app, every event a workflow publishes shaped as its
 * schemas/*.json says, every Lambda task following the Retry/Catch conventions.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import AjvDraft04 from 'ajv-draft-04';
import { ConfigError, EVENT_SCHEMAS_DIR, RULES_FILE, STATEMACHINES_DIR, WORKFLOWS, loadRules, placeholders } from '../lib/config';
import { FUNCTIONS, functionArnSubstitution } from '../lib/functions';
import { publishedSources } from '../lib/marketplace-stack';
import { synth } from './helpers';

const rulesSchema = JSON.parse(readFileSync(join(__dirname, '..', 'rules.schema.json'), 'utf8'));
const rulesJson = JSON.parse(readFileSync(RULES_FILE, 'utf8'));
const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
const validateRules = ajv.compile(rulesSchema);

type Json = Record<string, any>;
const definitions = WORKFLOWS.map((wf) => ({
  wf,
  text: readFileSync(join(STATEMACHINES_DIR, wf.file), 'utf8'),
  json: JSON.parse(readFileSync(join(STATEMACHINES_DIR, wf.file), 'utf8')) as Json,
}));

function tasks(def: Json): [string, Json][] {
  return Object.entries(def.States as Record<string, Json>).filter(([, s]) => s.Type === 'Task');
}

describe('rules.json', () => {
  test('is valid against rules.schema.json', () => {
    const ok = validateRules(rulesJson);
    expect(validateRules.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  test('the CDK loader accepts it', () => {
    expect(loadRules().rules.length).toBe(rulesJson.rules.length);
  });

  const broken: [string, (r: Json) => void, RegExp][] = [
    ['an unknown top-level pattern field', (r) => (r.rules[0].pattern['detail_type'] = ['x']), /propertyName|must be equal to one of the allowed values/],
    ['a matcher object with two operators', (r) => (r.rules[0].pattern.source = [{ prefix: 'a', suffix: 'b' }]), /must match exactly one schema|additional/],
    ['an empty match list', (r) => (r.rules[0].pattern.source = []), /fewer than 1 items|must match exactly one schema/],
    ['a retry count above 185', (r) => (r.rules[0].targets[0].retryPolicy.maximumRetryAttempts = 186), /must be <= 185/],
    ['an event age under 60 s', (r) => (r.rules[0].targets[0].retryPolicy.maximumEventAgeInSeconds = 30), /must be >= 60/],
    ['a target without a dead-letter queue', (r) => delete r.rules[0].targets[0].deadLetterQueue, /deadLetterQueue/],
    ['six targets on one rule', (r) => (r.rules[0].targets = Array(6).fill(r.rules[0].targets[0])), /more than 5 items/],
    ['an input path map key starting with AWS', (r) => (r.rules[0].targets[0].inputTransformer.inputPathsMap.AWSid = '$.id'), /must NOT be valid|propertyName/],
    ['a rule name with a space', (r) => (r.rules[0].name = 'bad name'), /must match pattern/],
  ];
  for (const [what, mutate, message] of broken) {
    test(`the schema rejects ${what}`, () => {
      const copy = JSON.parse(JSON.stringify(rulesJson));
      mutate(copy);
      expect(validateRules(copy)).toBe(false);
      expect(ajv.errorsText(validateRules.errors)).toMatch(message);
    });
  }

  const loaderCases: [string, (r: Json) => void, RegExp][] = [
    ['an unknown dead-letter queue', (r) => (r.rules[0].targets[0].deadLetterQueue = 'nope'), /rules\[0\]\.targets\[0\]\.deadLetterQueue: "nope" is not in deadLetterQueues/],
    ['an unknown function', (r) => (r.rules[0].targets[0].function = 'mailer'), /rules\[0\]\.targets\[0\]\.function: must be one of/],
    ['a duplicate rule name', (r) => (r.rules[1].name = r.rules[0].name), /rules\[1\]\.name: duplicate rule/],
    ['an unused input path', (r) => (r.rules[0].targets[0].inputTransformer.inputPathsMap.extra = '$.id'), /inputPathsMap\.extra: is not used by inputTemplate/],
    ['an archive kept forever', (r) => (r.eventBus.archive.retentionDays = 0), /eventBus\.archive\.retentionDays: must be a positive integer/],
    ['the default bus as the marketplace bus', (r) => (r.eventBus.name = 'default'), /eventBus\.name/],
  ];
  for (const [what, mutate, message] of loaderCases) {
    test(`the CDK loader rejects ${what}, naming the field`, () => {
      const copy = JSON.parse(JSON.stringify(rulesJson));
      mutate(copy);
      const dir = mkdtempSync(join(tmpdir(), 'rules-'));
      const file = join(dir, 'rules.json');
      writeFileSync(file, JSON.stringify(copy));
      expect(() => loadRules(file)).toThrow(ConfigError);
      expect(() => loadRules(file)).toThrow(message);
    });
  }

  test('the CDK loader reports a file that is not JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    const file = join(dir, 'rules.json');
    writeFileSync(file, '{"formatVersion": 1,');
    expect(() => loadRules(file)).toThrow(/is not valid JSON/);
  });

  test('every pattern uses only fields EventBridge events have, and non-empty match lists', () => {
    const allowedTop = new Set(['version', 'id', 'detail-type', 'source', 'account', 'time', 'region', 'resources', 'detail', '$or']);
    const check = (node: Json, path: string): void => {
      for (const [k, v] of Object.entries(node)) {
        if (k === '$or') {
          expect(Array.isArray(v)).toBe(true);
          (v as Json[]).forEach((alt, i) => check(alt, `${path}.$or[${i}]`));
        } else if (Array.isArray(v)) {
          expect(v.length).toBeGreaterThan(0);
          for (const m of v) {
            if (m !== null && typeof m === 'object') expect(Object.keys(m)).toHaveLength(1);
          }
        } else {
          expect(v !== null && typeof v === 'object').toBe(true);
          check(v as Json, `${path}.${k}`);
        }
      }
    };
    for (const rule of rulesJson.rules as Json[]) {
      for (const k of Object.keys(rule.pattern)) expect(allowedTop.has(k)).toBe(true);
      check(rule.pattern, rule.name);
    }
  });

  test('routes as the design says', () => {
    const routes = (rulesJson.rules as Json[]).flatMap((r) => r.targets.map((t: Json) => `${r.pattern.source.join('|')} -> ${t.function}`));
    expect(routes).toEqual(
      expect.arrayContaining([
        'marketplace.booking -> notification-handler',
        'marketplace.payment -> payout-manager',
        'marketplace.payment -> workflow-orchestrator',
        'marketplace.dispute -> notification-handler',
        'marketplace.provider -> notification-handler',
        'marketplace.provider -> workflow-orchestrator',
        'aws.states -> workflow-orchestrator',
      ]),
    );
  });

  test('every target receives the action envelope its function expects', () => {
    for (const rule of rulesJson.rules as Json[]) {
      for (const t of rule.targets as Json[]) {
        // Placeholders are replaced by JSON values; the result must be JSON with action handleEvent.
        const rendered = (t.inputTransformer.inputTemplate as string).replace(/<([A-Za-z0-9_-]+)>/g, '"x"');
        const parsed = JSON.parse(rendered);
        expect(parsed.action).toBe('handleEvent');
        expect(parsed.rule).toBe(rule.name);
      }
    }
  });
});

describe('statemachines/ placeholders', () => {
  const { stack } = synth();
  const supplied = new Set<string>(['EventBusName', 'EventBusArn', ...FUNCTIONS.map((f) => functionArnSubstitution(f.name))]);

  for (const { wf, text } of definitions) {
    test(`${wf.file}: every \${...} has a substitution in the CDK app`, () => {
      const used = placeholders(text);
      expect(used.length).toBeGreaterThan(0);
      for (const name of used) expect(supplied.has(name)).toBe(true);
      expect(Object.keys(stack.substitutions.get(wf.workflowType) ?? {}).sort()).toEqual([...used].sort());
    });
  }

  test('a definition with an unknown placeholder is refused at synth, naming it', () => {
    const { App } = jest.requireActual('aws-cdk-lib');
    const { MarketplaceStack } = jest.requireActual('../lib/marketplace-stack');
    const dir = mkdtempSync(join(tmpdir(), 'sm-'));
    for (const { wf, text } of definitions) writeFileSync(join(dir, wf.file), text.replace('${EventBusName}', '${MysteryBus}'));
    const { DUMMY_ASSET, SCHEMA_FILE } = jest.requireActual('./helpers');
    expect(() => new MarketplaceStack(new App(), 'Broken', { statemachinesDir: dir, dummyLambdaAsset: DUMMY_ASSET, graphqlSchemaFile: SCHEMA_FILE })).toThrow(/\$\{MysteryBus\}: no such substitution/);
  });
});

describe('statemachines/ conventions', () => {
  for (const { wf, json } of definitions) {
    describe(wf.file, () => {
      test('uses JSONPath throughout', () => {
        expect(json.QueryLanguage).toBe('JSONPath');
        for (const s of Object.values(json.States as Record<string, Json>)) expect(s.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
      });

      test('every Lambda task sends an action, the correlation id and the execution ARN', () => {
        for (const [name, s] of tasks(json)) {
          if (!String(s.Resource).startsWith('arn:aws:states:::lambda:invoke')) continue;
          expect([name, s.Parameters.FunctionName]).toEqual([name, expect.stringMatching(/^\$\{[A-Za-z]+FunctionArn\}$/)]);
          expect(typeof s.Parameters.Payload.action).toBe('string');
          expect(s.Parameters.Payload['correlationId.$']).toBe('$.correlationId');
          expect(s.Parameters.Payload['executionArn.$']).toBe('$$.Execution.Id');
          if (String(s.Resource).endsWith('.waitForTaskToken')) {
            expect(s.Parameters.Payload['taskToken.$']).toBe('$$.Task.Token');
            expect(s.TimeoutSeconds ?? s.TimeoutSecondsPath).toBeDefined();
          } else {
            expect(s.TimeoutSeconds).toBeLessThanOrEqual(30);
          }
        }
      });

      test('every task retries transient errors with exponential backoff and full jitter', () => {
        for (const [name, s] of tasks(json)) {
          const retry = s.Retry as Json[];
          expect([name, retry.length]).toEqual([name, expect.any(Number)]);
          expect(retry.length).toBeGreaterThan(0);
          for (const r of retry) {
            expect(r.BackoffRate).toBeGreaterThanOrEqual(2);
            expect(r.JitterStrategy).toBe('FULL');
            expect(r.MaxDelaySeconds).toBeGreaterThan(0);
          }
          const errors = retry.flatMap((r) => r.ErrorEquals);
          if (String(s.Resource).startsWith('arn:aws:states:::lambda:invoke')) {
            expect(errors).toEqual(expect.arrayContaining(['Lambda.ServiceException', 'Lambda.TooManyRequestsException']));
          } else {
            expect(errors).toEqual(expect.arrayContaining(['EventBridge.FailedEntry']));
          }
          // A retrier never swallows everything: permanent errors must reach a Catch.
          expect(errors).not.toContain('States.ALL');
        }
      });

      test('every Next and Catch target exists, and every state is reachable', () => {
        const states = json.States as Record<string, Json>;
        const reached = new Set<string>([json.StartAt]);
        const queue = [json.StartAt as string];
        while (queue.length > 0) {
          const s = states[queue.pop() as string];
          const next = [s.Next, s.Default, ...(s.Choices ?? []).map((c: Json) => c.Next), ...(s.Catch ?? []).map((c: Json) => c.Next)].filter(Boolean);
          for (const n of next) {
            expect(states[n]).toBeDefined();
            if (!reached.has(n)) {
              reached.add(n);
              queue.push(n);
            }
          }
        }
        expect([...reached].sort()).toEqual(Object.keys(states).sort());
      });

      test('publishes only from its own sources with literal names (IAM scopes them)', () => {
        expect(publishedSources(json).length).toBeGreaterThan(0);
      });
    });
  }

  test('the booking payment window is 15 minutes and the dispute review 24 hours', () => {
    const booking = definitions.find((d) => d.wf.workflowType === 'BOOKING_LIFECYCLE')?.json as Json;
    expect(booking.States.AwaitPaymentConfirmation.TimeoutSeconds).toBe(900);
    expect(booking.States.AwaitPaymentConfirmation.Catch[0]).toEqual({ ErrorEquals: ['States.Timeout'], ResultPath: '$.error', Next: 'CancelUnpaidPaymentIntent' });
    const dispute = definitions.find((d) => d.wf.workflowType === 'DISPUTE_RESOLUTION')?.json as Json;
    expect(dispute.States.AwaitProviderResponse.TimeoutSeconds).toBe(86400);
    expect(dispute.States.AwaitAdminDecision.TimeoutSecondsPath).toBe('$.escalation.reviewTimeoutSeconds');
    expect(dispute.States.AwaitAdminDecision.HeartbeatSecondsPath).toBe('$.escalation.heartbeatSeconds');
    // The manual-review timeout ends in the final escalation, and the execution timeout sits above 7 days.
    expect(dispute.States.AwaitAdminDecision.Catch.map((c: Json) => c.Next)).toContain('FinalEscalation');
    expect(dispute.TimeoutSeconds).toBeGreaterThan(7 * 86400);
    expect(dispute.TimeoutSeconds).toBeLessThanOrEqual(7 * 86400 + 3600);
  });
});

describe('events the workflows publish match schemas/*.json', () => {
  const ajv4 = new AjvDraft04({ allErrors: true, strict: false });
  const entries: { file: string; state: string; source: string; detailType: string; detail: Json }[] = [];
  for (const { wf, json } of definitions) {
    for (const [state, s] of tasks(json)) {
      if (s.Resource !== 'arn:aws:states:::events:putEvents') continue;
      for (const e of s.Parameters.Entries as Json[]) entries.push({ file: wf.file, state, source: e.Source, detailType: e.DetailType, detail: e.Detail });
    }
  }

  test('the workflows publish at least the catalogue events issue 7 asks for', () => {
    const published = new Set(entries.map((e) => `${e.source}/${e.detailType}`));
    for (const t of [
      'marketplace.booking/Booking Created', 'marketplace.booking/Booking Confirmed', 'marketplace.booking/Booking Cancelled',
      'marketplace.booking/Booking Expired', 'marketplace.booking/Booking Completed', 'marketplace.payment/Payment Succeeded',
      'marketplace.payment/Payment Failed', 'marketplace.payment/Refund Issued', 'marketplace.payment/Payout Completed',
      'marketplace.payment/Payout Failed', 'marketplace.dispute/Dispute Created', 'marketplace.dispute/Dispute Escalated',
      'marketplace.dispute/Dispute Resolved', 'marketplace.provider/Provider Onboarding Failed',
    ]) expect(published).toContain(t);
  });

  for (const e of entries) {
    test(`${e.file} ${e.state}: ${e.detailType} has exactly the schema's fields`, () => {
      const file = join(EVENT_SCHEMAS_DIR, `${e.source}@${e.detailType.replace(/ /g, '')}.json`);
      const schema = JSON.parse(readFileSync(file, 'utf8')) as Json;
      const detailSchema = schema.definitions[schema.title] as Json;
      const keys = Object.keys(e.detail).map((k) => k.replace(/\.\$$/, ''));
      for (const k of keys) expect([k, Object.keys(detailSchema.properties)]).toEqual([k, expect.arrayContaining([k])]);
      for (const required of detailSchema.required as string[]) expect([required, keys]).toEqual([required, expect.arrayContaining([required])]);
      expect(e.detail['correlationId.$']).toBe('$.correlationId');
      expect(e.detail['timestamp.$']).toBe('$$.State.EnteredTime');
      // Literal values must satisfy their property's schema (enums, types, minimums).
      for (const [k, v] of Object.entries(e.detail)) {
        if (k.endsWith('.$')) continue;
        const validate = ajv4.compile({ ...detailSchema.properties[k], definitions: schema.definitions });
        expect([k, v, validate(v)]).toEqual([k, v, true]);
      }
    });
  }
});

describe('synthesis refuses what cannot be deployed, saying what to do', () => {
  const { App } = jest.requireActual('aws-cdk-lib');
  const { MarketplaceStack } = jest.requireActual('../lib/marketplace-stack');
  const { DUMMY_ASSET, SCHEMA_FILE } = jest.requireActual('./helpers');

  test('functions not built yet', () => {
    const empty = mkdtempSync(join(tmpdir(), 'lambda-'));
    expect(() => new MarketplaceStack(new App(), 'NoBuild', { lambdaAssetRoot: empty, graphqlSchemaFile: SCHEMA_FILE })).toThrow(
      /workflow-orchestrator\/bootstrap: \(file\): missing: build the functions first \(cargo lambda build --release --arm64\)/,
    );
  });

  test('no schema.graphql', () => {
    expect(() => new MarketplaceStack(new App(), 'NoSchema', { dummyLambdaAsset: DUMMY_ASSET, graphqlSchemaFile: join(tmpdir(), 'absent.graphql') })).toThrow(
      /absent\.graphql: \(file\): schema\.graphql is missing/,
    );
  });

  test('a definition without an overall timeout', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sm-'));
    for (const { wf, json } of definitions) {
      const copy = { ...json };
      delete copy.TimeoutSeconds;
      writeFileSync(join(dir, wf.file), JSON.stringify(copy));
    }
    expect(() => new MarketplaceStack(new App(), 'NoTimeout', { statemachinesDir: dir, dummyLambdaAsset: DUMMY_ASSET, graphqlSchemaFile: SCHEMA_FILE })).toThrow(
      /TimeoutSeconds: every workflow must declare its overall timeout/,
    );
  });
});
