//! The network server: TCP with TLS 1.3 on `mio`, in front of an
//! [`Engine`].
//!
//! One I/O thread owns the listener and every connection. It reads frames
//! (docs/protocol.md section 2) and submits them to the engine; the engine's
//! workers hand each reply to the connection's outbox (see `outbox.rs`)
//! and wake the I/O thread, which writes it back. The limits of
//! [`ServerConfig`](crate::config::ServerConfig) keep a connection from hurting the others:
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
mod outbox;
mod settings;
mod state;
mod stats;
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::config::Config;
use crate::engine::{Engine, Outcome, Reply, ReplySink};
use crate::error::{Code, Error};
use crate::frame::write_frame;
use event_loop::EventLoop;
use memory_budget::Tag;
use outbox::{Mailroom, ReplyFrame};
use settings::ServerSettings;
use state::{IoWaker, ServerShared};
use stats::ServerCounters;
pub use stats::ServerStats;

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
    shared: Arc<ServerShared>,
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
        let settings = ServerSettings::of(config)?;
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
        let shared = Arc::new(ServerShared {
            engine,
            sink,
            settings: ArcSwap::from_pointee(settings),
            mailroom,
            stopping: AtomicBool::new(false),
            counters: ServerCounters::default(),
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
        let settings = ServerSettings::of(config)?;
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
