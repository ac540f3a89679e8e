//! Step Functions JSONPath.
//!
//! Step Functions evaluates paths with its own rules, which differ from RFC 9535:
//! a *definite* path (only names and indexes) yields exactly one value (or nothing),
//! while an *indefinite* path (wildcards, deep scan, slices, unions, filters) yields
//! an array of every match. Paths start at `$` (the state input), `$$` (the context
//! object) or `$name` (a variable assigned with `Assign`).

use serde_json::{Map, Value};
use std::fmt;

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// `$`: the effective input of the state.
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Variable(String),
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// `.name` or `['name']`.
    Field(String),
    /// `[n]` (negative counts from the end).
    Index(i64),
    /// `.*` or `[*]`.
    Wildcard,
    /// `..name` / `..*` (name `None`).
    Descend(Option<String>),
    /// `['a','b']`.
    Fields(Vec<String>),
    /// `[1,2]`.
    Indexes(Vec<i64>),
    /// `[start:end:step]`.
    Slice(Option<i64>, Option<i64>, Option<i64>),
    /// `[?(@.x op value)]`.
    Filter(Box<Filter>),
    /// `.length()`: the length of an array or string.
    Length,
}

/// A filter expression `[?(...)]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `@.path` exists (and is not null/false in the comparison sense).
    Exists(Vec<Segment>),
    /// `@.path op literal`.
    Compare(Vec<Segment>, CmpOp, Value),
    /// `a && b`.
    And(Box<Filter>, Box<Filter>),
    /// `a || b`.
    Or(Box<Filter>, Box<Filter>),
}

/// Comparison operator in a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// Source text, used in error messages.
    pub text: String,
    /// Root of the path.
    pub root: Root,
    /// Steps from the root.
    pub segments: Vec<Segment>,
    definite: bool,
}

/// A path that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath '{path}': {reason}")]
pub struct PathError {
    /// The path text.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
}

/// Deepest nesting of filter parentheses and nested paths accepted.
const MAX_DEPTH: usize = 32;

