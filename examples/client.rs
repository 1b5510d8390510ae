//! A client of `mcp-engine serve`: one TLS connection, a command at every
//! security level in both codecs, many requests in flight at once, an
//! acknowledged event, and a token renewal. Replies are opened as the
//! protocol says: signature checked, payload decrypted.
//!
//! ```text
//! cargo run --release -- serve --dev-credentials credentials.json   # one terminal
//! cargo run --release --example client -- credentials.json          # another
//! ```
//!
//! The dev server's `min_security_level` is `Standard`: its `Low` command
//! is refused with `access_denied`, as the protocol says it must be.

use std::process::ExitCode;
use std::time::Duration;

use mcp_engine::client::{Connector, Credentials, Envelopes, Opened};
use mcp_engine::{Code, Codec, Error, RawJson, SecurityLevel};

const WAIT: Duration = Duration::from_secs(10);

/// The code of an Error reply, or `None` for a Response.
fn error_code(opened: &Opened) -> Result<Option<String>, Error> {
    if !opened.is_error() {
        return Ok(None);
    }
    let payload: serde_json::Value = serde_json::from_str(opened.message.payload.as_str())
        .map_err(|e| Error::new(Code::InvalidFormat, e.to_string()))?;
    Ok(payload["code"].as_str().map(str::to_owned))
}

fn run(credentials_path: &str) -> Result<(), Error> {
    let credentials = Credentials::load(credentials_path.as_ref())?;
    let client = Connector::from_credentials(&credentials)?.connect()?;
    let mut envelopes = Envelopes::from_credentials(&credentials, "admin")?;
    let args = RawJson::parse(r#"{"hi":1}"#)?;
    let mut failures = Vec::new();

    // One command per level and codec.
    for codec in [Codec::Json, Codec::Binary] {
        for level in SecurityLevel::ALL {
            let request = envelopes.command(codec, level, "demo.echo", Some(&args))?;
            let reply = client.call(&request, WAIT)?;
            let opened = envelopes.open(reply.codec, &reply.body)?;
            let code = error_code(&opened)?;
            println!(
                "{:<8} {codec:?}: {}",
                level.as_str(),
                code.as_deref().unwrap_or(opened.message.payload.as_str())
            );
            let expected = (level == SecurityLevel::Low).then(|| "access_denied".to_owned());
            if code != expected
                || (code.is_none() && opened.message.payload.as_str() != r#"{"result":{"hi":1}}"#)
            {
                failures.push(format!("{level} {codec:?}"));
            }
        }
    }

    // Many in flight on one connection: replies come in any order and are
    // matched by correlation id.
    let waiters: Vec<_> = (0..100)
        .map(|n| {
            let args = RawJson::parse(&format!(r#"{{"n":{n}}}"#))?;
            let request = envelopes.command(
                Codec::Json,
                SecurityLevel::Critical,
                "demo.echo",
                Some(&args),
            )?;
            Ok((n, client.request(&request)?))
        })
        .collect::<Result<_, Error>>()?;
    for (n, waiter) in waiters {
        let reply = waiter.wait(WAIT)?;
        let opened = envelopes.open(reply.codec, &reply.body)?;
        if opened.message.payload.as_str() != format!(r#"{{"result":{{"n":{n}}}}}"#) {
            failures.push(format!("pipelined {n}"));
        }
    }
    println!("100 Critical requests in flight at once: each answered");

    // An event that asks for an acknowledgement.
    let data = RawJson::parse(r#"{"note":"hello"}"#)?;
    let notice = envelopes.event(
        Codec::Json,
        SecurityLevel::High,
        "demo.notice",
        Some(&data),
        true,
    )?;
    let reply = client.call(&notice, WAIT)?;
    let opened = envelopes.open(reply.codec, &reply.body)?;
    println!("event demo.notice: {}", opened.message.payload.as_str());
    if opened.message.payload.as_str() != r#"{"result":{"delivered":1}}"# {
        failures.push("event".to_owned());
    }

    // A fresh token before the old one expires.
    let renew = envelopes.command(Codec::Json, SecurityLevel::Standard, "auth.renew", None)?;
    let reply = client.call(&renew, WAIT)?;
    let opened = envelopes.open(reply.codec, &reply.body)?;
    let renewed =
        error_code(&opened)?.is_none() && opened.message.payload.as_str().contains("token");
    println!(
        "auth.renew: {}",
        if renewed { "a new token" } else { "refused" }
    );
    if !renewed {
        failures.push("auth.renew".to_owned());
    }

    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            Code::InternalError,
            format!("unexpected replies: {}", failures.join(", ")),
        ))
    }
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: client CREDENTIALS.json (as `mcp-engine serve` writes it)");
        return ExitCode::from(2);
    };
    match run(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::FAILURE
        }
    }
}
