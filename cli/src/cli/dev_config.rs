//! `mcp-engine dev-config --out DIR`: a complete development setup.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mcp_engine::dev_setup::{DEV_ADDR, DevSetup};

/// Arguments of `dev-config`.
#[derive(Debug, Args)]
pub(crate) struct DevConfigArgs {
    /// The folder to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `dev-config`: writes the setup, prints where, exits 0 (2 on error).
pub(crate) fn run(args: &DevConfigArgs) -> ExitCode {
    match DevSetup::write(&args.out, DEV_ADDR) {
        Ok(setup) => {
            println!(
                "wrote {} and {}",
                setup.config_path.display(),
                setup.credentials_path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-engine dev-config: {}", e.message());
            ExitCode::from(2)
        }
    }
}
