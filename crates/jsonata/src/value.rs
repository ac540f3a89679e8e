//! The evaluator's internal value model.
//!
//! JSONata values are JSON values plus `undefined`, functions, regular expressions and
//! *sequences* (arrays carrying flags that drive singleton unwrapping and flattening).

use std::rc::Rc;

use indexmap::IndexMap;

use std::sync::Arc;

use crate::ast::{LambdaDef, TransformDef};
use crate::eval::Frame;
use crate::functions::Builtin;
use crate::NativeFunction;

/// Flags carried by arrays produced during evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);
    pub const SEQUENCE: Flags = Flags(1);
    pub const KEEP_SINGLETON: Flags = Flags(2);
    pub const CONS: Flags = Flags(4);
    pub const OUTER_WRAPPER: Flags = Flags(8);
    pub const TUPLE_STREAM: Flags = Flags(16);

    pub fn has(self, f: Flags) -> bool {
        self.0 & f.0 != 0
    }
    pub fn with(self, f: Flags) -> Flags {
        Flags(self.0 | f.0)
    }
}

/// An object map (insertion-ordered, fast non-cryptographic hashing with a random seed).
pub(crate) type Map = IndexMap<String, Value, foldhash::fast::RandomState>;

/// Array storage. Dropping it tears nested containers down iteratively, so deeply nested
/// values built by an expression cannot overflow the stack when freed.
pub(crate) struct Arr(pub Vec<Value>);

/// Object storage (see [`Arr`] for why it is wrapped).
pub(crate) struct Obj(pub Map);

impl std::ops::Deref for Arr {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

impl std::ops::Deref for Obj {
    type Target = Map;
    fn deref(&self) -> &Map {
        &self.0
    }
}

impl From<Vec<Value>> for Arr {
    fn from(v: Vec<Value>) -> Arr {
        Arr(v)
    }
}

fn is_container(v: &Value) -> bool {
    matches!(v, Value::Array(..) | Value::Object(_) | Value::Partial(_))
}

/// Free nested containers without recursion: children whose last reference we hold are
/// moved onto an explicit stack and emptied there.
fn teardown(mut stack: Vec<Value>) {
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(rc, _) => {
                if let Ok(mut inner) = Rc::try_unwrap(rc) {
                    stack.append(&mut inner.0);
                }
            }
            Value::Object(rc) => {
                if let Ok(mut inner) = Rc::try_unwrap(rc) {
                    stack.extend(inner.0.drain(..).map(|(_, v)| v));
                }
            }
            Value::Partial(rc) => {
                if let Ok(mut inner) = Rc::try_unwrap(rc) {
                    stack.push(std::mem::take(&mut inner.func));
                    stack.extend(inner.args.drain(..).flatten());
                }
            }
            _ => {}
        }
    }
}

