//! `[admin]`: the admin endpoint of `mcp-engine serve` (`/metrics`,
//! `/healthz`, `/readyz`; see the `admin` module). On when the section is
//! present, off otherwise.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::error::Error;

/// Where the admin endpoint listens unless `[admin] listen` says.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7451);

/// The admin endpoint's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminConfig {
    /// The address to listen on (default `127.0.0.1:7451`; port 0: a free
    /// one). Plain HTTP: keep it on loopback or a management network.
    pub listen: SocketAddr,
}

impl AdminConfig {
    /// The endpoint on `listen`.
    pub fn on(listen: SocketAddr) -> AdminConfig {
        AdminConfig { listen }
    }
}

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminFile {
    listen: Option<Spanned<String>>,
}

pub(super) fn admin_config(
    file: Option<AdminFile>,
    at: &impl Fn(Option<Range<usize>>, &str) -> Error,
) -> Result<Option<AdminConfig>, Error> {
    let Some(file) = file else {
        return Ok(None);
    };
    let listen = match file.listen {
        None => DEFAULT_ADMIN_LISTEN,
        Some(text) => text.get_ref().parse().map_err(|_| {
            at(
                Some(text.span()),
                "`admin.listen`: not an address such as \"127.0.0.1:7451\"",
            )
        })?,
    };
    Ok(Some(AdminConfig { listen }))
}
