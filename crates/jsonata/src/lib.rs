//! A JSONata 2.x expression evaluator over [`serde_json::Value`].
//!
//! ```
//! use jsonata::{Environment, Expression};
//! use serde_json::json;
//!
//! let expr = Expression::parse(r#"order.items[price > 10].{"sku": sku, "total": price * qty}"#).unwrap();
//! let input = json!({"order": {"items": [
//!     {"sku": "a", "price": 5, "qty": 1},
//!     {"sku": "b", "price": 20, "qty": 2}
//! ]}});
//! let out = expr.evaluate(&input, &Environment::new()).unwrap();
//! assert_eq!(out, Some(json!({"sku": "b", "total": 40})));
//! ```
//!
//! Time (`$now()`, `$millis()`) and randomness (`$random()`, `$shuffle()`) come from the
//! [`Environment`], never from the system clock. Evaluation is bounded in depth and steps.

#![warn(missing_docs)]

mod ast;
mod datetime;
mod error;
mod eval;
mod format;
mod functions;
mod lexer;
mod parser;
mod signature;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use error::Error;

/// A host function callable from expressions as `$name(...)`. Arguments arrive as JSON
/// (undefined arguments as `null`); the result is returned as JSON.
pub type NativeFunction =
    Arc<dyn Fn(&[serde_json::Value]) -> Result<serde_json::Value, Error> + Send + Sync>;

/// A source of random numbers in `[0, 1)` for `$random()` and `$shuffle()`.
pub type RandomSource = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Grammar options for [`Expression::parse_with_options`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept the `??` (coalescing) and `?:` (default) operators added in JSONata 2.1.
    /// AWS Step Functions implements JSONata 2.0.6, where they are syntax errors (`S0211`).
    pub coalescing_operators: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            coalescing_operators: true,
        }
    }
}

impl ParseOptions {
    /// The JSONata 2.0 grammar (as in AWS Step Functions).
    pub fn jsonata_2_0() -> Self {
        ParseOptions {
            coalescing_operators: false,
        }
    }
}

/// A parsed JSONata expression: parse once, evaluate many times (from many threads).
#[derive(Clone)]
pub struct Expression {
    ast: Arc<ast::Node>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expression").finish_non_exhaustive()
    }
}

/// Variable bindings, host functions, the clock, the random source and evaluation limits.
#[derive(Clone)]
pub struct Environment {
    vars: HashMap<String, serde_json::Value>,
    natives: HashMap<String, (NativeFunction, Option<Arc<signature::Signature>>)>,
    now_millis: i64,
    random: Option<RandomSource>,
    random_seed: u64,
    max_depth: usize,
    max_steps: u64,
}

impl Default for Environment {
    fn default() -> Self {
        Environment::new()
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("vars", &self.vars)
            .field("functions", &self.natives.keys().collect::<Vec<_>>())
            .field("now_millis", &self.now_millis)
            .field("max_depth", &self.max_depth)
            .field("max_steps", &self.max_steps)
            .finish_non_exhaustive()
    }
}

/// Default maximum evaluation depth (nested evaluations and function calls).
pub const DEFAULT_MAX_DEPTH: usize = 300;
/// Default maximum number of evaluation steps for one `evaluate` call.
pub const DEFAULT_MAX_STEPS: u64 = 50_000_000;

impl Environment {
    /// An environment with no bindings, the clock at the Unix epoch and default limits.
    pub fn new() -> Self {
        Environment {
            vars: HashMap::new(),
            natives: HashMap::new(),
            now_millis: 0,
            random: None,
            random_seed: 0x9e37_79b9_7f4a_7c15,
            max_depth: DEFAULT_MAX_DEPTH,
            max_steps: DEFAULT_MAX_STEPS,
        }
    }

    /// Bind `$name` to a JSON value.
    pub fn bind(&mut self, name: &str, value: serde_json::Value) {
        self.vars.insert(name.to_string(), value);
    }

    /// Bind `$name` to a host function.
    pub fn bind_function(&mut self, name: &str, f: NativeFunction) {
        self.natives.insert(name.to_string(), (f, None));
    }

    /// Bind `$name` to a host function whose arguments are validated (and completed from
    /// the context value) against a JSONata signature such as `"<a<n>n:a>"`, exactly as
    /// for built-in functions; the signature also gives the function's arity.
    pub fn bind_function_with_signature(
        &mut self,
        name: &str,
        signature: &str,
        f: NativeFunction,
    ) -> Result<(), Error> {
        let sig = signature::Signature::parse(signature)?;
        self.natives
            .insert(name.to_string(), (f, Some(Arc::new(sig))));
        Ok(())
    }

