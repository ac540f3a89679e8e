/** The four state machines: inline definitions equal to the files, substitutions, logging, tracing, alarms, IAM. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STATEMACHINES_DIR, WORKFLOWS, placeholders } from '../lib/config';
import { synth } from './helpers';
import { WILDCARD_ALLOWED, friendlyNames, permissionsOf, readable, resources } from './template-names';

const { template } = synth();
const res = resources(template);
const names = friendlyNames(template);

/** Stand-ins for what CloudFormation substitutes, so a definition can be parsed after substitution. */
function substituted(text: string, subs: Record<string, unknown>): unknown {
  return JSON.parse(text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name: string) => {
    if (!(name in subs)) throw new Error(`no substitution for \${${name}}`);
    return readable(subs[name], names);
  }));
}

const EXPECTED_TIMEOUTS: Record<string, number> = {
  // the payment window is 15 minutes; the execution then waits for the end of the service
  'ecosystem-booking-lifecycle': 17366400,
  'ecosystem-payment-processing': 600,
  'ecosystem-dispute-resolution': 608400,
  'ecosystem-provider-onboarding': 1800,
};

const EXPECTED_SUBSTITUTIONS: Record<string, Record<string, string>> = {
  'ecosystem-booking-lifecycle': {
    BookingManagerFunctionArn: 'fn:ecosystem-marketplace-booking-manager',
    PayoutManagerFunctionArn: 'fn:ecosystem-marketplace-payout-manager',
    NotificationHandlerFunctionArn: 'fn:ecosystem-marketplace-notification-handler',
    EventBusName: 'bus',
  },
  'ecosystem-payment-processing': {
    PayoutManagerFunctionArn: 'fn:ecosystem-marketplace-payout-manager',
    EventBusName: 'bus',
  },
  'ecosystem-dispute-resolution': {
    DisputeHandlerFunctionArn: 'fn:ecosystem-marketplace-dispute-handler',
    PayoutManagerFunctionArn: 'fn:ecosystem-marketplace-payout-manager',
    NotificationHandlerFunctionArn: 'fn:ecosystem-marketplace-notification-handler',
    EventBusName: 'bus',
  },
  'ecosystem-provider-onboarding': {
    PayoutManagerFunctionArn: 'fn:ecosystem-marketplace-payout-manager',
    NotificationHandlerFunctionArn: 'fn:ecosystem-marketplace-notification-handler',
    EventBusName: 'bus',
  },
};

const EXPECTED_SOURCES: Record<string, string[]> = {
  'ecosystem-booking-lifecycle': ['marketplace.booking', 'marketplace.payment'],
  'ecosystem-payment-processing': ['marketplace.payment'],
  'ecosystem-dispute-resolution': ['marketplace.dispute', 'marketplace.payment'],
  'ecosystem-provider-onboarding': ['marketplace.provider'],
};

test('four state machines, no more', () => {
  template.resourceCountIs('AWS::StepFunctions::StateMachine', 4);
});

test('one log group /aws/stepfunctions/marketplace-workflows with a retention', () => {
  template.hasResourceProperties('AWS::Logs::LogGroup', {
    LogGroupName: '/aws/stepfunctions/marketplace-workflows',
    RetentionInDays: 30,
  });
});

for (const wf of WORKFLOWS) {
  describe(wf.stateMachineName, () => {
    const file = join(STATEMACHINES_DIR, wf.file);
    const text = readFileSync(file, 'utf8');
    const entry = Object.entries(res).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine' && r.Properties?.StateMachineName === wf.stateMachineName);
    const [logicalId, r] = entry ?? ['', { Properties: {} as Record<string, any> }];
    const p = r.Properties as Record<string, any>;

    test('is deployed as STANDARD (callbacks and long waits need it)', () => {
      expect(entry).toBeDefined();
      expect(p.StateMachineType).toBe('STANDARD');
    });

    test('definition is the file, inline, byte for byte', () => {
      expect(p.DefinitionString).toBe(text);
      expect(p.DefinitionS3Location).toBeUndefined();
    });

    test('every placeholder gets exactly the right ARN or name', () => {
      const subs = p.DefinitionSubstitutions as Record<string, unknown>;
      expect(Object.keys(subs).sort()).toEqual(placeholders(text).sort());
      const resolved = Object.fromEntries(Object.entries(subs).map(([k, v]) => [k, readable(v, names)]));
      expect(resolved).toEqual(EXPECTED_SUBSTITUTIONS[wf.stateMachineName]);
    });

    test('after substitution the definition is the file with the ARNs in place', () => {
      const after = substituted(p.DefinitionString, p.DefinitionSubstitutions) as Record<string, any>;
      const original = JSON.parse(text) as Record<string, any>;
      expect(Object.keys(after.States).sort()).toEqual(Object.keys(original.States).sort());
      expect(JSON.stringify(after)).not.toContain('${');
      for (const state of Object.values(after.States) as Record<string, any>[]) {
        if (state.Type !== 'Task') continue;
        if (String(state.Resource).startsWith('arn:aws:states:::lambda:invoke')) {
          expect(state.Parameters.FunctionName).toMatch(/^fn:ecosystem-marketplace-/);
        } else {
          expect(state.Resource).toBe('arn:aws:states:::events:putEvents');
          for (const e of state.Parameters.Entries) expect(e.EventBusName).toBe('bus');
        }
      }
    });

    test('declares its overall timeout', () => {
      expect(JSON.parse(text).TimeoutSeconds).toBe(EXPECTED_TIMEOUTS[wf.stateMachineName]);
    });

    test('logs to the shared log group and traces with X-Ray', () => {
      expect(p.LoggingConfiguration.Level).toBe('ALL');
      expect(p.LoggingConfiguration.IncludeExecutionData).toBe(false);
      expect(readable(p.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn, names)).toBe('logs:/aws/stepfunctions/marketplace-workflows');
      expect(p.TracingConfiguration).toEqual({ Enabled: true });
    });

    test('its role invokes exactly the functions it names and publishes exactly its sources', () => {
      const roleId = (p.RoleArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
      const perms = permissionsOf(template, roleId);
      const invokes = perms.filter((l) => l.startsWith('lambda:')).sort();
      const expectedFns = Object.values(EXPECTED_SUBSTITUTIONS[wf.stateMachineName]).filter((v) => v.startsWith('fn:'));
      expect(invokes).toEqual(expectedFns.map((f) => `lambda:InvokeFunction ${f}`).sort());
      const puts = perms.filter((l) => l.startsWith('events:'));
      expect(puts).toEqual([`events:PutEvents bus if ${JSON.stringify({ StringEquals: { 'events:source': EXPECTED_SOURCES[wf.stateMachineName] } })}`]);
      const others = perms.filter((l) => !l.startsWith('lambda:') && !l.startsWith('events:'));
      for (const line of others) expect(line).toMatch(WILDCARD_ALLOWED);
      expect(logicalId).not.toBe('');
    });

    test('alarms on failed and timed-out executions', () => {
      for (const what of ['failed', 'timed-out']) {
        const alarm = Object.values(res).find((x) => x.Type === 'AWS::CloudWatch::Alarm' && x.Properties?.AlarmName === `${wf.stateMachineName}-executions-${what}`);
        expect(alarm).toBeDefined();
        expect(alarm?.Properties?.MetricName).toBe(what === 'failed' ? 'ExecutionsFailed' : 'ExecutionsTimedOut');
        expect(alarm?.Properties?.Namespace).toBe('AWS/States');
      }
    });
  });
}
