//! The NATS ingress (feature `nats`): an engine serving a subject in a
//! queue group, so that several engines behind one broker share its load.
//!
//! One thread runs the maintained client (`async-nats`) on a one-thread
//! tokio runtime of its own. It subscribes to the request subject and the
//! event subject in the queue group, hands each message to the engine's
//! bounded queues (`Engine::submit_batch`, a burst at a time), and
//! publishes each reply to its request's reply subject. The engine's
//! workers hand replies back through a channel as large as the in-flight
//! window, so a worker never waits for the broker.
//!
//! What happens to each message taken from the broker:
//!
//! - it gets exactly one reply, published to its reply subject: the
//!   engine's, or the ingress's own Error when its codec cannot be told
//!   (`invalid_format`), it is too large (`message_too_large`), or
//!   `max_in_flight` messages are already in the engine
//!   (`resource_exhausted`); a full engine queue is answered
//!   `resource_exhausted` by the engine. Nothing is dropped silently;
//! - an event (on the event subject) is handed to its subscribers and
//!   nothing is published back;
//! - a reply that cannot be published (the broker gone past the client's
//!   buffer, a reply over the broker's size limit) is counted in
//!   [`NatsStats::unpublished`] and logged; the requester sees a timeout.
//!
//! The client reconnects on its own, and subscribes again. Core NATS
//! delivers at most once: a request lost with a broker or an engine comes
//! back to its requester as a timeout, and `docs/scaling.md` says how to
//! retry it safely.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcp_engine::{Config, engine::EngineBuilder, nats::NatsIngress};
//!
//! let config = Config::from_toml("[nats]\nurls = [\"nats://127.0.0.1:4222\"]\n", "inline")?;
//! let engine = Arc::new(EngineBuilder::new(config.clone()).start()?);
//! let ingress = NatsIngress::start(Arc::clone(&engine), &config)?;
//! // ... until told to stop: stop taking messages, publish what is in flight.
//! ingress.shutdown();
//! engine.shutdown();
//! # Ok::<(), mcp_engine::Error>(())
//! ```

mod binding;
mod connect;
mod ingress;
#[doc(hidden)]
pub mod local_broker;
mod request;

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use crate::codec::Limits;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Code, Error};

pub use binding::{CODEC_HEADER, read_envelope};
pub use request::request;

/// What the ingress did, counted since it started.
#[derive(Debug, Default)]
pub(crate) struct IngressCounters {
    received: AtomicU64,
    published: AtomicU64,
    refused_at_window: AtomicU64,
    malformed: AtomicU64,
    unpublished: AtomicU64,
    unanswerable: AtomicU64,
    abandoned: AtomicU64,
    disconnects: AtomicU64,
    connects: AtomicU64,
    connected: AtomicBool,
}

