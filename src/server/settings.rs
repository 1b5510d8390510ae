//! What the I/O thread runs with: the server's section of the config and
//! the TLS setup built from it, swapped whole on reload.

use std::sync::Arc;

use crate::codec::Limits;
use crate::config::{Config, ServerConfig};
use crate::error::{Code, Error};
use crate::tls;

/// What the I/O thread runs with; swapped whole on reload.
#[derive(Debug)]
pub(super) struct ServerSettings {
    pub(super) config: ServerConfig,
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    pub(super) max_message_size: usize,
}

impl ServerSettings {
    pub(super) fn of(config: &Config) -> Result<ServerSettings, Error> {
        let server = &config.server;
        let tls = match (&server.tls, server.plain_tcp) {
            (Some(files), _) => Some(tls::server_config(files)?),
            (None, true) => None,
            (None, false) => {
                return Err(Error::new(
                    Code::ConfigurationError,
                    "`server`: needs `cert` and `key` for TLS, or `plain_tcp = true`",
                ));
            }
        };
        Ok(ServerSettings {
            config: server.clone(),
            tls,
            max_message_size: Limits::from_config(config).max_message_size,
        })
    }
}
