//! `mcp-engine check`: why a message is accepted or refused.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use mcp_engine::codec::{AlignedBytes, Decoder, Limits, check_plain_payload};
use mcp_engine::message::unix_nanos_now;
use mcp_engine::security::{Admission, SecurityState, Target};
use mcp_engine::{Config, MessageView};

/// Arguments of `check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Read the binary (rkyv) form instead of JSON.
    #[arg(long)]
    binary: bool,
    /// Run every check up to and including authorization, with this
    /// config's keys, levels and rules (no handler runs).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The client address for the IP rules (with `--config`).
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST), requires = "config")]
    peer: IpAddr,
    /// The message body to check; `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    input: Option<PathBuf>,
}

/// Runs `check`: exit 0 accepted, 1 refused, 2 unreadable input.
pub(crate) fn run(args: &CheckArgs) -> ExitCode {
    let now = unix_nanos_now();
    let (config, mut admission) = match &args.config {
        None => (Config::default(), None),
        Some(path) => {
            let loaded = Config::load(path).and_then(|config| {
                let state = SecurityState::from_config(&config, now)?;
                Ok((config, Admission::new(Arc::new(state))))
            });
            match loaded {
                Ok((config, admission)) => (config, Some(admission)),
                Err(e) => {
                    eprintln!("mcp-engine check: {}", e.message());
                    return ExitCode::from(2);
                }
            }
        }
    };
    let limits = Limits::from_config(&config);
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
    let mut line = Vec::new();
    let outcome = if args.binary {
        decoder.decode_binary(&body, now)
    } else {
        decoder.decode_json(body.as_mut_slice(), now)
    };
    let outcome = outcome.and_then(|view| match admission.as_mut() {
        // Without keys: the payload's shape where it can be seen.
        None => check_plain_payload(&view).map(|()| accepted(&view, None)),
        Some(admission) => {
            let admitted = admission.admit(&view, args.peer, now)?;
            if let Some(name) = admitted.name() {
                admitted.authorize(Target::of_name(name), args.peer)?;
            }
            let principal = admitted.principal().map(str::to_owned);
            let command = admitted.name().map(str::to_owned);
            Ok(accepted(&view, Some((principal, command))))
        }
    });
    let code = match outcome {
        Ok(text) => {
            line.extend_from_slice(text.as_bytes());
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

/// The acceptance line; with `--config`, `principal` and `command` too.
fn accepted(view: &MessageView<'_>, admitted: Option<(Option<String>, Option<String>)>) -> String {
    let text = |value: Option<&str>| serde_json::to_string(&value).unwrap_or_default();
    let mut line = format!(
        r#"{{"ok":true,"id":{},"type":"{}","security_level":"{}""#,
        text(Some(view.id())),
        view.kind().as_str(),
        view.security().security_level.as_str()
    );
    if let Some((principal, command)) = admitted {
        line.push_str(&format!(
            r#","principal":{},"command":{}"#,
            text(principal.as_deref()),
            text(command.as_deref())
        ));
        // What the replay check recorded: the stream and number, or the id.
        match view.replay() {
            Some(mark) => line.push_str(&format!(
                r#","replay":{{"stream":{},"seq":{}}}"#,
                text(Some(mark.stream)),
                mark.seq
            )),
            None => line.push_str(r#","replay":null"#),
        }
    }
    line.push('}');
    line
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
