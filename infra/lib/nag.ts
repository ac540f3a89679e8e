/**
 * cdk-nag AwsSolutions findings that are deliberate, each acknowledged with its reason.
 * Everything else is fixed in the stack; synthesis (bin/app.ts) and the tests fail on any
 * finding not acknowledged here.
 */
import { Stack, Token, Validations } from 'aws-cdk-lib';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import type { MarketplaceStack } from './marketplace-stack';
import { WORKFLOWS } from './config';

export function acknowledgeNagFindings(stack: MarketplaceStack): void {
  const ack = (scope: Parameters<typeof Validations.of>[0], id: string, reason: string): void =>
    Validations.of(scope).acknowledge({ id, reason });

  // Stack-wide, backed by a test that `*` appears only next to these actions.
  ack(
    stack,
    'AwsSolutions-IAM5[Resource::*]',
    'Only X-Ray (xray:PutTraceSegments/PutTelemetryRecords/GetSampling*), Step Functions log delivery (logs:*LogDelivery*, DescribeLogGroups, resource policies) and the task-token APIs (states:SendTaskSuccess/Failure/Heartbeat, given only to the four functions that complete tokens) use Resource "*": those actions support no resource-level permissions. A test asserts no other action gets "*".',
  );

  ack(stack.userPool, 'AwsSolutions-COG2', 'MFA is optional (TOTP) for customers and providers, who sign up themselves; requiring it would block sign-up. Admin accounts are created by operators with MFA enrolled.');
  ack(stack.userPool, 'AwsSolutions-COG8', 'The Plus feature plan (threat protection) is billed per monthly active user; the Essentials plan is the cost decision documented in infra/README.md.');

  for (const id of ['StripeApiKey', 'StripeWebhookSecret']) {
    const secret = stack.node.findChild(id);
    ack(secret, 'AwsSolutions-SMG4', 'Stripe keys and webhook signing secrets are rolled in the Stripe dashboard, not by Secrets Manager; the operator updates the secret value (the webhook accepts every v1 signature during rotation).');
  }

  for (const queue of stack.deadLetterQueues.values()) {
    ack(queue, 'AwsSolutions-SQS3', 'This queue is itself the dead-letter queue of EventBridge targets; its depth is alarmed and messages are redriven by hand.');
  }

  // The finding id spells the ARN as cdk-nag resolves it: literals where known, <AWS::X> otherwise.
  const partition = Token.isUnresolved(stack.partition) ? '<AWS::Partition>' : stack.partition;
  const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
  const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
  const orchestratorRole = stack.fn('workflow-orchestrator').role;
  if (orchestratorRole) {
    for (const wf of WORKFLOWS) {
      ack(
        orchestratorRole,
        `AwsSolutions-IAM5[Resource::arn:${partition}:states:${region}:${account}:execution:${wf.stateMachineName}:*]`,
        'Execution names are chosen at start time; the wildcard is limited to executions of this one state machine (DescribeExecution, GetExecutionHistory, StopExecution).',
      );
    }
  }

  const orchestrator = stack.fn('workflow-orchestrator');
  const logicalId = Stack.of(stack).getLogicalId(orchestrator.node.defaultChild as CfnFunction);
  ack(
    stack.api,
    `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`,
    'AppSync data source role made by the CDK: invoke the orchestrator and its versions/aliases only.',
  );
}
