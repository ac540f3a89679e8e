//! A small GraphQL executor over `schema.graphql` with AppSync's semantics.
//!
//! The document is parsed (graphql-parser) and validated against the schema before anything
//! runs: unknown fields and arguments, missing required arguments, values of the wrong type
//! (including `AWSJSON` that is not JSON), selections on scalars and missing selections on
//! objects are reported like AppSync does (`Validation error of type ...`). Each root field
//! is authorized from its directives (`@aws_api_key`, `@aws_iam`,
//! `@aws_cognito_user_pools(cognito_groups: [...])`), turned into an AppSync direct Lambda
//! resolver event (arguments, identity, request headers, info) and handed to the resolver;
//! the result is projected onto the selection set (aliases, fragments, `__typename`,
//! `AWSJSON` rendered as JSON text). Resolver errors come back in `errors[]` with
//! `errorType`, the field's data being `null`.

use crate::auth::Caller;
use graphql_parser::query as q;
use graphql_parser::schema as s;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

mod introspection;

/// The schema compiled into the binary (the repository's `schema.graphql`).
pub const SCHEMA_SDL: &str = include_str!("../../../schema.graphql");

/// What AppSync adds to every schema (built-in and AWS scalars, directives) and the
/// introspection types, served by introspection next to the schema's own types.
pub const PRELUDE_SDL: &str = include_str!("graphql/prelude.graphql");

/// The introspection query the explorer page sends (the full query GraphQL tools use).
pub const INTROSPECTION_QUERY: &str = include_str!("explorer/introspection.graphql");

/// Built-in scalars plus the AWS scalars AppSync adds.
const SCALARS: &[&str] = &[
    "String",
    "Int",
    "Float",
    "Boolean",
    "ID",
    "AWSJSON",
    "AWSDateTime",
    "AWSDate",
    "AWSTime",
    "AWSTimestamp",
    "AWSEmail",
    "AWSURL",
    "AWSPhone",
    "AWSIPAddress",
];

/// A type reference.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeRef {
    /// A named type.
    Named(String),
    /// `[T]`.
    List(Box<TypeRef>),
    /// `T!`.
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    fn from_ast(t: &s::Type<'_, String>) -> TypeRef {
        match t {
            s::Type::NamedType(n) => TypeRef::Named(n.clone()),
            s::Type::ListType(i) => TypeRef::List(Box::new(TypeRef::from_ast(i))),
            s::Type::NonNullType(i) => TypeRef::NonNull(Box::new(TypeRef::from_ast(i))),
        }
    }
    fn name(&self) -> &str {
        match self {
            TypeRef::Named(n) => n,
            TypeRef::List(i) | TypeRef::NonNull(i) => i.name(),
        }
    }
}

impl std::fmt::Display for TypeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeRef::Named(n) => write!(f, "{n}"),
            TypeRef::List(i) => write!(f, "[{i}]"),
            TypeRef::NonNull(i) => write!(f, "{i}!"),
        }
    }
}

/// Who may call a field.
#[derive(Debug, Clone, Default)]
pub struct FieldAuth {
    /// `@aws_api_key`.
    pub api_key: bool,
    /// `@aws_cognito_user_pools`: `Some(groups)` (empty = any signed-in user).
    pub cognito: Option<Vec<String>>,
}

/// An argument definition.
#[derive(Debug, Clone)]
pub struct ArgDef {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: TypeRef,
    /// Has a default value.
    pub has_default: bool,
}

/// A field definition.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// Arguments.
    pub args: Vec<ArgDef>,
    /// Type.
    pub ty: TypeRef,
    /// Authorization.
    pub auth: FieldAuth,
}

/// The schema, as the executor needs it.
#[derive(Debug, Clone)]
pub struct Schema {
    objects: HashMap<String, HashMap<String, FieldDef>>,
    enums: HashMap<String, Vec<String>>,
    query: String,
    mutation: String,
    intro: introspection::Introspection,
    intro_schema: FieldDef,
    intro_type: FieldDef,
}

/// A schema that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("schema.graphql: {0}")]
pub struct SchemaError(String);

fn type_def_name<'a>(t: &'a s::TypeDefinition<'_, String>) -> &'a str {
    match t {
        s::TypeDefinition::Scalar(x) => &x.name,
        s::TypeDefinition::Object(x) => &x.name,
        s::TypeDefinition::Interface(x) => &x.name,
        s::TypeDefinition::Union(x) => &x.name,
        s::TypeDefinition::Enum(x) => &x.name,
        s::TypeDefinition::InputObject(x) => &x.name,
    }
}

