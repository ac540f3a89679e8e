/**
 * The files the CDK app reads (the same ones the local runtime reads): infra/rules.json,
 * statemachines/*.asl.json, schema.graphql and schemas/*.json. Loading fails with an error
 * that names the file, the field and the rule it breaks.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Repository root (infra/ is one level below it). */
export const REPO_ROOT = resolve(__dirname, '..', '..');
export const RULES_FILE = join(REPO_ROOT, 'infra', 'rules.json');
export const STATEMACHINES_DIR = join(REPO_ROOT, 'statemachines');
export const GRAPHQL_SCHEMA_FILE = join(REPO_ROOT, 'schema.graphql');
export const EVENT_SCHEMAS_DIR = join(REPO_ROOT, 'schemas');
export const LAMBDA_ASSET_ROOT = join(REPO_ROOT, 'target', 'lambda');

/** The Rust functions, each a cargo-lambda binary at target/lambda/<name>/bootstrap. */
export const FUNCTION_NAMES = [
  'workflow-orchestrator',
  'booking-manager',
  'payout-manager',
  'dispute-handler',
  'notification-handler',
  'stripe-webhook',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** An EventBridge event pattern, kept verbatim (the CDK passes it through unchanged). */
export type EventPattern = { [field: string]: unknown };

export interface RetryPolicy {
  readonly maximumRetryAttempts: number;
  readonly maximumEventAgeInSeconds: number;
}

export interface InputTransformer {
  readonly inputPathsMap: Record<string, string>;
  readonly inputTemplate: string;
}

export interface RuleTarget {
  readonly id: string;
  readonly type: 'lambda';
  readonly function: FunctionName;
  readonly inputTransformer?: InputTransformer;
  readonly retryPolicy: RetryPolicy;
  readonly deadLetterQueue: string;
}

export interface RuleDefinition {
  readonly name: string;
  readonly description: string;
  /** The marketplace bus name or `default`. */
  readonly eventBus: string;
  readonly state: 'ENABLED' | 'DISABLED';
  readonly pattern: EventPattern;
  readonly targets: readonly RuleTarget[];
}

export interface DeadLetterQueueDefinition {
  readonly name: string;
  readonly description?: string;
  readonly messageRetentionDays: number;
  readonly alarmThreshold: number;
}

export interface RulesFile {
  readonly formatVersion: 1;
  readonly eventBus: {
    readonly name: string;
    readonly archive: {
      readonly name: string;
      readonly description?: string;
      readonly retentionDays: number;
      readonly pattern?: EventPattern;
    };
  };
  readonly deadLetterQueues: readonly DeadLetterQueueDefinition[];
  readonly rules: readonly RuleDefinition[];
}

/** A definition file broke a rule; the message names the file, the field and the rule. */
export class ConfigError extends Error {
  constructor(file: string, field: string, rule: string) {
    super(`${file}: ${field}: ${rule}`);
    this.name = 'ConfigError';
  }
}

const NAME = /^[.\-_A-Za-z0-9]+$/;

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '(file)', `cannot be read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, '(file)', `is not valid JSON: ${(e as Error).message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Loads rules.json and checks what the CDK needs to be right (the full shape is checked by
 * rules.schema.json in the tests): unique names, known functions, existing dead-letter
 * queues, EventBridge's limits on names, retry policies and targets per rule.
 */
export function loadRules(file: string = RULES_FILE): RulesFile {
  const raw = readJson(file);
  if (!isObject(raw)) throw new ConfigError(file, '(root)', 'must be an object');
  if (raw.formatVersion !== 1) throw new ConfigError(file, 'formatVersion', 'must be 1');
  const rules = raw as unknown as RulesFile;
  if (!isObject(rules.eventBus) || typeof rules.eventBus.name !== 'string' || rules.eventBus.name === 'default') {
    throw new ConfigError(file, 'eventBus.name', 'must name the custom bus (not "default")');
  }
  const archive = rules.eventBus.archive;
  if (!isObject(archive) || !NAME.test(String(archive.name)) || String(archive.name).length > 48) {
    throw new ConfigError(file, 'eventBus.archive.name', 'must match [.-_A-Za-z0-9]+ and have at most 48 characters');
  }
  if (!Number.isInteger(archive.retentionDays) || archive.retentionDays < 1) {
    throw new ConfigError(file, 'eventBus.archive.retentionDays', 'must be a positive integer (no unbounded archive)');
  }
  if (!Array.isArray(rules.deadLetterQueues) || rules.deadLetterQueues.length === 0) {
    throw new ConfigError(file, 'deadLetterQueues', 'must be a non-empty array');
  }
  const queues = new Set<string>();
  rules.deadLetterQueues.forEach((q, i) => {
    if (!/^[-_A-Za-z0-9]{1,70}$/.test(String(q.name))) {
      throw new ConfigError(file, `deadLetterQueues[${i}].name`, 'must match [-_A-Za-z0-9]{1,70}');
    }
    if (queues.has(q.name)) throw new ConfigError(file, `deadLetterQueues[${i}].name`, `duplicate queue "${q.name}"`);
    queues.add(q.name);
    if (!Number.isInteger(q.messageRetentionDays) || q.messageRetentionDays < 1 || q.messageRetentionDays > 14) {
      throw new ConfigError(file, `deadLetterQueues[${i}].messageRetentionDays`, 'must be an integer from 1 to 14');
    }
    if (!Number.isInteger(q.alarmThreshold) || q.alarmThreshold < 1) {
      throw new ConfigError(file, `deadLetterQueues[${i}].alarmThreshold`, 'must be a positive integer');
    }
  });
  if (!Array.isArray(rules.rules) || rules.rules.length === 0) {
    throw new ConfigError(file, 'rules', 'must be a non-empty array');
  }
  const names = new Set<string>();
  rules.rules.forEach((rule, i) => {
    const at = `rules[${i}]`;
    if (!NAME.test(String(rule.name)) || rule.name.length > 64) {
      throw new ConfigError(file, `${at}.name`, 'must match [.-_A-Za-z0-9]+ and have at most 64 characters');
    }
    if (names.has(rule.name)) throw new ConfigError(file, `${at}.name`, `duplicate rule "${rule.name}"`);
    names.add(rule.name);
    if (typeof rule.description !== 'string' || rule.description.length === 0 || rule.description.length > 512) {
      throw new ConfigError(file, `${at}.description`, 'must be 1 to 512 characters');
    }
    if (rule.eventBus !== rules.eventBus.name && rule.eventBus !== 'default') {
      throw new ConfigError(file, `${at}.eventBus`, `must be "${rules.eventBus.name}" or "default"`);
    }
    if (rule.state !== 'ENABLED' && rule.state !== 'DISABLED') {
      throw new ConfigError(file, `${at}.state`, 'must be ENABLED or DISABLED');
    }
    if (!isObject(rule.pattern) || Object.keys(rule.pattern).length === 0) {
      throw new ConfigError(file, `${at}.pattern`, 'must be a non-empty object');
    }
    if (!Array.isArray(rule.targets) || rule.targets.length === 0 || rule.targets.length > 5) {
      throw new ConfigError(file, `${at}.targets`, 'must have 1 to 5 targets (EventBridge limit)');
    }
    const ids = new Set<string>();
    (rule.targets as readonly RuleTarget[]).forEach((t, j) => {
      const tat = `${at}.targets[${j}]`;
      if (!NAME.test(String(t.id)) || t.id.length > 64) throw new ConfigError(file, `${tat}.id`, 'must match [.-_A-Za-z0-9]+ (at most 64)');
      if (ids.has(t.id)) throw new ConfigError(file, `${tat}.id`, `duplicate target id "${t.id}"`);
      ids.add(t.id);
      if (t.type !== 'lambda') throw new ConfigError(file, `${tat}.type`, 'must be "lambda"');
      if (!(FUNCTION_NAMES as readonly string[]).includes(t.function)) {
        throw new ConfigError(file, `${tat}.function`, `must be one of ${FUNCTION_NAMES.join(', ')}`);
      }
      const rp = t.retryPolicy as RetryPolicy | undefined;
      if (!rp || typeof rp !== 'object' || !Number.isInteger(rp.maximumRetryAttempts) || rp.maximumRetryAttempts < 0 || rp.maximumRetryAttempts > 185) {
        throw new ConfigError(file, `${tat}.retryPolicy.maximumRetryAttempts`, 'must be an integer from 0 to 185');
      }
      if (!Number.isInteger(rp.maximumEventAgeInSeconds) || rp.maximumEventAgeInSeconds < 60 || rp.maximumEventAgeInSeconds > 86400) {
        throw new ConfigError(file, `${tat}.retryPolicy.maximumEventAgeInSeconds`, 'must be an integer from 60 to 86400');
      }
      if (!queues.has(t.deadLetterQueue)) {
        throw new ConfigError(file, `${tat}.deadLetterQueue`, `"${t.deadLetterQueue}" is not in deadLetterQueues`);
      }
      if (t.inputTransformer !== undefined) {
        const it = t.inputTransformer;
        if (!isObject(it.inputPathsMap) || typeof it.inputTemplate !== 'string' || it.inputTemplate.length === 0) {
          throw new ConfigError(file, `${tat}.inputTransformer`, 'needs inputPathsMap (object) and inputTemplate (string)');
        }
        for (const key of Object.keys(it.inputPathsMap)) {
          if (!it.inputTemplate.includes(`<${key}>`)) {
            throw new ConfigError(file, `${tat}.inputTransformer.inputPathsMap.${key}`, 'is not used by inputTemplate');
          }
        }
      }
    });
  });
  return rules;
}

/** One workflow: its state machine name, file, type and the workflow type the API uses. */
export interface WorkflowDefinition {
  readonly workflowType: 'BOOKING_LIFECYCLE' | 'PAYMENT_PROCESSING' | 'DISPUTE_RESOLUTION' | 'PROVIDER_ONBOARDING';
  readonly stateMachineName: string;
  readonly file: string;
  /** All four are STANDARD: they wait for callbacks (.waitForTaskToken) and run longer than 5 minutes. */
  readonly type: 'STANDARD' | 'EXPRESS';
  /** Environment variable through which the orchestrator learns the ARN. */
  readonly envVar: string;
}

export const WORKFLOWS: readonly WorkflowDefinition[] = [
  { workflowType: 'BOOKING_LIFECYCLE', stateMachineName: 'ecosystem-booking-lifecycle', file: 'booking-lifecycle.asl.json', type: 'STANDARD', envVar: 'BOOKING_LIFECYCLE_STATE_MACHINE_ARN' },
  { workflowType: 'PAYMENT_PROCESSING', stateMachineName: 'ecosystem-payment-processing', file: 'payment-processing.asl.json', type: 'STANDARD', envVar: 'PAYMENT_PROCESSING_STATE_MACHINE_ARN' },
  { workflowType: 'DISPUTE_RESOLUTION', stateMachineName: 'ecosystem-dispute-resolution', file: 'dispute-resolution.asl.json', type: 'STANDARD', envVar: 'DISPUTE_RESOLUTION_STATE_MACHINE_ARN' },
  { workflowType: 'PROVIDER_ONBOARDING', stateMachineName: 'ecosystem-provider-onboarding', file: 'provider-onboarding.asl.json', type: 'STANDARD', envVar: 'PROVIDER_ONBOARDING_STATE_MACHINE_ARN' },
];

/** `${Name}` placeholders of a definition, in order of first appearance. */
export function placeholders(definition: string): string[] {
  const seen: string[] = [];
  for (const m of definition.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)) {
    if (!seen.includes(m[1])) seen.push(m[1]);
  }
  return seen;
}

/** Reads a state machine definition; it must be JSON with StartAt, States and TimeoutSeconds. */
export function loadDefinition(file: string): { text: string; json: Record<string, unknown> } {
  const json = readJson(file);
  if (!isObject(json) || typeof json.StartAt !== 'string' || !isObject(json.States)) {
    throw new ConfigError(file, '(root)', 'must be an ASL definition with StartAt and States');
  }
  if (!Number.isInteger(json.TimeoutSeconds)) {
    throw new ConfigError(file, 'TimeoutSeconds', 'every workflow must declare its overall timeout');
  }
  return { text: readFileSync(file, 'utf8'), json };
}

/** An EventBridge schema registry entry from schemas/<source>@<DetailTypeWithoutSpaces>.json. */
export interface EventSchemaFile {
  readonly schemaName: string;
  readonly content: string;
}

/** Every JSON Schema under `dir` (none when the directory does not exist yet). */
export function loadEventSchemas(dir: string = EVENT_SCHEMAS_DIR): EventSchemaFile[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const file = join(dir, f);
      const schemaName = f.slice(0, -'.json'.length);
      if (!/^[a-z0-9.\-]+@[A-Za-z0-9]+$/.test(schemaName)) {
        throw new ConfigError(file, '(file name)', 'must be <source>@<DetailTypeWithoutSpaces>.json');
      }
      const json = readJson(file);
      if (!isObject(json)) throw new ConfigError(file, '(root)', 'must be a JSON Schema object');
      return { schemaName, content: JSON.stringify(json) };
    });
}
