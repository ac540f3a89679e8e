/**
 * The whole marketplace backend in one stack: bus, archive and routing from rules.json,
 * the Rust functions, the four workflows from statemachines/, DynamoDB tables, the AppSync
 * API with Cognito, the schema registry and the alarms.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ArnFormat,
  CfnOutput,
  Duration,
  Expiration,
  RemovalPolicy,
  Stack,
  StackProps,
  aws_appsync as appsync,
  aws_cloudwatch as cloudwatch,
  aws_cloudwatch_actions as cwActions,
  aws_cognito as cognito,
  aws_dynamodb as dynamodb,
  aws_events as events,
  aws_eventschemas as eventschemas,
  aws_iam as iam,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_secretsmanager as secretsmanager,
  aws_sns as sns,
  aws_sns_subscriptions as subscriptions,
  aws_sqs as sqs,
  aws_stepfunctions as sfn,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import {
  ConfigError,
  EVENT_SCHEMAS_DIR,
  FunctionName,
  GRAPHQL_SCHEMA_FILE,
  LAMBDA_ASSET_ROOT,
  RULES_FILE,
  RulesFile,
  STATEMACHINES_DIR,
  WORKFLOWS,
  WorkflowDefinition,
  loadDefinition,
  loadEventSchemas,
  loadRules,
  placeholders,
} from './config';
import { FUNCTIONS, FunctionSpec, functionArnSubstitution, pascal } from './functions';
import { parseAppSyncSchema, resolverFields } from './graphql';
import { READ_ACTIONS, TABLES, WRITE_ACTIONS } from './tables';
import { acknowledgeNagFindings } from './nag';

export interface MarketplaceStackProps extends StackProps {
  /**
   * Directory holding `<function-name>/bootstrap` (cargo-lambda's target/lambda). Tests pass
   * `dummyLambdaAsset` instead, so no Rust build is needed.
   */
  readonly lambdaAssetRoot?: string;
  /** One directory used as the code of every function (tests and `cdk synth` checks). */
  readonly dummyLambdaAsset?: string;
  readonly rulesFile?: string;
  readonly statemachinesDir?: string;
  readonly graphqlSchemaFile?: string;
  readonly eventSchemasDir?: string;
  /** E-mail address subscribed to the alarm topic. */
  readonly alarmEmail?: string;
  /** Verified SES identity (domain) the notifications are sent from. */
  readonly senderDomain?: string;
  /** Reserve concurrency for the Stripe-facing functions (needs account headroom). Default true. */
  readonly reserveConcurrency?: boolean;
  /** Protect tables and the user pool against deletion. Default true. */
  readonly retainData?: boolean;
}

/** Names the deployed resources use; the local runtime uses the same ones. */
export const NAMES = {
  stateMachineLogGroup: '/aws/stepfunctions/marketplace-workflows',
  api: 'ecosystem-marketplace-api',
  userPool: 'ecosystem-marketplace-users',
  schemaRegistry: 'ecosystem-marketplace',
  alarmTopic: 'ecosystem-marketplace-alarms',
  functionPrefix: 'ecosystem-marketplace-',
  queuePrefix: 'ecosystem-marketplace-',
  // cognito:groups values; schema.graphql restricts admin operations to "admin".
  userGroups: ['admin', 'provider', 'customer'],
} as const;

