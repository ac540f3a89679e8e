/**
 * Offline handling of schema.graphql: AppSync's own scalars and directives are not part of
 * the file, so they are declared here before the schema is parsed and validated.
 */
import { buildSchema, GraphQLObjectType, GraphQLSchema } from 'graphql';

/** AppSync's scalars and authorization directives, as AppSync defines them. */
export const APPSYNC_PRELUDE = `
scalar AWSDate
scalar AWSTime
scalar AWSDateTime
scalar AWSTimestamp
scalar AWSEmail
scalar AWSJSON
scalar AWSURL
scalar AWSPhone
scalar AWSIPAddress
directive @aws_api_key on OBJECT | FIELD_DEFINITION
directive @aws_iam on OBJECT | FIELD_DEFINITION
directive @aws_lambda on OBJECT | FIELD_DEFINITION
directive @aws_oidc on OBJECT | FIELD_DEFINITION
directive @aws_cognito_user_pools(cognito_groups: [String]) on OBJECT | FIELD_DEFINITION
directive @aws_auth(cognito_groups: [String]) on FIELD_DEFINITION
directive @aws_subscribe(mutations: [String]) on FIELD_DEFINITION
`;

/** Parses and validates the AppSync schema; throws a GraphQL error naming the problem. */
export function parseAppSyncSchema(sdl: string): GraphQLSchema {
  return buildSchema(`${APPSYNC_PRELUDE}\n${sdl}`);
}

/** The root fields that get a resolver: every Query and Mutation field. */
export function resolverFields(schema: GraphQLSchema): { typeName: string; fieldName: string }[] {
  const out: { typeName: string; fieldName: string }[] = [];
  const roots = [schema.getQueryType(), schema.getMutationType()].filter((t): t is GraphQLObjectType => t != null);
  for (const root of roots) {
    for (const fieldName of Object.keys(root.getFields()).sort()) {
      out.push({ typeName: root.name, fieldName });
    }
  }
  return out;
}
