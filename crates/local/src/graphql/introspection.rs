//! GraphQL introspection (`__schema`, `__type`) over the served schema.
//!
//! The answer is computed once, when the schema is parsed: every named type becomes a
//! `__Type` JSON object (in source order), and references between types are left as
//! `{"__ref": "Name"}` markers that the executor replaces by the named type while it
//! projects a selection set (types refer to each other in cycles, so they cannot be inlined).
//!
//! The types are the schema's own, AppSync's scalars and directives, the built-in scalars
//! and the introspection types themselves (all from `prelude.graphql`). `schema.graphql`
//! documents itself with `#` comments (AppSync's parser predates descriptions): the comment
//! lines right above a type, field, argument or enum value become its description.

use graphql_parser::schema as s;
use graphql_parser::Pos;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The introspection answer of one schema.
#[derive(Debug, Clone, Default)]
pub(crate) struct Introspection {
    /// Every named type's `__Type` object, by name.
    pub types: HashMap<String, Value>,
    /// The `__Schema` object.
    pub schema: Value,
}

/// A reference to a named type, resolved during projection.
pub(crate) fn type_ref_marker(name: &str) -> Value {
    json!({ "__ref": name })
}

/// The name a reference marker points at.
pub(crate) fn marker_target(v: &Value) -> Option<&str> {
    v.get("__ref").and_then(Value::as_str)
}

fn type_ref(t: &s::Type<'_, String>) -> Value {
    match t {
        s::Type::NamedType(n) => type_ref_marker(n),
        s::Type::ListType(i) => json!({"kind": "LIST", "name": null, "ofType": type_ref(i)}),
        s::Type::NonNullType(i) => json!({"kind": "NON_NULL", "name": null, "ofType": type_ref(i)}),
    }
}

/// One SDL source: its text (for `#` comment descriptions) and parsed document.
pub(crate) struct Source<'a> {
    pub lines: Vec<&'a str>,
    pub doc: &'a s::Document<'a, String>,
}