impl Drop for Arr {
    fn drop(&mut self) {
        if self.0.iter().any(is_container) {
            teardown(std::mem::take(&mut self.0));
        }
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        if self.0.values().any(is_container) {
            teardown(self.0.drain(..).map(|(_, v)| v).collect());
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if is_container(&self.func) || self.args.iter().flatten().any(is_container) {
            let mut stack: Vec<Value> = self.args.drain(..).flatten().collect();
            stack.push(std::mem::take(&mut self.func));
            teardown(stack);
        }
    }
}

/// A user-defined function (lambda) closed over its defining frame.
pub(crate) struct Lambda {
    pub def: Arc<LambdaDef>,
    pub env: Rc<Frame>,
    pub input: Value,
}

/// A partially applied function: `None` marks a `?` placeholder.
pub(crate) struct Partial {
    pub func: Value,
    pub args: Vec<Option<Value>>,
}

/// A compiled regular expression literal.
pub(crate) struct RegexValue {
    pub regex: Arc<regress::Regex>,
}

/// A transform expression's function value.
pub(crate) struct TransformValue {
    pub def: Arc<TransformDef>,
    pub env: Rc<Frame>,
}

/// A deferred tail call (trampolined by function application).
pub(crate) struct TailCall {
    pub func: Value,
    pub args: Vec<Value>,
    pub pos: usize,
}

/// A host function registered through [`crate::Environment::bind_function`].
#[derive(Clone)]
pub(crate) struct NativeValue {
    pub name: Rc<str>,
    pub f: NativeFunction,
    pub signature: Option<Arc<crate::signature::Signature>>,
}

/// An evaluation value.
#[derive(Clone, Default)]
pub(crate) enum Value {
    #[default]
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(Rc<str>),
    Array(Rc<Arr>, Flags),
    Object(Rc<Obj>),
    Lambda(Rc<Lambda>),
    Partial(Rc<Partial>),
    Builtin(Builtin),
    Native(Rc<NativeValue>),
    Regex(Rc<RegexValue>),
    Transform(Rc<TransformValue>),
    TailCall(Rc<TailCall>),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Undefined => write!(f, "undefined"),
            Value::Array(a, fl) => write!(f, "{:?}{:?}", fl, a.0),
            Value::Object(o) => write!(f, "{:?}", o.0),
            Value::Lambda(_)
            | Value::Partial(_)
            | Value::Builtin(_)
            | Value::Native(_)
            | Value::Transform(_)
            | Value::Regex(_) => write!(f, "<function>"),
            Value::TailCall(_) => write!(f, "<tailcall>"),
            other => write!(f, "{}", crate::value::to_json_string(other, false)),
        }
    }
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::String(Rc::from(s))
    }
    pub fn string(s: String) -> Value {
        Value::String(Rc::from(s))
    }
    pub fn array(v: Vec<Value>) -> Value {
        Value::Array(Rc::new(Arr(v)), Flags::NONE)
    }
    pub fn seq(v: Vec<Value>) -> Value {
        Value::Array(Rc::new(Arr(v)), Flags::SEQUENCE)
    }
    /// An array with the given flags.
    pub fn array_with(v: Vec<Value>, flags: Flags) -> Value {
        Value::Array(Rc::new(Arr(v)), flags)
    }
    pub fn object(m: Map) -> Value {
        Value::Object(Rc::new(Obj(m)))
    }
    pub fn is_undefined(&self) -> bool {
        matches!(self, Value::Undefined)
    }
    pub fn is_function(&self) -> bool {
        matches!(
            self,
            Value::Lambda(_)
                | Value::Partial(_)
                | Value::Builtin(_)
                | Value::Native(_)
                | Value::Regex(_)
                | Value::Transform(_)
        )
    }
    pub fn flags(&self) -> Flags {
        match self {
            Value::Array(_, f) => *f,
            _ => Flags::NONE,
        }
    }
    pub fn with_flags(self, add: Flags) -> Value {
        match self {
            Value::Array(a, f) => Value::Array(a, f.with(add)),
            other => other,
        }
    }
    /// Elements of an array, or `None` when not an array.
    pub fn as_array(&self) -> Option<&Rc<Arr>> {
        match self {
            Value::Array(a, _) => Some(a),
            _ => None,
        }
    }
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// Number of formal parameters a function value expects.
    pub fn arity(&self) -> usize {
        match self {
            Value::Lambda(l) => l.def.params.len(),
            Value::Partial(p) => p.args.iter().filter(|a| a.is_none()).count(),
            Value::Builtin(b) => b.arity(),
            Value::Native(n) => n.signature.as_ref().map(|s| s.arity()).unwrap_or(1),
            _ => 0,
        }
    }
    /// JSONata type name (as returned by `$type`).
    pub fn type_name(&self) -> Option<&'static str> {
        Some(match self {
            Value::Undefined => return None,
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(..) => "array",
            Value::Object(_) => "object",
            Value::TailCall(_) => "object",
            _ => "function",
        })
    }
    /// Iterate this value as a sequence: arrays yield their members, undefined yields
    /// nothing, anything else yields itself.
    pub fn members(&self) -> Vec<Value> {
        match self {
            Value::Array(a, _) => a.to_vec(),
            Value::Undefined => Vec::new(),
            other => vec![other.clone()],
        }
    }
}

