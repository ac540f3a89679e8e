//! The JSON Schemas of the catalogue, and a validator for the draft-04 subset they use.
//!
//! The files under `schemas/` at the repository root are [`event_schemas`] rendered with
//! [`render`]; the test `tests/schemas.rs` fails when they differ and rewrites them when
//! run with `UPDATE_SCHEMAS=1`.
//!
//! [`validate`] implements the draft-04 keywords the generated schemas use: `type`,
//! `properties`, `required`, `additionalProperties` (boolean), `enum`, `minLength`,
//! `maxLength`, `pattern`, `minimum`/`maximum` with `exclusiveMinimum`/`exclusiveMaximum`,
//! `items`, `format: date-time`, and local `$ref`s into `definitions`. A schema with any
//! other validation keyword is rejected rather than half-checked.

use crate::error::ValidationError;
use crate::events::CATALOGUE;
use crate::wire::Wire;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// `(file name, schema)` for every detail type: `marketplace.booking@BookingCreated.json`.
pub fn event_schemas() -> Vec<(String, Value)> {
    CATALOGUE
        .iter()
        .map(|e| (format!("{}.json", e.schema_name()), e.event_schema()))
        .collect()
}

/// The text of a schema file: pretty JSON, two-space indent, final newline.
pub fn render(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

const ANNOTATIONS: &[&str] = &["$schema", "title", "description", "definitions", "id"];
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "items",
    "format",
    "$ref",
];

/// Validates `instance` against draft-04 `schema` (the subset above). The error names the
/// path of the first offending value (`detail.amount`) and the keyword's rule.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), ValidationError> {
    Validator { root: schema }.check(schema, instance, "")
}

struct Validator<'a> {
    root: &'a Value,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

impl Validator<'_> {
    fn resolve<'s>(&'s self, reference: &str, path: &str) -> Result<&'s Value, ValidationError> {
        let pointer = reference.strip_prefix('#').ok_or_else(|| {
            ValidationError::new(path, format!("schema $ref {reference:?} is not local"))
        })?;
        self.root.pointer(pointer).ok_or_else(|| {
            ValidationError::new(path, format!("schema $ref {reference:?} does not resolve"))
        })
    }

    fn check(&self, schema: &Value, v: &Value, path: &str) -> Result<(), ValidationError> {
        let obj = schema
            .as_object()
            .ok_or_else(|| ValidationError::new(path, "schema must be an object"))?;
        for key in obj.keys() {
            let known = KEYWORDS.contains(&key.as_str())
                || ANNOTATIONS.contains(&key.as_str())
                || key.starts_with("x-");
            if !known {
                return Err(ValidationError::new(
                    path,
                    format!("schema keyword {key:?} is not supported"),
                ));
            }
        }
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            return self.check(self.resolve(r, path)?, v, path);
        }
        if let Some(t) = obj.get("type") {
            let ok = match t {
                Value::String(s) => type_matches(s, v),
                Value::Array(ts) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|s| type_matches(s, v)),
                _ => false,
            };
            if !ok {
                return Err(ValidationError::new(path, format!("must be of type {t}")));
            }
        }
        if let Some(Value::Array(allowed)) = obj.get("enum") {
            if !allowed.contains(v) {
                return Err(ValidationError::new(
                    path,
                    format!("must be one of {}", Value::Array(allowed.clone())),
                ));
            }
        }
        if let Some(s) = v.as_str() {
            self.check_string(obj, s, path)?;
        }
        if v.is_number() {
            self.check_number(obj, v, path)?;
        }
        if let Some(items) = v.as_array() {
            if let Some(item_schema) = obj.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.check(item_schema, item, &format!("{path}[{i}]"))?;
                }
            }
        }
        if let Some(o) = v.as_object() {
            if let Some(Value::Array(required)) = obj.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !o.contains_key(name) {
                        return Err(ValidationError::new(join(path, name), "is required"));
                    }
                }
            }
            let props = obj.get("properties").and_then(Value::as_object);
            for (k, fv) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => self.check(ps, fv, &join(path, k))?,
                    None => {
                        if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
                            return Err(ValidationError::new(
                                join(path, k),
                                "is not allowed (additionalProperties)",
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn check_string(
        &self,
        obj: &serde_json::Map<String, Value>,
        s: &str,
        path: &str,
    ) -> Result<(), ValidationError> {
        let len = s.chars().count() as u64;
        if let Some(min) = obj.get("minLength").and_then(Value::as_u64) {
            if len < min {
                return Err(ValidationError::new(
                    path,
                    format!("must be at least {min} characters long"),
                ));
            }
        }
        if let Some(max) = obj.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                return Err(ValidationError::new(
                    path,
                    format!("must be at most {max} characters long"),
                ));
            }
        }
        if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
            let re = regex::Regex::parse(p).map_err(|e| {
                ValidationError::new(path, format!("schema pattern {p:?} is not supported: {e}"))
            })?;
            if !re.is_match(s) {
                return Err(ValidationError::new(
                    path,
                    format!("must match pattern {p}"),
                ));
            }
        }
        if obj.get("format").and_then(Value::as_str) == Some("date-time")
            && DateTime::<Utc>::decode(&Value::String(s.to_owned())).is_err()
        {
            return Err(ValidationError::new(path, "must be a date-time (RFC 3339)"));
        }
        Ok(())
    }

    fn check_number(
        &self,
        obj: &serde_json::Map<String, Value>,
        v: &Value,
        path: &str,
    ) -> Result<(), ValidationError> {
        let x = v.as_f64().unwrap_or(f64::NAN);
        let flag = |k: &str| obj.get(k) == Some(&Value::Bool(true));
        if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
            if flag("exclusiveMinimum") && x <= min {
                return Err(ValidationError::new(path, format!("must be > {min}")));
            }
            if x < min {
                return Err(ValidationError::new(path, format!("must be >= {min}")));
            }
        }
        if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
            if flag("exclusiveMaximum") && x >= max {
                return Err(ValidationError::new(path, format!("must be < {max}")));
            }
            if x > max {
                return Err(ValidationError::new(path, format!("must be <= {max}")));
            }
        }
        Ok(())
    }
}

