//! Public API behaviour: bindings, host functions, clock, randomness, limits, errors.

use std::sync::Arc;

use jsonata::{Environment, Error, Expression};
use serde_json::json;

fn eval(
    src: &str,
    input: serde_json::Value,
    env: &Environment,
) -> Result<Option<serde_json::Value>, Error> {
    Expression::parse(src)?.evaluate(&input, env)
}

#[test]
fn expression_and_environment_are_send_sync_and_shareable() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Expression>();
    assert_send_sync::<Environment>();
    let expr = Expression::parse("a * 2").expect("parses");
    let env = Environment::new();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let expr = expr.clone();
            let env = env.clone();
            std::thread::spawn(move || expr.evaluate(&json!({"a": i}), &env).expect("evaluates"))
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(
        results,
        vec![
            Some(json!(0)),
            Some(json!(2)),
            Some(json!(4)),
            Some(json!(6))
        ]
    );
}

#[test]
fn bound_variables_are_visible() {
    let mut env = Environment::new();
    env.bind("states", json!({"input": {"x": [1, 2, 3]}}));
    assert_eq!(
        eval("$sum($states.input.x)", json!(null), &env).unwrap(),
        Some(json!(6))
    );
    // a bound name can be shadowed locally without affecting the environment
    assert_eq!(
        eval("($states := 1; $states)", json!(null), &env).unwrap(),
        Some(json!(1))
    );
    assert_eq!(
        eval("$states.input.x[0]", json!(null), &env).unwrap(),
        Some(json!(1))
    );
}

#[test]
fn native_functions_receive_json_and_can_fail() {
    let mut env = Environment::new();
    env.bind_function(
        "partition",
        Arc::new(|args: &[serde_json::Value]| {
            let items = args
                .first()
                .and_then(|a| a.as_array())
                .cloned()
                .unwrap_or_default();
            let size = args.get(1).and_then(|s| s.as_u64()).unwrap_or(1).max(1) as usize;
            Ok(json!(items
                .chunks(size)
                .map(|c| c.to_vec())
                .collect::<Vec<_>>()))
        }),
    );
    env.bind_function(
        "fail",
        Arc::new(|_args: &[serde_json::Value]| {
            Err(Error::custom("States.QueryEvaluationError", "nope"))
        }),
    );
    assert_eq!(
        eval("$partition([1,2,3,4,5], 2)", json!(null), &env).unwrap(),
        Some(json!([[1, 2], [3, 4], [5]]))
    );
    assert_eq!(
        eval("[1,2,3] ~> $partition(2)", json!(null), &env).unwrap(),
        Some(json!([[1, 2], [3]]))
    );
    let e = eval("$fail()", json!(null), &env).unwrap_err();
    assert_eq!(e.code, "States.QueryEvaluationError");
    assert_eq!(e.message, "nope");
    assert_eq!(e.token.as_deref(), Some("fail"));
}

#[test]
fn clock_comes_from_the_environment() {
    let mut env = Environment::new();
    env.set_now_millis(1_510_067_557_121);
    assert_eq!(
        eval("$millis()", json!(null), &env).unwrap(),
        Some(json!(1_510_067_557_121i64))
    );
    assert_eq!(
        eval("$now()", json!(null), &env).unwrap(),
        Some(json!("2017-11-07T15:12:37.121Z"))
    );
    // the same instant throughout one evaluation
    assert_eq!(
        eval("$millis() = $millis()", json!(null), &env).unwrap(),
        Some(json!(true))
    );
}

#[test]
fn randomness_comes_from_the_environment() {
    let mut env = Environment::new();
    env.set_random_source(Arc::new(|| 0.25));
    assert_eq!(
        eval("$random()", json!(null), &env).unwrap(),
        Some(json!(0.25))
    );
    let mut seeded = Environment::new();
    seeded.set_random_seed(7);
    let a = eval("[$random(), $random()]", json!(null), &seeded).unwrap();
    let b = eval("[$random(), $random()]", json!(null), &seeded).unwrap();
    assert_eq!(a, b, "the seeded generator is deterministic");
    let v = a.unwrap();
    assert_ne!(v[0], v[1]);
    for x in v.as_array().unwrap() {
        let f = x.as_f64().unwrap();
        assert!((0.0..1.0).contains(&f));
    }
}