fn auth_of(dirs: &[s::Directive<'_, String>]) -> Option<FieldAuth> {
    let mut a = FieldAuth::default();
    let mut any = false;
    for d in dirs {
        match d.name.as_str() {
            "aws_api_key" => {
                a.api_key = true;
                any = true;
            }
            "aws_cognito_user_pools" => {
                let mut groups = Vec::new();
                for (k, v) in &d.arguments {
                    if k == "cognito_groups" {
                        if let s::Value::List(l) = v {
                            for g in l {
                                if let s::Value::String(g) = g {
                                    groups.push(g.clone());
                                }
                            }
                        }
                    }
                }
                a.cognito = Some(groups);
                any = true;
            }
            "aws_iam" => any = true,
            _ => {}
        }
    }
    any.then_some(a)
}

impl Schema {
    /// Parses an SDL document.
    pub fn parse(sdl: &str) -> Result<Schema, SchemaError> {
        let doc = s::parse_schema::<String>(sdl).map_err(|e| SchemaError(e.to_string()))?;
        let prelude = s::parse_schema::<String>(PRELUDE_SDL)
            .map_err(|e| SchemaError(format!("prelude: {e}")))?;
        let reserved: Vec<&str> = prelude
            .definitions
            .iter()
            .filter_map(|d| match d {
                s::Definition::TypeDefinition(t) => Some(type_def_name(t)),
                s::Definition::DirectiveDefinition(d) => Some(d.name.as_str()),
                _ => None,
            })
            .collect();
        for d in &doc.definitions {
            let name = match d {
                s::Definition::TypeDefinition(t) => type_def_name(t),
                s::Definition::DirectiveDefinition(d) => d.name.as_str(),
                _ => continue,
            };
            if reserved.contains(&name) || name.starts_with("__") {
                return Err(SchemaError(format!(
                    "'{name}' is defined by AppSync or GraphQL itself and must not be declared"
                )));
            }
        }
        let mut objects = HashMap::new();
        let mut enums = HashMap::new();
        let mut query = "Query".to_string();
        let mut mutation = "Mutation".to_string();
        let mut has_mutation = false;
        for def in doc.definitions.iter().chain(&prelude.definitions) {
            match def {
                s::Definition::SchemaDefinition(sd) => {
                    if let Some(qn) = &sd.query {
                        query = qn.clone();
                    }
                    if let Some(m) = &sd.mutation {
                        mutation = m.clone();
                        has_mutation = true;
                    }
                }
                s::Definition::TypeDefinition(s::TypeDefinition::Object(o)) => {
                    let type_auth = auth_of(&o.directives);
                    let mut fields = HashMap::new();
                    for f in &o.fields {
                        let auth = auth_of(&f.directives)
                            .or_else(|| type_auth.clone())
                            .unwrap_or(FieldAuth {
                                api_key: true,
                                cognito: None,
                            });
                        fields.insert(
                            f.name.clone(),
                            FieldDef {
                                args: f
                                    .arguments
                                    .iter()
                                    .map(|a| ArgDef {
                                        name: a.name.clone(),
                                        ty: TypeRef::from_ast(&a.value_type),
                                        has_default: a.default_value.is_some(),
                                    })
                                    .collect(),
                                ty: TypeRef::from_ast(&f.field_type),
                                auth,
                            },
                        );
                    }
                    objects.insert(o.name.clone(), fields);
                }
                s::Definition::TypeDefinition(s::TypeDefinition::Enum(e)) => {
                    enums.insert(
                        e.name.clone(),
                        e.values.iter().map(|v| v.name.clone()).collect(),
                    );
                }
                _ => {}
            }
        }
        if !objects.contains_key(&query) {
            return Err(SchemaError(format!(
                "the query type {query} is not defined"
            )));
        }
        let has_mutation = has_mutation || objects.contains_key(&mutation);
        let intro = introspection::build(
            &[
                introspection::Source {
                    lines: sdl.lines().collect(),
                    doc: &doc,
                },
                introspection::Source {
                    lines: PRELUDE_SDL.lines().collect(),
                    doc: &prelude,
                },
            ],
            &query,
            has_mutation.then_some(mutation.as_str()),
            None,
        );
        let any_caller = FieldAuth {
            api_key: true,
            cognito: Some(Vec::new()),
        };
        Ok(Schema {
            objects,
            enums,
            query,
            mutation,
            intro,
            intro_schema: FieldDef {
                args: Vec::new(),
                ty: TypeRef::NonNull(Box::new(TypeRef::Named("__Schema".into()))),
                auth: any_caller.clone(),
            },
            intro_type: FieldDef {
                args: vec![ArgDef {
                    name: "name".into(),
                    ty: TypeRef::NonNull(Box::new(TypeRef::Named("String".into()))),
                    has_default: false,
                }],
                ty: TypeRef::Named("__Type".into()),
                auth: any_caller,
            },
        })
    }

    /// The `__schema` / `__type` meta-fields of the query root.
    fn meta_field(&self, mutation: bool, name: &str) -> Option<&FieldDef> {
        match (mutation, name) {
            (false, "__schema") => Some(&self.intro_schema),
            (false, "__type") => Some(&self.intro_type),
            _ => None,
        }
    }

    /// The introspection answer for `__type(name:)`: the named type, or null.
    pub fn introspect_type(&self, name: &str) -> Value {
        self.intro.types.get(name).cloned().unwrap_or(Value::Null)
    }

    /// A root field's definition (`Query` or `Mutation`).
    pub fn root_field(&self, mutation: bool, name: &str) -> Option<&FieldDef> {
        let t = if mutation {
            &self.mutation
        } else {
            &self.query
        };
        self.objects.get(t).and_then(|o| o.get(name))
    }
}

/// A GraphQL request body.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The document.
    #[serde(default)]
    pub query: String,
    /// Variables.
    #[serde(default)]
    pub variables: Option<Value>,
    /// Which operation to run.
    #[serde(default)]
    pub operation_name: Option<String>,
}

/// An error a resolver reports for its field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// `errorType`.
    pub error_type: String,
    /// `message`.
    pub message: String,
}

/// What the executor knows of the HTTP request.
#[derive(Debug, Clone)]
pub struct RequestInfo<'a> {
    /// The authenticated caller.
    pub caller: &'a Caller,
    /// Request headers (lower-case names).
    pub headers: Map<String, Value>,
    /// The client's address.
    pub source_ip: String,
}

/// A validation error as AppSync reports it: `data: null`, the message naming the rule
/// (`Validation error of type FieldUndefined: …`), locations, `path: null` and no
/// `errorType` (AppSync sets that only on errors of resolvers and of the HTTP request).
fn validation(kind: &str, message: String, pos: Option<graphql_parser::Pos>) -> Value {
    json!({
        "path": null,
        "locations": pos.map(|p| json!([{"line": p.line, "column": p.column, "sourceName": null}])).unwrap_or(Value::Null),
        "message": format!("Validation error of type {kind}: {message}"),
    })
}

