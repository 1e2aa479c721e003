//! Fuzz target: see `siemfwd::fuzzing::encode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| siemfwd::fuzzing::encode(data));
