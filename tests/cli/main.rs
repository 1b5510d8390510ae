//! The `mcp-engine` command and its configuration: `check`, the security
//! subcommands (`keygen`, `token`, `dev-config`), and config loading.

mod check;
mod config;
mod security;