    /// Set the instant `$now()` and `$millis()` report (milliseconds since the Unix epoch).
    pub fn set_now_millis(&mut self, millis: i64) {
        self.now_millis = millis;
    }

    /// The instant `$now()` and `$millis()` report.
    pub fn now_millis(&self) -> i64 {
        self.now_millis
    }

    /// Use `source` for `$random()` and `$shuffle()`.
    pub fn set_random_source(&mut self, source: RandomSource) {
        self.random = Some(source);
    }

    /// Seed the built-in deterministic generator used when no random source is set.
    pub fn set_random_seed(&mut self, seed: u64) {
        self.random_seed = seed;
    }

    /// Limit the nesting depth of evaluation (error `U1001` beyond it).
    pub fn set_max_depth(&mut self, depth: usize) {
        self.max_depth = depth;
    }

    /// Limit the number of evaluation steps (error `U1002` beyond it).
    pub fn set_max_steps(&mut self, steps: u64) {
        self.max_steps = steps;
    }
}

impl Expression {
    /// Parse an expression. Syntax errors carry JSONata's `S0xxx` codes.
    pub fn parse(source: &str) -> Result<Expression, Error> {
        Expression::parse_with_options(source, &ParseOptions::default())
    }

    /// Parse with options, e.g. the JSONata 2.0 grammar that AWS Step Functions uses.
    pub fn parse_with_options(source: &str, options: &ParseOptions) -> Result<Expression, Error> {
        let ast = parser::parse_with(source, options.coalescing_operators)?;
        Ok(Expression { ast: Arc::new(ast) })
    }

    /// Evaluate against `input`. `Ok(None)` is JSONata's `undefined`.
    pub fn evaluate(
        &self,
        input: &serde_json::Value,
        env: &Environment,
    ) -> Result<Option<serde_json::Value>, Error> {
        self.evaluate_with(Some(input), env)
    }

    /// Evaluate with an optional input (`None` = no input document, `$` is undefined).
    pub fn evaluate_with(
        &self,
        input: Option<&serde_json::Value>,
        env: &Environment,
    ) -> Result<Option<serde_json::Value>, Error> {
        self.evaluate_with_vars(input, env, &[])
    }

    /// Evaluate with extra `$name` bindings for this evaluation only (they take
    /// precedence over the environment's), without cloning them into an [`Environment`].
    ///
    /// ```
    /// # use jsonata::{Environment, Expression};
    /// # use serde_json::json;
    /// let expr = Expression::parse("$states.input.a + $x").unwrap();
    /// let states = json!({"input": {"a": 1}});
    /// let x = json!(2);
    /// let out = expr
    ///     .evaluate_with_vars(None, &Environment::new(), &[("states", &states), ("x", &x)])
    ///     .unwrap();
    /// assert_eq!(out, Some(json!(3)));
    /// ```
    pub fn evaluate_with_vars(
        &self,
        input: Option<&serde_json::Value>,
        env: &Environment,
        vars: &[(&str, &serde_json::Value)],
    ) -> Result<Option<serde_json::Value>, Error> {
        let mut input = input.map(value::from_json).unwrap_or_default();
        if let value::Value::Array(a, _) = &input {
            // a top-level array input is wrapped so that `$` and paths see it whole
            input = value::Value::array_with(
                vec![value::Value::Array(a.clone(), value::Flags::NONE)],
                value::Flags::SEQUENCE.with(value::Flags::OUTER_WRAPPER),
            );
        }
        let mut ev = eval::Evaluator::new(env);
        ev.extra_vars = vars;
        let root = eval::Frame::root();
        ev.bind(&root, "$", input.clone());
        let result = ev.eval(&self.ast, &input, &root);
        let out = match result {
            Ok(v) => {
                let v = match v {
                    value::Value::TailCall(tc) => {
                        let tc = tc.clone();
                        ev.apply(&tc.func, tc.args.clone(), &input, "", tc.pos)
                    }
                    other => Ok(other),
                };
                v.and_then(|v| {
                    value::check_nesting(&v)?;
                    Ok(value::to_json(&v))
                })
            }
            Err(e) => Err(e),
        };
        ev.cleanup();
        out
    }
}
