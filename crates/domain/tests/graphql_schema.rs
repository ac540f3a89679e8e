//! `schema.graphql` parses once AppSync's scalars and directives are put in front of it
//! (AppSync defines them itself and rejects a schema that declares them), and offers every
//! operation the API promises, with the arguments and enums the domain types define.

use graphql_parser::schema::{parse_schema, Definition, Document, Field, Type, TypeDefinition};
use marketplace_domain::events::DisputeResolution;
use marketplace_domain::{ExecutionStatus, WorkflowType};

/// What AppSync adds to every schema.
const APPSYNC_PRELUDE: &str = r#"
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
directive @aws_oidc on OBJECT | FIELD_DEFINITION
directive @aws_lambda on OBJECT | FIELD_DEFINITION
directive @aws_cognito_user_pools(cognito_groups: [String]) on OBJECT | FIELD_DEFINITION
directive @aws_auth(cognito_groups: [String]) on FIELD_DEFINITION
directive @aws_subscribe(mutations: [String]) on FIELD_DEFINITION
"#;

const AWS_NAMES: &[&str] = &[
    "AWSDate",
    "AWSTime",
    "AWSDateTime",
    "AWSTimestamp",
    "AWSEmail",
    "AWSJSON",
    "AWSURL",
    "AWSPhone",
    "AWSIPAddress",
    "aws_api_key",
    "aws_iam",
    "aws_oidc",
    "aws_lambda",
    "aws_cognito_user_pools",
    "aws_auth",
    "aws_subscribe",
];

fn source() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema.graphql");
    std::fs::read_to_string(path).expect("schema.graphql at the repository root")
}

fn with_prelude() -> String {
    format!("{APPSYNC_PRELUDE}\n{}", source())
}

fn type_text(t: &Type<'_, String>) -> String {
    t.to_string()
}

fn field<'a, 'b>(doc: &'b Document<'a, String>, object: &str, name: &str) -> &'b Field<'a, String> {
    for def in &doc.definitions {
        if let Definition::TypeDefinition(TypeDefinition::Object(o)) = def {
            if o.name == object {
                return o
                    .fields
                    .iter()
                    .find(|f| f.name == name)
                    .unwrap_or_else(|| panic!("{object}.{name} is missing"));
            }
        }
    }
    panic!("type {object} is missing")
}

fn enum_values(doc: &Document<'_, String>, name: &str) -> Vec<String> {
    for def in &doc.definitions {
        if let Definition::TypeDefinition(TypeDefinition::Enum(e)) = def {
            if e.name == name {
                return e.values.iter().map(|v| v.name.clone()).collect();
            }
        }
    }
    panic!("enum {name} is missing")
}

/// Checks `object.name(args) : result` exactly, arguments in order.
fn assert_operation(
    doc: &Document<'_, String>,
    object: &str,
    name: &str,
    args: &[(&str, &str)],
    result: &str,
) {
    let f = field(doc, object, name);
    let got: Vec<(String, String)> = f
        .arguments
        .iter()
        .map(|a| (a.name.clone(), type_text(&a.value_type)))
        .collect();
    let want: Vec<(String, String)> = args
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    assert_eq!(got, want, "arguments of {object}.{name}");
    assert_eq!(type_text(&f.field_type), result, "type of {object}.{name}");
}

#[test]
fn parses_with_the_appsync_prelude() {
    let text = with_prelude();
    if let Err(e) = parse_schema::<String>(&text) {
        panic!("schema.graphql does not parse: {e}");
    }
}

#[test]
fn declares_none_of_the_aws_scalars_or_directives() {
    let text = source();
    let doc = parse_schema::<String>(&text).expect("schema.graphql parses on its own");
    for def in &doc.definitions {
        let name = match def {
            Definition::TypeDefinition(TypeDefinition::Scalar(s)) => s.name.clone(),
            Definition::DirectiveDefinition(d) => d.name.clone(),
            _ => continue,
        };
        assert!(
            !AWS_NAMES.contains(&name.as_str()),
            "schema.graphql declares {name}: AppSync rejects that"
        );
    }
}

