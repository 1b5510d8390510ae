//! `mcp-engine keygen`: a fresh 32-byte key, base64url, on one line.

use std::process::ExitCode;

use mcp_engine::dev_setup::random_key;
use mcp_engine::security::b64u;

/// Runs `keygen`: exit 0, or 2 if the system has no randomness to give.
pub(crate) fn run() -> ExitCode {
    match random_key() {
        Ok(key) => {
            println!(
                "{}",
                zeroize::Zeroizing::new(b64u::encode(&key[..])).as_str()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-engine keygen: {}", e.message());
            ExitCode::from(2)
        }
    }
}
