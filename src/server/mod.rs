//! The network server: TCP with TLS 1.3 on `mio`, in front of an
//! [`Engine`].
//!
//! One I/O thread owns the listener and every connection. It reads frames
//! (docs/protocol.md section 2) and submits them to the engine; the engine's
//! workers hand each reply to the connection's outbox (see `outbox.rs`)
//! and wake the I/O thread, which writes it back. The limits of
//! [`ServerConfig`] keep a connection from hurting the others:
//!
//! - a connection is read a quantum at a time (256 KiB or 64 frames),
//!   then the others get their turn;
//! - at `max_in_flight` requests in the engine, or when its requests in
//!   the engine and its replies waiting to be written hold
//!   `outbound_buffer_kib`, the server stops reading from it until replies
//!   go out; if its outbound buffer stays full for `write_stall_ms` it is
//!   closed;
//! - over `memory_budget_mib` for all connections (see
//!   `memory_budget.rs`), connections holding more than an equal share
//!   are not read;
//! - idle connections, frames that do not arrive whole in time and slow
//!   handshakes are closed after their timeouts; connections past
//!   `max_connections`, or `max_connections_per_ip` from one address, are
//!   closed on accept.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcp_engine::{Config, engine::EngineBuilder, server::Server};
//!
//! let config = Config::load("engine.toml".as_ref())?;
//! let engine = Arc::new(EngineBuilder::new(config.clone()).start()?);
//! let server = Server::start(Arc::clone(&engine), &config)?;
//! println!("listening on {}", server.local_addr());
//! // ... until told to stop:
//! server.shutdown();
//! # Ok::<(), mcp_engine::Error>(())
//! ```

mod client_addresses;
mod connection;
mod event_loop;
mod memory_budget;
#[doc(hidden)]
pub mod models;
mod outbox;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

pub use tls::{ALPN, load_certificates, load_roots, provider, server_config as tls_server_config};

use crate::config::{Config, ServerConfig};
use crate::engine::{Engine, Outcome, Reply, ReplySink, SinkId};
use crate::error::{Code, Error};
use crate::frame::write_frame;
use event_loop::EventLoop;
use memory_budget::Tag;
use outbox::{Mailroom, ReplyFrame, Wake};

/// What the I/O thread runs with; swapped whole on reload.
#[derive(Debug)]
struct Settings {
    config: ServerConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_message_size: usize,
}

impl Settings {
    fn of(config: &Config) -> Result<Settings, Error> {
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
        Ok(Settings {
            config: server.clone(),
            tls,
            max_message_size: usize::try_from(config.max_message_size).unwrap_or(usize::MAX),
        })
    }
}

/// Counters of what the server did with connections.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused_at_limit: AtomicU64,
    refused_per_ip: AtomicU64,
    open: AtomicU64,
    closed_idle: AtomicU64,
    closed_frame_timeout: AtomicU64,
    closed_handshake_timeout: AtomicU64,
    closed_stalled: AtomicU64,
    tls_failures: AtomicU64,
    framing_errors: AtomicU64,
    requests_read: AtomicU64,
    held_bytes: AtomicU64,
    held_peak_bytes: AtomicU64,
}

/// A snapshot of the server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed on accept because `max_connections` were open.
    pub refused_at_limit: u64,
    /// Connections closed on accept because their address had
    /// `max_connections_per_ip` open.
    pub refused_per_ip: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections closed by the idle timeout.
    pub closed_idle: u64,
    /// Connections closed because a frame did not arrive whole in time
    /// (`frame_timeout_ms`, `frame_min_rate_kib`).
    pub closed_frame_timeout: u64,
    /// Connections closed by the handshake timeout.
    pub closed_handshake_timeout: u64,
    /// Connections closed because their peer did not read their replies.
    pub closed_stalled: u64,
    /// Connections refused by TLS (version, ALPN, certificate, bad records).
    pub tls_failures: u64,
    /// Frames answered by the server itself (too large, bad codec byte).
    pub framing_errors: u64,
    /// Replies whose connection had closed before they were ready.
    pub replies_orphaned: u64,
    /// Requests read from connections and handed to the engine.
    pub requests_read: u64,
    /// Bytes the connections hold now against `memory_budget_mib`: partial
    /// frames, requests in the engine, replies waiting to be written.
    pub held_bytes: u64,
    /// The most [`held_bytes`](Self::held_bytes) has been.
    pub held_peak_bytes: u64,
}

/// Wakes the I/O thread.
struct IoWaker(mio::Waker);

impl Wake for IoWaker {
    fn wake(&self) {
        // Fails only if the poller is gone, i.e. the loop has ended.
        let _ = self.0.wake();
    }
}

/// State shared by the server handle, the I/O thread and the sink.
struct Shared {
    engine: Arc<Engine>,
    sink: SinkId,
    settings: ArcSwap<Settings>,
    mailroom: crate::sync::Arc<Mailroom<IoWaker>>,
    stopping: AtomicBool,
    counters: Counters,
}

