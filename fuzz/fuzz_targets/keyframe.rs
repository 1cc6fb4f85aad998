//! Fuzz target: `ardoise_fuzzing::keyframe`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ardoise_fuzzing::keyframe(data));
