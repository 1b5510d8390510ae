//! The `[server]` section: where `mcp-engine serve` listens, its TLS files,
//! and the limits that keep one connection from hurting the others.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::bounded::bounded;
use crate::error::Error;

/// The address `serve` listens on unless told otherwise (and a dev setup
/// serves on): 127.0.0.1:7450.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7450);

/// The TLS files of the server (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates for client certificates: when set, every client must
    /// present a certificate signed by one of them (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Listener, TLS and per-connection limits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Whether `mcp-engine serve` listens on TCP at all (default true);
    /// false serves through the NATS ingress alone.
    pub enabled: bool,
    /// The address to listen on (default `127.0.0.1:7450`).
    pub listen: SocketAddr,
    /// TLS 1.3 files. Required unless `plain_tcp` is set.
    pub tls: Option<TlsFiles>,
    /// Serve plain TCP, without TLS (default false; only where something
    /// else protects the wire).
    pub plain_tcp: bool,
    /// Open connections at most; more are closed on accept (default 10000).
    pub max_connections: u64,
    /// Open connections at most from one client address (an IPv4 address,
    /// or an IPv6 /64 network); more from it are closed on accept, so one
    /// address cannot take every slot (default 256).
    pub max_connections_per_ip: u64,
    /// Requests one connection may have in the engine at once; past it the
    /// server stops reading from that connection until replies drain
    /// (default 256).
    pub max_in_flight: u64,
    /// A connection with nothing in flight and no bytes received or
    /// written for this long is closed, whatever it has buffered, in
    /// milliseconds (default 300000).
    pub idle_timeout_ms: u64,
    /// A frame must arrive whole within this of its first byte (plus the
    /// time `frame_min_rate_kib` earns it), in milliseconds (default
    /// 10000); a connection past it is closed.
    pub frame_timeout_ms: u64,
    /// Each KiB of a frame received extends its deadline by a second over
    /// this many, in KiB per second (default 64): a large frame may take
    /// as long as it needs at this rate, a stalled one may not.
    pub frame_min_rate_kib: u64,
    /// A TLS handshake not done within this is dropped, in milliseconds
    /// (default 10000).
    pub handshake_timeout_ms: u64,
    /// Reply bytes one connection may hold waiting for its peer to read, in
    /// KiB (default 256).
    pub outbound_buffer_kib: u64,
    /// A connection whose outbound buffer stays full this long (a peer that
    /// does not read) is closed, in milliseconds (default 10000).
    pub write_stall_ms: u64,
    /// What all connections together may hold in partial frames, requests
    /// in the engine and replies waiting to be written, in MiB (default
    /// 256). Over it, a connection holding more than an equal share is not
    /// read until the server is back under it.
    pub memory_budget_mib: u64,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            enabled: true,
            listen: DEFAULT_LISTEN,
            tls: None,
            plain_tcp: false,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            max_in_flight: 256,
            idle_timeout_ms: 300_000,
            frame_timeout_ms: 10_000,
            frame_min_rate_kib: 64,
            handshake_timeout_ms: 10_000,
            outbound_buffer_kib: 256,
            write_stall_ms: 10_000,
            memory_budget_mib: 256,
        }
    }
}

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerFile {
    enabled: Option<bool>,
    listen: Option<Spanned<String>>,
    cert: Option<Spanned<PathBuf>>,
    key: Option<Spanned<PathBuf>>,
    client_ca: Option<PathBuf>,
    plain_tcp: Option<bool>,
    max_connections: Option<Spanned<u64>>,
    max_connections_per_ip: Option<Spanned<u64>>,
    max_in_flight: Option<Spanned<u64>>,
    idle_timeout_ms: Option<Spanned<u64>>,
    frame_timeout_ms: Option<Spanned<u64>>,
    frame_min_rate_kib: Option<Spanned<u64>>,
    handshake_timeout_ms: Option<Spanned<u64>>,
    outbound_buffer_kib: Option<Spanned<u64>>,
    write_stall_ms: Option<Spanned<u64>>,
    memory_budget_mib: Option<Spanned<u64>>,
}

