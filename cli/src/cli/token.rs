//! `mcp-engine token`: a JWT signed with the config's active issuing key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mcp_engine::security::{Keyring, TokenClaims, issue_token};
use mcp_engine::{Config, RawJson};

/// Arguments of `token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The engine's config file (names the keys, issuer and audience).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The principal (`sub`).
    #[arg(long, value_name = "S")]
    sub: String,
    /// Roles, comma-separated.
    #[arg(long, value_name = "a,b", value_delimiter = ',')]
    roles: Vec<String>,
    /// Lifetime in seconds (default: the config's `token_ttl_secs`).
    #[arg(long, value_name = "SECONDS")]
    ttl: Option<u64>,
}

/// Runs `token`: prints the JWT and exits 0, or exits 2 with the reason.
pub(crate) fn run(args: &TokenArgs) -> ExitCode {
    let issued = Config::load(&args.config).and_then(|config| {
        let keyring = Keyring::load(&config.security)?;
        let roles: Vec<&str> = args
            .roles
            .iter()
            .map(String::as_str)
            .filter(|r| !r.is_empty())
            .collect();
        let audience = config.security.audience.as_deref().map(RawJson::string);
        issue_token(
            &keyring,
            &TokenClaims {
                subject: &args.sub,
                roles: &roles,
                issuer: config.security.issuer.as_deref(),
                audience: audience.as_ref(),
                ttl_secs: args.ttl.unwrap_or(config.security.token_ttl_secs),
            },
            mcp_engine::message::unix_nanos_now(),
        )
    });
    match issued {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-engine token: {}", e.message());
            ExitCode::from(2)
        }
    }
}