impl Source<'_> {
    /// The description of an element: its own (`"..."`), else the `#` comment lines right
    /// above it.
    fn describe(&self, own: &Option<String>, pos: Pos) -> Value {
        if let Some(d) = own {
            return json!(d);
        }
        let mut lines = Vec::new();
        let mut i = pos.line.saturating_sub(1);
        while i > 0 {
            let l = self.lines.get(i - 1).map_or("", |l| l.trim());
            match l.strip_prefix('#') {
                Some(text) => lines.push(text.strip_prefix(' ').unwrap_or(text).trim_end()),
                None => break,
            }
            i -= 1;
        }
        if lines.is_empty() {
            return Value::Null;
        }
        lines.reverse();
        json!(lines.join("\n"))
    }

    fn input_value(&self, a: &s::InputValue<'_, String>) -> Value {
        json!({
            "name": a.name,
            "description": self.describe(&a.description, a.position),
            "type": type_ref(&a.value_type),
            "defaultValue": a.default_value.as_ref().map(|v| v.to_string()),
            "isDeprecated": false,
            "deprecationReason": null,
        })
    }

    fn deprecation(dirs: &[s::Directive<'_, String>]) -> (bool, Value) {
        match dirs.iter().find(|d| d.name == "deprecated") {
            None => (false, Value::Null),
            Some(d) => {
                let reason = d
                    .arguments
                    .iter()
                    .find(|(k, _)| k == "reason")
                    .and_then(|(_, v)| match v {
                        s::Value::String(r) => Some(r.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "No longer supported".to_string());
                (true, json!(reason))
            }
        }
    }

    fn named_type(&self, t: &s::TypeDefinition<'_, String>) -> (String, Value) {
        let base = |kind: &str, name: &str, desc: Value| {
            json!({
                "kind": kind, "name": name, "description": desc, "specifiedByURL": null,
                "fields": null, "interfaces": null, "possibleTypes": null, "enumValues": null,
                "inputFields": null, "ofType": null, "isOneOf": null,
            })
        };
        match t {
            s::TypeDefinition::Scalar(x) => (
                x.name.clone(),
                base("SCALAR", &x.name, self.describe(&x.description, x.position)),
            ),
            s::TypeDefinition::Object(o) => {
                let mut v = base("OBJECT", &o.name, self.describe(&o.description, o.position));
                let fields: Vec<Value> = o
                    .fields
                    .iter()
                    .map(|f| {
                        let (dep, reason) = Self::deprecation(&f.directives);
                        json!({
                            "name": f.name,
                            "description": self.describe(&f.description, f.position),
                            "args": f.arguments.iter().map(|a| self.input_value(a)).collect::<Vec<_>>(),
                            "type": type_ref(&f.field_type),
                            "isDeprecated": dep,
                            "deprecationReason": reason,
                        })
                    })
                    .collect();
                v["fields"] = json!(fields);
                v["interfaces"] = json!(o
                    .implements_interfaces
                    .iter()
                    .map(|i| type_ref_marker(i))
                    .collect::<Vec<_>>());
                (o.name.clone(), v)
            }
            s::TypeDefinition::Interface(i) => {
                let mut v = base(
                    "INTERFACE",
                    &i.name,
                    self.describe(&i.description, i.position),
                );
                v["fields"] = json!(i
                    .fields
                    .iter()
                    .map(|f| json!({
                        "name": f.name,
                        "description": self.describe(&f.description, f.position),
                        "args": f.arguments.iter().map(|a| self.input_value(a)).collect::<Vec<_>>(),
                        "type": type_ref(&f.field_type),
                        "isDeprecated": false, "deprecationReason": null,
                    }))
                    .collect::<Vec<_>>());
                v["interfaces"] = json!([]);
                v["possibleTypes"] = json!([]);
                (i.name.clone(), v)
            }
            s::TypeDefinition::Union(u) => {
                let mut v = base("UNION", &u.name, self.describe(&u.description, u.position));
                v["possibleTypes"] = json!(u
                    .types
                    .iter()
                    .map(|t| type_ref_marker(t))
                    .collect::<Vec<_>>());
                (u.name.clone(), v)
            }
            s::TypeDefinition::Enum(e) => {
                let mut v = base("ENUM", &e.name, self.describe(&e.description, e.position));
                v["enumValues"] = json!(e
                    .values
                    .iter()
                    .map(|x| {
                        let (dep, reason) = Self::deprecation(&x.directives);
                        json!({
                            "name": x.name,
                            "description": self.describe(&x.description, x.position),
                            "isDeprecated": dep,
                            "deprecationReason": reason,
                        })
                    })
                    .collect::<Vec<_>>());
                (e.name.clone(), v)
            }
            s::TypeDefinition::InputObject(io) => {
                let mut v = base(
                    "INPUT_OBJECT",
                    &io.name,
                    self.describe(&io.description, io.position),
                );
                v["inputFields"] = json!(io
                    .fields
                    .iter()
                    .map(|a| self.input_value(a))
                    .collect::<Vec<_>>());
                v["isOneOf"] = json!(false);
                (io.name.clone(), v)
            }
        }
    }

    fn directive(&self, d: &s::DirectiveDefinition<'_, String>) -> Value {
        json!({
            "name": d.name,
            "description": self.describe(&d.description, d.position),
            "locations": d.locations.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            "args": d.arguments.iter().map(|a| self.input_value(a)).collect::<Vec<_>>(),
            "isRepeatable": d.repeatable,
        })
    }
}

/// Builds the introspection answer of the sources (the schema first, then the prelude).
pub(crate) fn build(
    sources: &[Source<'_>],
    query: &str,
    mutation: Option<&str>,
    description: Option<String>,
) -> Introspection {
    let mut types = HashMap::new();
    let mut order = Vec::new();
    let mut directives = Vec::new();
    for src in sources {
        for def in &src.doc.definitions {
            match def {
                s::Definition::TypeDefinition(t) => {
                    let (name, v) = src.named_type(t);
                    if types.insert(name.clone(), v).is_none() {
                        order.push(name);
                    }
                }
                s::Definition::DirectiveDefinition(d) => directives.push(src.directive(d)),
                _ => {}
            }
        }
    }
    let schema = json!({
        "description": description,
        "types": order.iter().map(|n| type_ref_marker(n)).collect::<Vec<_>>(),
        "queryType": type_ref_marker(query),
        "mutationType": mutation.map(type_ref_marker),
        "subscriptionType": null,
        "directives": directives,
    });
    Introspection { types, schema }
}