pub(super) fn server_config(
    file: Option<ServerFile>,
    at: &impl Fn(Option<Range<usize>>, &str) -> Error,
    base: &Path,
) -> Result<ServerConfig, Error> {
    let defaults = ServerConfig::default();
    let Some(file) = file else {
        return Ok(defaults);
    };
    let listen = match file.listen {
        None => defaults.listen,
        Some(text) => text.get_ref().parse().map_err(|_| {
            at(
                Some(text.span()),
                "`server.listen`: not an address such as \"127.0.0.1:7450\"",
            )
        })?,
    };
    let tls = match (file.cert, file.key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: base.join(cert.get_ref()),
            key: base.join(key.get_ref()),
            client_ca: file.client_ca.map(|path| base.join(path)),
        }),
        (None, None) if file.client_ca.is_none() => None,
        (Some(cert), None) => {
            return Err(at(Some(cert.span()), "`server.cert`: needs `server.key`"));
        }
        (None, Some(key)) => {
            return Err(at(Some(key.span()), "`server.key`: needs `server.cert`"));
        }
        (None, None) => {
            return Err(at(
                None,
                "`server.client_ca`: needs `server.cert` and `server.key`",
            ));
        }
    };
    let plain_tcp = file.plain_tcp.unwrap_or(false);
    if plain_tcp && tls.is_some() {
        return Err(at(
            None,
            "`server.plain_tcp`: set together with TLS files; choose one",
        ));
    }
    let bounded =
        |value, name, range, unit, default| bounded(at, value, name, range, unit, default);
    Ok(ServerConfig {
        enabled: file.enabled.unwrap_or(true),
        listen,
        tls,
        plain_tcp,
        max_connections: bounded(
            file.max_connections,
            "server.max_connections",
            1..=1_000_000,
            "connections",
            defaults.max_connections,
        )?,
        max_connections_per_ip: bounded(
            file.max_connections_per_ip,
            "server.max_connections_per_ip",
            1..=1_000_000,
            "connections",
            defaults.max_connections_per_ip,
        )?,
        max_in_flight: bounded(
            file.max_in_flight,
            "server.max_in_flight",
            1..=65_536,
            "requests",
            defaults.max_in_flight,
        )?,
        idle_timeout_ms: bounded(
            file.idle_timeout_ms,
            "server.idle_timeout_ms",
            100..=86_400_000,
            "milliseconds",
            defaults.idle_timeout_ms,
        )?,
        frame_timeout_ms: bounded(
            file.frame_timeout_ms,
            "server.frame_timeout_ms",
            100..=3_600_000,
            "milliseconds",
            defaults.frame_timeout_ms,
        )?,
        frame_min_rate_kib: bounded(
            file.frame_min_rate_kib,
            "server.frame_min_rate_kib",
            1..=1 << 20,
            "KiB per second",
            defaults.frame_min_rate_kib,
        )?,
        handshake_timeout_ms: bounded(
            file.handshake_timeout_ms,
            "server.handshake_timeout_ms",
            100..=600_000,
            "milliseconds",
            defaults.handshake_timeout_ms,
        )?,
        outbound_buffer_kib: bounded(
            file.outbound_buffer_kib,
            "server.outbound_buffer_kib",
            16..=1 << 20,
            "KiB",
            defaults.outbound_buffer_kib,
        )?,
        write_stall_ms: bounded(
            file.write_stall_ms,
            "server.write_stall_ms",
            100..=3_600_000,
            "milliseconds",
            defaults.write_stall_ms,
        )?,
        memory_budget_mib: bounded(
            file.memory_budget_mib,
            "server.memory_budget_mib",
            1..=1 << 20,
            "MiB",
            defaults.memory_budget_mib,
        )?,
    })
}
