/** Tables and their indexes, the AppSync API and Cognito, the schema registry, the alarm topic and cdk-nag. */
import { readFileSync } from 'node:fs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadEventSchemas } from '../lib/config';
import { parseAppSyncSchema, resolverFields } from '../lib/graphql';
import { TABLES } from '../lib/tables';
import { SCHEMA_FILE, synth } from './helpers';
import { friendlyNames, readable, resources } from './template-names';

const { stack, template } = synth();
const res = resources(template);
const names = friendlyNames(template);

function ofType(type: string): Record<string, any>[] {
  return Object.values(res)
    .filter((r) => r.Type === type)
    .map((r) => r.Properties ?? {});
}

describe('DynamoDB tables', () => {
  /** The key design, written out: a change in tables.ts must be reflected here. */
  const EXPECTED: Record<string, { keys: string[]; ttl?: string; indexes: Record<string, string[]> }> = {
    'ecosystem-marketplace-bookings': { keys: ['bookingId'], indexes: { byCustomer: ['customerId', 'startDateTime'], byProvider: ['providerId', 'startDateTime'] } },
    'ecosystem-marketplace-slots': { keys: ['providerId', 'slotStart'], ttl: 'expiresAt', indexes: {} },
    'ecosystem-marketplace-services': { keys: ['serviceId'], indexes: { byProvider: ['providerId', 'serviceId'] } },
    'ecosystem-marketplace-providers': { keys: ['providerId'], indexes: { byStripeAccount: ['stripeAccountId'] } },
    'ecosystem-marketplace-payments': { keys: ['paymentId'], indexes: { byBooking: ['bookingId', 'createdAt'], byProvider: ['providerId', 'createdAt'] } },
    'ecosystem-marketplace-ledger': { keys: ['providerId', 'entryId'], indexes: {} },
    'ecosystem-marketplace-disputes': {
      keys: ['disputeId'],
      indexes: { byBooking: ['bookingId', 'createdAt'], byCustomer: ['customerId', 'createdAt'], byProvider: ['providerId', 'createdAt'], byStatus: ['status', 'createdAt'] },
    },
    'ecosystem-marketplace-notifications': { keys: ['notificationId'], ttl: 'expiresAt', indexes: { byRecipient: ['recipientId', 'createdAt'] } },
    'ecosystem-marketplace-workflows': { keys: ['executionArn'], indexes: { byOwner: ['ownerId', 'startedAt'], byType: ['workflowType', 'startedAt'] } },
    'ecosystem-marketplace-idempotency': { keys: ['id'], ttl: 'expiration', indexes: {} },
  };

  test('exactly the designed tables', () => {
    expect(ofType('AWS::DynamoDB::Table').map((t) => t.TableName).sort()).toEqual(Object.keys(EXPECTED).sort());
    expect(TABLES.map((t) => t.tableName).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [tableName, spec] of Object.entries(EXPECTED)) {
    test(`${tableName}: keys, indexes, TTL, on-demand, PITR, encryption, protection`, () => {
      const t = ofType('AWS::DynamoDB::Table').find((x) => x.TableName === tableName) ?? {};
      const keys = (t.KeySchema as { AttributeName: string; KeyType: string }[]).map((k) => k.AttributeName);
      expect(keys).toEqual(spec.keys);
      expect(t.KeySchema[0].KeyType).toBe('HASH');
      const indexes = Object.fromEntries(
        ((t.GlobalSecondaryIndexes ?? []) as { IndexName: string; KeySchema: { AttributeName: string }[]; Projection: { ProjectionType: string } }[]).map((i) => {
          expect(i.Projection.ProjectionType).toBe('ALL');
          return [i.IndexName, i.KeySchema.map((k) => k.AttributeName)];
        }),
      );
      expect(indexes).toEqual(spec.indexes);
      if (spec.ttl) expect(t.TimeToLiveSpecification).toEqual({ AttributeName: spec.ttl, Enabled: true });
      else expect(t.TimeToLiveSpecification).toBeUndefined();
      expect(t.BillingMode).toBe('PAY_PER_REQUEST');
      expect(t.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(t.SSESpecification).toEqual({ SSEEnabled: true });
      expect(t.DeletionProtectionEnabled).toBe(true);
      const attrs = (t.AttributeDefinitions as { AttributeName: string; AttributeType: string }[]).every((a) => a.AttributeType === 'S');
      expect(attrs).toBe(true);
    });
  }

  test('tables are retained when the stack is deleted', () => {
    for (const r of Object.values(res)) {
      if (r.Type === 'AWS::DynamoDB::Table') expect((r as Record<string, unknown>).DeletionPolicy).toBe('Retain');
    }
  });
});

describe('GraphQL API', () => {
  const sdl = readFileSync(SCHEMA_FILE, 'utf8');
  const schema = parseAppSyncSchema(sdl);

  test('the schema is valid GraphQL once AppSync scalars and directives are declared', () => {
    expect(schema.getQueryType()).toBeDefined();
    expect(schema.getMutationType()).toBeDefined();
  });

  test('an invalid schema is rejected with the reason', () => {
    expect(() => parseAppSyncSchema('type Query { x: UnknownType }')).toThrow(/UnknownType/);
  });

  test('the API is served from the schema: API key by default, IAM and Cognito besides', () => {
    const [api] = ofType('AWS::AppSync::GraphQLApi');
    expect(api.Name).toBe('ecosystem-marketplace-api');
    expect(api.AuthenticationType).toBe('API_KEY');
    const extra = api.AdditionalAuthenticationProviders as Record<string, any>[];
    expect(extra.map((m) => m.AuthenticationType)).toEqual(['AWS_IAM', 'AMAZON_COGNITO_USER_POOLS']);
    expect(readable(extra[1].UserPoolConfig.UserPoolId, names)).toBe('userpool');
    expect(api.XrayEnabled).toBe(true);
    expect(api.LogConfig.FieldLogLevel).toBe('ERROR');
    const [schemaResource] = ofType('AWS::AppSync::GraphQLSchema');
    expect(schemaResource.Definition).toBe(sdl);
    template.resourceCountIs('AWS::AppSync::ApiKey', 1);
  });

  test('every Query and Mutation field has a direct Lambda resolver on the orchestrator', () => {
    const [ds] = ofType('AWS::AppSync::DataSource');
    expect(ds.Type).toBe('AWS_LAMBDA');
    expect(readable(ds.LambdaConfig.LambdaFunctionArn, names)).toBe('fn:ecosystem-marketplace-workflow-orchestrator');
    const resolvers = ofType('AWS::AppSync::Resolver').map((r) => {
      expect(r.RequestMappingTemplate).toBeUndefined();
      expect(r.ResponseMappingTemplate).toBeUndefined();
      expect(r.Kind).toBe('UNIT');
      return `${r.TypeName}.${r.FieldName}`;
    });
    expect(resolvers.sort()).toEqual(resolverFields(schema).map((f) => `${f.typeName}.${f.fieldName}`).sort());
    expect(resolvers.length).toBeGreaterThan(0);
  });

  test('Cognito user pool: strong passwords, e-mail sign-in, the groups the schema names', () => {
    const [pool] = ofType('AWS::Cognito::UserPool');
    expect(pool.Policies.PasswordPolicy).toMatchObject({ MinimumLength: 12, RequireNumbers: true, RequireSymbols: true, RequireUppercase: true, RequireLowercase: true });
    expect(pool.UsernameAttributes).toEqual(['email']);
    expect(ofType('AWS::Cognito::UserPoolGroup').map((g) => g.GroupName).sort()).toEqual(['admin', 'customer', 'provider']);
    for (const group of sdl.matchAll(/cognito_groups: \["([a-z]+)"\]/g)) expect(['admin', 'customer', 'provider']).toContain(group[1]);
  });
});

describe('schema registry', () => {
  const files = loadEventSchemas();

  test('holds one JSON Schema (draft 4) per schemas/*.json, content unchanged', () => {
    const deployed = ofType('AWS::EventSchemas::Schema');
    expect(deployed.map((s) => s.SchemaName).sort()).toEqual(files.map((f) => f.schemaName).sort());
    for (const f of files) {
      const s = deployed.find((d) => d.SchemaName === f.schemaName);
      expect(s?.Type).toBe('JSONSchemaDraft4');
      expect(JSON.parse(String(s?.Content))).toEqual(JSON.parse(f.content));
      expect(s?.RegistryName).toBe('ecosystem-marketplace');
    }
    expect(ofType('AWS::EventSchemas::Registry').map((r) => r.RegistryName)).toEqual(['ecosystem-marketplace']);
  });

  test('every published event type of the catalogue has a schema', () => {
    expect(files.length).toBeGreaterThanOrEqual(20);
    for (const f of files) expect(f.schemaName).toMatch(/^marketplace\.(booking|payment|dispute|provider|workflow)@[A-Za-z]+$/);
  });
});

describe('alarms', () => {
  test('every alarm notifies the encrypted alarm topic', () => {
    const [topic] = ofType('AWS::SNS::Topic');
    expect(topic.TopicName).toBe('ecosystem-marketplace-alarms');
    expect(topic.KmsMasterKeyId).toBeDefined();
    const [topicPolicy] = ofType('AWS::SNS::TopicPolicy');
    const publish = (topicPolicy.PolicyDocument.Statement as Record<string, any>[]).find((st) => st.Sid === 'CloudWatchAlarmsPublish');
    expect(publish?.Principal).toEqual({ Service: 'cloudwatch.amazonaws.com' });
    expect(publish?.Action).toBe('sns:Publish');
    const alarms = ofType('AWS::CloudWatch::Alarm');
    // 6 functions + 4 workflows x 2 + dead-letter queues
    expect(alarms.length).toBe(6 + 8 + stack.deadLetterQueues.size);
    for (const a of alarms) expect(a.AlarmActions).toHaveLength(1);
  });
});

test('cdk-nag AwsSolutions: every finding is fixed or acknowledged with a reason', () => {
  const report = new AwsSolutionsChecks(stack).validateScope(stack);
  const open = report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.resourceLogicalId).join(', ')}`);
  expect(open).toEqual([]);
});

test('cdk-nag would report findings if they were not acknowledged (the check is live)', () => {
  // A fresh, unacknowledged user pool in another stack must be reported.
  const { App, Stack, aws_cognito: cognito } = jest.requireActual('aws-cdk-lib');
  const app = new App();
  const probe = new Stack(app, 'Probe');
  new cognito.UserPool(probe, 'Pool');
  const report = new AwsSolutionsChecks(probe).validateScope(probe);
  expect(report.violations.map((v) => v.ruleName)).toContain('AwsSolutions-COG2');
});
