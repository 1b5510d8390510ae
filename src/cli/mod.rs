//! The subcommands of `mcp-engine`, one per file.

pub(crate) mod check;
