/** The Lambda functions: runtime, code, logs, environment, concurrency, alarms, and exactly their IAM. */
import { TABLES } from '../lib/tables';
import { WORKFLOWS } from '../lib/config';
import { synth } from './helpers';
import { WILDCARD_ALLOWED, friendlyNames, permissionsOf, readable, resources } from './template-names';

const { template } = synth();
const res = resources(template);
const names = friendlyNames(template);

const READ = ['dynamodb:BatchGetItem', 'dynamodb:ConditionCheckItem', 'dynamodb:GetItem', 'dynamodb:Query'];
const WRITE = [...READ, 'dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'];
const INDEXES: Record<string, string[]> = {
  bookings: ['byCustomer', 'byProvider'],
  slots: [],
  services: ['byProvider'],
  providers: ['byStripeAccount'],
  payments: ['byBooking', 'byProvider'],
  ledger: [],
  disputes: ['byBooking', 'byCustomer', 'byProvider', 'byStatus'],
  notifications: ['byRecipient'],
  workflows: ['byOwner', 'byType'],
  idempotency: [],
};

function table(name: string, access: 'r' | 'rw'): string[] {
  const t = `table:ecosystem-marketplace-${name}`;
  return [...(access === 'rw' ? WRITE : READ).map((a) => `${a} ${t}`), ...INDEXES[name].map((i) => `dynamodb:Query ${t}/index/${i}`)];
}
const sm = (name: string) => `arn:aws:states:eu-west-1:123456789012:stateMachine:ecosystem-${name}`;
const exec = (name: string) => `arn:aws:states:eu-west-1:123456789012:execution:ecosystem-${name}:*`;
// AWS supports no resource-level permissions for the task-token APIs.
const TASK_RESPONSE = ['states:SendTaskFailure *', 'states:SendTaskHeartbeat *', 'states:SendTaskSuccess *'];
const publish = (...sources: string[]) => [`events:PutEvents bus if ${JSON.stringify({ StringEquals: { 'events:source': sources } })}`];
const base = (fn: string) => [
  `logs:CreateLogStream logs:/aws/lambda/ecosystem-marketplace-${fn}`,
  `logs:PutLogEvents logs:/aws/lambda/ecosystem-marketplace-${fn}`,
  'xray:PutTelemetryRecords *',
  'xray:PutTraceSegments *',
];
const secret = (name: string) => [`secretsmanager:DescribeSecret secret:ecosystem-marketplace/${name}`, `secretsmanager:GetSecretValue secret:ecosystem-marketplace/${name}`];
const ALL = ['booking-lifecycle', 'payment-processing', 'dispute-resolution', 'provider-onboarding'];

/** What each function may do, written out by hand: a change to the stack must change this too. */
const EXPECTED: Record<string, string[]> = {
  'workflow-orchestrator': [
    ...base('workflow-orchestrator'),
    ...table('workflows', 'rw'),
    ...table('bookings', 'r'),
    ...table('disputes', 'rw'),
    ...table('payments', 'r'),
    ...table('idempotency', 'rw'),
    'events:PutEvents bus',
    ...TASK_RESPONSE,
    ...ALL.flatMap((m) => [`states:ListExecutions ${sm(m)}`, `states:StartExecution ${sm(m)}`]),
    ...ALL.flatMap((m) => ['states:DescribeExecution', 'states:GetExecutionHistory', 'states:StopExecution'].map((a) => `${a} ${exec(m)}`)),
  ],
  'booking-manager': [
    ...base('booking-manager'),
    ...table('bookings', 'rw'),
    ...table('slots', 'rw'),
    ...table('services', 'r'),
    ...table('providers', 'r'),
    ...table('payments', 'r'),
    ...table('idempotency', 'rw'),
    ...TASK_RESPONSE,
  ],
  'payout-manager': [
    ...base('payout-manager'),
    ...table('payments', 'rw'),
    ...table('ledger', 'rw'),
    ...table('providers', 'rw'),
    ...table('bookings', 'r'),
    ...table('idempotency', 'rw'),
    ...publish('marketplace.payment'),
    ...TASK_RESPONSE,
    ...secret('stripe-api-key'),
  ],
  'dispute-handler': [
    ...base('dispute-handler'),
    ...table('disputes', 'rw'),
    ...table('bookings', 'r'),
    ...table('payments', 'r'),
    ...table('idempotency', 'rw'),
    ...publish('marketplace.dispute'),
    ...TASK_RESPONSE,
  ],
  'notification-handler': [
    ...base('notification-handler'),
    ...table('notifications', 'rw'),
    ...table('bookings', 'r'),
    ...table('services', 'r'),
    ...table('providers', 'r'),
    ...table('idempotency', 'rw'),
    'ses:SendEmail arn:aws:ses:eu-west-1:123456789012:identity/marketplace.example.com',
    'cognito-idp:AdminGetUser userpool',
    'cognito-idp:ListUsersInGroup userpool',
  ],
  'stripe-webhook': [
    ...base('stripe-webhook'),
    ...table('payments', 'rw'),
    ...table('providers', 'rw'),
    ...table('bookings', 'r'),
    ...table('idempotency', 'rw'),
    ...publish('marketplace.payment', 'marketplace.provider', 'marketplace.dispute'),
    ...TASK_RESPONSE,
    ...secret('stripe-webhook-secret'),
  ],
};

