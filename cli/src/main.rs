//! `mcp-engine`: the command-line front of the engine (`docs/cli.md`).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The Machine Context Protocol engine.
#[derive(Debug, Parser)]
#[command(name = "mcp-engine", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode and validate one message; print why it is accepted or refused.
    ///
    /// Prints one JSON line: `{"ok":true,"id":…,"type":…,"security_level":…}`
    /// and exits 0 if the message passes every envelope rule (with
    /// `--config`: every check up to authorization, adding `principal` and
    /// `command`), or the protocol's Error payload and exits 1 if not. Exits
    /// 2 on a usage error, an unreadable file or a bad config.
    Check(cli::check::CheckArgs),
    /// Print a fresh 32-byte key, base64url, on one line.
    Keygen,
    /// Print a JWT for a principal, signed with the config's active jwt key.
    Token(cli::token::TokenArgs),
    /// Write a complete development setup (config, keys, certificates,
    /// credentials.json) into a folder.
    DevConfig(cli::dev_config::DevConfigArgs),
    /// Serve the engine over TLS (dev mode without --config: a fresh dev
    /// setup, its credentials printed as one JSON line on stdout).
    ///
    /// SIGHUP reloads the config and keys; SIGTERM and SIGINT answer what
    /// is in flight and exit 0. Logs go to stderr, filtered by RUST_LOG.
    Serve(cli::serve::ServeArgs),
    /// Send one command and print the reply (payload decrypted) as JSON.
    ///
    /// Exits 0 on a Response, 1 on an Error, 2 if it cannot send.
    Send(Box<cli::send::SendArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => cli::check::run(&args),
        Command::Keygen => cli::keygen::run(),
        Command::Token(args) => cli::token::run(&args),
        Command::DevConfig(args) => cli::dev_config::run(&args),
        Command::Serve(args) => cli::serve::run(&args),
        Command::Send(args) => cli::send::run(&args),
    }
}
