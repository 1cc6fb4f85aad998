//! Fuzz target: `ardoise_fuzzing::class_event`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ardoise_fuzzing::class_event(data));