/// A literal or variable value with its GraphQL kind, for type checks.
enum Kind {
    Int,
    Float,
    Str,
    Bool,
    Enum,
    Null,
    List,
    Object,
    /// From variables (JSON): checked by JSON type.
    Json,
}

struct Ctx<'a> {
    schema: &'a Schema,
    vars: Map<String, Value>,
    var_types: HashMap<String, TypeRef>,
    fragments: HashMap<&'a str, &'a q::FragmentDefinition<'static, String>>,
}

fn literal(v: &q::Value<'_, String>, vars: &Map<String, Value>) -> (Value, Kind) {
    match v {
        q::Value::Variable(n) => (vars.get(n).cloned().unwrap_or(Value::Null), Kind::Json),
        q::Value::Int(n) => (n.as_i64().map_or(Value::Null, Value::from), Kind::Int),
        q::Value::Float(f) => (
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Float,
        ),
        q::Value::String(s) => (Value::String(s.clone()), Kind::Str),
        q::Value::Boolean(b) => (Value::Bool(*b), Kind::Bool),
        q::Value::Null => (Value::Null, Kind::Null),
        q::Value::Enum(e) => (Value::String(e.clone()), Kind::Enum),
        q::Value::List(l) => (
            Value::Array(l.iter().map(|x| literal(x, vars).0).collect()),
            Kind::List,
        ),
        q::Value::Object(o) => (
            Value::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), literal(x, vars).0))
                    .collect(),
            ),
            Kind::Object,
        ),
    }
}

/// Checks a value against a type; the error says why.
fn check_value(schema: &Schema, v: &Value, kind: &Kind, ty: &TypeRef) -> Result<(), String> {
    match ty {
        TypeRef::NonNull(inner) => {
            if v.is_null() {
                return Err(format!("null is not allowed for the non-null type '{ty}'"));
            }
            check_value(schema, v, kind, inner)
        }
        TypeRef::List(inner) => match v {
            Value::Null => Ok(()),
            Value::Array(a) => {
                for x in a {
                    check_value(schema, x, &Kind::Json, inner)?;
                }
                Ok(())
            }
            other => check_value(schema, other, kind, inner),
        },
        TypeRef::Named(n) => {
            if v.is_null() {
                return Ok(());
            }
            let literal_ok = |ok: bool| {
                if ok {
                    Ok(())
                } else {
                    Err(format!("'{v}' is not a valid '{n}'"))
                }
            };
            match n.as_str() {
                "Int" => literal_ok(
                    matches!(kind, Kind::Int | Kind::Json)
                        && v.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                ),
                "Float" => literal_ok(
                    matches!(kind, Kind::Int | Kind::Float | Kind::Json) && v.is_number(),
                ),
                "Boolean" => literal_ok(matches!(kind, Kind::Bool | Kind::Json) && v.is_boolean()),
                "ID" => literal_ok(
                    matches!(kind, Kind::Str | Kind::Int | Kind::Json)
                        && (v.is_string() || v.is_i64()),
                ),
                "AWSJSON" => {
                    literal_ok(matches!(kind, Kind::Str | Kind::Json) && v.is_string())?;
                    let text = v.as_str().unwrap_or_default();
                    serde_json::from_str::<Value>(text)
                        .map(|_| ())
                        .map_err(|e| format!("'{v}' is not a valid 'AWSJSON': {e}"))
                }
                "AWSDateTime" => {
                    literal_ok(matches!(kind, Kind::Str | Kind::Json) && v.is_string())?;
                    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
                        .map(|_| ())
                        .map_err(|_| format!("'{v}' is not a valid 'AWSDateTime'"))
                }
                "AWSTimestamp" => literal_ok(matches!(kind, Kind::Int | Kind::Json) && v.is_i64()),
                name if SCALARS.contains(&name) => {
                    literal_ok(matches!(kind, Kind::Str | Kind::Json) && v.is_string())
                }
                name => match schema.enums.get(name) {
                    Some(values) => literal_ok(
                        matches!(kind, Kind::Enum | Kind::Json)
                            && v.as_str().is_some_and(|s| values.iter().any(|x| x == s)),
                    ),
                    None => Err(format!("type '{name}' is not an input type")),
                },
            }
        }
    }
}

fn response_key(f: &q::Field<'static, String>) -> String {
    f.alias.clone().unwrap_or_else(|| f.name.clone())
}

impl<'a> Ctx<'a> {
    /// Flattens fragments into the list of fields of a selection set.
    fn fields(
        &self,
        set: &'a q::SelectionSet<'static, String>,
        out: &mut Vec<&'a q::Field<'static, String>>,
        errors: &mut Vec<Value>,
        depth: usize,
    ) {
        if depth > 32 {
            errors.push(validation(
                "FragmentCycle",
                "fragments nest too deeply".into(),
                None,
            ));
            return;
        }
        for sel in &set.items {
            let directives = match sel {
                q::Selection::Field(f) => &f.directives,
                q::Selection::InlineFragment(i) => &i.directives,
                q::Selection::FragmentSpread(s) => &s.directives,
            };
            if !self.included(directives, errors) {
                continue;
            }
            match sel {
                q::Selection::Field(f) => out.push(f),
                q::Selection::InlineFragment(i) => {
                    self.fields(&i.selection_set, out, errors, depth + 1)
                }
                q::Selection::FragmentSpread(s) => {
                    match self.fragments.get(s.fragment_name.as_str()) {
                        Some(fd) => self.fields(&fd.selection_set, out, errors, depth + 1),
                        None => errors.push(validation(
                            "UndefinedFragment",
                            format!(
                                "Undefined fragment {} @ '{}'",
                                s.fragment_name, s.fragment_name
                            ),
                            Some(s.position),
                        )),
                    }
                }
            }
        }
    }