/// A small backtracking matcher for the ECMA 262 regular-expression subset the schemas
/// use: anchors `^ $`, literals, `.`, escapes `\s \S \d \D \w \W \uXXXX \x`, classes
/// `[...]` with ranges and negation, groups with `|`, and quantifiers `* + ?`. As in
/// JSON Schema, a pattern matches anywhere in the string unless anchored.
pub mod regex {
    use std::fmt;

    /// A pattern outside the supported subset.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RegexError(String);

    impl fmt::Display for RegexError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    #[derive(Debug, Clone)]
    enum ClassItem {
        Char(char),
        Range(char, char),
        Builtin(char),
    }

    #[derive(Debug, Clone)]
    enum Node {
        Start,
        End,
        Any,
        Char(char),
        Builtin(char),
        Class {
            negated: bool,
            items: Vec<ClassItem>,
        },
        Group(Vec<Vec<Node>>),
        Repeat {
            node: Box<Node>,
            min: usize,
            max: Option<usize>,
        },
    }

    /// A parsed pattern.
    #[derive(Debug, Clone)]
    pub struct Regex {
        alternatives: Vec<Vec<Node>>,
    }

    fn builtin(kind: char, c: char) -> bool {
        match kind {
            's' => c.is_whitespace(),
            'S' => !c.is_whitespace(),
            'd' => c.is_ascii_digit(),
            'D' => !c.is_ascii_digit(),
            'w' => c.is_ascii_alphanumeric() || c == '_',
            'W' => !(c.is_ascii_alphanumeric() || c == '_'),
            _ => false,
        }
    }

    struct Parser<'a> {
        chars: Vec<char>,
        pos: usize,
        _src: &'a str,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }
        fn next(&mut self) -> Option<char> {
            let c = self.peek();
            self.pos += 1;
            c
        }
        fn err(&self, what: &str) -> RegexError {
            RegexError(format!("{what} at offset {}", self.pos))
        }

        fn alternatives(&mut self) -> Result<Vec<Vec<Node>>, RegexError> {
            let mut alts = vec![self.sequence()?];
            while self.peek() == Some('|') {
                self.pos += 1;
                alts.push(self.sequence()?);
            }
            Ok(alts)
        }

        fn sequence(&mut self) -> Result<Vec<Node>, RegexError> {
            let mut seq = Vec::new();
            while let Some(c) = self.peek() {
                if c == '|' || c == ')' {
                    break;
                }
                let atom = self.atom()?;
                let atom = match self.peek() {
                    Some('*') => Node::Repeat {
                        node: Box::new(atom),
                        min: 0,
                        max: None,
                    },
                    Some('+') => Node::Repeat {
                        node: Box::new(atom),
                        min: 1,
                        max: None,
                    },
                    Some('?') => Node::Repeat {
                        node: Box::new(atom),
                        min: 0,
                        max: Some(1),
                    },
                    Some('{') => return Err(self.err("counted repetition is not supported")),
                    _ => {
                        seq.push(atom);
                        continue;
                    }
                };
                self.pos += 1;
                if matches!(self.peek(), Some('?' | '+')) {
                    return Err(self.err("lazy or possessive quantifiers are not supported"));
                }
                seq.push(atom);
            }
            Ok(seq)
        }