function functionProps(name: string): Record<string, any> {
  const f = Object.values(res).find((r) => r.Type === 'AWS::Lambda::Function' && r.Properties?.FunctionName === `ecosystem-marketplace-${name}`);
  if (!f) throw new Error(`function ${name} not in the template`);
  return f.Properties as Record<string, any>;
}

test('six functions', () => {
  template.resourceCountIs('AWS::Lambda::Function', 6);
  expect(Object.keys(EXPECTED).sort()).toEqual(
    Object.values(res)
      .filter((r) => r.Type === 'AWS::Lambda::Function')
      .map((r) => String(r.Properties?.FunctionName).replace('ecosystem-marketplace-', ''))
      .sort(),
  );
});

for (const [name, expected] of Object.entries(EXPECTED)) {
  describe(name, () => {
    const p = functionProps(name);

    test('is a PROVIDED_AL2023 arm64 bootstrap binary with X-Ray and JSON logs', () => {
      expect(p.Runtime).toBe('provided.al2023');
      expect(p.Architectures).toEqual(['arm64']);
      expect(p.Handler).toBe('bootstrap');
      expect(p.TracingConfig).toEqual({ Mode: 'Active' });
      expect(p.LoggingConfig.LogFormat).toBe('JSON');
      expect(readable(p.LoggingConfig.LogGroup, names)).toBe(`logs:/aws/lambda/ecosystem-marketplace-${name}`);
    });

    test('its log group has a retention', () => {
      const lg = Object.values(res).find((r) => r.Type === 'AWS::Logs::LogGroup' && r.Properties?.LogGroupName === `/aws/lambda/ecosystem-marketplace-${name}`);
      expect(lg?.Properties?.RetentionInDays).toBe(30);
    });

    test('knows the bus, every table and every state machine', () => {
      const env = p.Environment.Variables as Record<string, unknown>;
      expect(readable(env.EVENT_BUS_NAME, names)).toBe('bus');
      for (const t of TABLES) expect(env[t.envVar]).toBe(t.tableName);
      for (const wf of WORKFLOWS) expect(readable(env[wf.envVar], names)).toBe(`arn:{AWS::Partition}:states:eu-west-1:123456789012:stateMachine:${wf.stateMachineName}`);
      expect(env.SERVICE_NAME).toBe(name);
    });

    test('has exactly the permissions it needs', () => {
      const roleId = (p.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
      expect(permissionsOf(template, roleId)).toEqual([...expected].sort());
      const role = res[roleId];
      expect(role.Properties?.ManagedPolicyArns).toBeUndefined();
    });

    test('alarms on errors', () => {
      const alarm = Object.values(res).find((r) => r.Type === 'AWS::CloudWatch::Alarm' && r.Properties?.AlarmName === `ecosystem-marketplace-${name}-errors`);
      expect(alarm?.Properties?.MetricName).toBe('Errors');
      expect(alarm?.Properties?.Namespace).toBe('AWS/Lambda');
    });
  });
}

test('Stripe-facing functions have reserved concurrency, the others do not', () => {
  expect(functionProps('payout-manager').ReservedConcurrentExecutions).toBe(20);
  expect(functionProps('stripe-webhook').ReservedConcurrentExecutions).toBe(20);
  for (const name of ['workflow-orchestrator', 'booking-manager', 'dispute-handler', 'notification-handler']) {
    expect(functionProps(name).ReservedConcurrentExecutions).toBeUndefined();
  }
});

test('only stripe-webhook has a public URL (requests are verified by their Stripe signature)', () => {
  const urls = Object.values(res).filter((r) => r.Type === 'AWS::Lambda::Url');
  expect(urls).toHaveLength(1);
  expect(readable(urls[0].Properties?.TargetFunctionArn, names)).toBe('fn:ecosystem-marketplace-stripe-webhook');
  expect(urls[0].Properties?.AuthType).toBe('NONE');
});

test('only the functions that complete task tokens may call the task-token APIs', () => {
  const holders = Object.entries(EXPECTED).filter(([, lines]) => lines.includes('states:SendTaskSuccess *')).map(([name]) => name).sort();
  expect(holders).toEqual(['booking-manager', 'dispute-handler', 'payout-manager', 'stripe-webhook', 'workflow-orchestrator']);
});

test('no policy in the stack grants Resource "*" except for X-Ray, log delivery and task tokens', () => {
  for (const [id, r] of Object.entries(res)) {
    if (r.Type !== 'AWS::IAM::Role') continue;
    for (const line of permissionsOf(template, id)) {
      if (line.split(' ')[1] === '*') expect(line).toMatch(WILDCARD_ALLOWED);
    }
  }
});

test('no role in the stack uses a managed policy', () => {
  for (const r of Object.values(res)) {
    if (r.Type === 'AWS::IAM::Role') expect(r.Properties?.ManagedPolicyArns).toBeUndefined();
  }
});
