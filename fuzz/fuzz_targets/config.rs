//! Fuzz target: `ardoise_fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ardoise_fuzzing::config(data));
