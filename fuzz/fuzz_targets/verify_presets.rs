#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookbridge::fuzzing::verify_presets(data));
