/** Synthesises the stack once per test file, offline, with a dummy Lambda asset. */
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { GRAPHQL_SCHEMA_FILE } from '../lib/config';
import { MarketplaceStack } from '../lib/marketplace-stack';

export const DUMMY_ASSET = join(__dirname, 'fixtures', 'lambda');
/** The repository's AppSync schema. */
export const SCHEMA_FILE = GRAPHQL_SCHEMA_FILE;

export interface Synthesised {
  readonly stack: MarketplaceStack;
  readonly template: Template;
}

let cached: Synthesised | undefined;

export function synth(): Synthesised {
  if (cached) return cached;
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new MarketplaceStack(app, 'EcosystemMarketplace', {
    env: { account: '123456789012', region: 'eu-west-1' },
    dummyLambdaAsset: DUMMY_ASSET,
    graphqlSchemaFile: SCHEMA_FILE,
    alarmEmail: 'ops@example.com',
  });
  const template = Template.fromStack(stack);
  cached = { stack, template };
  return cached;
}

/** Resolves `Fn::Join`/`Ref`/`Fn::GetAtt` into a readable string (for IAM assertions). */
export function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(flatten).join(',');
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if ('Ref' in o) return `{${String(o.Ref)}}`;
    if ('Fn::GetAtt' in o) return `{${(o['Fn::GetAtt'] as string[]).join('.')}}`;
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(flatten).join(sep);
    }
    if ('Fn::Select' in o) return JSON.stringify(o);
  }
  return JSON.stringify(value);
}
