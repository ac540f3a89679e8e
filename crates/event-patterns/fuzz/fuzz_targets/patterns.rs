//! Fuzz target: pattern parsing + compiled matching + input transformation.
//!
//! Input layout: `pattern text 0xFF event text 0xFF template text`. Properties checked:
//! nothing panics or runs away on any input; when the pattern and the event are both
//! valid, the compiled matcher agrees with the reference evaluator.
#![no_main]

use event_patterns::transform::{Context, InputTransformer};
use event_patterns::{reference, Pattern, RuleSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0xFF);
    let pattern = parts.next().unwrap_or_default();
    let event = parts.next().unwrap_or_default();
    let template = parts.next().unwrap_or_default();

    let Ok(pattern_text) = std::str::from_utf8(pattern) else {
        return;
    };
    let parsed = Pattern::parse(pattern_text);
    let mut set = RuleSet::new();
    if let Ok(p) = &parsed {
        set.add("fuzz", p.clone());
    }
    // raw bytes straight into the matcher: errors are fine, panics are not
    let compiled = set.matches(event);

    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(event) {
        if let (Ok(p), true) = (&parsed, value.is_object()) {
            // compare on serde's own rendering so both sides see the same number texts
            let bytes = serde_json::to_vec(&value).expect("serialise");
            let got = !set.matches(&bytes).expect("valid event").is_empty();
            assert_eq!(got, reference::matches(p, &value), "pattern {pattern_text}");
        }
        if let Ok(t) = std::str::from_utf8(template) {
            let paths = vec![
                ("a".to_string(), "$.a".to_string()),
                ("d".to_string(), "$.detail".to_string()),
                ("x".to_string(), "$.detail.x[0]".to_string()),
            ];
            if let Ok(tr) = InputTransformer::new(&paths, t, "fuzz") {
                let _ = tr.apply(&value, &Context::default());
            }
        }
    }
    let _ = compiled;
});