/// The engine's sink for this server's replies.
struct ServerSink {
    mailroom: crate::sync::Arc<Mailroom<IoWaker>>,
}

impl ReplySink for ServerSink {
    fn deliver(&self, reply: Reply<'_>) {
        let mut bytes = Vec::new();
        if !reply.body.is_empty() {
            bytes.reserve_exact(crate::frame::HEADER_LEN + reply.body.len());
            // A reply body over 4 GiB cannot be framed; the request is
            // still concluded (with nothing written) rather than lost.
            let _ = write_frame(&mut bytes, reply.codec, reply.body);
        }
        let tag = Tag::decode(reply.tag);
        self.mailroom.deliver(
            tag,
            ReplyFrame {
                bytes,
                concludes_request: reply.outcome != Outcome::Sent,
                charge: tag.charge.bytes(),
            },
        );
    }
}

/// A running server. Dropping it shuts it down.
pub struct Server {
    shared: Arc<Shared>,
    io: Mutex<Option<JoinHandle<()>>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl Server {
    /// Listens on `config.server.listen` and serves `engine` until
    /// [`shutdown`](Self::shutdown). Refuses a config without TLS files
    /// unless it says `plain_tcp = true`.
    pub fn start(engine: Arc<Engine>, config: &Config) -> Result<Server, Error> {
        let settings = Settings::of(config)?;
        let listen = settings.config.listen;
        let slots = usize::try_from(settings.config.max_connections).unwrap_or(usize::MAX);
        let listener = std::net::TcpListener::bind(listen).map_err(|e| {
            Error::new(
                Code::ConfigurationError,
                format!("cannot listen on {listen}: {e}"),
            )
        })?;
        let io_error = |e: std::io::Error| Error::new(Code::NetworkError, e.to_string());
        let local_addr = listener.local_addr().map_err(io_error)?;
        listener.set_nonblocking(true).map_err(io_error)?;
        let poll = mio::Poll::new().map_err(io_error)?;
        let waker = mio::Waker::new(poll.registry(), event_loop::WAKER).map_err(io_error)?;
        let mailroom = crate::sync::Arc::new(Mailroom::new(slots, IoWaker(waker)));
        let sink = engine.register_sink(ServerSink {
            mailroom: crate::sync::Arc::clone(&mailroom),
        });
        let shared = Arc::new(Shared {
            engine,
            sink,
            settings: ArcSwap::from_pointee(settings),
            mailroom,
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let event_loop = EventLoop::new(
            poll,
            mio::net::TcpListener::from_std(listener),
            Arc::clone(&shared),
        )
        .map_err(io_error)?;
        let io = std::thread::Builder::new()
            .name("mcp-io".to_owned())
            .spawn(move || event_loop.run())
            .map_err(io_error)?;
        tracing::info!(%local_addr, tls = shared.settings.load().tls.is_some(), "listening");
        Ok(Server {
            shared,
            io: Mutex::new(Some(io)),
            local_addr,
        })
    }

    /// The address the server listens on (with the real port when the
    /// config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The engine behind the server.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.shared.engine
    }

    /// Applies a new config: the engine's (keys, rules, limits) and the
    /// server's (TLS certificates and limits, for new connections and
    /// reads from now on). The listen address and `max_connections` are
    /// fixed at start. A config that fails to load leaves everything as it
    /// was.
    pub fn reload(&self, config: &Config) -> Result<(), Error> {
        let settings = Settings::of(config)?;
        self.shared.engine.reload(config.clone())?;
        let old = self.shared.settings.load();
        if settings.config.listen != old.config.listen {
            tracing::warn!("`server.listen` changes only at restart");
        }
        self.shared.settings.store(Arc::new(settings));
        Ok(())
    }

    /// The server's counters.
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ServerStats {
            accepted: get(&c.accepted),
            refused_at_limit: get(&c.refused_at_limit),
            refused_per_ip: get(&c.refused_per_ip),
            open: get(&c.open),
            closed_idle: get(&c.closed_idle),
            closed_frame_timeout: get(&c.closed_frame_timeout),
            closed_handshake_timeout: get(&c.closed_handshake_timeout),
            closed_stalled: get(&c.closed_stalled),
            tls_failures: get(&c.tls_failures),
            framing_errors: get(&c.framing_errors),
            requests_read: get(&c.requests_read),
            held_bytes: get(&c.held_bytes),
            held_peak_bytes: get(&c.held_peak_bytes),
            replies_orphaned: self
                .shared
                .mailroom
                .undelivered
                .orphaned
                .load(Ordering::Relaxed),
        }
    }

    /// Stops accepting and reading, lets the engine answer everything it
    /// accepted (see [`Engine::shutdown`]), writes those replies, closes
    /// the connections and joins the I/O thread. Calling it again does
    /// nothing.
    pub fn shutdown(&self) {
        let Some(io) = self.io.lock().take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.mailroom.wake();
        self.shared.engine.shutdown();
        // The I/O thread ends once every connection is answered (or its
        // own deadline passes).
        self.shared.mailroom.wake();
        let _ = io.join();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
