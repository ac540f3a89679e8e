//! Intrinsic functions (`States.Format(...)` and friends) of the JSONPath query language.

use crate::codec;
use crate::path::{Path, PathError};
use serde_json::{Map, Number, Value};

/// An argument of an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A literal string, number, boolean or null.
    Literal(Value),
    /// A path (`$.x`, `$$.x`, `$var`).
    Path(Path),
    /// A nested call.
    Call(Box<Call>),
}

/// The intrinsic functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Func {
    fn from_name(n: &str) -> Option<Func> {
        Some(match n {
            "States.Format" => Func::Format,
            "States.StringToJson" => Func::StringToJson,
            "States.JsonToString" => Func::JsonToString,
            "States.Array" => Func::Array,
            "States.ArrayPartition" => Func::ArrayPartition,
            "States.ArrayContains" => Func::ArrayContains,
            "States.ArrayRange" => Func::ArrayRange,
            "States.ArrayGetItem" => Func::ArrayGetItem,
            "States.ArrayLength" => Func::ArrayLength,
            "States.ArrayUnique" => Func::ArrayUnique,
            "States.Base64Encode" => Func::Base64Encode,
            "States.Base64Decode" => Func::Base64Decode,
            "States.Hash" => Func::Hash,
            "States.JsonMerge" => Func::JsonMerge,
            "States.MathRandom" => Func::MathRandom,
            "States.MathAdd" => Func::MathAdd,
            "States.StringSplit" => Func::StringSplit,
            "States.UUID" => Func::Uuid,
            _ => return None,
        })
    }
    /// Allowed argument counts (min, max).
    fn arity(self) -> (usize, usize) {
        match self {
            Func::Format => (1, usize::MAX),
            Func::Array => (0, usize::MAX),
            Func::StringToJson
            | Func::JsonToString
            | Func::ArrayLength
            | Func::ArrayUnique
            | Func::Base64Encode
            | Func::Base64Decode => (1, 1),
            Func::ArrayPartition
            | Func::ArrayContains
            | Func::ArrayGetItem
            | Func::Hash
            | Func::MathAdd
            | Func::StringSplit => (2, 2),
            Func::ArrayRange | Func::JsonMerge => (3, 3),
            Func::MathRandom => (2, 3),
            Func::Uuid => (0, 0),
        }
    }
}

/// A parsed intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Function name as written.
    pub name: String,
    /// Which function.
    pub func: Func,
    /// Arguments.
    pub args: Vec<Arg>,
}

