//! Target input transformation: `InputPath`, and `InputPathsMap` + `InputTemplate`.
//!
//! Paths are EventBridge's JSON path subset: `$`, dot notation (`$.detail.state`),
//! array indexes (`$.resources[0]`) and `*` wildcards (`$.detail.items[*].id`), with
//! keys made of letters, digits, `-`, `_` and `/`.
//!
//! Templates: placeholders `<name>` are filled from the paths map or from the predefined
//! variables `<aws.events.rule-arn>`, `<aws.events.rule-name>`, `<aws.events.event>`,
//! `<aws.events.event.json>` and `<aws.events.event.ingestion-time>`. A template that
//! starts with `{` or `[` is a JSON template: a placeholder inside a JSON string is
//! replaced by the value's text, outside a string by the value as JSON, and the result
//! must be valid JSON. Any other template is a string template: strings are inserted as
//! they are, numbers/booleans as their text, missing values and `null` as nothing, and
//! objects/arrays as their JSON text with the quotes removed (`{a:1,b:x}`).

use crate::error::TransformError;
use serde_json::{Map, Value};

const PREDEFINED: [&str; 5] = [
    "aws.events.rule-arn",
    "aws.events.rule-name",
    "aws.events.event",
    "aws.events.event.json",
    "aws.events.event.ingestion-time",
];

/// Maximum number of entries in an `InputPathsMap` (EventBridge: 100).
pub const MAX_PATHS: usize = 100;
/// Maximum length of an `InputTemplate` (EventBridge: 8192).
pub const MAX_TEMPLATE_LEN: usize = 8192;
/// Maximum length of an `InputPath` or of a paths-map value (EventBridge: 256).
pub const MAX_PATH_LEN: usize = 256;

/// A parsed EventBridge JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    Wildcard,
}

impl JsonPath {
    /// Parses a path such as `$.detail.items[0].id`.
    pub fn parse(text: &str) -> Result<JsonPath, TransformError> {
        let bad = || TransformError::InvalidPath(format!("{text} is an invalid JSON path"));
        if text.len() > MAX_PATH_LEN {
            return Err(TransformError::InvalidPath(format!(
                "JSON path {text} is longer than {MAX_PATH_LEN} characters"
            )));
        }
        let rest = text.strip_prefix('$').ok_or_else(bad)?;
        let b = rest.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' => {
                    i += 1;
                    let start = i;
                    while i < b.len() && is_key_byte(b[i]) {
                        i += 1;
                    }
                    let key = &rest[start..i];
                    if key.is_empty() {
                        return Err(bad());
                    }
                    steps.push(if key == "*" {
                        Step::Wildcard
                    } else {
                        Step::Key(key.to_string())
                    });
                }
                b'[' => {
                    let close = rest[i..].find(']').ok_or_else(bad)? + i;
                    let inner = &rest[i + 1..close];
                    if inner == "*" {
                        steps.push(Step::Wildcard);
                    } else if let Ok(n) = inner.parse::<usize>() {
                        steps.push(Step::Index(n));
                    } else if let Some(k) = inner
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                    {
                        steps.push(Step::Key(k.to_string()));
                    } else {
                        return Err(bad());
                    }
                    i = close + 1;
                }
                _ => return Err(bad()),
            }
        }
        Ok(JsonPath {
            steps,
            text: text.to_string(),
        })
    }

    /// The value at this path, `None` when absent. Wildcards collect an array.
    pub fn select(&self, event: &Value) -> Option<Value> {
        let mut current = vec![event];
        let mut multi = false;
        for step in &self.steps {
            let mut next = Vec::new();
            for v in current {
                match step {
                    Step::Key(k) => {
                        if let Some(c) = v.get(k.as_str()) {
                            next.push(c);
                        }
                    }
                    Step::Index(n) => {
                        if let Some(c) = v.get(*n) {
                            next.push(c);
                        }
                    }
                    Step::Wildcard => {
                        multi = true;
                        match v {
                            Value::Array(a) => next.extend(a.iter()),
                            Value::Object(m) => next.extend(m.values()),
                            _ => {}
                        }
                    }
                }
            }
            current = next;
        }
        if multi {
            Some(Value::Array(current.into_iter().cloned().collect()))
        } else {
            current.first().map(|v| (*v).clone())
        }
    }
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'/' | b'*' | b'@' | b':' | b'$')
}

