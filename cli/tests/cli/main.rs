//! The `mcp-engine` command and its configuration: `check`, the security
//! subcommands (`keygen`, `token`, `dev-config`), config loading, and
//! `serve` and `send` with `[nats]` (feature `nats`).

#[path = "../common/mod.rs"]
mod common;

mod check;
mod config;
#[cfg(feature = "nats")]
mod nats_serve;
mod security;