impl<'a> Parser<'a> {
    fn err(&self, reason: impl Into<String>) -> PathError {
        PathError {
            path: self.text.to_string(),
            reason: reason.into(),
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn name(&mut self) -> Result<String, PathError> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == b'.' || c == b'[' {
                break;
            }
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err(format!("empty field name at offset {start}")));
        }
        Ok(self.text[start..self.i].to_string())
    }
    fn quoted(&mut self) -> Result<String, PathError> {
        let q = self.peek().ok_or_else(|| self.err("unterminated string"))?;
        self.i += 1;
        let mut out = String::new();
        loop {
            let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
            if c == q {
                self.i += 1;
                return Ok(out);
            }
            if c == b'\\' && self.s.get(self.i + 1) == Some(&q) {
                // only the quote character can be escaped; other backslashes are literal
                out.push(q as char);
                self.i += 2;
                continue;
            }
            // copy one UTF-8 char
            let rest = &self.text[self.i..];
            let ch = rest.chars().next().ok_or_else(|| self.err("bad string"))?;
            out.push(ch);
            self.i += ch.len_utf8();
        }
    }
    fn int(&mut self) -> Result<i64, PathError> {
        self.skip_ws();
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.text[start..self.i]
            .parse()
            .map_err(|_| self.err(format!("expected an integer at offset {start}")))
    }
    fn segments(&mut self, stop_at_filter_end: bool) -> Result<Vec<Segment>, PathError> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some(b'.') => {
                    self.i += 1;
                    if self.peek() == Some(b'.') {
                        self.i += 1;
                        if self.peek() == Some(b'*') {
                            self.i += 1;
                            segs.push(Segment::Descend(None));
                        } else if self.peek() == Some(b'[') {
                            segs.push(Segment::Descend(None));
                        } else {
                            segs.push(Segment::Descend(Some(self.name()?)));
                        }
                    } else if self.peek() == Some(b'*') {
                        self.i += 1;
                        segs.push(Segment::Wildcard);
                    } else {
                        let n = if stop_at_filter_end {
                            self.filter_name()?
                        } else {
                            self.name()?
                        };
                        if n == "length()" {
                            segs.push(Segment::Length);
                        } else {
                            segs.push(Segment::Field(n));
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.skip_ws();
                    let seg = self.bracket()?;
                    self.skip_ws();
                    if self.peek() != Some(b']') {
                        return Err(self.err(format!("expected ']' at offset {}", self.i)));
                    }
                    self.i += 1;
                    segs.push(seg);
                }
                Some(_) if stop_at_filter_end => break,
                Some(c) => {
                    return Err(self.err(format!(
                        "unexpected character '{}' at offset {}",
                        c as char, self.i
                    )))
                }
            }
        }
        Ok(segs)
    }
    fn filter_name(&mut self) -> Result<String, PathError> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c >= 0x80 {
                self.i += 1;
            } else {
                break;
            }
        }
        if self.i == start {
            return Err(self.err("empty field name"));
        }
        Ok(self.text[start..self.i].to_string())
    }
    fn bracket(&mut self) -> Result<Segment, PathError> {
        match self.peek() {
            Some(b'*') => {
                self.i += 1;
                Ok(Segment::Wildcard)
            }
            Some(b'\'' | b'"') => {
                let mut names = vec![self.quoted()?];
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.i += 1;
                        self.skip_ws();
                        names.push(self.quoted()?);
                    } else {
                        break;
                    }
                }
                if names.len() == 1 {
                    Ok(Segment::Field(names.pop().unwrap_or_default()))
                } else {
                    Ok(Segment::Fields(names))
                }
            }
            Some(b'?') => {
                self.i += 1;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.err("filter expressions are nested too deeply"));
                }
                self.skip_ws();
                if self.peek() != Some(b'(') {
                    return Err(self.err("expected '(' after '?'"));
                }
                self.i += 1;
                let f = self.filter_or()?;
                self.skip_ws();
                if self.peek() != Some(b')') {
                    return Err(self.err("expected ')' closing the filter"));
                }
                self.i += 1;
                self.depth -= 1;
                Ok(Segment::Filter(Box::new(f)))
            }
            _ => {
                // index, union or slice
                let first = if self.peek() == Some(b':') {
                    None
                } else {
                    Some(self.int()?)
                };
                self.skip_ws();
                if self.peek() == Some(b':') {
                    self.i += 1;
                    self.skip_ws();
                    let end = if matches!(self.peek(), Some(b']' | b':')) {
                        None
                    } else {
                        Some(self.int()?)
                    };
                    self.skip_ws();
                    let step = if self.peek() == Some(b':') {
                        self.i += 1;
                        self.skip_ws();
                        if self.peek() == Some(b']') {
                            None
                        } else {
                            Some(self.int()?)
                        }
                    } else {
                        None
                    };
                    return Ok(Segment::Slice(first, end, step));
                }
                let first = first.ok_or_else(|| self.err("expected an index"))?;
                let mut idx = vec![first];
                while self.peek() == Some(b',') {
                    self.i += 1;
                    idx.push(self.int()?);
                    self.skip_ws();
                }
                if idx.len() == 1 {
                    Ok(Segment::Index(first))
                } else {
                    Ok(Segment::Indexes(idx))
                }
            }
        }
    }
    fn filter_or(&mut self) -> Result<Filter, PathError> {
        let mut left = self.filter_and()?;
        loop {
            self.skip_ws();
            if self.s[self.i..].starts_with(b"||") {
                self.i += 2;
                let right = self.filter_and()?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }
    fn filter_and(&mut self) -> Result<Filter, PathError> {
        let mut left = self.filter_atom()?;
        loop {
            self.skip_ws();
            if self.s[self.i..].starts_with(b"&&") {
                self.i += 2;
                let right = self.filter_atom()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }
    fn filter_atom(&mut self) -> Result<Filter, PathError> {
        self.skip_ws();
        if self.peek() == Some(b'(') {
            self.i += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.err("filter expressions are nested too deeply"));
            }
            let f = self.filter_or()?;
            self.depth -= 1;
            self.skip_ws();
            if self.peek() != Some(b')') {
                return Err(self.err("expected ')'"));
            }
            self.i += 1;
            return Ok(f);
        }
        if self.peek() != Some(b'@') {
            return Err(self.err("a filter must start with '@'"));
        }
        self.i += 1;
        let segs = self.segments(true)?;
        self.skip_ws();
        let op = if self.s[self.i..].starts_with(b"==") {
            CmpOp::Eq
        } else if self.s[self.i..].starts_with(b"!=") {
            CmpOp::Ne
        } else if self.s[self.i..].starts_with(b"<=") {
            CmpOp::Le
        } else if self.s[self.i..].starts_with(b">=") {
            CmpOp::Ge
        } else if self.s[self.i..].starts_with(b"<") {
            CmpOp::Lt
        } else if self.s[self.i..].starts_with(b">") {
            CmpOp::Gt
        } else {
            return Ok(Filter::Exists(segs));
        };
        self.i += if matches!(op, CmpOp::Lt | CmpOp::Gt) {
            1
        } else {
            2
        };
        self.skip_ws();
        let lit = match self.peek() {
            Some(b'\'' | b'"') => Value::String(self.quoted()?),
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c == b')' || c == b' ' || c == b'&' || c == b'|' {
                        break;
                    }
                    self.i += 1;
                }
                let t = &self.text[start..self.i];
                serde_json::from_str(t)
                    .map_err(|_| self.err(format!("bad literal '{t}' in filter")))?
            }
        };
        Ok(Filter::Compare(segs, op, lit))
    }
}

