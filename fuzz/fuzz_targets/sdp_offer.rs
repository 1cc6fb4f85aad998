//! Fuzz target: `ardoise_fuzzing::sdp_offer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ardoise_fuzzing::sdp_offer(data));
