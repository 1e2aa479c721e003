//! Fuzz target: see `siemfwd::fuzzing::ndjson_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| siemfwd::fuzzing::ndjson_line(data));