/// What EventBridge knows about the delivery, for the predefined variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// `<aws.events.rule-name>`
    pub rule_name: String,
    /// `<aws.events.rule-arn>`
    pub rule_arn: String,
    /// `<aws.events.event.ingestion-time>` (ISO 8601), from the caller's clock.
    pub ingestion_time: String,
    /// Target id used in error messages.
    pub target_id: String,
}

/// An `InputTransformer`: paths map plus template, validated.
#[derive(Debug, Clone)]
pub struct InputTransformer {
    paths: Vec<(String, JsonPath)>,
    template: Vec<Piece>,
    json: bool,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    /// Placeholder name; `in_string` when it sits inside a JSON string literal.
    Var {
        name: String,
        in_string: bool,
    },
}

impl InputTransformer {
    /// Builds a transformer, with EventBridge's checks: at most 100 paths, keys neither
    /// reserved nor empty, valid paths, a template of at most 8192 characters whose
    /// placeholders are all defined.
    pub fn new(
        paths_map: &[(String, String)],
        template: &str,
        target_id: &str,
    ) -> Result<InputTransformer, TransformError> {
        if paths_map.len() > MAX_PATHS {
            return Err(TransformError::Invalid(format!(
                "InputPathsMap for target {target_id} has {} entries; at most {MAX_PATHS} are allowed.",
                paths_map.len()
            )));
        }
        if template.is_empty() || template.chars().count() > MAX_TEMPLATE_LEN {
            return Err(TransformError::Invalid(format!(
                "InputTemplate for target {target_id} must be between 1 and {MAX_TEMPLATE_LEN} characters long."
            )));
        }
        let mut paths = Vec::new();
        for (k, p) in paths_map {
            if k.is_empty()
                || k.starts_with("aws.events")
                || !k
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            {
                return Err(TransformError::Invalid(format!(
                    "InputPathsMap for target {target_id} has an invalid key {k}: keys are letters, digits, '-', '_' and '.', and must not start with aws.events."
                )));
            }
            paths.push((k.clone(), JsonPath::parse(p)?));
        }
        let trimmed = template.trim_start();
        let json = trimmed.starts_with('{') || trimmed.starts_with('[');
        let pieces = split_template(template, json);
        for piece in &pieces {
            if let Piece::Var { name, .. } = piece {
                if !PREDEFINED.contains(&name.as_str()) && !paths.iter().any(|(k, _)| k == name) {
                    return Err(TransformError::InvalidPlaceholder {
                        target: target_id.to_string(),
                        placeholder: name.clone(),
                    });
                }
            }
        }
        Ok(InputTransformer {
            paths,
            template: pieces,
            json,
        })
    }

    /// Applies the transformer to an event. JSON templates give a JSON value; string
    /// templates give the text (as a JSON string value).
    pub fn apply(&self, event: &Value, ctx: &Context) -> Result<Value, TransformError> {
        let mut out = String::new();
        for piece in &self.template {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var { name, in_string } => {
                    let v = self.lookup(name, event, ctx);
                    if self.json {
                        if *in_string {
                            match &v {
                                None | Some(Value::Null) => {}
                                Some(Value::String(s)) => push_escaped(&mut out, s),
                                Some(Value::Object(_) | Value::Array(_)) => {
                                    return Err(TransformError::NotJson(format!(
                                        "placeholder <{name}> holds an object or array but sits inside a JSON string"
                                    )))
                                }
                                Some(other) => push_json(&mut out, other),
                            }
                        } else {
                            match &v {
                                None => out.push_str("null"),
                                Some(v) => push_json(&mut out, v),
                            }
                        }
                    } else {
                        match &v {
                            None | Some(Value::Null) => {}
                            Some(Value::String(s)) => out.push_str(s),
                            Some(Value::Object(_) | Value::Array(_)) => {
                                out.push_str(&v.as_ref().map(unquoted).unwrap_or_default())
                            }
                            Some(other) => push_json(&mut out, other),
                        }
                    }
                }
            }
        }
        let looks_json = {
            let t = out.trim_start();
            t.starts_with('{') || t.starts_with('[')
        };
        if self.json || looks_json {
            // EventBridge does not deliver output that starts like JSON but is not JSON
            // (e.g. an unquoted string template beginning with a list placeholder)
            serde_json::from_str(&out).map_err(|e| TransformError::NotJson(e.to_string()))
        } else {
            Ok(Value::String(out))
        }
    }

    fn lookup(&self, name: &str, event: &Value, ctx: &Context) -> Option<Value> {
        match name {
            "aws.events.rule-name" => Some(Value::String(ctx.rule_name.clone())),
            "aws.events.rule-arn" => Some(Value::String(ctx.rule_arn.clone())),
            "aws.events.event.ingestion-time" => Some(Value::String(ctx.ingestion_time.clone())),
            "aws.events.event.json" => Some(event.clone()),
            "aws.events.event" => Some(event_without_detail(event)),
            _ => self
                .paths
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, p)| p.select(event)),
        }
    }
}

