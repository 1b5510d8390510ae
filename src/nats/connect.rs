//! The client's connect options from `[nats]`: credentials, TLS, timeouts
//! and the reconnect pace.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::ConnectOptions;

use super::IngressCounters;
use crate::config::{NatsAuth, NatsConfig};
use crate::error::{Code, Error};

/// The longest pause between reconnect attempts: a restarted broker is
/// found again within this.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Builds the options `config` describes. Reads the credential files now,
/// so that a missing one stops `serve` at start.
pub(super) async fn options(
    config: &NatsConfig,
    counters: Arc<IngressCounters>,
) -> Result<ConnectOptions, Error> {
    let mut options = match &config.auth {
        NatsAuth::None => ConnectOptions::new(),
        NatsAuth::UserPassword {
            user,
            password_file,
        } => ConnectOptions::with_user_and_password(user.clone(), first_line(password_file)?),
        NatsAuth::Token { token_file } => ConnectOptions::with_token(first_line(token_file)?),
        NatsAuth::Nkey { seed_file } => ConnectOptions::with_nkey(first_line(seed_file)?),
        NatsAuth::Credentials { creds_file } => ConnectOptions::with_credentials_file(creds_file)
            .await
            .map_err(|e| unreadable(creds_file, &e))?,
    };
    if let Some(tls) = &config.tls {
        options = options
            .require_tls(true)
            .add_root_certificates(tls.ca.clone());
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    Ok(options
        .name(&config.name)
        .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
        // 50 ms, doubling to the cap: quick after a blip, gentle on a broker
        // that is down.
        .reconnect_delay_callback(|attempts| {
            let shift = u32::try_from(attempts.min(16)).unwrap_or(16);
            Duration::from_millis(50u64 << shift).min(MAX_RECONNECT_DELAY)
        })
        .event_callback(move |event| {
            let counters = Arc::clone(&counters);
            async move { counters.record(&event) }
        }))
}

/// The first line of a secret file, without its line end.
fn first_line(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, &e))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(Error::new(
            Code::ConfigurationError,
            format!("{}: empty", path.display()),
        ));
    }
    Ok(line.to_owned())
}

fn unreadable(path: &Path, e: &std::io::Error) -> Error {
    Error::new(
        Code::ConfigurationError,
        format!("{}: cannot read: {e}", path.display()),
    )
}
