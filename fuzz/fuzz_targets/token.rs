//! Fuzz target: `ardoise_fuzzing::token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ardoise_fuzzing::token(data));