/// Build a [`Value`] from a JSON value.
pub(crate) fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::array(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            let mut m = Map::with_capacity_and_hasher(o.len(), Default::default());
            for (k, v) in o {
                m.insert(k.clone(), from_json(v));
            }
            Value::object(m)
        }
    }
}

/// Convert an `f64` into a JSON number the way JavaScript would serialise it.
pub(crate) fn number_to_json(n: f64) -> serde_json::Value {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        if n == 0.0 {
            return serde_json::Value::from(0i64);
        }
        return serde_json::Value::from(n as i64);
    }
    serde_json::Number::from_f64(n)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// Convert a [`Value`] into JSON. Functions and undefined members are dropped from
/// objects (and become `null` in arrays), like `JSON.stringify`. Returns `None` for a
/// top-level undefined or function.
pub(crate) fn to_json(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::Undefined => return None,
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => number_to_json(*n),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::Array(a, _) => serde_json::Value::Array(
            a.iter()
                .map(|x| to_json(x).unwrap_or(serde_json::Value::Null))
                .collect(),
        ),
        Value::Object(o) => {
            let mut m = serde_json::Map::with_capacity(o.len());
            for (k, v) in o.iter() {
                if let Some(j) = to_json(v) {
                    m.insert(k.clone(), j);
                }
            }
            serde_json::Value::Object(m)
        }
        Value::TailCall(_) => serde_json::Value::Object(serde_json::Map::default()),
        _ => return None,
    })
}

/// JavaScript's `Number.prototype.toString()` for finite numbers.
pub(crate) fn js_number_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if n == 0.0 {
        return "0".into();
    }
    // Shortest round-trip digits and exponent from Rust's `{:e}` formatting.
    let e = format!("{:e}", n.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let sign = if n < 0.0 { "-" } else { "" };
    let point = exp + 1; // position of decimal point relative to digits start
    let body = if (-6 < point && point <= 0) || (0 < point && point <= 21) {
        if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point >= k {
            format!("{}{}", digits, "0".repeat((point - k) as usize))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        }
    } else {
        let exp_s = if exp >= 0 {
            format!("e+{}", exp)
        } else {
            format!("e-{}", -exp)
        };
        if k == 1 {
            format!("{}{}", digits, exp_s)
        } else {
            format!("{}.{}{}", &digits[..1], &digits[1..], exp_s)
        }
    };
    format!("{}{}", sign, body)
}

/// Round to 15 significant digits, as JSONata does before stringifying numbers.
pub(crate) fn to_precision_15(n: f64) -> f64 {
    if !n.is_finite() || n == 0.0 {
        return n;
    }
    format!("{:.14e}", n).parse().unwrap_or(n)
}

fn escape_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `JSON.stringify` as used by `$string`: numbers rounded to 15 significant digits,
/// functions rendered as `""`, optional pretty printing with two-space indentation.
pub(crate) fn to_json_string(v: &Value, pretty: bool) -> String {
    let mut out = String::new();
    write_json(v, pretty, 0, &mut out);
    out
}

fn write_json(v: &Value, pretty: bool, indent: usize, out: &mut String) {
    match v {
        Value::Undefined => out.push_str("null"),
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_finite() {
                out.push_str(&js_number_string(to_precision_15(*n)))
            } else {
                out.push_str("null")
            }
        }
        Value::String(s) => escape_json_string(s, out),
        Value::Array(a, _) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if pretty {
                    out.push('\n');
                    out.push_str(&"  ".repeat(indent + 1));
                }
                if x.is_function() {
                    out.push_str("\"\"");
                } else {
                    write_json(x, pretty, indent + 1, out);
                }
            }
            if pretty {
                out.push('\n');
                out.push_str(&"  ".repeat(indent));
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut first = true;
            out.push('{');
            for (k, x) in o.iter() {
                if x.is_undefined() {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                if pretty {
                    out.push('\n');
                    out.push_str(&"  ".repeat(indent + 1));
                }
                escape_json_string(k, out);
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                if x.is_function() {
                    out.push_str("\"\"");
                } else {
                    write_json(x, pretty, indent + 1, out);
                }
            }
            if pretty && !first {
                out.push('\n');
                out.push_str(&"  ".repeat(indent));
            }
            out.push('}');
        }
        Value::TailCall(_) => out.push_str("{}"),
        _ => out.push_str("\"\""),
    }
}

