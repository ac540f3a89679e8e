#![no_main]
//! Running any definition that validates, on any input, never panics and terminates.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (def, input) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(sm) = asl::parse_definition_text(def) else { return };
    let input = serde_json::from_str(input).unwrap_or(serde_json::Value::Null);
    let clock = asl::VirtualClock::at_epoch_2024();
    let mut e = asl::Execution::new(input, asl::ExecutionInfo::default(), 1, &clock);
    let _ = e.run(&sm, &mut asl::NoTasks, &clock);
});
