//! Shared by the command's integration tests: the real `mcp-engine serve`
//! started and spoken to (`serve.rs`), and, for the NATS tests, the broker
//! the library's tests use too.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "nats")]
#[path = "../../../tests/common/nats.rs"]
pub mod nats;
pub mod serve;