export class MarketplaceStack extends Stack {
  readonly rules: RulesFile;
  readonly bus: events.EventBus;
  readonly functions = new Map<FunctionName, lambda.Function>();
  readonly tables = new Map<string, dynamodb.Table>();
  readonly stateMachines = new Map<WorkflowDefinition['workflowType'], sfn.StateMachine>();
  readonly deadLetterQueues = new Map<string, sqs.Queue>();
  readonly eventRules = new Map<string, events.CfnRule>();
  /** What each state machine got as definitionSubstitutions (checked by the tests). */
  readonly substitutions = new Map<WorkflowDefinition['workflowType'], Record<string, string>>();
  readonly api: appsync.GraphqlApi;
  readonly userPool: cognito.UserPool;
  readonly alarmTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: MarketplaceStackProps = {}) {
    super(scope, id, props);
    const retain = props.retainData ?? true;
    this.rules = loadRules(props.rulesFile ?? RULES_FILE);

    // ---- alarms go to one encrypted topic -----------------------------------------------
    const topicKey = new kms.Key(this, 'AlarmTopicKey', {
      description: 'Encrypts the marketplace alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      topicName: NAMES.alarmTopic,
      masterKey: topicKey,
      enforceSSL: true,
    });
    // enforceSSL replaces the default topic policy: let CloudWatch alarms publish explicitly.
    this.alarmTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.alarmTopic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );
    if (props.alarmEmail) this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const alarmAction = new cwActions.SnsAction(this.alarmTopic);

    // ---- event bus and archive ------------------------------------------------------------
    this.bus = new events.EventBus(this, 'EventBus', { eventBusName: this.rules.eventBus.name });
    const archive = this.rules.eventBus.archive;
    new events.CfnArchive(this, 'EventArchive', {
      archiveName: archive.name,
      description: archive.description,
      sourceArn: this.bus.eventBusArn,
      retentionDays: archive.retentionDays,
      eventPattern: archive.pattern,
    });

    // ---- tables ---------------------------------------------------------------------------
    for (const spec of TABLES) {
      const table = new dynamodb.Table(this, `${spec.id}Table`, {
        tableName: spec.tableName,
        partitionKey: { name: spec.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: spec.sortKey ? { name: spec.sortKey, type: dynamodb.AttributeType.STRING } : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        timeToLiveAttribute: spec.ttlAttribute,
        deletionProtection: retain,
        removalPolicy: retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      });
      for (const index of spec.indexes) {
        table.addGlobalSecondaryIndex({
          indexName: index.name,
          partitionKey: { name: index.partitionKey, type: dynamodb.AttributeType.STRING },
          sortKey: index.sortKey ? { name: index.sortKey, type: dynamodb.AttributeType.STRING } : undefined,
          projectionType: dynamodb.ProjectionType.ALL,
        });
      }
      this.tables.set(spec.id, table);
    }

    // ---- Cognito ------------------------------------------------------------------------------
    this.userPool = new cognito.UserPool(this, 'UserPool', {
      userPoolName: NAMES.userPool,
      selfSignUpEnabled: true,
      signInAliases: { email: true },
      autoVerify: { email: true },
      passwordPolicy: {
        minLength: 12,
        requireDigits: true,
        requireLowercase: true,
        requireUppercase: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      mfa: cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      deletionProtection: retain,
      removalPolicy: retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    for (const group of NAMES.userGroups) {
      new cognito.CfnUserPoolGroup(this, `${pascal(group)}Group`, {
        userPoolId: this.userPool.userPoolId,
        groupName: group,
        description: `Marketplace ${group}s (cognito:groups claim)`,
      });
    }
    const appClient = this.userPool.addClient('AppClient', {
      authFlows: { userSrp: true },
      preventUserExistenceErrors: true,
      accessTokenValidity: Duration.hours(1),
      idTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.days(30),
    });

    // ---- secrets (values are set by the operator after the first deploy) ------------------------
    const stripeApiKey = new secretsmanager.Secret(this, 'StripeApiKey', {
      secretName: 'ecosystem-marketplace/stripe-api-key',
      description: 'Stripe secret API key (sk_live_... / sk_test_...); set after deploy',
    });
    const stripeWebhookSecret = new secretsmanager.Secret(this, 'StripeWebhookSecret', {
      secretName: 'ecosystem-marketplace/stripe-webhook-secret',
      description: 'Stripe webhook signing secrets (whsec_..., comma-separated during rotation); set after deploy',
    });

    // ---- functions ------------------------------------------------------------------------------
    const senderDomain = props.senderDomain ?? 'marketplace.example.com';
    const commonEnv: Record<string, string> = {
      EVENT_BUS_NAME: this.bus.eventBusName,
      EVENT_BUS_ARN: this.bus.eventBusArn,
      METRICS_NAMESPACE: 'EcosystemMarketplace',
    };
    for (const spec of TABLES) commonEnv[spec.envVar] = spec.tableName;
    for (const wf of WORKFLOWS) commonEnv[wf.envVar] = this.stateMachineArn(wf);

    for (const spec of FUNCTIONS) {
      const fn = this.createFunction(spec, props, commonEnv);
      this.grantFunction(fn, spec);
      if (spec.readsStripeApiKey) {
        stripeApiKey.grantRead(fn);
        fn.addEnvironment('STRIPE_API_KEY_SECRET_ARN', stripeApiKey.secretArn);
      }
      if (spec.readsStripeWebhookSecret) {
        stripeWebhookSecret.grantRead(fn);
        fn.addEnvironment('STRIPE_WEBHOOK_SECRET_ARN', stripeWebhookSecret.secretArn);
      }
      if (spec.sendsEmail) {
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['ses:SendEmail'],
            resources: [this.formatArn({ service: 'ses', resource: 'identity', resourceName: senderDomain })],
          }),
        );
        fn.addEnvironment('SENDER_ADDRESS', `no-reply@${senderDomain}`);
      }
      if (spec.readsUserPool) {
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['cognito-idp:AdminGetUser', 'cognito-idp:ListUsersInGroup'],
            resources: [this.userPool.userPoolArn],
          }),
        );
        fn.addEnvironment('USER_POOL_ID', this.userPool.userPoolId);
      }
      if (spec.functionUrl) {
        const url = fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
        new CfnOutput(this, `${pascal(spec.name)}Url`, {
          value: url.url,
          description: `${spec.name} endpoint (register it as the Stripe webhook endpoint)`,
        });
      }
      this.functions.set(spec.name, fn);
      new cloudwatch.Alarm(this, `${pascal(spec.name)}ErrorsAlarm`, {
        alarmName: `${NAMES.functionPrefix}${spec.name}-errors`,
        alarmDescription: `${spec.name} returned errors`,
        metric: fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(alarmAction);
    }

    // ---- routing from rules.json ----------------------------------------------------------------
    this.createRouting(alarmAction);

    // ---- workflows ------------------------------------------------------------------------------
    const workflowLogs = new logs.LogGroup(this, 'WorkflowLogs', {
      logGroupName: NAMES.stateMachineLogGroup,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    for (const wf of WORKFLOWS) this.createStateMachine(wf, props.statemachinesDir ?? STATEMACHINES_DIR, workflowLogs, alarmAction);

    // ---- AppSync ------------------------------------------------------------------------------
    const schemaFile = props.graphqlSchemaFile ?? GRAPHQL_SCHEMA_FILE;
    if (!existsSync(schemaFile)) {
      throw new ConfigError(schemaFile, '(file)', 'schema.graphql is missing: the AppSync API is built from it');
    }
    const schema = parseAppSyncSchema(readFileSync(schemaFile, 'utf8'));
    this.api = new appsync.GraphqlApi(this, 'Api', {
      name: NAMES.api,
      definition: appsync.Definition.fromFile(schemaFile),
      // As schema.graphql says: API key by default, IAM and Cognito (admin group) besides.
      authorizationConfig: {
        defaultAuthorization: {
          authorizationType: appsync.AuthorizationType.API_KEY,
          apiKeyConfig: { name: 'clients', description: 'Trusted clients (front end)', expires: Expiration.after(Duration.days(365)) },
        },
        additionalAuthorizationModes: [
          { authorizationType: appsync.AuthorizationType.IAM },
          { authorizationType: appsync.AuthorizationType.USER_POOL, userPoolConfig: { userPool: this.userPool } },
        ],
      },
      xrayEnabled: true,
    });
    // Logging wired by hand: the L2 logConfig adds a log-retention Lambda and a managed policy.
    const apiLogs = new logs.LogGroup(this, 'ApiLogs', {
      logGroupName: `/aws/appsync/apis/${this.api.apiId}`,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const apiLogsRole = new iam.Role(this, 'ApiLogsRole', {
      assumedBy: new iam.ServicePrincipal('appsync.amazonaws.com'),
      description: 'AppSync writes the API logs',
    });
    apiLogsRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [apiLogs.logGroupArn] }),
    );
    (this.api.node.defaultChild as appsync.CfnGraphQLApi).logConfig = {
      cloudWatchLogsRoleArn: apiLogsRole.roleArn,
      fieldLogLevel: 'ERROR',
      excludeVerboseContent: false,
    };
    const orchestrator = this.fn('workflow-orchestrator');
    const dataSource = this.api.addLambdaDataSource('OrchestratorDataSource', orchestrator, {
      description: 'workflow-orchestrator (direct Lambda resolver)',
    });
    for (const { typeName, fieldName } of resolverFields(schema)) {
      dataSource.createResolver(`${typeName}${pascal(fieldName)}Resolver`, { typeName, fieldName });
    }
    orchestrator.addEnvironment('USER_POOL_ID', this.userPool.userPoolId);
    orchestrator.addEnvironment('USER_POOL_CLIENT_ID', appClient.userPoolClientId);
    new CfnOutput(this, 'GraphqlUrl', { value: this.api.graphqlUrl, description: 'AppSync endpoint' });
    new CfnOutput(this, 'UserPoolId', { value: this.userPool.userPoolId });
    new CfnOutput(this, 'UserPoolClientId', { value: appClient.userPoolClientId });
    new CfnOutput(this, 'EventBusArn', { value: this.bus.eventBusArn });

    // ---- schema registry ----------------------------------------------------------------------
    const registry = new eventschemas.CfnRegistry(this, 'SchemaRegistry', {
      registryName: NAMES.schemaRegistry,
      description: 'JSON Schemas (draft 4) of every marketplace event detail, generated from crates/domain',
    });
    for (const s of loadEventSchemas(props.eventSchemasDir ?? EVENT_SCHEMAS_DIR)) {
      const schemaResource = new eventschemas.CfnSchema(this, `Schema${pascal(s.schemaName.replace(/[^A-Za-z0-9]+/g, '-'))}`, {
        registryName: NAMES.schemaRegistry,
        schemaName: s.schemaName,
        type: 'JSONSchemaDraft4',
        content: s.content,
        description: `Detail of ${s.schemaName.replace('@', ' / ')}`,
      });
      schemaResource.addResourceDependency(registry);
    }

    acknowledgeNagFindings(this);
  }

  /** The function created from `name`. */
  fn(name: FunctionName): lambda.Function {
    const f = this.functions.get(name);
    if (!f) throw new Error(`function ${name} is not defined`);
    return f;
  }

  /**
   * A state machine's ARN built from its fixed name: the orchestrator gets permissions on it
   * without a reference cycle (machine → function → role → machine).
   */
  stateMachineArn(wf: WorkflowDefinition): string {
    return this.formatArn({ service: 'states', resource: 'stateMachine', resourceName: wf.stateMachineName, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
  }

  private executionArns(wf: WorkflowDefinition): string {
    return this.formatArn({ service: 'states', resource: 'execution', resourceName: `${wf.stateMachineName}:*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
  }

  private createFunction(spec: FunctionSpec, props: MarketplaceStackProps, env: Record<string, string>): lambda.Function {
    const id = pascal(spec.name);
    const functionName = `${NAMES.functionPrefix}${spec.name}`;
    const assetDir = props.dummyLambdaAsset ?? join(props.lambdaAssetRoot ?? LAMBDA_ASSET_ROOT, spec.name);
    if (!existsSync(join(assetDir, 'bootstrap'))) {
      throw new ConfigError(
        join(assetDir, 'bootstrap'),
        '(file)',
        'missing: build the functions first (cargo lambda build --release --arm64), or synthesise with -c dummyLambdaAsset=DIR',
      );
    }
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Our own role: no managed policy, only the statements below.
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs ${functionName}`,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    const reserve = props.reserveConcurrency ?? true;
    return new lambda.Function(this, id, {
      functionName,
      description: spec.description,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(assetDir),
      memorySize: spec.memoryMb,
      timeout: Duration.seconds(spec.timeoutSeconds),
      reservedConcurrentExecutions: reserve ? spec.reservedConcurrency : undefined,
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      tracing: lambda.Tracing.ACTIVE,
      environment: { ...env, SERVICE_NAME: spec.name },
    });
  }

  private grantFunction(fn: lambda.Function, spec: FunctionSpec): void {
    for (const [tableId, access] of Object.entries(spec.tables)) {
      const table = this.tables.get(tableId);
      const tableSpec = TABLES.find((t) => t.id === tableId);
      if (!table || !tableSpec) throw new Error(`${spec.name}: unknown table ${tableId}`);
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: access === 'readWrite' ? [...READ_ACTIONS, ...WRITE_ACTIONS] : READ_ACTIONS,
          resources: [table.tableArn],
        }),
      );
      // Indexes are only ever queried; each is named (no index/* wildcard).
      if (tableSpec.indexes.length > 0) {
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['dynamodb:Query'],
            resources: tableSpec.indexes.map((index) => `${table.tableArn}/index/${index.name}`),
          }),
        );
      }
    }
    if (spec.publishes.length > 0) {
      const statement = new iam.PolicyStatement({ actions: ['events:PutEvents'], resources: [this.bus.eventBusArn] });
      if (!spec.publishes.includes('*')) statement.addCondition('StringEquals', { 'events:source': [...spec.publishes] });
      fn.addToRolePolicy(statement);
    }
    if (spec.completesTasksOf.length > 0) {
      // The task-token APIs support no resource-level permissions: AWS requires "*". Only the
      // functions that complete tokens get them (acknowledged in nag.ts, asserted in tests).
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['states:SendTaskFailure', 'states:SendTaskHeartbeat', 'states:SendTaskSuccess'],
          resources: ['*'],
        }),
      );
    }
    if (spec.controlsWorkflows) {
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['states:ListExecutions', 'states:StartExecution'],
          resources: WORKFLOWS.map((wf) => this.stateMachineArn(wf)),
        }),
      );
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['states:DescribeExecution', 'states:GetExecutionHistory', 'states:StopExecution'],
          resources: WORKFLOWS.map((wf) => this.executionArns(wf)),
        }),
      );
    }
  }

  private createRouting(alarmAction: cloudwatch.IAlarmAction): void {
    for (const q of this.rules.deadLetterQueues) {
      const queue = new sqs.Queue(this, `${pascal(q.name)}Queue`, {
        queueName: `${NAMES.queuePrefix}${q.name}`,
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(q.messageRetentionDays),
      });
      this.deadLetterQueues.set(q.name, queue);
      new cloudwatch.Alarm(this, `${pascal(q.name)}DepthAlarm`, {
        alarmName: `${NAMES.queuePrefix}${q.name}-depth`,
        alarmDescription: `Events are waiting in ${q.name}: inspect, fix, then redrive`,
        metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }),
        threshold: q.alarmThreshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(alarmAction);
    }
    const senders = new Map<string, string[]>();
    for (const rule of this.rules.rules) {
      const onDefaultBus = rule.eventBus === 'default';
      const ruleArn = this.formatArn({
        service: 'events',
        resource: 'rule',
        resourceName: onDefaultBus ? rule.name : `${this.rules.eventBus.name}/${rule.name}`,
      });
      const cfnRule = new events.CfnRule(this, `${pascal(rule.name)}Rule`, {
        name: rule.name,
        description: rule.description,
        eventBusName: onDefaultBus ? undefined : this.bus.eventBusName,
        state: rule.state,
        eventPattern: rule.pattern,
        targets: rule.targets.map((t) => {
          const fn = this.fn(t.function);
          const queue = this.deadLetterQueues.get(t.deadLetterQueue);
          if (!queue) throw new Error(`rule ${rule.name}: unknown dead-letter queue ${t.deadLetterQueue}`);
          senders.set(t.deadLetterQueue, [...(senders.get(t.deadLetterQueue) ?? []), ruleArn]);
          fn.addPermission(`Invoke${pascal(rule.name)}`, {
            principal: new iam.ServicePrincipal('events.amazonaws.com'),
            sourceArn: ruleArn,
          });
          return {
            id: t.id,
            arn: fn.functionArn,
            inputTransformer: t.inputTransformer
              ? { inputPathsMap: t.inputTransformer.inputPathsMap, inputTemplate: t.inputTransformer.inputTemplate }
              : undefined,
            retryPolicy: {
              maximumRetryAttempts: t.retryPolicy.maximumRetryAttempts,
              maximumEventAgeInSeconds: t.retryPolicy.maximumEventAgeInSeconds,
            },
            deadLetterConfig: { arn: queue.queueArn },
          };
        }),
      });
      this.eventRules.set(rule.name, cfnRule);
    }
    for (const [name, ruleArns] of senders) {
      const queue = this.deadLetterQueues.get(name);
      if (!queue) continue;
      queue.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'EventBridgeDeadLetters',
          principals: [new iam.ServicePrincipal('events.amazonaws.com')],
          actions: ['sqs:SendMessage'],
          resources: [queue.queueArn],
          conditions: { ArnEquals: { 'aws:SourceArn': [...new Set(ruleArns)] } },
        }),
      );
    }
  }

  /** Every substitution a definition may use; each state machine gets the ones its file names. */
  private availableSubstitutions(): Record<string, string> {
    const subs: Record<string, string> = { EventBusName: this.bus.eventBusName, EventBusArn: this.bus.eventBusArn };
    for (const [name, fn] of this.functions) subs[functionArnSubstitution(name)] = fn.functionArn;
    return subs;
  }

  private createStateMachine(wf: WorkflowDefinition, dir: string, logGroup: logs.ILogGroup, alarmAction: cloudwatch.IAlarmAction): void {
    const file = join(dir, wf.file);
    const { text, json } = loadDefinition(file);
    const available = this.availableSubstitutions();
    const used = placeholders(text);
    const substitutions: Record<string, string> = {};
    for (const name of used) {
      const value = available[name];
      if (value === undefined) {
        throw new ConfigError(file, `\${${name}}`, `no such substitution; the CDK app supplies ${Object.keys(available).sort().join(', ')}`);
      }
      substitutions[name] = value;
    }
    this.substitutions.set(wf.workflowType, substitutions);

    const role = new iam.Role(this, `${pascal(wf.stateMachineName)}Role`, {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
      description: `Runs ${wf.stateMachineName}`,
    });
    // Invoke exactly the functions the definition names.
    const invoked = [...this.functions.entries()].filter(([name]) => used.includes(functionArnSubstitution(name))).map(([, fn]) => fn);
    if (invoked.length > 0) {
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['lambda:InvokeFunction'],
          resources: invoked.map((fn) => fn.functionArn),
        }),
      );
    }
    // Publish exactly the sources the definition publishes.
    const sources = publishedSources(json);
    if (sources.length > 0) {
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['events:PutEvents'],
          resources: [this.bus.eventBusArn],
          conditions: { StringEquals: { 'events:source': sources } },
        }),
      );
    }
    const machine = new sfn.StateMachine(this, pascal(wf.stateMachineName), {
      stateMachineName: wf.stateMachineName,
      stateMachineType: wf.type === 'STANDARD' ? sfn.StateMachineType.STANDARD : sfn.StateMachineType.EXPRESS,
      definitionBody: sfn.DefinitionBody.fromString(text),
      definitionSubstitutions: substitutions,
      role,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      tracingEnabled: true,
    });
    this.stateMachines.set(wf.workflowType, machine);
    const checks: [string, cloudwatch.Metric][] = [
      ['failed', machine.metricFailed({ period: Duration.minutes(5), statistic: 'Sum' })],
      ['timed-out', machine.metricTimedOut({ period: Duration.minutes(5), statistic: 'Sum' })],
    ];
    for (const [what, metric] of checks) {
      new cloudwatch.Alarm(this, `${pascal(wf.stateMachineName)}${pascal(what)}Alarm`, {
        alarmName: `${wf.stateMachineName}-executions-${what}`,
        alarmDescription: `${wf.stateMachineName}: executions ${what.replace('-', ' ')}`,
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(alarmAction);
    }
  }
}

/** Sources of every events:putEvents entry in a definition, sorted, without duplicates. */
export function publishedSources(definition: unknown): string[] {
  const found = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      const obj = node as Record<string, unknown>;
      if (obj.Resource === 'arn:aws:states:::events:putEvents') {
        const entries = (obj.Parameters as { Entries?: { Source?: unknown }[] } | undefined)?.Entries ?? [];
        for (const e of entries) {
          if (typeof e.Source === 'string') found.add(e.Source);
          else throw new Error('events:putEvents entries must name their Source literally (IAM restricts sources)');
        }
      }
      Object.values(obj).forEach(walk);
    }
  };
  walk(definition);
  return [...found].sort();
}