fn is_definite(segs: &[Segment]) -> bool {
    segs.iter()
        .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_) | Segment::Length))
}

impl Path {
    /// Parses a path starting with `$`, `$$` or `$name`.
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let mut p = Parser {
            s: text.as_bytes(),
            text,
            i: 0,
            depth: 0,
        };
        if p.peek() != Some(b'$') {
            return Err(p.err("a path must start with '$'"));
        }
        p.i = 1;
        let root = if p.peek() == Some(b'$') {
            p.i = 2;
            Root::Context
        } else if matches!(p.peek(), Some(c) if c != b'.' && c != b'[') {
            let start = p.i;
            while let Some(c) = p.peek() {
                if c == b'.' || c == b'[' {
                    break;
                }
                if !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80) {
                    return Err(p.err(format!("invalid variable name at offset {}", p.i)));
                }
                p.i += 1;
            }
            Root::Variable(text[start..p.i].to_string())
        } else {
            Root::Input
        };
        let segments = p.segments(false)?;
        let definite = is_definite(&segments);
        Ok(Path {
            text: text.to_string(),
            root,
            segments,
            definite,
        })
    }

    /// True when the path can only select one value (no wildcard, slice, union, filter or deep scan).
    pub fn is_definite(&self) -> bool {
        self.definite
    }

    /// True for a plain reference path (`$`, `.name`, `['name']`, `[n]`): what `ResultPath` accepts.
    pub fn is_reference(&self) -> bool {
        self.root == Root::Input
            && self
                .segments
                .iter()
                .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)))
    }

    /// Jayway-style normalised form used in AWS error messages: `$['a']['b'][0]`.
    pub fn normalized(&self) -> String {
        normalized(&self.segments)
    }

    /// Jayway-style explanation of why a definite path selects nothing in `root`:
    /// `Missing property in path $['a']` for a missing intermediate property,
    /// `No results for path: $['a']['b']` otherwise.
    pub fn miss_message(&self, root: &Value) -> String {
        let mut cur = root;
        for (n, s) in self.segments.iter().enumerate() {
            let last = n + 1 == self.segments.len();
            let next = match s {
                Segment::Field(f) => cur.as_object().and_then(|o| o.get(f)),
                Segment::Index(_) => {
                    let mut out = Vec::new();
                    step(s, cur, &mut out);
                    out.into_iter().next()
                }
                _ => None,
            };
            match next {
                Some(v) => cur = v,
                None => {
                    if !last && matches!(s, Segment::Field(_)) {
                        return format!(
                            "Missing property in path {}",
                            normalized(&self.segments[..n + 1])
                        );
                    }
                    break;
                }
            }
        }
        format!("No results for path: {}", self.normalized())
    }

    /// Evaluates the path from `root`. A definite path yields `Some(&value)` or `None`.
    /// Indefinite paths must use [`Path::select`].
    pub fn get<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        let mut cur = root;
        for s in &self.segments {
            cur = match s {
                Segment::Field(n) => cur.as_object()?.get(n)?,
                Segment::Index(i) => {
                    let a = cur.as_array()?;
                    let idx = if *i < 0 { a.len() as i64 + *i } else { *i };
                    if idx < 0 {
                        return None;
                    }
                    a.get(idx as usize)?
                }
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Evaluates the path and returns an owned value: the single match of a definite path,
    /// or an array of all matches of an indefinite path (empty when nothing matched).
    pub fn select(&self, root: &Value) -> Option<Value> {
        if self.definite {
            if let Some(Segment::Length) = self.segments.last() {
                let mut p = self.clone();
                p.segments.pop();
                let v = p.get(root)?;
                return match v {
                    Value::Array(a) => Some(Value::from(a.len())),
                    Value::String(s) => Some(Value::from(s.chars().count())),
                    Value::Object(o) => Some(Value::from(o.len())),
                    _ => None,
                };
            }
            return self.get(root).cloned();
        }
        let mut cur: Vec<&Value> = vec![root];
        for s in &self.segments {
            let mut next = Vec::new();
            for v in cur {
                step(s, v, &mut next);
            }
            cur = next;
        }
        Some(Value::Array(cur.into_iter().cloned().collect()))
    }
}

fn normalized(segs: &[Segment]) -> String {
    let mut out = String::from("$");
    for s in segs {
        match s {
            Segment::Field(n) => {
                out.push_str("['");
                out.push_str(n);
                out.push_str("']");
            }
            Segment::Index(i) => {
                out.push_str(&format!("[{i}]"));
            }
            Segment::Wildcard => out.push_str("[*]"),
            Segment::Descend(Some(n)) => out.push_str(&format!("..['{n}']")),
            Segment::Descend(None) => out.push_str("..[*]"),
            Segment::Fields(ns) => {
                let parts: Vec<String> = ns.iter().map(|n| format!("'{n}'")).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Segment::Indexes(is) => {
                let parts: Vec<String> = is.iter().map(|n| n.to_string()).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Segment::Slice(a, b, c) => {
                let f = |x: &Option<i64>| x.map(|v| v.to_string()).unwrap_or_default();
                out.push_str(&format!("[{}:{}", f(a), f(b)));
                if c.is_some() {
                    out.push_str(&format!(":{}", f(c)));
                }
                out.push(']');
            }
            Segment::Filter(_) => out.push_str("[?]"),
            Segment::Length => out.push_str(".length()"),
        }
    }
    out
}

fn step<'v>(s: &Segment, v: &'v Value, out: &mut Vec<&'v Value>) {
    match s {
        Segment::Field(n) => {
            if let Some(x) = v.as_object().and_then(|o| o.get(n)) {
                out.push(x);
            }
        }
        Segment::Index(i) => {
            if let Some(a) = v.as_array() {
                let idx = if *i < 0 { a.len() as i64 + *i } else { *i };
                if idx >= 0 {
                    if let Some(x) = a.get(idx as usize) {
                        out.push(x);
                    }
                }
            }
        }
        Segment::Wildcard => match v {
            Value::Array(a) => out.extend(a.iter()),
            Value::Object(o) => out.extend(o.values()),
            _ => {}
        },
        Segment::Descend(name) => descend(name.as_deref(), v, out),
        Segment::Fields(ns) => {
            if let Some(o) = v.as_object() {
                for n in ns {
                    if let Some(x) = o.get(n) {
                        out.push(x);
                    }
                }
            }
        }
        Segment::Indexes(is) => {
            for i in is {
                step(&Segment::Index(*i), v, out);
            }
        }
        Segment::Slice(a, b, c) => {
            if let Some(arr) = v.as_array() {
                let len = arr.len() as i64;
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let start = a.map(norm).unwrap_or(0);
                let end = b.map(norm).unwrap_or(len);
                let stepn = c.unwrap_or(1).max(1);
                let mut i = start;
                while i < end {
                    out.push(&arr[i as usize]);
                    i += stepn;
                }
            }
        }
        Segment::Filter(f) => match v {
            Value::Array(a) => out.extend(a.iter().filter(|x| filter_matches(f, x))),
            Value::Object(o) => out.extend(o.values().filter(|x| filter_matches(f, x))),
            _ => {}
        },
        Segment::Length => match v {
            Value::Array(_) | Value::String(_) => {}
            _ => {}
        },
    }
}

fn descend<'v>(name: Option<&str>, v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if name.is_none() || name == Some(k.as_str()) {
                    out.push(x);
                }
            }
            for x in o.values() {
                descend(name, x, out);
            }
        }
        Value::Array(a) => {
            if name.is_none() {
                out.extend(a.iter());
            }
            for x in a {
                descend(name, x, out);
            }
        }
        _ => {}
    }
}

