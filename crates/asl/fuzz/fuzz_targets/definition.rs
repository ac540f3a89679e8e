#![no_main]
//! Definition parsing and validation never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = asl::parse_definition_text(text);
    }
});
