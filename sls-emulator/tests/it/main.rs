//! The emulator's integration tests, one test binary: the `sls-emulator`
//! program as a process (`binary`), the HTTP API byte for byte (`http_api`),
//! and Alibaba's official Python SDK against it (`python_sdk`).

mod binary;
mod http_api;
mod python_sdk;
