//! Fuzz target: see `siemfwd::fuzzing::syslog_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| siemfwd::fuzzing::syslog_stream(data));
