//! The subcommands of `mcp-engine`, one per file.

mod admin_source;
mod broker;
pub(crate) mod check;
pub(crate) mod dev_config;
pub(crate) mod keygen;
mod quiet_memory;
pub(crate) mod send;
pub(crate) mod serve;
pub(crate) mod token;