#[test]
fn deep_recursion_is_an_error_not_a_crash() {
    // run on a small (2 MiB) stack, as async runtimes do
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let env = Environment::new();
            let e = eval(
                "($f := function($n) { $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000))",
                json!(null),
                &env,
            )
            .unwrap_err();
            assert_eq!(e.code, "D1011");
            // recursion through built-ins that call back (here $map) is bounded too
            let e = eval(
                "($f := function($n) { $n = 0 ? 0 : $map([1], function($x) { $f($n - 1) }) }; $f(100000))",
                json!(null),
                &env,
            )
            .unwrap_err();
            assert_eq!(e.code, "D1011");
            let nested = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
            assert_eq!(Expression::parse(&nested).unwrap_err().code, "D1011");
        })
        .expect("spawn");
    h.join().expect("no stack overflow");
}

#[test]
fn tail_calls_do_not_grow_the_stack() {
    let env = Environment::new();
    let out = eval(
        "($loop := function($n, $acc) { $n = 0 ? $acc : $loop($n - 1, $acc + 1) }; $loop(100000, 0))",
        json!(null),
        &env,
    )
    .unwrap();
    assert_eq!(out, Some(json!(100000)));
}

#[test]
fn step_limit_stops_runaway_evaluation() {
    let mut env = Environment::new();
    env.set_max_steps(10_000);
    let e = eval(
        "($loop := function($n) { $loop($n + 1) }; $loop(0))",
        json!(null),
        &env,
    )
    .unwrap_err();
    assert_eq!(e.code, "D1012");
    let e = eval("$sum([1..5000])", json!(null), &env);
    assert_eq!(e.unwrap(), Some(json!(12502500)));
}

#[test]
fn undefined_and_missing_input() {
    let env = Environment::new();
    let expr = Expression::parse("a").unwrap();
    assert_eq!(expr.evaluate(&json!({"b": 1}), &env).unwrap(), None);
    assert_eq!(expr.evaluate_with(None, &env).unwrap(), None);
    let expr = Expression::parse("$exists($)").unwrap();
    assert_eq!(expr.evaluate_with(None, &env).unwrap(), Some(json!(false)));
}

#[test]
fn numbers_serialise_like_javascript() {
    let env = Environment::new();
    let out = eval("[1.0, 2.5, 0.1 + 0.2, 1e21, 3 * 4]", json!(null), &env)
        .unwrap()
        .unwrap();
    assert_eq!(out.to_string(), "[1,2.5,0.30000000000000004,1e+21,12]");
    assert_eq!(
        eval("$string(0.1 + 0.2)", json!(null), &env).unwrap(),
        Some(json!("0.3"))
    );
    assert_eq!(
        eval("$string(1e21)", json!(null), &env).unwrap(),
        Some(json!("1e+21"))
    );
}

#[test]
fn errors_carry_code_message_and_position() {
    let env = Environment::new();
    let e = eval("\"a\" + 1", json!(null), &env).unwrap_err();
    assert_eq!(e.code, "T2001");
    assert_eq!(
        e.message,
        "The left side of the \"+\" operator must evaluate to a number"
    );
    assert!(e.position.is_some());
    let e = Expression::parse("a.(b").unwrap_err();
    assert_eq!(e.code, "S0203");
    assert_eq!(
        e.to_string(),
        "S0203: Expected \")\" before end of expression"
    );
}

#[test]
fn functions_in_results_are_dropped() {
    let env = Environment::new();
    assert_eq!(
        eval("function($x) { $x }", json!(null), &env).unwrap(),
        None
    );
    assert_eq!(
        eval("{\"f\": $sum, \"a\": 1}", json!(null), &env).unwrap(),
        Some(json!({"a": 1}))
    );
}

