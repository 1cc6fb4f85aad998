//! Fuzz target: `ardoise_fuzzing::stun_route`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ardoise_fuzzing::stun_route(data));