impl IngressCounters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a connection event from the client.
    fn record(&self, event: &async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                IngressCounters::add(&self.connects);
                self.connected.store(true, Ordering::Relaxed);
                tracing::info!("NATS: connected");
            }
            async_nats::Event::Disconnected => {
                IngressCounters::add(&self.disconnects);
                self.connected.store(false, Ordering::Relaxed);
                tracing::warn!("NATS: disconnected; reconnecting");
            }
            async_nats::Event::SlowConsumer(sid) => {
                tracing::warn!(sid, "NATS: slow consumer, the broker dropped messages");
            }
            other => tracing::info!(event = %other, "NATS"),
        }
    }

    fn snapshot(&self) -> NatsStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        NatsStats {
            received: get(&self.received),
            published: get(&self.published),
            refused_at_window: get(&self.refused_at_window),
            malformed: get(&self.malformed),
            unpublished: get(&self.unpublished),
            unanswerable: get(&self.unanswerable),
            abandoned: get(&self.abandoned),
            disconnects: get(&self.disconnects),
            reconnects: get(&self.connects).saturating_sub(1),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of what the ingress did since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatsStats {
    /// Messages taken from the broker (requests and events).
    pub received: u64,
    /// Replies published.
    pub published: u64,
    /// Requests answered `resource_exhausted` because `max_in_flight`
    /// messages were in the engine.
    pub refused_at_window: u64,
    /// Messages answered by the ingress itself: no codec, or too large.
    pub malformed: u64,
    /// Replies that could not be published (logged); their requesters see
    /// a timeout.
    pub unpublished: u64,
    /// Replies with nowhere to go: their request had no reply subject.
    pub unanswerable: u64,
    /// Messages still in the engine when shutdown stopped waiting for them
    /// (`drain_timeout_ms`); their replies are not published.
    pub abandoned: u64,
    /// Times the connection to the broker was lost.
    pub disconnects: u64,
    /// Times it was made again.
    pub reconnects: u64,
    /// Whether the client is connected now.
    pub connected: bool,
}

/// The ingress's counters, read from any thread: see
/// [`NatsIngress::stats_reader`].
#[derive(Clone, Debug)]
pub struct NatsStatsReader(Arc<IngressCounters>);

impl NatsStatsReader {
    /// What the ingress did so far.
    pub fn stats(&self) -> NatsStats {
        self.0.snapshot()
    }
}

/// The running ingress: [`shutdown`](Self::shutdown) (or drop) stops it.
#[derive(Debug)]
pub struct NatsIngress {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<IngressCounters>,
}

impl NatsIngress {
    /// Connects to the broker of `config.nats` and starts serving its
    /// subjects with `engine`. Fails if the section is missing, a
    /// credential file cannot be read, or no broker answers within
    /// `connect_timeout_ms`.
    pub fn start(engine: Arc<Engine>, config: &Config) -> Result<NatsIngress, Error> {
        let Some(nats) = config.nats.clone() else {
            return Err(Error::new(
                Code::ConfigurationError,
                "no `[nats]` section in the config",
            ));
        };
        let counters = Arc::new(IngressCounters::default());
        let setup = ingress::Setup {
            peer: broker_ip(&nats.urls),
            max_message_size: Limits::from_config(config).max_message_size,
            config: nats,
            engine,
            counters: Arc::clone(&counters),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("mcp-nats".into())
            .spawn(move || ingress::run_on_own_runtime(setup, ready_tx, stop_rx))
            .map_err(|e| {
                Error::new(
                    Code::InternalError,
                    format!("cannot start the NATS thread: {e}"),
                )
            })?;
        let started = ready_rx.recv().unwrap_or_else(|_| {
            Err(Error::new(
                Code::InternalError,
                "the NATS thread ended while connecting",
            ))
        });
        match started {
            Ok(()) => Ok(NatsIngress {
                stop: Some(stop_tx),
                thread: Some(thread),
                counters,
            }),
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    /// What the ingress did so far.
    pub fn stats(&self) -> NatsStats {
        self.counters.snapshot()
    }

    /// Reads what the ingress did from another thread (the admin
    /// endpoint's), for as long as the reader is kept.
    pub fn stats_reader(&self) -> NatsStatsReader {
        NatsStatsReader(Arc::clone(&self.counters))
    }

    /// Stops taking messages (unsubscribes, and takes those the broker had
    /// already sent), publishes the replies of those in the engine (waiting
    /// up to `drain_timeout_ms`), flushes and disconnects. The engine is
    /// left running: it may serve other transports.
    pub fn shutdown(mut self) -> NatsStats {
        self.stop_and_join();
        self.stats()
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for NatsIngress {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The address requests through the broker are seen from, for the IP
/// rules of `[authorization]`: the first broker URL's, resolved now; the
/// unspecified address if it does not resolve.
fn broker_ip(urls: &[String]) -> IpAddr {
    let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let Some(url) = urls.first() else {
        return unspecified;
    };
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let with_port = if host_port.ends_with(']') || !host_port.contains(':') {
        format!("{host_port}:4222")
    } else {
        host_port.to_owned()
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map_or(unspecified, |addr| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_address_is_read_from_the_first_url() {
        let ip = |url: &str| broker_ip(&[url.to_owned()]);
        assert_eq!(
            ip("nats://10.1.2.3:4222"),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            ip("tls://u:p@10.1.2.3"),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(ip("nats://[::1]:4222"), "::1".parse::<IpAddr>().unwrap());
        assert_eq!(ip("[::1]"), "::1".parse::<IpAddr>().unwrap());
        assert!(ip("nats://localhost:4222").is_loopback());
        assert_eq!(ip("nats://no such host"), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(broker_ip(&[]), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
}
