//! Measuring mcp-engine: the load harness behind `mcp-bench` (see
//! [`harness`]), the tokio [`baseline`] it compares against, its plots and
//! README table, and helpers the other measuring binaries share.

pub mod baseline;
pub mod harness;
pub mod plot;
pub mod process;
pub mod results;
