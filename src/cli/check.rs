//! `mcp-engine check`: why a message is accepted or refused.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mcp_engine::Config;
use mcp_engine::codec::{AlignedBytes, Decoder, Limits};
use mcp_engine::message::unix_nanos_now;

/// Arguments of `check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Read the binary (rkyv) form instead of JSON.
    #[arg(long)]
    binary: bool,
    /// The message body to check; `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    input: Option<PathBuf>,
}

/// Runs `check`: exit 0 accepted, 1 refused, 2 unreadable input.
pub(crate) fn run(args: &CheckArgs) -> ExitCode {
    let limits = Limits::from_config(&Config::default());
    // One byte past the limit is enough to know a message is too large;
    // reading no further keeps memory bounded whatever the input.
    let read_limit = u64::try_from(limits.max_message_size)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut body = AlignedBytes::new();
    let read = match args.input.as_deref() {
        None => read_bounded(io::stdin().lock(), read_limit, &mut body),
        Some(path) if path.as_os_str() == "-" => {
            read_bounded(io::stdin().lock(), read_limit, &mut body)
        }
        Some(path) => File::open(path).and_then(|file| read_bounded(file, read_limit, &mut body)),
    };
    if let Err(e) = read {
        let name = args
            .input
            .as_ref()
            .map_or_else(|| "standard input".to_owned(), |p| p.display().to_string());
        eprintln!("mcp-engine check: cannot read {name}: {e}");
        return ExitCode::from(2);
    }

    let mut decoder = Decoder::new(limits);
    let now = unix_nanos_now();
    let mut line = Vec::new();
    let outcome = if args.binary {
        decoder.decode_binary(&body, now)
    } else {
        decoder.decode_json(body.as_mut_slice(), now)
    };
    let code = match outcome {
        Ok(view) => {
            line.extend_from_slice(b"{\"ok\":true,\"id\":\"");
            // Ids are of [A-Za-z0-9._:-]: nothing to escape.
            line.extend_from_slice(view.id().as_bytes());
            line.extend_from_slice(b"\",\"type\":\"");
            line.extend_from_slice(view.kind().as_str().as_bytes());
            line.extend_from_slice(b"\",\"security_level\":\"");
            line.extend_from_slice(view.security().security_level.as_str().as_bytes());
            line.extend_from_slice(b"\"}");
            ExitCode::SUCCESS
        }
        Err(refusal) => {
            refusal.write_payload(&mut line);
            ExitCode::from(1)
        }
    };
    line.push(b'\n');
    if io::stdout().lock().write_all(&line).is_err() {
        return ExitCode::from(2);
    }
    code
}

fn read_bounded(reader: impl Read, limit: u64, out: &mut AlignedBytes) -> io::Result<()> {
    let mut chunk = [0u8; 64 * 1024];
    let mut reader = reader.take(limit);
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
