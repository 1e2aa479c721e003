//! Fuzz target: see `siemfwd::fuzzing::pull_logs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| siemfwd::fuzzing::pull_logs(data));
