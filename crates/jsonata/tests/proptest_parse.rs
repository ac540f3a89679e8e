//! Property tests: parsing and evaluating arbitrary text never panics.

use jsonata::{Environment, Expression};
use proptest::prelude::*;
use serde_json::json;

const TOKENS: &[&str] = &[
    "a", "b", "$", "$$", "$x", "$f", "%", "*", "**", ".", "[", "]", "{", "}", "(", ")", ",", ";",
    ":", "?", "??", "?:", "+", "-", "/", "&", "=", "!=", "<", ">=", "..", ":=", "~>", "^", "@",
    "#", "|", "and", "or", "in", "1", "0", "-1", "2.5", "\"s\"", "'t'", "true", "null", "function",
    "λ", "$sum", "$map", "$string", "$replace", "$match", "/a+/i", "<n:n>",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_any_text(s in "\\PC{0,64}") {
        let _ = Expression::parse(&s);
    }

    #[test]
    fn parse_and_evaluate_never_panic_on_token_soup(s in token_soup()) {
        if let Ok(expr) = Expression::parse(&s) {
            let mut env = Environment::new();
            env.set_max_steps(20_000);
            let input = json!({"a": [1, {"b": 2}, "x"], "b": {"a": [3, 4]}});
            let _ = expr.evaluate(&input, &env);
        }
    }
}