#[test]
fn offers_every_operation_with_its_arguments() {
    let text = with_prelude();
    let doc = parse_schema::<String>(&text).unwrap();
    assert_operation(
        &doc,
        "Mutation",
        "startWorkflow",
        &[
            ("workflowType", "WorkflowType!"),
            ("input", "AWSJSON!"),
            ("executionName", "String"),
        ],
        "StartWorkflowResult!",
    );
    assert_operation(
        &doc,
        "Query",
        "getWorkflowStatus",
        &[
            ("executionArn", "String!"),
            ("workflowType", "WorkflowType"),
        ],
        "WorkflowStatusResult!",
    );
    assert_operation(
        &doc,
        "Mutation",
        "stopWorkflow",
        &[
            ("executionArn", "String!"),
            ("error", "String"),
            ("cause", "String"),
        ],
        "StopWorkflowResult!",
    );
    assert_operation(
        &doc,
        "Mutation",
        "publishEvent",
        &[
            ("source", "String!"),
            ("detailType", "String!"),
            ("detail", "AWSJSON!"),
        ],
        "PublishEventResult!",
    );
    assert_operation(
        &doc,
        "Query",
        "listWorkflowExecutions",
        &[
            ("workflowType", "WorkflowType"),
            ("status", "ExecutionStatus"),
            ("limit", "Int"),
            ("nextToken", "String"),
        ],
        "ListWorkflowExecutionsResult!",
    );
    assert_operation(
        &doc,
        "Query",
        "getExecutionHistory",
        &[
            ("executionArn", "String!"),
            ("limit", "Int"),
            ("nextToken", "String"),
            ("reverseOrder", "Boolean"),
        ],
        "ExecutionHistoryResult!",
    );
    assert_operation(
        &doc,
        "Mutation",
        "resolveDispute",
        &[
            ("disputeId", "String!"),
            ("resolution", "DisputeResolution!"),
            ("refundAmount", "Float!"),
            ("notes", "String"),
        ],
        "ResolveDisputeResult!",
    );
    assert_operation(
        &doc,
        "Mutation",
        "sendTaskSuccess",
        &[("taskToken", "String!"), ("output", "AWSJSON!")],
        "TaskResult!",
    );
    assert_operation(
        &doc,
        "Mutation",
        "sendTaskFailure",
        &[
            ("taskToken", "String!"),
            ("error", "String"),
            ("cause", "String"),
        ],
        "TaskResult!",
    );
    assert_operation(
        &doc,
        "Mutation",
        "sendTaskHeartbeat",
        &[("taskToken", "String!")],
        "TaskResult!",
    );
    assert_operation(
        &doc,
        "Mutation",
        "respondToDispute",
        &[
            ("disputeId", "String!"),
            ("response", "DisputeProviderResponse!"),
            ("offerAmount", "Float"),
            ("message", "String"),
        ],
        "TaskResult!",
    );
    assert_eq!(
        enum_values(&doc, "DisputeProviderResponse"),
        ["ACCEPT", "REJECT", "PARTIAL_OFFER"]
    );
}

