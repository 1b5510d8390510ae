//! `mcp-engine send`: one command to a server, the reply printed as JSON
//! with its payload decrypted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mcp_engine::client::{Connector, Credentials, Envelopes, NamedKey};
use mcp_engine::{Code, Codec, Error, RawJson, SecurityLevel};
use zeroize::Zeroizing;

/// Arguments of `send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// `credentials.json` (as `serve` or `dev-config` write it).
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// The security level of the command.
    #[arg(long, value_name = "L", default_value = "Standard")]
    level: String,
    /// Whose token from the credentials to use.
    #[arg(long, default_value = "admin")]
    role: String,
    /// Send the binary (rkyv) form instead of JSON.
    #[arg(long)]
    binary: bool,
    /// How long to wait for the reply, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    timeout_ms: u64,
    /// Send through this NATS broker instead (`nats://host:port`), to the
    /// engines serving --subject (a build with `--features nats`).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// With --nats: the subject the engines serve.
    #[arg(
        long,
        value_name = "SUBJECT",
        default_value = "mcp.requests",
        requires = "nats"
    )]
    subject: String,
    /// The server (overrides the credentials' `addr`).
    #[arg(long, value_name = "ADDR")]
    addr: Option<SocketAddr>,
    /// Plain TCP instead of TLS.
    #[arg(long)]
    plain: bool,
    /// The CA certificate of the server (overrides the credentials').
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// The name on the server's certificate.
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// The token to send (overrides `--role`).
    #[arg(long, value_name = "JWT")]
    token: Option<String>,
    /// The signing key file (base64url) and its id, as `KID=FILE`.
    #[arg(long, value_name = "KID=FILE")]
    signing_key: Option<String>,
    /// The encryption key file (base64url) and its id, as `KID=FILE`.
    #[arg(long, value_name = "KID=FILE")]
    encryption_key: Option<String>,
    /// The command, e.g. `demo.echo`.
    command: String,
    /// Its args, as JSON.
    args: Option<String>,
}

/// Runs `send`: prints the reply; exits 0 on a Response, 1 on an Error, 2
/// if it cannot send.
pub(crate) fn run(args: &SendArgs) -> ExitCode {
    match send(args) {
        Ok(opened) => {
            println!("{}", opened.to_json());
            if opened.is_error() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("mcp-engine send: {}", e.message());
            ExitCode::from(2)
        }
    }
}

fn usage(message: impl Into<String>) -> Error {
    Error::new(Code::ConfigurationError, message.into())
}

fn named_key(spec: &str) -> Result<NamedKey, Error> {
    let (kid, file) = spec
        .split_once('=')
        .ok_or_else(|| usage(format!("{spec:?}: expected KID=FILE")))?;
    let text = std::fs::read_to_string(file).map_err(|e| usage(format!("{file}: {e}")))?;
    Ok(NamedKey {
        kid: kid.to_owned(),
        key: Zeroizing::new(text.trim().to_owned()),
    })
}

/// The credentials file with the explicit flags laid over it.
fn credentials(args: &SendArgs) -> Result<Credentials, Error> {
    let mut credentials = match &args.credentials {
        Some(path) => Credentials::load(path)?,
        None => Credentials {
            addr: String::new(),
            tls: true,
            ca_cert: None,
            server_name: None,
            jwt: None,
            signing: None,
            encryption: None,
            tokens: Default::default(),
            admin: None,
        },
    };
    if let Some(addr) = args.addr {
        credentials.addr = addr.to_string();
    }
    if credentials.addr.is_empty() && args.nats.is_none() {
        return Err(usage("needs --credentials, --addr or --nats"));
    }
    if args.plain {
        credentials.tls = false;
    }
    if let Some(ca) = &args.ca_cert {
        credentials.ca_cert = Some(ca.clone());
    }
    if let Some(name) = &args.server_name {
        credentials.server_name = Some(name.clone());
    }
    if let Some(token) = &args.token {
        credentials.tokens.insert(args.role.clone(), token.clone());
    }
    if let Some(spec) = &args.signing_key {
        credentials.signing = Some(named_key(spec)?);
    }
    if let Some(spec) = &args.encryption_key {
        credentials.encryption = Some(named_key(spec)?);
    }
    Ok(credentials)
}

fn send(args: &SendArgs) -> Result<mcp_engine::client::Opened, Error> {
    let credentials = credentials(args)?;
    let level = SecurityLevel::from_name(&args.level).ok_or_else(|| {
        usage(format!(
            "--level {:?}: Low, Standard, High or Critical",
            args.level
        ))
    })?;
    let command_args = args
        .args
        .as_deref()
        .map(RawJson::parse)
        .transpose()
        .map_err(|e| usage(format!("ARGS_JSON: {}", e.message())))?;
    let codec = if args.binary {
        Codec::Binary
    } else {
        Codec::Json
    };
    let mut envelopes = Envelopes::from_credentials(&credentials, &args.role)?;
    let request = envelopes.command(codec, level, &args.command, command_args.as_ref())?;
    let timeout = Duration::from_millis(args.timeout_ms);
    if let Some(url) = &args.nats {
        let (codec, body) = through_nats(url, &args.subject, &request, timeout)?;
        return envelopes.open(codec, &body);
    }
    let client = Connector::from_credentials(&credentials)?.connect()?;
    let reply = client.call(&request, timeout)?;
    envelopes.open(reply.codec, &reply.body)
}

#[cfg(feature = "nats")]
fn through_nats(
    url: &str,
    subject: &str,
    request: &mcp_engine::client::Outgoing,
    timeout: Duration,
) -> Result<(Codec, Vec<u8>), Error> {
    mcp_engine::nats::request(url, subject, request.codec, &request.body, timeout)
}

#[cfg(not(feature = "nats"))]
fn through_nats(
    _url: &str,
    _subject: &str,
    _request: &mcp_engine::client::Outgoing,
    _timeout: Duration,
) -> Result<(Codec, Vec<u8>), Error> {
    Err(usage(
        "--nats: this build has no NATS support (build with `--features nats`)",
    ))
}