/// An intrinsic call that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid intrinsic function call '{text}': {reason}")]
pub struct IntrinsicSyntaxError {
    /// The expression.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

struct P<'a> {
    t: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> P<'a> {
    fn err(&self, r: impl Into<String>) -> IntrinsicSyntaxError {
        IntrinsicSyntaxError {
            text: self.t.to_string(),
            reason: r.into(),
        }
    }
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn call(&mut self, depth: usize) -> Result<Call, IntrinsicSyntaxError> {
        if depth > 32 {
            return Err(self.err("calls nested too deeply"));
        }
        let start = self.i;
        while matches!(self.b.get(self.i), Some(c) if c.is_ascii_alphanumeric() || *c == b'.' || *c == b'_')
        {
            self.i += 1;
        }
        let name = &self.t[start..self.i];
        let func =
            Func::from_name(name).ok_or_else(|| self.err(format!("unknown function '{name}'")))?;
        self.ws();
        if self.b.get(self.i) != Some(&b'(') {
            return Err(self.err("expected '('"));
        }
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b')') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                args.push(self.arg(depth)?);
                self.ws();
                match self.b.get(self.i) {
                    Some(b',') => self.i += 1,
                    Some(b')') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(self.err(format!("expected ',' or ')' at offset {}", self.i))),
                }
            }
        }
        let (lo, hi) = func.arity();
        if args.len() < lo || args.len() > hi {
            return Err(self.err(format!(
                "{name} takes {} argument(s), {} given",
                if lo == hi {
                    lo.to_string()
                } else if hi == usize::MAX {
                    format!("at least {lo}")
                } else {
                    format!("{lo} to {hi}")
                },
                args.len()
            )));
        }
        Ok(Call {
            name: name.to_string(),
            func,
            args,
        })
    }
    fn arg(&mut self, depth: usize) -> Result<Arg, IntrinsicSyntaxError> {
        match self.b.get(self.i) {
            Some(b'\'') => {
                self.i += 1;
                let mut s = String::new();
                loop {
                    let rest = &self.t[self.i..];
                    let c = rest
                        .chars()
                        .next()
                        .ok_or_else(|| self.err("unterminated string"))?;
                    self.i += c.len_utf8();
                    match c {
                        '\'' => break,
                        '\\' => {
                            let e = self.t[self.i..]
                                .chars()
                                .next()
                                .ok_or_else(|| self.err("unterminated escape"))?;
                            self.i += e.len_utf8();
                            match e {
                                '\'' | '{' | '}' | '\\' => {
                                    // keep `\{` `\}` distinguishable for States.Format
                                    if e == '{' || e == '}' {
                                        s.push('\\');
                                    }
                                    s.push(e)
                                }
                                'n' => s.push('\n'),
                                't' => s.push('\t'),
                                'r' => s.push('\r'),
                                _ => {
                                    return Err(self.err(format!("illegal escape sequence '\\{e}'")))
                                }
                            }
                        }
                        c => s.push(c),
                    }
                }
                Ok(Arg::Literal(Value::String(s)))
            }
            Some(b'$') => {
                let start = self.i;
                let mut depth_b = 0i32;
                let mut quote: Option<u8> = None;
                while let Some(&c) = self.b.get(self.i) {
                    if let Some(q) = quote {
                        if c == q {
                            quote = None;
                        }
                    } else if c == b'\'' || c == b'"' {
                        quote = Some(c);
                    } else if c == b'[' || c == b'(' {
                        depth_b += 1;
                    } else if c == b']' || (c == b')' && depth_b > 0) {
                        depth_b -= 1;
                    } else if depth_b == 0 && (c == b',' || c == b')' || c == b' ') {
                        break;
                    }
                    self.i += 1;
                }
                let text = self.t[start..self.i].trim();
                let p = Path::parse(text).map_err(|e: PathError| self.err(e.reason))?;
                Ok(Arg::Path(p))
            }
            Some(b'S') => Ok(Arg::Call(Box::new(self.call(depth + 1)?))),
            _ => {
                let start = self.i;
                while matches!(self.b.get(self.i), Some(c) if *c != b',' && *c != b')') {
                    self.i += 1;
                }
                let text = self.t[start..self.i].trim();
                match text {
                    "null" => Ok(Arg::Literal(Value::Null)),
                    "true" => Ok(Arg::Literal(Value::Bool(true))),
                    "false" => Ok(Arg::Literal(Value::Bool(false))),
                    _ => {
                        let v: Value = serde_json::from_str(text)
                            .map_err(|_| self.err(format!("invalid argument '{text}'")))?;
                        if v.is_number() {
                            Ok(Arg::Literal(v))
                        } else {
                            Err(self.err(format!("invalid argument '{text}'")))
                        }
                    }
                }
            }
        }
    }
}

/// True when `text` looks like an intrinsic call (`States.Name(`).
pub fn looks_like_call(text: &str) -> bool {
    text.starts_with("States.")
}

/// Parses an intrinsic call expression.
pub fn parse(text: &str) -> Result<Call, IntrinsicSyntaxError> {
    let mut p = P {
        t: text,
        b: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let c = p.call(0)?;
    p.ws();
    if p.i != text.len() {
        return Err(p.err("unexpected text after the call"));
    }
    Ok(c)
}

/// A failure evaluating an intrinsic (reported as `States.IntrinsicFailure` or `States.Runtime`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrinsicFailure {
    /// Error name.
    pub error: &'static str,
    /// Explanation.
    pub cause: String,
}

fn fail(cause: impl Into<String>) -> IntrinsicFailure {
    IntrinsicFailure {
        error: "States.IntrinsicFailure",
        cause: cause.into(),
    }
}

