//! Fuzz target: any UTF-8 text is parsed; whatever parses is evaluated (with tight step
//! and depth limits) against a fixed document. Neither may panic or overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = jsonata::Expression::parse(src) else {
        return;
    };
    let mut env = jsonata::Environment::new();
    env.set_max_steps(100_000);
    env.bind("states", serde_json::json!({"input": {"a": [1, 2, 3]}}));
    let input = serde_json::json!({
        "a": [1, {"b": [2, 3]}, "x", null, true],
        "b": {"c": {"d": 1.5}},
        "s": "Hello World"
    });
    let _ = expr.evaluate(&input, &env);
});