    /// Applies `@include(if:)` and `@skip(if:)`; other directives are refused.
    fn included(
        &self,
        directives: &[q::Directive<'static, String>],
        errors: &mut Vec<Value>,
    ) -> bool {
        let mut keep = true;
        for d in directives {
            let cond = d
                .arguments
                .iter()
                .find(|(n, _)| n == "if")
                .map(|(_, v)| literal(v, &self.vars).0);
            match (d.name.as_str(), cond) {
                ("include", Some(Value::Bool(b))) => keep &= b,
                ("skip", Some(Value::Bool(b))) => keep &= !b,
                ("include" | "skip", _) => errors.push(validation(
                    "WrongType",
                    format!("argument 'if' of @{} must be a Boolean", d.name),
                    Some(d.position),
                )),
                (other, _) => errors.push(validation(
                    "UnknownDirective",
                    format!("Unknown directive {other}"),
                    Some(d.position),
                )),
            }
        }
        keep
    }

    fn validate_selection(
        &self,
        ty: &TypeRef,
        field: &'a q::Field<'static, String>,
        errors: &mut Vec<Value>,
    ) {
        let tname = ty.name();
        let has_sel = !field.selection_set.items.is_empty();
        match self.schema.objects.get(tname) {
            Some(obj) => {
                if !has_sel {
                    errors.push(validation(
                        "SubSelectionRequired",
                        format!(
                            "Sub selection required for type {ty} of field {} @ '{}'",
                            field.name, field.name
                        ),
                        Some(field.position),
                    ));
                    return;
                }
                let mut fs = Vec::new();
                self.fields(&field.selection_set, &mut fs, errors, 0);
                for f in fs {
                    if f.name == "__typename" {
                        continue;
                    }
                    match obj.get(&f.name) {
                        None => errors.push(validation(
                            "FieldUndefined",
                            format!(
                                "Field '{}' in type '{tname}' is undefined @ '{}/{}'",
                                f.name, field.name, f.name
                            ),
                            Some(f.position),
                        )),
                        Some(def) => {
                            self.validate_args(def, f, errors);
                            self.validate_selection(&def.ty, f, errors);
                        }
                    }
                }
            }
            None => {
                if has_sel {
                    errors.push(validation(
                        "SubSelectionNotAllowed",
                        format!(
                            "Sub selection not allowed on leaf type {ty} of field {} @ '{}'",
                            field.name, field.name
                        ),
                        Some(field.position),
                    ));
                }
            }
        }
    }

    fn validate_args(
        &self,
        def: &FieldDef,
        f: &q::Field<'static, String>,
        errors: &mut Vec<Value>,
    ) {
        for (name, value) in &f.arguments {
            let Some(a) = def.args.iter().find(|a| &a.name == name) else {
                errors.push(validation(
                    "UnknownArgument",
                    format!("Unknown field argument {name} @ '{}'", f.name),
                    Some(f.position),
                ));
                continue;
            };
            if let q::Value::Variable(v) = value {
                match self.var_types.get(v) {
                    None => {
                        errors.push(validation(
                            "UndefinedVariable",
                            format!("Undefined variable {v} @ '{}'", f.name),
                            Some(f.position),
                        ));
                        continue;
                    }
                    Some(vt) => {
                        let compatible =
                            vt == &a.ty || matches!(vt, TypeRef::NonNull(inner) if **inner == a.ty);
                        if !compatible {
                            errors.push(validation(
                                "VariableTypeMismatch",
                                format!(
                                    "Variable type '{vt}' doesn't match expected type '{}' @ '{}'",
                                    a.ty, f.name
                                ),
                                Some(f.position),
                            ));
                            continue;
                        }
                    }
                }
            }
            let (v, kind) = literal(value, &self.vars);
            if let Err(why) = check_value(self.schema, &v, &kind, &a.ty) {
                errors.push(validation(
                    "WrongType",
                    format!(
                        "argument '{name}' with value '{v}' is not valid for '{}': {why} @ '{}'",
                        a.ty, f.name
                    ),
                    Some(f.position),
                ));
            }
        }
        for a in &def.args {
            if matches!(a.ty, TypeRef::NonNull(_))
                && !a.has_default
                && !f.arguments.iter().any(|(n, _)| n == &a.name)
            {
                errors.push(validation(
                    "MissingFieldArgument",
                    format!("Missing field argument {} @ '{}'", a.name, f.name),
                    Some(f.position),
                ));
            }
        }
    }

    fn project(
        &self,
        value: &Value,
        ty: &TypeRef,
        field: &'a q::Field<'static, String>,
        path: &mut Vec<Value>,
        errors: &mut Vec<Value>,
    ) -> Value {
        match ty {
            TypeRef::NonNull(inner) => {
                let v = self.project(value, inner, field, path, errors);
                if v.is_null() {
                    errors.push(json!({
                        "path": path.clone(),
                        "locations": null,
                        "message": format!("Cannot return null for non-nullable type: '{}' within parent (/{})",
                            inner.name(), path.iter().map(|p| p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string())).collect::<Vec<_>>().join("/")),
                        "errorType": "MappingTemplate",
                    }));
                }
                v
            }
            TypeRef::List(inner) => match value {
                Value::Array(a) => Value::Array(
                    a.iter()
                        .enumerate()
                        .map(|(i, x)| {
                            path.push(json!(i));
                            let v = self.project(x, inner, field, path, errors);
                            path.pop();
                            v
                        })
                        .collect(),
                ),
                _ => Value::Null,
            },
            TypeRef::Named(n) => {
                if value.is_null() {
                    return Value::Null;
                }
                // A reference between introspection types: the named type itself.
                let resolved;
                let value = match introspection::marker_target(value) {
                    Some(target) => {
                        resolved = self.schema.introspect_type(target);
                        &resolved
                    }
                    None => value,
                };
                if let Some(obj) = self.schema.objects.get(n) {
                    let mut fs = Vec::new();
                    self.fields(&field.selection_set, &mut fs, errors, 0);
                    let mut out = Map::new();
                    for f in fs {
                        let key = response_key(f);
                        if f.name == "__typename" {
                            out.insert(key, json!(n));
                            continue;
                        }
                        let Some(def) = obj.get(&f.name) else {
                            continue;
                        };
                        let child = value.get(&f.name).cloned().unwrap_or(Value::Null);
                        path.push(json!(key));
                        let v = self.project(&child, &def.ty, f, path, errors);
                        path.pop();
                        out.insert(key, v);
                    }
                    Value::Object(out)
                } else if n == "AWSJSON" {
                    match value {
                        Value::String(_) => value.clone(),
                        other => Value::String(other.to_string()),
                    }
                } else {
                    value.clone()
                }
            }
        }
    }
}