fn sub_get<'v>(segs: &[Segment], v: &'v Value) -> Option<&'v Value> {
    let mut cur = v;
    for s in segs {
        let mut out = Vec::new();
        step(s, cur, &mut out);
        cur = out.into_iter().next()?;
    }
    Some(cur)
}

fn filter_matches(f: &Filter, v: &Value) -> bool {
    match f {
        Filter::Exists(segs) => sub_get(segs, v).is_some(),
        Filter::And(a, b) => filter_matches(a, v) && filter_matches(b, v),
        Filter::Or(a, b) => filter_matches(a, v) || filter_matches(b, v),
        Filter::Compare(segs, op, lit) => {
            let Some(x) = sub_get(segs, v) else {
                return false;
            };
            let ord = match (x, lit) {
                (Value::Number(a), Value::Number(b)) => {
                    let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                    a.partial_cmp(&b)
                }
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => {
                    return match op {
                        CmpOp::Eq => x == lit,
                        CmpOp::Ne => x != lit,
                        _ => false,
                    }
                }
            };
            let Some(ord) = ord else { return false };
            match op {
                CmpOp::Eq => ord.is_eq(),
                CmpOp::Ne => !ord.is_eq(),
                CmpOp::Lt => ord.is_lt(),
                CmpOp::Le => ord.is_le(),
                CmpOp::Gt => ord.is_gt(),
                CmpOp::Ge => ord.is_ge(),
            }
        }
    }
}