#[test]
fn native_functions_with_signatures_are_validated_like_builtins() {
    let mut env = Environment::new();
    env.bind_function_with_signature(
        "double",
        "<n-:n>",
        Arc::new(|args: &[serde_json::Value]| {
            Ok(json!(
                args.first().and_then(|a| a.as_f64()).unwrap_or(0.0) * 2.0
            ))
        }),
    )
    .expect("valid signature");
    assert_eq!(
        eval("$double(4)", json!(null), &env).unwrap(),
        Some(json!(8))
    );
    // context value fills the missing argument
    assert_eq!(
        eval("[1, 2].$double()", json!(null), &env).unwrap(),
        Some(json!([2, 4]))
    );
    // arity 1: $map passes only the value
    assert_eq!(
        eval("$map([3, 4], $double)", json!(null), &env).unwrap(),
        Some(json!([6, 8]))
    );
    let e = eval("$double(\"x\")", json!(null), &env).unwrap_err();
    assert_eq!(e.code, "T0410");
    assert_eq!(
        e.message,
        "Argument 1 of function \"double\" does not match function signature"
    );
    let bad = env.bind_function_with_signature(
        "f",
        "<q>",
        Arc::new(|_: &[serde_json::Value]| Ok(json!(null))),
    );
    assert!(
        bad.is_ok(),
        "unknown type letters are ignored like the reference does"
    );
}

#[test]
fn per_evaluation_variables_shadow_the_environment() {
    let mut env = Environment::new();
    env.bind("x", json!(1));
    let expr = Expression::parse("$x + $y").unwrap();
    let y = json!(10);
    assert_eq!(
        expr.evaluate_with_vars(None, &env, &[("y", &y)]).unwrap(),
        Some(json!(11))
    );
    let x = json!(5);
    assert_eq!(
        expr.evaluate_with_vars(None, &env, &[("x", &x), ("y", &y)])
            .unwrap(),
        Some(json!(15))
    );
}

#[test]
fn deeply_nested_values_built_by_an_expression_are_safe() {
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let env = Environment::new();
            let deep = "$reduce([1..20000], function($a, $v) { {\"x\": $a} }, {})";
            // freeing it, counting it, comparing and walking it must not overflow
            let count = format!("($d := {deep}; $count($d))");
            assert_eq!(eval(&count, json!(null), &env).unwrap(), Some(json!(1)));
            let eq = format!("($d := {deep}; $e := {deep}; $d = $e)");
            assert_eq!(eval(&eq, json!(null), &env).unwrap(), Some(json!(true)));
            let walk = format!("($d := {deep}; $count($d.**))");
            assert_eq!(eval(&walk, json!(null), &env).unwrap(), Some(json!(20001)));
            let truth = "$boolean($reduce([1..20000], function($a, $v) { [[$a]] }, [1]))";
            assert_eq!(eval(truth, json!(null), &env).unwrap(), Some(json!(true)));
            // turning it into JSON or text is refused with an error
            assert_eq!(eval(deep, json!(null), &env).unwrap_err().code, "D1013");
            let text = format!("$string({deep})");
            assert_eq!(eval(&text, json!(null), &env).unwrap_err().code, "D1013");
        })
        .expect("spawn");
    h.join().expect("no stack overflow");
}

#[test]
fn huge_strings_and_sequences_exhaust_the_step_budget() {
    let mut env = Environment::new();
    env.set_max_steps(1_000_000);
    assert_eq!(
        eval("$pad(\"x\", 1e12)", json!(null), &env)
            .unwrap_err()
            .code,
        "D1012"
    );
    let doubling = "$reduce([1..64], function($a, $v) { $a & $a }, \"x\")";
    assert_eq!(eval(doubling, json!(null), &env).unwrap_err().code, "D1012");
    assert_eq!(
        eval("$count([1..5000000])", json!(null), &env)
            .unwrap_err()
            .code,
        "D1012"
    );
    assert_eq!(
        eval("$count([1..5000])", json!(null), &env).unwrap(),
        Some(json!(5000))
    );
}

#[test]
fn jsonata_2_0_grammar_rejects_coalescing_operators() {
    use jsonata::ParseOptions;
    let v20 = ParseOptions::jsonata_2_0();
    assert_eq!(
        Expression::parse_with_options("a ?? 1", &v20)
            .unwrap_err()
            .code,
        "S0211"
    );
    assert_eq!(
        Expression::parse_with_options("a ?: 1", &v20)
            .unwrap_err()
            .code,
        "S0211"
    );
    assert!(Expression::parse_with_options("a ? 1 : 2", &v20).is_ok());
    assert!(Expression::parse("a ?? 1").is_ok());
}
