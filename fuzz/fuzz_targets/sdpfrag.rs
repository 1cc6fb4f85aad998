//! Fuzz target: `ardoise_fuzzing::sdpfrag`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ardoise_fuzzing::sdpfrag(data));