/// What intrinsics need from their environment: path lookup and randomness.
pub trait IntrinsicEnv {
    /// Resolves a path argument; `Err` carries the (error, cause) when it is missing.
    fn resolve(&mut self, path: &Path) -> Result<Value, IntrinsicFailure>;
    /// 64 random bits.
    fn random_u64(&mut self) -> u64;
    /// A random version-4 UUID.
    fn uuid(&mut self) -> String;
}

fn as_int(v: &Value, name: &str, what: &str) -> Result<i64, IntrinsicFailure> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(f) = n.as_f64() {
                // Java's Math.round: half rounds towards positive infinity.
                Ok((f + 0.5).floor() as i64)
            } else {
                Err(fail(format!("{name}: {what} must be an integer")))
            }
        }
        _ => Err(fail(format!(
            "{name}: {what} must be a number, found {}",
            type_name(v)
        ))),
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Renders a value the way `States.Format` inserts it.
fn format_arg(v: &Value) -> String {
    let mut out = String::new();
    java_text(v, &mut out);
    out
}

/// Step Functions renders non-string `States.Format` arguments like Java's `toString`
/// (`{a=1, b=[x, y]}`).
fn java_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                java_text(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                java_text(x, out);
            }
            out.push('}');
        }
    }
}

/// Evaluates a call.
pub fn eval(call: &Call, env: &mut dyn IntrinsicEnv) -> Result<Value, IntrinsicFailure> {
    let mut args = Vec::with_capacity(call.args.len());
    for a in &call.args {
        args.push(match a {
            Arg::Literal(v) => v.clone(),
            Arg::Path(p) => env.resolve(p)?,
            Arg::Call(c) => eval(c, env)?,
        });
    }
    let n = call.name.as_str();
    match call.func {
        Func::Format => {
            let Value::String(tpl) = &args[0] else {
                return Err(fail(format!("{n}: the template must be a string")));
            };
            let mut out = String::with_capacity(tpl.len());
            let mut next = 1;
            let mut chars = tpl.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if matches!(chars.peek(), Some('{') | Some('}')) => {
                        if let Some(x) = chars.next() {
                            out.push(x);
                        }
                    }
                    '{' if chars.peek() == Some(&'}') => {
                        chars.next();
                        let v = args.get(next).ok_or_else(|| {
                            fail(format!(
                                "{n}: the template has more placeholders than arguments"
                            ))
                        })?;
                        out.push_str(&format_arg(v));
                        next += 1;
                    }
                    c => out.push(c),
                }
            }
            if next != args.len() {
                return Err(fail(format!(
                    "{n}: the number of arguments does not match the placeholders"
                )));
            }
            Ok(Value::String(out))
        }
        Func::StringToJson => match &args[0] {
            Value::String(s) => {
                if s.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_str(s)
                    .map(normalize_negative_zero)
                    .map_err(|e| fail(format!("{n}: the argument is not valid JSON: {e}")))
            }
            v => Err(fail(format!(
                "{n}: the argument must be a string, found {}",
                type_name(v)
            ))),
        },
        Func::JsonToString => Ok(Value::String(
            serde_json::to_string(&args[0]).unwrap_or_default(),
        )),
        Func::Array => Ok(Value::Array(args)),
        Func::ArrayPartition => {
            let Value::Array(arr) = &args[0] else {
                return Err(fail(format!("{n}: the first argument must be an array")));
            };
            let size = as_int(&args[1], n, "the chunk size")?;
            if size <= 0 {
                return Err(fail(format!("{n}: the chunk size must be positive")));
            }
            Ok(Value::Array(
                arr.chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        Func::ArrayContains => {
            let Value::Array(arr) = &args[0] else {
                return Err(fail(format!("{n}: the first argument must be an array")));
            };
            Ok(Value::Bool(arr.iter().any(|x| json_eq(x, &args[1]))))
        }
        Func::ArrayRange => {
            let a = as_int(&args[0], n, "the start")?;
            let b = as_int(&args[1], n, "the end")?;
            let s = as_int(&args[2], n, "the step")?;
            if s == 0 {
                return Err(fail(format!("{n}: the step must not be zero")));
            }
            let mut out = Vec::new();
            let mut i = a;
            while (s > 0 && i <= b) || (s < 0 && i >= b) {
                out.push(Value::from(i));
                if out.len() > 1000 {
                    return Err(fail(format!(
                        "{n}: the range would have more than 1000 items"
                    )));
                }
                i += s;
            }
            Ok(Value::Array(out))
        }
        Func::ArrayGetItem => {
            let Value::Array(arr) = &args[0] else {
                return Err(fail(format!("{n}: the first argument must be an array")));
            };
            let i = as_int(&args[1], n, "the index")?;
            if i < 0 || i as usize >= arr.len() {
                return Err(fail(format!("{n}: index {i} is out of bounds")));
            }
            Ok(arr[i as usize].clone())
        }
        Func::ArrayLength => match &args[0] {
            Value::Array(a) => Ok(Value::from(a.len())),
            v => Err(fail(format!(
                "{n}: the argument must be an array, found {}",
                type_name(v)
            ))),
        },
        Func::ArrayUnique => match &args[0] {
            Value::Array(a) => {
                let mut out: Vec<Value> = Vec::new();
                for x in a {
                    if !out.iter().any(|y| json_eq(x, y)) {
                        out.push(x.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            v => Err(fail(format!(
                "{n}: the argument must be an array, found {}",
                type_name(v)
            ))),
        },
        Func::Base64Encode => match &args[0] {
            Value::String(s) => {
                if s.len() > 10_000 {
                    return Err(fail(format!("{n}: the input exceeds 10000 characters")));
                }
                Ok(Value::String(codec::base64_encode(s.as_bytes())))
            }
            v => Err(fail(format!(
                "{n}: the argument must be a string, found {}",
                type_name(v)
            ))),
        },
        Func::Base64Decode => match &args[0] {
            Value::String(s) => {
                if s.len() > 10_000 {
                    return Err(fail(format!("{n}: the input exceeds 10000 characters")));
                }
                let bytes = codec::base64_decode(s)
                    .ok_or_else(|| fail(format!("{n}: the input is not valid Base64")))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| fail(format!("{n}: the decoded data is not UTF-8 text")))
            }
            v => Err(fail(format!(
                "{n}: the argument must be a string, found {}",
                type_name(v)
            ))),
        },
        Func::Hash => {
            let data = match &args[0] {
                Value::String(s) => s.clone(),
                Value::Null => {
                    return Err(fail(format!("{n}: the data must not be null")));
                }
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            if data.len() > 10_000 {
                return Err(fail(format!("{n}: the input exceeds 10000 characters")));
            }
            let Value::String(alg) = &args[1] else {
                return Err(fail(format!("{n}: the algorithm must be a string")));
            };
            let d = data.as_bytes();
            let h = match alg.as_str() {
                "MD5" => codec::md5(d),
                "SHA-1" => codec::sha1(d),
                "SHA-256" => codec::sha256(d),
                "SHA-384" => codec::sha384(d),
                "SHA-512" => codec::sha512(d),
                other => {
                    return Err(fail(format!(
                        "{n}: unsupported algorithm '{other}'; use one of MD5, SHA-1, SHA-256, SHA-384, SHA-512"
                    )))
                }
            };
            Ok(Value::String(h))
        }
        Func::JsonMerge => {
            let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                return Err(fail(format!("{n}: both inputs must be objects")));
            };
            if args[2] != Value::Bool(false) {
                return Err(fail(format!(
                    "{n}: only shallow merge is supported (the third argument must be false)"
                )));
            }
            let mut out: Map<String, Value> = a.clone();
            for (k, v) in b {
                out.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(out))
        }
        Func::MathRandom => {
            let a = as_int(&args[0], n, "the start")?;
            let b = as_int(&args[1], n, "the end")?;
            if b <= a {
                return Err(fail(format!("{n}: the end must be greater than the start")));
            }
            let r = if let Some(seed) = args.get(2) {
                let s = as_int(seed, n, "the seed")?;
                codec::SplitMix64::new(s as u64).next_u64()
            } else {
                env.random_u64()
            };
            let span = (b - a) as u64;
            Ok(Value::from(a + (r % span) as i64))
        }
        Func::MathAdd => {
            let a = as_int(&args[0], n, "the first value")?;
            let b = as_int(&args[1], n, "the second value")?;
            Ok(Value::Number(Number::from(a.saturating_add(b))))
        }
        Func::StringSplit => {
            let (Value::String(s), Value::String(d)) = (&args[0], &args[1]) else {
                return Err(fail(format!("{n}: both arguments must be strings")));
            };
            let parts: Vec<Value> = s
                .split(|c| d.contains(c))
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_string()))
                .collect();
            Ok(Value::Array(parts))
        }
        Func::Uuid => Ok(Value::String(env.uuid())),
    }
}

fn normalize_negative_zero(v: Value) -> Value {
    match v {
        Value::Number(n)
            if n.as_f64() == Some(0.0) && n.is_f64() && n.to_string().starts_with('-') =>
        {
            Value::from(0)
        }
        other => other,
    }
}

/// JSON equality where numbers compare by value (1 == 1.0).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                i == j
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Env(Value, codec::SplitMix64);
    impl IntrinsicEnv for Env {
        fn resolve(&mut self, p: &Path) -> Result<Value, IntrinsicFailure> {
            p.select(&self.0).ok_or_else(|| fail("missing"))
        }
        fn random_u64(&mut self) -> u64 {
            self.1.next_u64()
        }
        fn uuid(&mut self) -> String {
            self.1.uuid_v4()
        }
    }

    fn run(expr: &str, input: Value) -> Result<Value, IntrinsicFailure> {
        let c = parse(expr).unwrap();
        eval(&c, &mut Env(input, codec::SplitMix64::new(1)))
    }

    #[test]
    fn format_and_nesting() {
        assert_eq!(
            run(
                "States.Format('a {} b {}', $.x, States.MathAdd(1, 2))",
                json!({"x": "X"})
            )
            .unwrap(),
            json!("a X b 3")
        );
        assert_eq!(
            run("States.Format('\\{\\}')", json!({})).unwrap(),
            json!("{}")
        );
        assert!(run("States.Format('{} {}', 1)", json!({})).is_err());
    }

    #[test]
    fn arrays() {
        assert_eq!(
            run("States.ArrayRange(0, 10, 3)", json!({})).unwrap(),
            json!([0, 3, 6, 9])
        );
        assert_eq!(
            run("States.ArrayPartition($.a, 2)", json!({"a": [1, 2, 3]})).unwrap(),
            json!([[1, 2], [3]])
        );
        assert_eq!(
            run("States.ArrayUnique($.a)", json!({"a": [1, 1.0, 2]})).unwrap(),
            json!([1, 2])
        );
        assert!(run("States.ArrayGetItem($.a, 5)", json!({"a": [1]})).is_err());
    }

    #[test]
    fn math_rounds_and_random_is_in_range() {
        assert_eq!(
            run("States.MathAdd(1.49, 1.5)", json!({})).unwrap(),
            json!(3)
        );
        let v = run("States.MathRandom(1, 3)", json!({})).unwrap();
        assert!(v == json!(1) || v == json!(2));
    }

    #[test]
    fn syntax_errors() {
        assert!(parse("States.Nope()").is_err());
        assert!(parse("States.UUID(1)").is_err());
        assert!(parse("States.Format('a \\\" b')").is_err());
        assert!(parse("States.Format('x'").is_err());
    }

    #[test]
    fn split_and_hash() {
        assert_eq!(
            run("States.StringSplit('a,b,,c', ',')", json!({})).unwrap(),
            json!(["a", "b", "c"])
        );
        assert_eq!(
            run("States.Hash('input data', 'MD5')", json!({})).unwrap(),
            json!("812f45842bc6d66ee14572ce20db8e86")
        );
    }
}
