//! The one place that talks to the JSONata evaluator. Everything else in the crate sees
//! [`Compiled`] expressions and [`evaluate`].
//!
//! Step Functions evaluates JSONata with `$states` (input, result, errorOutput, context)
//! and the workflow variables bound, and adds its own functions: `$partition`, `$range`,
//! `$hash`, `$random`, `$uuid` and `$parse`.

use crate::codec::{self, SplitMix64};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// A pre-parsed JSONata expression.
#[derive(Debug, Clone)]
pub struct Compiled {
    expr: jsonata::Expression,
    text: String,
}

/// A JSONata failure, mapped to `States.QueryEvaluationError` by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonataError {
    /// JSONata error code (e.g. `T1006`), empty when none.
    pub code: String,
    /// Message.
    pub message: String,
}

impl From<jsonata::Error> for JsonataError {
    fn from(e: jsonata::Error) -> Self {
        JsonataError {
            code: e.code,
            message: e.message,
        }
    }
}

/// Visits every workflow variable in scope (outer scopes first).
pub type VarVisitor<'a> = dyn Fn(&mut dyn FnMut(&str, &Value)) + 'a;

/// Parses an expression once, at definition load time.
pub fn compile(text: &str) -> Result<Compiled, JsonataError> {
    let t = text.trim();
    // Step Functions implements JSONata 2.0.6: no `??` / `?:` operators.
    let expr = jsonata::Expression::parse_with_options(t, &jsonata::ParseOptions::jsonata_2_0())?;
    Ok(Compiled {
        expr,
        text: t.to_string(),
    })
}

fn err(code: &str, message: impl Into<String>) -> jsonata::Error {
    jsonata::Error {
        code: code.to_string(),
        message: message.into(),
        position: None,
        token: None,
    }
}

fn arg_int(args: &[Value], i: usize, f: &str) -> Result<i64, jsonata::Error> {
    match args.get(i) {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(x) => Ok(x),
            None => match n.as_f64() {
                Some(x) if x.fract() == 0.0 => Ok(x as i64),
                _ => Err(err(
                    "T0410",
                    format!("Argument {} of function {f} must be an integer", i + 1),
                )),
            },
        },
        _ => Err(err(
            "T0410",
            format!("Argument {} of function {f} must be a number", i + 1),
        )),
    }
}

fn bind_aws_functions(env: &mut jsonata::Environment, seed: u64) {
    let rng = Arc::new(Mutex::new(SplitMix64::new(seed)));
    // Step Functions does not offer `$eval`.
    env.bind_function(
        "eval",
        Arc::new(|_args: &[Value]| Err(err("T1006", "Attempted to invoke a non-function"))),
    );
    env.bind_function(
        "partition",
        Arc::new(|args: &[Value]| {
            let Some(Value::Array(a)) = args.first() else {
                return Err(err(
                    "T0410",
                    "Argument 1 of function $partition must be an array",
                ));
            };
            let size = arg_int(args, 1, "$partition")?;
            if size <= 0 {
                return Err(err(
                    "D3040",
                    "The chunk size of $partition must be positive",
                ));
            }
            Ok(Value::Array(
                a.chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }),
    );
    env.bind_function(
        "range",
        Arc::new(|args: &[Value]| {
            let a = arg_int(args, 0, "$range")?;
            let b = arg_int(args, 1, "$range")?;
            let s = arg_int(args, 2, "$range")?;
            if s == 0 {
                return Err(err("D3040", "The step of $range must not be zero"));
            }
            let mut out = Vec::new();
            let mut i = a;
            while (s > 0 && i <= b) || (s < 0 && i >= b) {
                if out.len() >= 1000 {
                    return Err(err("D3040", "$range would return more than 1000 items"));
                }
                out.push(Value::from(i));
                i += s;
            }
            // Step Functions returns a JSONata sequence: a single item is unwrapped.
            if out.len() == 1 {
                return Ok(out.pop().unwrap_or(Value::Null));
            }
            Ok(Value::Array(out))
        }),
    );
    env.bind_function(
        "hash",
        Arc::new(|args: &[Value]| {
            let data = match args.first() {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => {
                    return Err(err("T0410", "Argument 1 of function $hash must be a string"))
                }
                Some(other) => other.to_string(),
            };
            let alg = args.get(1).and_then(|v| v.as_str()).unwrap_or("");
            let d = data.as_bytes();
            let h = match alg {
                "MD5" => codec::md5(d),
                "SHA-1" => codec::sha1(d),
                "SHA-256" => codec::sha256(d),
                "SHA-384" => codec::sha384(d),
                "SHA-512" => codec::sha512(d),
                other => {
                    return Err(err(
                        "D3040",
                        format!("Unsupported hash algorithm '{other}'; use MD5, SHA-1, SHA-256, SHA-384 or SHA-512"),
                    ))
                }
            };
            Ok(Value::String(h))
        }),
    );
    let r = rng.clone();
    env.bind_function(
        "random",
        Arc::new(move |args: &[Value]| {
            let bits = match args.first() {
                Some(Value::Number(n)) => {
                    let seed = n
                        .as_i64()
                        .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64);
                    SplitMix64::new(seed as u64).next_u64()
                }
                Some(Value::Null) | None => r.lock().map(|mut g| g.next_u64()).unwrap_or(0),
                Some(_) => {
                    return Err(err(
                        "T0410",
                        "Argument 1 of function $random must be a number",
                    ))
                }
            };
            let f = (bits >> 11) as f64 / (1u64 << 53) as f64;
            Ok(serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null))
        }),
    );
    let r = rng;
    env.bind_function(
        "uuid",
        Arc::new(move |_args: &[Value]| {
            Ok(Value::String(
                r.lock().map(|mut g| g.uuid_v4()).unwrap_or_default(),
            ))
        }),
    );
    env.bind_function(
        "parse",
        Arc::new(|args: &[Value]| match args.first() {
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                err(
                    "D3040",
                    format!("$parse: the argument is not valid JSON: {e}"),
                )
            }),
            _ => Err(err(
                "T0410",
                "Argument 1 of function $parse must be a string",
            )),
        }),
    );
}