fn allowed(auth: &FieldAuth, caller: &Caller) -> bool {
    match caller {
        Caller::ApiKey => auth.api_key,
        Caller::User { groups, .. } => match &auth.cognito {
            None => false,
            Some(required) => required.is_empty() || required.iter().any(|g| groups.contains(g)),
        },
    }
}

/// Executes a request. `resolve(field_name, appsync_event)` resolves one root field.
pub fn execute(
    schema: &Schema,
    req: &Request,
    info: &RequestInfo<'_>,
    resolve: &mut dyn FnMut(&str, Value) -> Result<Value, FieldError>,
) -> Value {
    let doc = match q::parse_query::<String>(&req.query) {
        Ok(d) => d.into_static(),
        Err(e) => {
            return json!({"data": null, "errors": [{
                "path": null, "locations": null,
                "message": format!("Invalid Syntax : {}", e.to_string().trim()),
                "errorType": "MalformedHttpRequestException",
            }]})
        }
    };
    let mut ops = Vec::new();
    let mut fragments = HashMap::new();
    for d in &doc.definitions {
        match d {
            q::Definition::Operation(o) => ops.push(o),
            q::Definition::Fragment(f) => {
                fragments.insert(f.name.as_str(), f);
            }
        }
    }
    let op_name = |o: &q::OperationDefinition<'_, String>| -> Option<String> {
        match o {
            q::OperationDefinition::Query(x) => x.name.clone(),
            q::OperationDefinition::Mutation(x) => x.name.clone(),
            q::OperationDefinition::Subscription(x) => x.name.clone(),
            q::OperationDefinition::SelectionSet(_) => None,
        }
    };
    let op = match &req.operation_name {
        Some(n) => ops
            .iter()
            .find(|o| op_name(o).as_deref() == Some(n.as_str())),
        None if ops.len() == 1 => ops.first(),
        None => None,
    };
    let Some(op) = op else {
        let msg = if ops.is_empty() {
            "the document contains no operation".to_string()
        } else if let Some(n) = &req.operation_name {
            format!("Unknown operation named '{n}'")
        } else {
            "operationName is required when the document has several operations".to_string()
        };
        return json!({"data": null, "errors": [validation("UnknownOperation", msg, None)]});
    };
    let (mutation, var_defs, set, parent) = match op {
        q::OperationDefinition::Query(x) => (
            false,
            &x.variable_definitions[..],
            &x.selection_set,
            "Query",
        ),
        q::OperationDefinition::Mutation(x) => (
            true,
            &x.variable_definitions[..],
            &x.selection_set,
            "Mutation",
        ),
        q::OperationDefinition::SelectionSet(s) => (false, &[][..], s, "Query"),
        q::OperationDefinition::Subscription(_) => {
            return json!({"data": null, "errors": [validation("UnsupportedOperation",
                "subscriptions are not served by the local endpoint".into(), None)]});
        }
    };
    let provided = match &req.variables {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::Null) | None => Map::new(),
        Some(_) => {
            return json!({"data": null, "errors": [validation("InvalidVariables",
                "variables must be a JSON object".into(), None)]});
        }
    };
    let mut errors = Vec::new();
    let mut vars = Map::new();
    let mut var_types = HashMap::new();
    for vd in var_defs {
        let ty = TypeRef::from_ast(&vd.var_type);
        let v = match provided.get(&vd.name) {
            Some(v) => v.clone(),
            None => vd
                .default_value
                .as_ref()
                .map(|d| literal(d, &Map::new()).0)
                .unwrap_or(Value::Null),
        };
        if let Err(why) = check_value(schema, &v, &Kind::Json, &ty) {
            let message = if v.is_null() && matches!(ty, TypeRef::NonNull(_)) {
                format!(
                    "Variable '{}' has coerced Null value for NonNull type '{ty}'",
                    vd.name
                )
            } else {
                format!("Variable '{}' has an invalid value: {why}", vd.name)
            };
            errors.push(json!({
                "path": null, "locations": [{"line": vd.position.line, "column": vd.position.column, "sourceName": null}],
                "message": message,
            }));
        }
        vars.insert(vd.name.clone(), v);
        var_types.insert(vd.name.clone(), ty);
    }
    let ctx = Ctx {
        schema,
        vars,
        var_types,
        fragments,
    };
    let mut roots = Vec::new();
    ctx.fields(set, &mut roots, &mut errors, 0);
    for f in &roots {
        if f.name == "__typename" {
            continue;
        }
        match schema
            .root_field(mutation, &f.name)
            .or_else(|| schema.meta_field(mutation, &f.name))
        {
            None => errors.push(validation(
                "FieldUndefined",
                format!(
                    "Field '{}' in type '{parent}' is undefined @ '{}'",
                    f.name, f.name
                ),
                Some(f.position),
            )),
            Some(def) => {
                ctx.validate_args(def, f, &mut errors);
                ctx.validate_selection(&def.ty, f, &mut errors);
            }
        }
    }
    if !errors.is_empty() {
        return json!({"data": null, "errors": errors});
    }
    let mut data = Map::new();
    let selection_list = |f: &'_ q::Field<'static, String>| -> Vec<Value> {
        let mut fs = Vec::new();
        let mut errs = Vec::new();
        ctx.fields(&f.selection_set, &mut fs, &mut errs, 0);
        fs.iter().map(|x| json!(x.name)).collect()
    };
    for f in roots {
        let key = response_key(f);
        if f.name == "__typename" {
            data.insert(key, json!(parent));
            continue;
        }
        if let Some(def) = schema.meta_field(mutation, &f.name) {
            // Introspection: answered from the schema, for any authenticated caller.
            let value = if f.name == "__schema" {
                schema.intro.schema.clone()
            } else {
                let name = f
                    .arguments
                    .iter()
                    .find(|(n, _)| n == "name")
                    .map(|(_, v)| literal(v, &ctx.vars).0);
                name.as_ref()
                    .and_then(Value::as_str)
                    .map_or(Value::Null, |n| schema.introspect_type(n))
            };
            let mut path = vec![json!(key)];
            let out = ctx.project(&value, &def.ty, f, &mut path, &mut errors);
            data.insert(key, out);
            continue;
        }
        let Some(def) = schema.root_field(mutation, &f.name) else {
            continue;
        };
        if !allowed(&def.auth, info.caller) {
            data.insert(key.clone(), Value::Null);
            errors.push(json!({
                "path": [key], "data": null, "errorType": "Unauthorized", "errorInfo": null,
                "locations": [{"line": f.position.line, "column": f.position.column, "sourceName": null}],
                "message": format!("Not Authorized to access {} on type {parent}", f.name),
            }));
            continue;
        }
        let mut args = Map::new();
        for (n, v) in &f.arguments {
            args.insert(n.clone(), literal(v, &ctx.vars).0);
        }
        let event = json!({
            "arguments": Value::Object(args),
            "identity": info.caller.identity(&info.source_ip),
            "source": null,
            "request": {"headers": Value::Object(info.headers.clone()), "domainName": null},
            "prev": null,
            "info": {
                "fieldName": f.name,
                "parentTypeName": parent,
                "variables": Value::Object(provided.clone()),
                "selectionSetList": selection_list(f),
                "selectionSetGraphQL": "",
            },
            "stash": {},
        });
        match resolve(&f.name, event) {
            Ok(v) => {
                let mut path = vec![json!(key)];
                let out = ctx.project(&v, &def.ty, f, &mut path, &mut errors);
                data.insert(key, out);
            }
            Err(e) => {
                data.insert(key.clone(), Value::Null);
                errors.push(json!({
                    "path": [key], "data": null, "errorType": e.error_type, "errorInfo": null,
                    "locations": [{"line": f.position.line, "column": f.position.column, "sourceName": null}],
                    "message": e.message,
                }));
            }
        }
    }
    let mut out = Map::new();
    out.insert("data".into(), Value::Object(data));
    if !errors.is_empty() {
        out.insert("errors".into(), Value::Array(errors));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(query: &str, vars: Value, caller: &Caller) -> (Value, Vec<Value>) {
        let schema = Schema::parse(SCHEMA_SDL).expect("schema");
        let mut events = Vec::new();
        let req = Request {
            query: query.into(),
            variables: Some(vars),
            operation_name: None,
        };
        let info = RequestInfo {
            caller,
            headers: Map::new(),
            source_ip: "127.0.0.1".into(),
        };
        let out = execute(&schema, &req, &info, &mut |field, ev| {
            events.push(ev.clone());
            match field {
                "startWorkflow" => {
                    Ok(json!({"success": true, "executionArn": "arn:x", "status": "RUNNING"}))
                }
                "listWorkflowExecutions" => Ok(json!({"success": true, "executions": [
                    {"executionArn": "a", "name": "n", "status": "RUNNING", "startDate": "2024-01-01T00:00:00Z"}]})),
                "getWorkflowStatus" => Err(FieldError {
                    error_type: "Boom".into(),
                    message: "bad".into(),
                }),
                "getExecutionHistory" => Ok(
                    json!({"success": true, "events": [{"id": 1, "type": "ExecutionStarted",
                    "timestamp": "2024-01-01T00:00:00Z", "details": {"input": "{}"}}]}),
                ),
                "stopWorkflow" => Ok(json!({"success": true})),
                _ => Ok(Value::Null),
            }
        });
        (out, events)
    }

    #[test]
    fn builds_appsync_events_and_projects_results() {
        let (out, events) = run(
            r#"mutation S($in: AWSJSON!) { s: startWorkflow(workflowType: BOOKING_LIFECYCLE, input: $in) { success executionArn __typename } }"#,
            json!({"in": "{\"bookingId\":\"b1\"}"}),
            &Caller::ApiKey,
        );
        assert_eq!(
            out,
            json!({"data": {"s": {"success": true, "executionArn": "arn:x", "__typename": "StartWorkflowResult"}}})
        );
        assert_eq!(
            events[0]["arguments"],
            json!({"workflowType": "BOOKING_LIFECYCLE", "input": "{\"bookingId\":\"b1\"}"})
        );
        assert_eq!(events[0]["info"]["fieldName"], "startWorkflow");
        assert_eq!(events[0]["info"]["parentTypeName"], "Mutation");
        assert_eq!(events[0]["identity"], Value::Null);
    }

    #[test]
    fn nested_lists_fragments_and_awsjson_output() {
        let (out, _) = run(
            "query { listWorkflowExecutions(limit: 5) { executions { ...E } } getExecutionHistory(executionArn: \"a\") { events { id details } } }
             fragment E on WorkflowExecution { name status }",
            json!({}),
            &Caller::ApiKey,
        );
        assert_eq!(
            out["data"]["listWorkflowExecutions"]["executions"],
            json!([{"name": "n", "status": "RUNNING"}])
        );
        assert_eq!(
            out["data"]["getExecutionHistory"]["events"][0]["details"],
            json!("{\"input\":\"{}\"}")
        );
    }

    #[test]
    fn validation_errors_like_appsync() {
        let c = Caller::ApiKey;
        let msg = |q: &str, v: Value| {
            run(q, v, &c).0["errors"][0]["message"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        assert!(msg("{ nope { x } }", json!({}))
            .contains("FieldUndefined: Field 'nope' in type 'Query'"));
        assert!(msg(
            "{ listWorkflowExecutions(limit: \"x\") { success } }",
            json!({})
        )
        .contains("WrongType"));
        assert!(msg(
            "{ listWorkflowExecutions(bogus: 1) { success } }",
            json!({})
        )
        .contains("UnknownArgument"));
        assert!(msg("{ getWorkflowStatus { success } }", json!({}))
            .contains("MissingFieldArgument: Missing field argument executionArn"));
        assert!(msg("{ listWorkflowExecutions }", json!({})).contains("SubSelectionRequired"));
        assert!(
            msg("{ listWorkflowExecutions { success { x } } }", json!({}))
                .contains("SubSelectionNotAllowed")
        );
        assert!(msg(
            "{ listWorkflowExecutions { executions { bogus } } }",
            json!({})
        )
        .contains("Field 'bogus' in type 'WorkflowExecution'"));
        assert!(msg("mutation { startWorkflow(workflowType: \"BOOKING_LIFECYCLE\", input: \"{}\") { success } }", json!({})).contains("WrongType"));
        assert!(msg("mutation { startWorkflow(workflowType: BOOKING_LIFECYCLE, input: \"{not json\") { success } }", json!({})).contains("AWSJSON"));
        assert!(msg("mutation($i: AWSJSON!) { startWorkflow(workflowType: BOOKING_LIFECYCLE, input: $i) { success } }", json!({"i": 5})).contains("Variable 'i' has an invalid value"));
        let out = run("{ listWorkflowExecutions(", json!({}), &c).0;
        assert_eq!(
            out["errors"][0]["errorType"],
            "MalformedHttpRequestException"
        );
    }

    fn user(groups: &[&str]) -> Caller {
        Caller::User {
            sub: "u1".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            claims: json!({}),
        }
    }

    fn find<'v>(list: &'v Value, name: &str) -> &'v Value {
        list.as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == json!(name)))
            .unwrap_or_else(|| panic!("{name} missing in {list}"))
    }

    #[test]
    fn the_full_introspection_query_describes_the_schema() {
        let (out, events) = run(INTROSPECTION_QUERY, json!({}), &user(&[]));
        assert!(out.get("errors").is_none(), "{out}");
        assert!(events.is_empty(), "introspection calls no resolver");
        assert!(
            !out.to_string().contains("__ref"),
            "every reference is resolved"
        );
        let schema = &out["data"]["__schema"];
        assert_eq!(schema["queryType"]["name"], "Query");
        assert_eq!(schema["mutationType"]["name"], "Mutation");
        assert_eq!(schema["subscriptionType"], Value::Null);
        let types = &schema["types"];
        for name in [
            "Query",
            "Mutation",
            "WorkflowType",
            "StartWorkflowResult",
            "String",
            "Boolean",
            "AWSJSON",
            "AWSDateTime",
            "AWSTimestamp",
            "AWSIPAddress",
            "__Schema",
            "__Type",
            "__TypeKind",
            "__Directive",
        ] {
            find(types, name);
        }
        let query = find(types, "Query");
        assert_eq!(query["kind"], "OBJECT");
        let status = find(&query["fields"], "getWorkflowStatus");
        assert!(
            status["description"]
                .as_str()
                .unwrap_or("")
                .starts_with("The status of one execution."),
            "{status}"
        );
        // getWorkflowStatus(executionArn: String!, ...): WorkflowStatusResult!
        assert_eq!(status["type"]["kind"], "NON_NULL");
        assert_eq!(status["type"]["ofType"]["name"], "WorkflowStatusResult");
        let arn = find(&status["args"], "executionArn");
        assert_eq!(
            arn["type"],
            json!({"kind": "NON_NULL", "name": null, "ofType": {"kind": "SCALAR", "name": "String", "ofType": null}})
        );
        let limit = find(
            &find(&query["fields"], "listWorkflowExecutions")["args"],
            "limit",
        );
        assert_eq!(limit["description"], "1 to 1000, default 100");
        let wt = find(types, "WorkflowType");
        assert_eq!(wt["kind"], "ENUM");
        assert_eq!(wt["enumValues"].as_array().map(Vec::len), Some(4));
        assert!(wt["description"]
            .as_str()
            .unwrap_or("")
            .contains("BOOKING_LIFECYCLE"));
        let json_scalar = find(types, "AWSJSON");
        assert_eq!(json_scalar["kind"], "SCALAR");
        assert_eq!(json_scalar["fields"], Value::Null);
        // [WorkflowExecution!]!
        let list = find(
            &find(types, "ListWorkflowExecutionsResult")["fields"],
            "executions",
        );
        assert_eq!(list["type"]["ofType"]["kind"], "LIST");
        assert_eq!(
            list["type"]["ofType"]["ofType"]["ofType"]["name"],
            "WorkflowExecution"
        );
        let directives = &schema["directives"];
        for name in [
            "include",
            "skip",
            "deprecated",
            "aws_api_key",
            "aws_iam",
            "aws_oidc",
            "aws_lambda",
            "aws_auth",
            "aws_subscribe",
        ] {
            find(directives, name);
        }
        let cup = find(directives, "aws_cognito_user_pools");
        assert_eq!(cup["locations"], json!(["OBJECT", "FIELD_DEFINITION"]));
        assert_eq!(find(&cup["args"], "cognito_groups")["type"]["kind"], "LIST");
        let dep = find(directives, "deprecated");
        assert_eq!(
            find(&dep["args"], "reason")["defaultValue"],
            "\"No longer supported\""
        );
    }

    #[test]
    fn type_lookups_typename_and_conditional_fields() {
        let (out, _) = run(
            r#"query($t: String!, $yes: Boolean!) {
                t: __type(name: $t) { __typename kind name enumValues { name } fields { name } }
                none: __type(name: "Nope") { name }
                __typename
                __schema { queryType { name fields @include(if: $yes) { name } kind @skip(if: $yes) } }
              }"#,
            json!({"t": "ExecutionStatus", "yes": true}),
            &Caller::ApiKey,
        );
        assert!(out.get("errors").is_none(), "{out}");
        let t = &out["data"]["t"];
        assert_eq!(t["__typename"], "__Type");
        assert_eq!(t["kind"], "ENUM");
        assert_eq!(t["fields"], Value::Null);
        assert_eq!(t["enumValues"][5]["name"], "PENDING_REDRIVE");
        assert_eq!(out["data"]["none"], Value::Null);
        assert_eq!(out["data"]["__typename"], "Query");
        let q = &out["data"]["__schema"]["queryType"];
        assert!(q.get("kind").is_none(), "skipped: {q}");
        assert_eq!(q["fields"].as_array().map(Vec::len), Some(3));
        // Type references resolve to the full type.
        let (out, _) = run(
            "{ __type(name: \"Query\") { fields { type { ofType { name fields { name } } } } } }",
            json!({}),
            &Caller::ApiKey,
        );
        let first = &out["data"]["__type"]["fields"][0]["type"]["ofType"];
        assert_eq!(first["name"], "WorkflowStatusResult");
        assert_eq!(first["fields"][0]["name"], "success");
    }

    #[test]
    fn introspection_is_validated_like_any_query() {
        let msg = |q: &str| {
            run(q, json!({}), &Caller::ApiKey).0["errors"][0]["message"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        assert!(msg("{ __schema { nope } }").contains("Field 'nope' in type '__Schema'"));
        assert!(msg("{ __schema }").contains("SubSelectionRequired"));
        assert!(msg("{ __type { name } }")
            .contains("MissingFieldArgument: Missing field argument name"));
        assert!(msg("{ __type(name: 5) { name } }").contains("WrongType"));
        assert!(msg("mutation { __schema { types { name } } }")
            .contains("Field '__schema' in type 'Mutation' is undefined"));
        assert!(msg("{ __typename @include(if: \"yes\") }").contains("@include must be a Boolean"));
        assert!(msg("{ __typename @cached }").contains("UnknownDirective"));
    }

    #[test]
    fn declaring_appsync_names_in_the_schema_is_refused() {
        let err = Schema::parse("scalar AWSJSON\ntype Query { a: String }").expect_err("reserved");
        assert!(
            err.to_string().contains("'AWSJSON' is defined by AppSync"),
            "{err}"
        );
        let err = Schema::parse("type Query { a: String }\ntype __Mine { a: String }")
            .expect_err("reserved");
        assert!(err.to_string().contains("__Mine"), "{err}");
        let s = Schema::parse("type Query { a: String }").expect("no mutation type");
        assert_eq!(s.intro.schema["mutationType"], Value::Null);
    }

    #[test]
    fn authorization_follows_the_directives_and_resolver_errors_are_typed() {
        let user = Caller::User {
            sub: "u1".into(),
            groups: vec![],
            claims: json!({}),
        };
        let admin = Caller::User {
            sub: "a1".into(),
            groups: vec!["admin".into()],
            claims: json!({}),
        };
        let q = "mutation { stopWorkflow(executionArn: \"a\") { success } }";
        let (out, ev) = run(q, json!({}), &Caller::ApiKey);
        assert_eq!(out["errors"][0]["errorType"], "Unauthorized");
        assert!(ev.is_empty());
        assert_eq!(
            run(q, json!({}), &user).0["errors"][0]["errorType"],
            "Unauthorized"
        );
        let (out, ev) = run(q, json!({}), &admin);
        assert!(out.get("errors").is_none(), "{out}");
        assert_eq!(ev[0]["identity"]["sub"], "a1");
        let (out, _) = run(
            "{ getWorkflowStatus(executionArn: \"a\") { success } }",
            json!({}),
            &user,
        );
        assert_eq!(out["data"]["getWorkflowStatus"], Value::Null);
        assert_eq!(out["errors"][0]["errorType"], "Boom");
        assert_eq!(out["errors"][0]["path"], json!(["getWorkflowStatus"]));
    }
}