#[test]
fn result_shapes() {
    let text = with_prelude();
    let doc = parse_schema::<String>(&text).unwrap();
    for result in [
        "StartWorkflowResult",
        "WorkflowStatusResult",
        "StopWorkflowResult",
        "PublishEventResult",
        "ListWorkflowExecutionsResult",
        "ExecutionHistoryResult",
        "ResolveDisputeResult",
        "TaskResult",
    ] {
        assert_eq!(
            type_text(&field(&doc, result, "success").field_type),
            "Boolean!",
            "{result}.success"
        );
        assert_eq!(
            type_text(&field(&doc, result, "error").field_type),
            "String",
            "{result}.error"
        );
        assert_eq!(
            type_text(&field(&doc, result, "errorType").field_type),
            "String",
            "{result}.errorType"
        );
    }
    assert_eq!(
        type_text(&field(&doc, "StartWorkflowResult", "executionArn").field_type),
        "String"
    );
    assert_eq!(
        type_text(&field(&doc, "WorkflowStatusResult", "status").field_type),
        "ExecutionStatus"
    );
    assert_eq!(
        type_text(&field(&doc, "WorkflowStatusResult", "output").field_type),
        "AWSJSON"
    );
    assert_eq!(
        type_text(&field(&doc, "WorkflowStatusResult", "startDate").field_type),
        "AWSDateTime"
    );
    assert_eq!(
        type_text(&field(&doc, "WorkflowStatusResult", "stopDate").field_type),
        "AWSDateTime"
    );
    assert_eq!(
        type_text(&field(&doc, "PublishEventResult", "eventId").field_type),
        "String"
    );
}

#[test]
fn enums_match_the_domain_types() {
    let text = with_prelude();
    let doc = parse_schema::<String>(&text).unwrap();
    let names = |all: Vec<&str>| all.into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        enum_values(&doc, "WorkflowType"),
        names(WorkflowType::ALL.iter().map(|w| w.as_str()).collect())
    );
    assert_eq!(
        enum_values(&doc, "ExecutionStatus"),
        names(ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect())
    );
    assert_eq!(
        enum_values(&doc, "DisputeResolution"),
        names(DisputeResolution::ALL.iter().map(|s| s.as_str()).collect())
    );
}

#[test]
fn admin_operations_are_not_open_to_the_api_key() {
    let text = with_prelude();
    let doc = parse_schema::<String>(&text).unwrap();
    for op in [
        "stopWorkflow",
        "resolveDispute",
        "sendTaskSuccess",
        "sendTaskFailure",
    ] {
        let f = field(&doc, "Mutation", op);
        let names: Vec<&str> = f.directives.iter().map(|d| d.name.as_str()).collect();
        assert!(!names.contains(&"aws_api_key"), "{op} is open to API keys");
        let cognito = f
            .directives
            .iter()
            .find(|d| d.name == "aws_cognito_user_pools")
            .expect("cognito directive");
        assert_eq!(cognito.arguments.len(), 1, "{op} must name the admin group");
        assert_eq!(cognito.arguments[0].1.to_string(), "[\"admin\"]");
    }
}

#[test]
fn uses_only_sdl_that_appsync_accepts() {
    // AppSync rejects description strings and `#` comments inside enum bodies.
    let text = source();
    let doc = parse_schema::<String>(&text).unwrap();
    for def in &doc.definitions {
        if let Definition::TypeDefinition(t) = def {
            let (name, description) = match t {
                TypeDefinition::Object(o) => {
                    for f in &o.fields {
                        assert!(
                            f.description.is_none(),
                            "{}.{} has a description string",
                            o.name,
                            f.name
                        );
                        for a in &f.arguments {
                            assert!(
                                a.description.is_none(),
                                "{}.{}({}) has a description string",
                                o.name,
                                f.name,
                                a.name
                            );
                        }
                    }
                    (&o.name, &o.description)
                }
                TypeDefinition::Enum(e) => {
                    for v in &e.values {
                        assert!(
                            v.description.is_none(),
                            "{}.{} has a description string",
                            e.name,
                            v.name
                        );
                    }
                    (&e.name, &e.description)
                }
                TypeDefinition::InputObject(i) => (&i.name, &i.description),
                TypeDefinition::Scalar(s) => (&s.name, &s.description),
                TypeDefinition::Interface(i) => (&i.name, &i.description),
                TypeDefinition::Union(u) => (&u.name, &u.description),
            };
            assert!(description.is_none(), "{name} has a description string");
        }
    }
    let mut in_enum = false;
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with("enum ") {
            in_enum = true;
        } else if in_enum && l == "}" {
            in_enum = false;
        } else if in_enum {
            assert!(
                !l.contains('#'),
                "line {}: comment inside an enum body",
                n + 1
            );
        }
    }
}