/// Bindings for evaluating the expressions of one field: `$states`, workflow variables,
/// the clock and the random seed, and Step Functions' extra functions.
pub struct Env {
    env: jsonata::Environment,
    input: Value,
}

impl Env {
    /// Builds the bindings once; evaluate any number of expressions with them.
    pub fn new(states: &Value, vars: &VarVisitor<'_>, seed: u64, now_millis: i64) -> Env {
        let mut env = jsonata::Environment::new();
        vars(&mut |k, v| env.bind(k, v.clone()));
        env.bind("states", states.clone());
        env.set_now_millis(now_millis);
        env.set_random_seed(seed);
        bind_aws_functions(&mut env, seed);
        Env {
            env,
            input: states.get("input").cloned().unwrap_or(Value::Null),
        }
    }

    /// Evaluates `expr`; `Ok(None)` means the result is undefined.
    pub fn evaluate(&self, expr: &Compiled) -> Result<Option<Value>, JsonataError> {
        Ok(expr.expr.evaluate(&self.input, &self.env)?)
    }

    /// After `evaluate` returned undefined: true when the expression's value is really a
    /// function (JSON has no functions, so the evaluator reports them as undefined). Step
    /// Functions reports such results as an unsupported result type.
    pub fn yields_function(&self, expr: &Compiled) -> bool {
        let probe = format!("$type(({}))", expr.text);
        let Ok(p) =
            jsonata::Expression::parse_with_options(&probe, &jsonata::ParseOptions::jsonata_2_0())
        else {
            return false;
        };
        matches!(p.evaluate(&self.input, &self.env), Ok(Some(Value::String(t))) if t == "function")
    }
}

/// Evaluates one expression with freshly built bindings (tests).
#[cfg(test)]
fn evaluate(
    expr: &Compiled,
    states: &Value,
    vars: &VarVisitor<'_>,
    seed: u64,
    now_millis: i64,
) -> Result<Option<Value>, JsonataError> {
    Env::new(states, vars, seed, now_millis).evaluate(expr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(text: &str, states: Value) -> Result<Option<Value>, JsonataError> {
        let c = compile(text)?;
        evaluate(&c, &states, &|_f| {}, 1, 0)
    }

    #[test]
    fn states_and_aws_functions() {
        assert_eq!(
            eval("$states.input.a + 1", json!({"input": {"a": 2}})).unwrap(),
            Some(json!(3))
        );
        assert_eq!(
            eval("$partition([1,2,3], 2)", json!({})).unwrap(),
            Some(json!([[1, 2], [3]]))
        );
        assert_eq!(
            eval("$range(0, 6, 3)", json!({})).unwrap(),
            Some(json!([0, 3, 6]))
        );
        assert_eq!(
            eval("$hash('input data', 'MD5')", json!({})).unwrap(),
            Some(json!("812f45842bc6d66ee14572ce20db8e86"))
        );
        assert_eq!(
            eval("$parse('{\"a\":1}')", json!({})).unwrap(),
            Some(json!({"a": 1}))
        );
        assert_eq!(eval("$nothing", json!({})).unwrap(), None);
        let f = compile("$fn := function($x){$x}").unwrap();
        assert_eq!(evaluate(&f, &json!({}), &|_f| {}, 1, 0).unwrap(), None);
        let env = Env::new(&json!({}), &|_f| {}, 1, 0);
        assert!(env.yields_function(&f));
        let u = compile("$nothing").unwrap();
        assert!(!env.yields_function(&u));
        assert!(compile("1 +").is_err());
        // JSONata 2.0 grammar, as in Step Functions
        assert!(compile("$x ?? 1").is_err());
        assert!(eval("$eval('1')", json!({})).is_err());
    }
}
