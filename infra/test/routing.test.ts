/** The bus, its archive and every rule, target, retry policy and dead-letter queue of rules.json. */
import { loadRules } from '../lib/config';
import { synth } from './helpers';
import { friendlyNames, readable, resources } from './template-names';

const rules = loadRules();
const { template } = synth();
const res = resources(template);
const names = friendlyNames(template);

function ofType(type: string): [string, Record<string, any>][] {
  return Object.entries(res)
    .filter(([, r]) => r.Type === type)
    .map(([id, r]) => [id, r.Properties ?? {}]);
}

test('the custom bus is ecosystem-marketplace-events', () => {
  template.resourceCountIs('AWS::Events::EventBus', 1);
  template.hasResourceProperties('AWS::Events::EventBus', { Name: 'ecosystem-marketplace-events' });
  expect(rules.eventBus.name).toBe('ecosystem-marketplace-events');
});

test('the archive keeps the marketplace events for the configured retention', () => {
  const archives = ofType('AWS::Events::Archive');
  expect(archives).toHaveLength(1);
  const [, archive] = archives[0];
  expect(archive.ArchiveName).toBe(rules.eventBus.archive.name);
  expect(archive.RetentionDays).toBe(rules.eventBus.archive.retentionDays);
  expect(archive.RetentionDays).toBeGreaterThan(0);
  expect(archive.EventPattern).toEqual(rules.eventBus.archive.pattern);
  expect(readable(archive.SourceArn, names)).toBe('bus');
});

describe('every rule of rules.json', () => {
  const deployed = new Map(ofType('AWS::Events::Rule').map(([, p]) => [String(p.Name), p]));

  test('exists once per entry and nothing else', () => {
    expect([...deployed.keys()].sort()).toEqual(rules.rules.map((r) => r.name).sort());
  });

  for (const rule of rules.rules) {
    describe(rule.name, () => {
      const p = deployed.get(rule.name) ?? {};

      test('pattern equals rules.json exactly', () => {
        expect(p.EventPattern).toEqual(rule.pattern);
      });

      test('sits on the right bus with the right state and description', () => {
        if (rule.eventBus === 'default') expect(p.EventBusName).toBeUndefined();
        else expect(readable(p.EventBusName, names)).toBe('bus');
        expect(p.State).toBe(rule.state);
        expect(p.Description).toBe(rule.description);
      });

      test('targets carry the function, input transformer, retry policy and dead-letter queue', () => {
        const targets = p.Targets as Record<string, any>[];
        expect(targets).toHaveLength(rule.targets.length);
        for (const t of rule.targets) {
          const target = targets.find((x) => x.Id === t.id);
          expect(target).toBeDefined();
          expect(readable(target?.Arn, names)).toBe(`fn:ecosystem-marketplace-${t.function}`);
          expect(target?.RetryPolicy).toEqual({
            MaximumRetryAttempts: t.retryPolicy.maximumRetryAttempts,
            MaximumEventAgeInSeconds: t.retryPolicy.maximumEventAgeInSeconds,
          });
          expect(readable(target?.DeadLetterConfig?.Arn, names)).toBe(`queue:ecosystem-marketplace-${t.deadLetterQueue}`);
          if (t.inputTransformer) {
            expect(target?.InputTransformer).toEqual({
              InputPathsMap: t.inputTransformer.inputPathsMap,
              InputTemplate: t.inputTransformer.inputTemplate,
            });
          } else {
            expect(target?.InputTransformer).toBeUndefined();
          }
        }
      });

      test('each target function lets exactly this rule invoke it', () => {
        for (const t of rule.targets) {
          const perms = ofType('AWS::Lambda::Permission').filter(
            ([, perm]) =>
              readable(perm.FunctionName, names) === `fn:ecosystem-marketplace-${t.function}` &&
              readable(perm.SourceArn, names).endsWith(rule.eventBus === 'default' ? `:rule/${rule.name}` : `:rule/${rules.eventBus.name}/${rule.name}`),
          );
          expect(perms).toHaveLength(1);
          expect(perms[0][1].Principal).toBe('events.amazonaws.com');
          expect(perms[0][1].Action).toBe('lambda:InvokeFunction');
        }
      });
    });
  }
});

describe('dead-letter queues', () => {
  for (const q of rules.deadLetterQueues) {
    const queueName = `ecosystem-marketplace-${q.name}`;
    const entry = ofType('AWS::SQS::Queue').find(([, p]) => p.QueueName === queueName);

    test(`${q.name} is encrypted and keeps messages ${q.messageRetentionDays} days`, () => {
      expect(entry).toBeDefined();
      expect(entry?.[1].SqsManagedSseEnabled).toBe(true);
      expect(entry?.[1].MessageRetentionPeriod).toBe(q.messageRetentionDays * 86400);
    });

    test(`${q.name} accepts messages only from the rules that use it, over TLS`, () => {
      const users = rules.rules.filter((r) => r.targets.some((t) => t.deadLetterQueue === q.name)).map((r) => r.name).sort();
      const policy = ofType('AWS::SQS::QueuePolicy').find(([, p]) => (p.Queues as unknown[]).some((x) => readable(x, names) === `queue:${queueName}`));
      expect(policy).toBeDefined();
      const statements = policy?.[1].PolicyDocument.Statement as Record<string, any>[];
      const allow = statements.find((s) => s.Effect === 'Allow');
      expect(allow?.Principal).toEqual({ Service: 'events.amazonaws.com' });
      expect(allow?.Action).toBe('sqs:SendMessage');
      const sources = ([] as unknown[]).concat(allow?.Condition.ArnEquals['aws:SourceArn']).map((a) => readable(a, names).split(':rule/')[1].split('/').pop());
      expect(sources.sort()).toEqual(users);
      const deny = statements.find((s) => s.Effect === 'Deny');
      expect(deny?.Condition).toEqual({ Bool: { 'aws:SecureTransport': 'false' } });
    });

    test(`${q.name} has a depth alarm at ${q.alarmThreshold} message(s)`, () => {
      const alarm = ofType('AWS::CloudWatch::Alarm').find(([, p]) => p.AlarmName === `${queueName}-depth`);
      expect(alarm).toBeDefined();
      const p = alarm?.[1] ?? {};
      expect(p.MetricName).toBe('ApproximateNumberOfMessagesVisible');
      expect(p.Namespace).toBe('AWS/SQS');
      expect(p.Threshold).toBe(q.alarmThreshold);
      expect(p.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
      expect((p.AlarmActions as unknown[]).length).toBe(1);
    });
  }

  test('every target of every rule has a dead-letter queue and a retry policy', () => {
    for (const [, p] of ofType('AWS::Events::Rule')) {
      for (const t of p.Targets as Record<string, any>[]) {
        expect(t.DeadLetterConfig?.Arn).toBeDefined();
        expect(t.RetryPolicy?.MaximumRetryAttempts).toBeGreaterThanOrEqual(0);
        expect(t.RetryPolicy?.MaximumEventAgeInSeconds).toBeGreaterThanOrEqual(60);
      }
    }
  });
});
