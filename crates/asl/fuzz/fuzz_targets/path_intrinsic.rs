#![no_main]
//! Path and intrinsic-function parsing and evaluation never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let doc = serde_json::json!({"a": [1, {"b": "c"}], "d": {"e": null}, "s": "x,y"});
    if let Ok(p) = asl::path::Path::parse(text) {
        let _ = p.select(&doc);
        let _ = p.miss_message(&doc);
    }
    let _ = asl::intrinsic::parse(text);
});