        fn escape(&mut self) -> Result<Result<char, char>, RegexError> {
            // Ok(literal) or Err(builtin class letter)
            match self.next() {
                Some(c @ ('s' | 'S' | 'd' | 'D' | 'w' | 'W')) => Ok(Err(c)),
                Some('u') => {
                    let hex: String = (0..4).filter_map(|_| self.next()).collect();
                    let code =
                        u32::from_str_radix(&hex, 16).map_err(|_| self.err("bad \\u escape"))?;
                    char::from_u32(code)
                        .map(Ok)
                        .ok_or_else(|| self.err("bad \\u escape"))
                }
                Some('n') => Ok(Ok('\n')),
                Some('t') => Ok(Ok('\t')),
                Some('r') => Ok(Ok('\r')),
                Some(c) if c.is_ascii_alphanumeric() => {
                    Err(self.err(&format!("escape \\{c} is not supported")))
                }
                Some(c) => Ok(Ok(c)),
                None => Err(self.err("pattern ends in a backslash")),
            }
        }

        fn atom(&mut self) -> Result<Node, RegexError> {
            match self.next() {
                Some('^') => Ok(Node::Start),
                Some('$') => Ok(Node::End),
                Some('.') => Ok(Node::Any),
                Some('(') => {
                    if self.peek() == Some('?') {
                        return Err(self.err("group modifiers are not supported"));
                    }
                    let alts = self.alternatives()?;
                    if self.next() != Some(')') {
                        return Err(self.err("unclosed group"));
                    }
                    Ok(Node::Group(alts))
                }
                Some('[') => self.class(),
                Some('\\') => Ok(match self.escape()? {
                    Ok(c) => Node::Char(c),
                    Err(b) => Node::Builtin(b),
                }),
                Some(c @ ('*' | '+' | '?' | ')' | ']' | '{' | '}')) => {
                    Err(self.err(&format!("unexpected {c:?}")))
                }
                Some(c) => Ok(Node::Char(c)),
                None => Err(self.err("unexpected end")),
            }
        }