/// Returns a copy of `source` with `value` set at a reference path, copying only the
/// containers along the path (the replaced subtree is never cloned). Same rules and errors
/// as [`set_reference`].
pub fn with_reference(source: &Value, segs: &[Segment], value: Value) -> Result<Value, String> {
    fn go(
        src: Option<&Value>,
        segs: &[Segment],
        all: &[Segment],
        value: Value,
    ) -> Result<Value, String> {
        let Some((first, rest)) = segs.split_first() else {
            return Ok(value);
        };
        let depth = all.len() - segs.len();
        match first {
            Segment::Field(name) => {
                let obj = match src {
                    Some(Value::Object(o)) => Some(o),
                    None => None,
                    Some(_) => return Err(normalized(&all[..depth + 1])),
                };
                let mut out = Map::with_capacity(obj.map(|o| o.len() + 1).unwrap_or(1));
                let mut placed = false;
                let mut value = Some(value);
                if let Some(o) = obj {
                    for (k, v) in o {
                        if k == name {
                            let child =
                                go(Some(v), rest, all, value.take().unwrap_or(Value::Null))?;
                            out.insert(k.clone(), child);
                            placed = true;
                        } else {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                }
                if !placed {
                    let child = go(None, rest, all, value.take().unwrap_or(Value::Null))?;
                    out.insert(name.clone(), child);
                }
                Ok(Value::Object(out))
            }
            Segment::Index(i) => {
                let Some(Value::Array(arr)) = src else {
                    return Err(normalized(&all[..depth + 1]));
                };
                let idx = if *i < 0 { arr.len() as i64 + *i } else { *i };
                if idx < 0 || idx as usize >= arr.len() {
                    return Err(normalized(&all[..depth + 1]));
                }
                let mut out = Vec::with_capacity(arr.len());
                let mut value = Some(value);
                for (n, v) in arr.iter().enumerate() {
                    if n == idx as usize {
                        out.push(go(Some(v), rest, all, value.take().unwrap_or(Value::Null))?);
                    } else {
                        out.push(v.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            _ => Err(normalized(&all[..depth + 1])),
        }
    }
    go(Some(source), segs, segs, value)
}

/// Sets `value` at a reference path inside `target`, creating intermediate objects.
/// Returns the normalised prefix that could not be written on failure.
pub fn set_reference(target: &mut Value, segs: &[Segment], value: Value) -> Result<(), String> {
    if segs.is_empty() {
        *target = value;
        return Ok(());
    }
    let mut cur = target;
    for (n, s) in segs.iter().enumerate() {
        let last = n + 1 == segs.len();
        match s {
            Segment::Field(name) => {
                if !cur.is_object() {
                    return Err(normalized(&segs[..n + 1]));
                }
                let obj = match cur.as_object_mut() {
                    Some(o) => o,
                    None => return Err(normalized(&segs[..n + 1])),
                };
                if last {
                    obj.insert(name.clone(), value);
                    return Ok(());
                }
                cur = obj
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Default::default()));
            }
            Segment::Index(i) => {
                let arr = match cur.as_array_mut() {
                    Some(a) => a,
                    None => return Err(normalized(&segs[..n + 1])),
                };
                let idx = if *i < 0 { arr.len() as i64 + *i } else { *i };
                if idx < 0 || idx as usize >= arr.len() {
                    return Err(normalized(&segs[..n + 1]));
                }
                let slot = &mut arr[idx as usize];
                if last {
                    *slot = value;
                    return Ok(());
                }
                cur = slot;
            }
            _ => return Err(normalized(&segs[..n + 1])),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn definite_paths_unwrap_single_values() {
        let v = json!({"a": {"b": [1, 2, {"c": "x"}]}});
        assert_eq!(
            Path::parse("$.a.b[2].c").unwrap().select(&v),
            Some(json!("x"))
        );
        assert_eq!(
            Path::parse("$['a']['b'][-1]").unwrap().select(&v),
            Some(json!({"c": "x"}))
        );
        assert_eq!(Path::parse("$.a.zz").unwrap().select(&v), None);
        assert_eq!(Path::parse("$").unwrap().select(&v), Some(v.clone()));
    }

    #[test]
    fn indefinite_paths_return_arrays() {
        let v = json!({"items": [{"p": 1}, {"p": 5}, {"q": 2}]});
        assert_eq!(
            Path::parse("$.items[*].p").unwrap().select(&v),
            Some(json!([1, 5]))
        );
        assert_eq!(Path::parse("$..p").unwrap().select(&v), Some(json!([1, 5])));
        assert_eq!(
            Path::parse("$.items[?(@.p > 2)]").unwrap().select(&v),
            Some(json!([{"p": 5}]))
        );
        assert_eq!(
            Path::parse("$.items[0:2].p").unwrap().select(&v),
            Some(json!([1, 5]))
        );
        assert_eq!(
            Path::parse("$.nothing[*]").unwrap().select(&v),
            Some(json!([]))
        );
    }

    #[test]
    fn roots_and_errors() {
        assert_eq!(Path::parse("$$.Execution.Id").unwrap().root, Root::Context);
        assert_eq!(
            Path::parse("$var.x").unwrap().root,
            Root::Variable("var".into())
        );
        assert!(Path::parse("a.b").is_err());
        assert!(Path::parse("$.a[").is_err());
        assert!(Path::parse("$.a..").is_err());
        assert_eq!(Path::parse("$.a.b").unwrap().normalized(), "$['a']['b']");
    }

    #[test]
    fn with_reference_matches_set_reference() {
        let src = json!({"a": 1, "b": {"c": [1, 2], "d": 3}});
        for (path, val) in [
            ("$.b.c", json!(9)),
            ("$.x.y", json!(1)),
            ("$.b.c[1]", json!(7)),
            ("$.a", json!(null)),
        ] {
            let p = Path::parse(path).unwrap();
            let mut expected = src.clone();
            set_reference(&mut expected, &p.segments, val.clone()).unwrap();
            assert_eq!(
                with_reference(&src, &p.segments, val).unwrap(),
                expected,
                "{path}"
            );
        }
        let p = Path::parse("$.a.z").unwrap();
        assert!(with_reference(&src, &p.segments, json!(1)).is_err());
        assert!(set_reference(&mut src.clone(), &p.segments, json!(1)).is_err());
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowing() {
        let deep = format!("$.a[?({}@.b{})]", "(".repeat(100_000), ")".repeat(100_000));
        assert!(Path::parse(&deep).is_err());
        let nested = format!("$.a{}", "[?(@.b".repeat(10_000));
        assert!(Path::parse(&nested).is_err());
    }

    #[test]
    fn set_reference_creates_objects() {
        let mut v = json!({"a": 1});
        let p = Path::parse("$.b.c").unwrap();
        set_reference(&mut v, &p.segments, json!(2)).unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
        let p = Path::parse("$.a.c").unwrap();
        assert!(set_reference(&mut v, &p.segments, json!(2)).is_err());
    }
}
