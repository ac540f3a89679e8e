/** Readable names for template references, so IAM assertions read like the design. */
import { Template } from 'aws-cdk-lib/assertions';

export type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

export function resources(template: Template): Resources {
  return template.toJSON().Resources as Resources;
}

/** Logical id → `table:NAME`, `fn:NAME`, `bus`, `logs:NAME`, `secret:NAME`, `userpool`, `queue:NAME`. */
export function friendlyNames(template: Template): Map<string, string> {
  const names = new Map<string, string>();
  for (const [id, r] of Object.entries(resources(template))) {
    const p = r.Properties ?? {};
    switch (r.Type) {
      case 'AWS::DynamoDB::Table':
        names.set(id, `table:${String(p.TableName)}`);
        break;
      case 'AWS::Lambda::Function':
        names.set(id, `fn:${String(p.FunctionName)}`);
        break;
      case 'AWS::Events::EventBus':
        names.set(id, 'bus');
        break;
      case 'AWS::Logs::LogGroup':
        names.set(id, `logs:${typeof p.LogGroupName === 'string' ? p.LogGroupName : 'appsync'}`);
        break;
      case 'AWS::SecretsManager::Secret':
        names.set(id, `secret:${String(p.Name)}`);
        break;
      case 'AWS::Cognito::UserPool':
        names.set(id, 'userpool');
        break;
      case 'AWS::SQS::Queue':
        names.set(id, `queue:${String(p.QueueName)}`);
        break;
      default:
        break;
    }
  }
  return names;
}

/** A CloudFormation value as text, references replaced by readable names. */
export function readable(value: unknown, names: Map<string, string>): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map((v) => readable(v, names)).join(',');
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if ('Ref' in o) {
      const ref = String(o.Ref);
      return names.get(ref) ?? `{${ref}}`;
    }
    if ('Fn::GetAtt' in o) {
      const [id, attr] = o['Fn::GetAtt'] as [string, string];
      const name = names.get(id);
      return name ? (attr === 'Arn' ? name : `${name}.${attr}`) : `{${id}.${attr}}`;
    }
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map((p) => readable(p, names)).join(sep);
    }
  }
  return JSON.stringify(value);
}

/** Every Allow statement of a role's policies as `action resource[ condition]` lines, sorted. */
export function permissionsOf(template: Template, roleLogicalId: string): string[] {
  const names = friendlyNames(template);
  const lines: string[] = [];
  for (const r of Object.values(resources(template))) {
    if (r.Type !== 'AWS::IAM::Policy') continue;
    const roles = (r.Properties?.Roles as { Ref: string }[]) ?? [];
    if (!roles.some((ref) => ref.Ref === roleLogicalId)) continue;
    const doc = r.Properties?.PolicyDocument as { Statement: Record<string, unknown>[] };
    for (const st of doc.Statement) {
      if (st.Effect !== 'Allow') continue;
      const actions = ([] as unknown[]).concat(st.Action);
      const res = ([] as unknown[]).concat(st.Resource);
      const cond = st.Condition ? ` if ${JSON.stringify(st.Condition)}` : '';
      for (const a of actions) for (const x of res) lines.push(`${String(a)} ${readable(x, names).replace(/^arn:\{AWS::Partition\}/, 'arn:aws')}${cond}`);
    }
  }
  return lines.sort();
}

/**
 * The only actions allowed on Resource "*": X-Ray, Step Functions log delivery and the
 * task-token APIs have no resource-level permissions.
 */
export const WILDCARD_ALLOWED =
  /^(xray:(PutTraceSegments|PutTelemetryRecords|GetSamplingRules|GetSamplingTargets)|logs:(CreateLogDelivery|GetLogDelivery|UpdateLogDelivery|DeleteLogDelivery|ListLogDeliveries|PutResourcePolicy|DescribeResourcePolicies|DescribeLogGroups)|states:(SendTaskSuccess|SendTaskFailure|SendTaskHeartbeat)) \*$/;