        fn class(&mut self) -> Result<Node, RegexError> {
            let negated = self.peek() == Some('^');
            if negated {
                self.pos += 1;
            }
            let mut items = Vec::new();
            loop {
                let c = self
                    .next()
                    .ok_or_else(|| self.err("unclosed character class"))?;
                let item = match c {
                    ']' => break,
                    '\\' => match self.escape()? {
                        Ok(c) => ClassItem::Char(c),
                        Err(b) => ClassItem::Builtin(b),
                    },
                    c => ClassItem::Char(c),
                };
                if let ClassItem::Char(lo) = item {
                    if self.peek() == Some('-')
                        && self.chars.get(self.pos + 1).is_some_and(|c| *c != ']')
                    {
                        self.pos += 1;
                        let hi = match self.next() {
                            Some('\\') => match self.escape()? {
                                Ok(c) => c,
                                Err(_) => return Err(self.err("class range to a builtin")),
                            },
                            Some(c) => c,
                            None => return Err(self.err("unclosed character class")),
                        };
                        if hi < lo {
                            return Err(self.err("range out of order"));
                        }
                        items.push(ClassItem::Range(lo, hi));
                        continue;
                    }
                }
                items.push(item);
            }
            Ok(Node::Class { negated, items })
        }
    }

    impl Regex {
        /// Parses `pattern`.
        pub fn parse(pattern: &str) -> Result<Self, RegexError> {
            let mut p = Parser {
                chars: pattern.chars().collect(),
                pos: 0,
                _src: pattern,
            };
            let alternatives = p.alternatives()?;
            if p.pos < p.chars.len() {
                return Err(p.err("unbalanced ')'"));
            }
            Ok(Self { alternatives })
        }

        /// Whether the pattern matches anywhere in `s`.
        pub fn is_match(&self, s: &str) -> bool {
            let chars: Vec<char> = s.chars().collect();
            (0..=chars.len()).any(|start| {
                self.alternatives
                    .iter()
                    .any(|alt| match_seq(alt, &chars, start, &mut |_| true))
            })
        }
    }

    fn single(node: &Node, c: char) -> bool {
        match node {
            Node::Any => c != '\n',
            Node::Char(x) => *x == c,
            Node::Builtin(k) => builtin(*k, c),
            Node::Class { negated, items } => {
                let hit = items.iter().any(|i| match i {
                    ClassItem::Char(x) => *x == c,
                    ClassItem::Range(lo, hi) => (*lo..=*hi).contains(&c),
                    ClassItem::Builtin(k) => builtin(*k, c),
                });
                hit != *negated
            }
            _ => false,
        }
    }

    fn is_single(node: &Node) -> bool {
        matches!(
            node,
            Node::Any | Node::Char(_) | Node::Builtin(_) | Node::Class { .. }
        )
    }

    fn match_node(node: &Node, s: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        match node {
            Node::Start => i == 0 && k(i),
            Node::End => i == s.len() && k(i),
            Node::Group(alts) => alts.iter().any(|alt| match_seq(alt, s, i, k)),
            Node::Repeat { node, min, max } if is_single(node) => {
                // a run of single characters: no recursion per character
                let limit = max.map_or(s.len(), |m| (i + m).min(s.len()));
                let mut end = i;
                while end < limit && single(node, s[end]) {
                    end += 1;
                }
                (i + min..=end).rev().any(k)
            }
            Node::Repeat { node, min, max } => match_repeat(node, *min, *max, s, i, k, 0),
            n => i < s.len() && single(n, s[i]) && k(i + 1),
        }
    }

    fn match_repeat(
        node: &Node,
        min: usize,
        max: Option<usize>,
        s: &[char],
        i: usize,
        k: &mut dyn FnMut(usize) -> bool,
        count: usize,
    ) -> bool {
        // greedy: try one more first, then stop here
        if max.is_none_or(|m| count < m)
            && match_node(node, s, i, &mut |j| {
                j > i && match_repeat(node, min, max, s, j, k, count + 1)
            })
        {
            return true;
        }
        count >= min && k(i)
    }

    fn match_seq(seq: &[Node], s: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        match seq.split_first() {
            None => k(i),
            Some((first, rest)) => match_node(first, s, i, &mut |j| match_seq(rest, s, j, k)),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn m(p: &str, s: &str) -> bool {
            Regex::parse(p).unwrap().is_match(s)
        }

        #[test]
        fn subset() {
            assert!(m("^[A-Za-z0-9_.:-]+$", "bk_1:a.b-c"));
            assert!(!m("^[A-Za-z0-9_.:-]+$", "bk 1"));
            assert!(!m("^[A-Za-z0-9_.:-]+$", ""));
            assert!(m("\\S", "  x "));
            assert!(!m("\\S", "   "));
            assert!(m("^pi_[A-Za-z0-9_.:-]+$", "pi_1"));
            assert!(!m("^pi_[A-Za-z0-9_.:-]+$", "po_1"));
            assert!(m("^a(b|cd)*e?$", "abcdb"));
            assert!(!m("^a(b|cd)*e?$", "abce_"));
            assert!(m("^[^\\s\\u0000-\\u001f]+$", "abc"));
            assert!(!m("^[^\\s\\u0000-\\u001f]+$", "a\u{1}c"));
            assert!(m("x.y", "__xzy__"));
            assert!(Regex::parse("a{2}").is_err());
            assert!(Regex::parse("(a").is_err());
            assert!(Regex::parse("[a").is_err());
            assert!(Regex::parse("\\p{L}").is_err());
            // long runs do not recurse per character
            let long = "a".repeat(1_000_000);
            assert!(m("^[a-z]+$", &long));
            assert!(!m("^[a-z]+b$", &long[..20_000]));
            assert!(m("^a*a?aa$", "aaaa"));
            assert!(m("^(ab)+$", "ababab"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validator_reports_the_first_offending_path() {
        let schema = json!({
            "type": "object",
            "definitions": {"D": {"type": "object", "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": true}}, "required": ["n"], "additionalProperties": false}},
            "properties": {"detail": {"$ref": "#/definitions/D"}, "tags": {"type": "array", "items": {"type": "string", "minLength": 2}}},
            "required": ["detail"]
        });
        assert!(validate(&schema, &json!({"detail": {"n": 1}, "tags": ["ab"]})).is_ok());
        assert_eq!(
            validate(&schema, &json!({})).unwrap_err().to_string(),
            "detail: is required"
        );
        assert_eq!(
            validate(&schema, &json!({"detail": {"n": 0}}))
                .unwrap_err()
                .to_string(),
            "detail.n: must be > 0"
        );
        assert_eq!(
            validate(&schema, &json!({"detail": {"n": 1, "x": 1}}))
                .unwrap_err()
                .field,
            "detail.x"
        );
        assert_eq!(
            validate(&schema, &json!({"detail": {"n": 1}, "tags": ["a"]}))
                .unwrap_err()
                .field,
            "tags[0]"
        );
        assert_eq!(
            validate(&schema, &json!({"detail": {"n": "1"}}))
                .unwrap_err()
                .to_string(),
            "detail.n: must be of type \"number\""
        );
    }

    #[test]
    fn unsupported_keywords_are_refused() {
        let e = validate(&json!({"oneOf": []}), &json!(1)).unwrap_err();
        assert!(e.rule.contains("\"oneOf\" is not supported"), "{e}");
    }

    #[test]
    fn every_schema_names_its_pair() {
        for (name, schema) in event_schemas() {
            let source = schema["x-amazon-events-source"].as_str().unwrap();
            assert!(name.starts_with(&format!("{source}@")), "{name}");
            assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
        }
    }
}
