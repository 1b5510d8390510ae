//! Builds a command with the library and prints it as one JSON envelope.
//!
//! ```text
//! cargo run --release --example new_command | cargo run --release -- check
//! ```
//!
//! Arguments (all optional): the command name and its args as JSON, e.g.
//! `new_command demo.echo '{"text":"hi"}'`.

use std::io::Write;
use std::process::ExitCode;

use mcp_engine::codec;
use mcp_engine::{Field, Message, MessageType, RawJson, SecurityLevel};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| "sys.ping".to_owned());
    let arguments = args.next().unwrap_or_else(|| "{}".to_owned());
    let arguments = match RawJson::parse(&arguments) {
        Ok(arguments) => arguments,
        Err(e) => {
            eprintln!("new_command: args are not usable JSON: {e}");
            return ExitCode::from(2);
        }
    };
    // The payload of a Command (docs/protocol.md section 7).
    let payload = format!(
        r#"{{"command":{},"args":{arguments}}}"#,
        RawJson::string(&command)
    );
    let payload = match RawJson::parse(&payload) {
        Ok(payload) => payload,
        Err(e) => {
            eprintln!("new_command: {e}");
            return ExitCode::from(2);
        }
    };

    let id = format!("example-{}", std::process::id());
    let mut message = Message::new(id, MessageType::Command, SecurityLevel::Low, payload);
    message.metadata = Field::Null;

    let mut out = Vec::new();
    codec::json::encode(&message, &mut out);
    out.push(b'\n');
    if std::io::stdout().write_all(&out).is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
