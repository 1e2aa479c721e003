//! Fuzz target: see `siemfwd::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| siemfwd::fuzzing::config(data));
