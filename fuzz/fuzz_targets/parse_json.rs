//! Fuzz target: see `siemfwd::fuzzing::parse_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| siemfwd::fuzzing::parse_json(data));