/// Deep equality as used by `=`, `!=`, `in` and `$distinct`.
pub(crate) fn deep_equal(a: &Value, b: &Value) -> bool {
    let mut stack: Vec<(&Value, &Value)> = vec![(a, b)];
    while let Some((a, b)) = stack.pop() {
        let same = match (a, b) {
            (Value::Undefined, Value::Undefined) => true,
            (Value::Null, Value::Null) => true,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Number(x), Value::Number(y)) => x == y,
            (Value::String(x), Value::String(y)) => x == y,
            (Value::Array(x, _), Value::Array(y, _)) => {
                if Rc::ptr_eq(x, y) {
                    true
                } else if x.len() != y.len() {
                    false
                } else {
                    stack.extend(x.iter().zip(y.iter()));
                    true
                }
            }
            (Value::Object(x), Value::Object(y)) => {
                if Rc::ptr_eq(x, y) {
                    true
                } else if x.len() != y.len() {
                    false
                } else {
                    for (k, v) in x.iter() {
                        match y.get(k) {
                            Some(w) => stack.push((v, w)),
                            None => return false,
                        }
                    }
                    true
                }
            }
            (Value::Lambda(x), Value::Lambda(y)) => Rc::ptr_eq(x, y),
            (Value::Builtin(x), Value::Builtin(y)) => x == y,
            _ => false,
        };
        if !same {
            return false;
        }
    }
    true
}

/// Maximum nesting depth of a value turned into JSON or text (error `D1013` beyond).
pub(crate) const MAX_NESTING: usize = 1000;

/// Error `D1013` when `v` nests arrays/objects more than [`MAX_NESTING`] deep
/// (checked iteratively, so the check itself cannot overflow the stack).
pub(crate) fn check_nesting(v: &Value) -> Result<(), crate::Error> {
    let mut stack: Vec<(&Value, usize)> = vec![(v, 1)];
    while let Some((x, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match x {
            Value::Array(a, _) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        if d > MAX_NESTING {
            return Err(crate::Error::value("D1013", None, MAX_NESTING.to_string()));
        }
        stack.extend(children.map(|c| (c, d + 1)));
    }
    Ok(())
}

/// Number of UTF-16 code units (JavaScript string length).
pub(crate) fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_number_formatting() {
        assert_eq!(js_number_string(1e21), "1e+21");
        assert_eq!(js_number_string(1e20), "100000000000000000000");
        assert_eq!(js_number_string(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(js_number_string(3.0), "3");
        assert_eq!(js_number_string(-2.5), "-2.5");
        assert_eq!(js_number_string(1.5e-7), "1.5e-7");
        assert_eq!(js_number_string(0.000001), "0.000001");
        assert_eq!(js_number_string(123.456), "123.456");
    }

    #[test]
    fn precision_15() {
        assert_eq!(js_number_string(to_precision_15(0.1 + 0.2)), "0.3");
    }

    #[test]
    fn json_numbers() {
        assert_eq!(number_to_json(3.0).to_string(), "3");
        assert_eq!(number_to_json(-0.0).to_string(), "0");
        assert_eq!(number_to_json(0.5).to_string(), "0.5");
    }

    #[test]
    fn stringify_pretty() {
        let mut m = Map::default();
        m.insert(
            "a".into(),
            Value::array(vec![Value::Number(1.0), Value::Null]),
        );
        assert_eq!(
            to_json_string(&Value::object(m.clone()), false),
            "{\"a\":[1,null]}"
        );
        assert_eq!(
            to_json_string(&Value::object(m), true),
            "{\n  \"a\": [\n    1,\n    null\n  ]\n}"
        );
    }
}
