//! Fuzz target: `ardoise_fuzzing::rfc4571`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ardoise_fuzzing::rfc4571(data));