/// `<aws.events.event>`: the envelope without `detail`, `detail-type` spelled `detailType`.
fn event_without_detail(event: &Value) -> Value {
    let mut m = Map::new();
    if let Value::Object(o) = event {
        for (k, v) in o {
            match k.as_str() {
                "detail" => {}
                "detail-type" => {
                    m.insert("detailType".into(), v.clone());
                }
                _ => {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(m)
}

/// JSON text of `v` with every string's quotes removed (string-template rendering).
fn unquoted(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(unquoted).collect::<Vec<_>>().join(",")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", unquoted(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

fn push_escaped(out: &mut String, s: &str) {
    let quoted = Value::String(s.to_string()).to_string();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

/// Splits a template into text and `<name>` placeholders, noting for JSON templates
/// whether each placeholder sits inside a string literal.
fn split_template(t: &str, json: bool) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = t;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            if let Some(end) = rest.find('>') {
                let name = &rest[1..end];
                if !name.is_empty() && !name.contains(['<', ' ', '"', '\n']) {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var {
                        name: name.to_string(),
                        in_string: json && in_string,
                    });
                    rest = &rest[end + 1..];
                    continue;
                }
            }
        }
        if json {
            if escaped {
                escaped = false;
            } else if c == '\\' && in_string {
                escaped = true;
            } else if c == '"' {
                in_string = !in_string;
            }
        }
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// What a target sends: the event itself, a constant, an `InputPath`, or an input transformer.
#[derive(Debug, Clone)]
pub enum TargetInput {
    /// The matched event, unchanged.
    Event,
    /// `Input`: constant JSON text.
    Constant(Value),
    /// `InputPath`.
    Path(JsonPath),
    /// `InputTransformer`.
    Transformer(InputTransformer),
}

impl TargetInput {
    /// Builds a target's input from the optional `Input`, `InputPath` and
    /// `InputTransformer` (paths map, template) with EventBridge's checks.
    pub fn new(
        input: Option<&str>,
        input_path: Option<&str>,
        transformer: Option<(&[(String, String)], &str)>,
        target_id: &str,
    ) -> Result<TargetInput, TransformError> {
        let given = usize::from(input.is_some())
            + usize::from(input_path.is_some())
            + usize::from(transformer.is_some());
        if given > 1 {
            return Err(TransformError::Invalid(format!(
                "Only one of Input, InputPath, or InputTransformer must be provided for target {target_id}."
            )));
        }
        if let Some(text) = input {
            let v = serde_json::from_str(text).map_err(|_| {
                TransformError::Invalid(format!(
                    "Input for target {target_id} is not valid JSON text."
                ))
            })?;
            return Ok(TargetInput::Constant(v));
        }
        if let Some(p) = input_path {
            return Ok(TargetInput::Path(JsonPath::parse(p)?));
        }
        if let Some((map, template)) = transformer {
            return Ok(TargetInput::Transformer(InputTransformer::new(
                map, template, target_id,
            )?));
        }
        Ok(TargetInput::Event)
    }

    /// The payload delivered for `event`; `None` when an `InputPath` selects nothing.
    pub fn apply(&self, event: &Value, ctx: &Context) -> Result<Option<Value>, TransformError> {
        match self {
            TargetInput::Event => Ok(Some(event.clone())),
            TargetInput::Constant(v) => Ok(Some(v.clone())),
            TargetInput::Path(p) => Ok(p.select(event)),
            TargetInput::Transformer(t) => t.apply(event, ctx).map(Some),
        }
    }
}

/// Applies an `InputPath`: the selected value, or `None` when the path selects nothing.
pub fn input_path(path: &str, event: &Value) -> Result<Option<Value>, TransformError> {
    Ok(JsonPath::parse(path)?.select(event))
}

/// Appends `v`'s compact JSON text (as `Value::to_string` gives it) without going through
/// the formatter.
fn push_json(out: &mut String, v: &Value) {
    out.push_str(&serde_json::to_string(v).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({"version": "0", "id": "e1", "detail-type": "core.update-account-command",
               "source": "core.update-account-command", "account": "111111111111",
               "time": "date", "region": "us-east-1", "resources": [],
               "detail": {"command": "update-account",
                          "payload": {"acc_id": "0a787ecb-4015", "sf_id": "baz"},
                          "listsingle": ["HIGH"], "listmulti": ["ACTIVE", "INACTIVE"], "valid": true}})
    }

    fn t(template: &str) -> Result<Value, TransformError> {
        let paths: Vec<(String, String)> = [
            ("userId", "$.detail.payload.acc_id"),
            ("payload", "$.detail.payload"),
            ("listsingle", "$.detail.listsingle"),
            ("listmulti", "$.detail.listmulti"),
            ("systemstring", "$.detail.nothere"),
            ("valid", "$.detail.valid"),
            ("detail-type", "$.detail-type"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let ctx = Context {
            rule_name: "r".into(),
            rule_arn: "arn:aws:events:us-east-1:111111111111:rule/r".into(),
            ingestion_time: "2024-01-01T00:00:00Z".into(),
            target_id: "t".into(),
        };
        InputTransformer::new(&paths, template, "t")?.apply(&event(), &ctx)
    }

    #[test]
    fn json_templates() {
        assert_eq!(
            t(r#"{"method": "PUT", "path": "users-service/users/<userId>", "bod": <payload>}"#)
                .unwrap(),
            json!({"method": "PUT", "path": "users-service/users/0a787ecb-4015", "bod": {"acc_id": "0a787ecb-4015", "sf_id": "baz"}})
        );
        assert_eq!(
            t(r#"{"id" : <userId>}"#).unwrap(),
            json!({"id": "0a787ecb-4015"})
        );
        assert_eq!(
            t(r#"{"singlelistitem": <listsingle>}"#).unwrap(),
            json!({"singlelistitem": ["HIGH"]})
        );
        assert!(t(r#"{"singlelistitem": "<listsingle>"}"#).is_err());
        assert_eq!(
            t(r#"{"bod": [<userId>, "hardcoded"]}"#).unwrap(),
            json!({"bod": ["0a787ecb-4015", "hardcoded"]})
        );
    }

    #[test]
    fn string_templates() {
        assert_eq!(
            t(r#""Payload of <payload> with path users-service/users/<userId> and <userId>""#).unwrap(),
            json!("\"Payload of {acc_id:0a787ecb-4015,sf_id:baz} with path users-service/users/0a787ecb-4015 and 0a787ecb-4015\"")
        );
        assert_eq!(
            t(r#""<listmulti> multiple list items <systemstring> system""#).unwrap(),
            json!("\"[ACTIVE,INACTIVE] multiple list items  system\"")
        );
        assert_eq!(
            t(r#""Command is <valid>!""#).unwrap(),
            json!("\"Command is true!\"")
        );
        assert_eq!(
            t(r#""<aws.events.rule-name> <aws.events.rule-arn>""#).unwrap(),
            json!("\"r arn:aws:events:us-east-1:111111111111:rule/r\"")
        );
    }

    #[test]
    fn predefined_event_variables() {
        let v = t(r#"{"originalEvent": <aws.events.event>, "originalEventJson": <aws.events.event.json>}"#).unwrap();
        assert_eq!(
            v["originalEvent"]["detailType"],
            json!("core.update-account-command")
        );
        assert!(v["originalEvent"].get("detail").is_none());
        assert_eq!(v["originalEventJson"], event());
    }

    #[test]
    fn invalid_placeholder() {
        assert_eq!(
            t("<notdefinedkey> x").unwrap_err().to_string(),
            "InputTemplate for target t contains invalid placeholder notdefinedkey."
        );
    }

    #[test]
    fn paths() {
        assert_eq!(
            input_path("$.detail.payload.sf_id", &event()).unwrap(),
            Some(json!("baz"))
        );
        assert_eq!(
            input_path("$.detail.listmulti[1]", &event()).unwrap(),
            Some(json!("INACTIVE"))
        );
        assert_eq!(input_path("$", &event()).unwrap(), Some(event()));
        assert!(input_path("detail", &event()).is_err());
        assert_eq!(input_path("$.nope", &event()).unwrap(), None);
    }
}
