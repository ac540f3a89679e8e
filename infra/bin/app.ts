#!/usr/bin/env node
/**
 * The CDK app. Context (all optional):
 *   -c dummyLambdaAsset=DIR   use DIR as every function's code (synth without a Rust build)
 *   -c lambdaAssetRoot=DIR    where cargo-lambda put the binaries (default ../target/lambda)
 *   -c graphqlSchemaFile=FILE the AppSync schema (default ../schema.graphql)
 *   -c alarmEmail=ADDRESS     subscribe an address to the alarm topic
 *   -c senderDomain=DOMAIN    verified SES identity for notifications
 *   -c reserveConcurrency=false  skip reserved concurrency (accounts with little headroom)
 *   -c retainData=false       let `cdk destroy` delete tables and the user pool (test stages)
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { MarketplaceStack } from '../lib/marketplace-stack';

const app = new App();
const ctx = (key: string): string | undefined => {
  const v = app.node.tryGetContext(key);
  return v === undefined || v === null ? undefined : String(v);
};

new MarketplaceStack(app, 'EcosystemMarketplace', {
  description: 'Ecosystem Marketplace backend: event bus, workflows, functions, tables, GraphQL API',
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  dummyLambdaAsset: ctx('dummyLambdaAsset'),
  lambdaAssetRoot: ctx('lambdaAssetRoot'),
  graphqlSchemaFile: ctx('graphqlSchemaFile'),
  alarmEmail: ctx('alarmEmail'),
  senderDomain: ctx('senderDomain'),
  reserveConcurrency: ctx('reserveConcurrency') !== 'false',
  retainData: ctx('retainData') !== 'false',
});

// Synthesis stops on any AwsSolutions finding that is not acknowledged (lib/nag.ts).
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
