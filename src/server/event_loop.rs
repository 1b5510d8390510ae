//! The I/O thread: one `mio` poll over the listener, every connection and
//! the waker that replies ring.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use super::client_addresses::ClientAddresses;
use super::connection::{Close, Connection, ConnectionLimits, Opening, Resume, ServiceContext};
use super::memory_budget::MemoryBudget;
use super::settings::ServerSettings;
use super::state::ServerShared;
use crate::engine::Submission;
use crate::framed_connection::ConnectionError;
use crate::transport_error::TransportErrors;

const LISTENER: Token = Token(0);
pub(super) const WAKER: Token = Token(1);
/// Connection tokens are their slot plus this.
const FIRST_CONNECTION: usize = 2;

/// How often timeouts are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// A connection with no bytes moving for this long gives back its empty
/// buffers (a busy one keeps them, to spare the allocator).
const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// Room in an outbox beyond `max_in_flight`, for Commands the engine sends
/// to the peer on its own.
const OUTBOX_SPARE: usize = 64;

pub(super) struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    shared: Arc<ServerShared>,
    connections: Vec<Option<Connection>>,
    free: Vec<u32>,
    next_generation: u32,
    next_key: u64,
    errors: TransportErrors,
    ready: Vec<u32>,
    /// A connection's frames on their way to the engine (see `ServiceContext`).
    batch: Vec<Submission>,
    /// Open connections per client address (`max_connections_per_ip`).
    addresses: ClientAddresses,
    /// What the connections hold against `memory_budget_mib`.
    budget: MemoryBudget,
    /// Connections that used their quantum, to be serviced again in the
    /// next pass.
    carried: Vec<u32>,
    /// Connections held back by the budget, to be serviced again once the
    /// server is under it.
    parked: Vec<u32>,
}

impl EventLoop {
    pub(super) fn new(
        poll: Poll,
        mut listener: TcpListener,
        shared: Arc<ServerShared>,
    ) -> io::Result<EventLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(EventLoop {
            poll,
            listener: Some(listener),
            shared,
            connections: Vec::new(),
            free: Vec::new(),
            next_generation: 0,
            next_key: 0,
            errors: TransportErrors::new(),
            ready: Vec::new(),
            batch: Vec::new(),
            addresses: ClientAddresses::default(),
            budget: MemoryBudget::default(),
            carried: Vec::new(),
            parked: Vec::new(),
        })
    }

    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut last_sweep = Instant::now();
        let mut drain_deadline: Option<Instant> = None;
        loop {
            if self.shared.stopping.load(Ordering::Acquire) && drain_deadline.is_none() {
                drain_deadline = Some(self.begin_drain());
            }
            if let Some(deadline) = drain_deadline
                && (self.open_count() == 0 || Instant::now() >= deadline)
            {
                self.close_all();
                return;
            }
            let timeout = if !self.carried.is_empty() {
                // Input is waiting: look for events, but do not sleep.
                Duration::ZERO
            } else if drain_deadline.is_some() {
                Duration::from_millis(10)
            } else {
                SWEEP_EVERY
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "poll failed; the server stops");
                self.close_all();
                return;
            }
            let settings = self.shared.settings.load_full();
            self.budget
                .set_limit(Self::bytes(settings.config.memory_budget_mib, 1024 * 1024));
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(&settings),
                    WAKER => {}
                    Token(token) => {
                        let slot = token.wrapping_sub(FIRST_CONNECTION);
                        self.service(u32::try_from(slot).unwrap_or(u32::MAX), &settings);
                    }
                }
            }
            self.take_replies(&settings);
            // One more quantum for each connection that used its last.
            let carried = std::mem::take(&mut self.carried);
            self.resume(&carried, Resume::NextPass, &settings);
            let now = Instant::now();
            let sweep = now.duration_since(last_sweep) >= SWEEP_EVERY;
            // Connections held back by the budget, once it has room (or,
            // each sweep, to see whether their share grew).
            if !self.parked.is_empty()
                && (self.budget.share(self.open_count_fast()) == usize::MAX || sweep)
            {
                let parked = std::mem::take(&mut self.parked);
                self.resume(&parked, Resume::UnderBudget, &settings);
            }
            if sweep {
                last_sweep = now;
                self.sweep(&settings, now);
            }
            self.publish_held();
        }
    }

    /// Publishes what the connections hold (for [`ServerStats`]).
    ///
    /// [`ServerStats`]: super::ServerStats
    fn publish_held(&self) {
        let held = self.budget.held() as u64;
        let counters = &self.shared.counters;
        counters.held_bytes.store(held, Ordering::Relaxed);
        counters.held_peak_bytes.fetch_max(held, Ordering::Relaxed);
    }

    /// Services every connection whose outbox has news.
    fn take_replies(&mut self, settings: &ServerSettings) {
        let mut ready = std::mem::take(&mut self.ready);
        if self.shared.mailroom.collect(|slot| ready.push(slot)) {
            ready.extend(self.connections.iter().flatten().map(|c| c.slot));
        }
        for &slot in &ready {
            self.service(slot, settings);
        }
        ready.clear();
        self.ready = ready;
    }

    fn open_count(&self) -> usize {
        self.connections.iter().flatten().count()
    }

    /// `value` units of `unit` bytes, saturating.
    fn bytes(value: u64, unit: usize) -> usize {
        usize::try_from(value)
            .unwrap_or(usize::MAX)
            .saturating_mul(unit)
    }

    fn limits(&self, settings: &ServerSettings) -> ConnectionLimits {
        ConnectionLimits {
            max_in_flight: usize::try_from(settings.config.max_in_flight).unwrap_or(usize::MAX),
            outbound_bytes: Self::bytes(settings.config.outbound_buffer_kib, 1024),
            share: self.budget.share(self.open_count_fast()),
        }
    }

    /// Services again the connections in `slots` still waiting to `resume`
    /// so (a slot closed and reused since is skipped).
    fn resume(&mut self, slots: &[u32], resume: Resume, settings: &ServerSettings) {
        for &slot in slots {
            if let Some(Some(connection)) = self.connections.get_mut(slot as usize)
                && connection.resume == resume
            {
                connection.resume = Resume::OnEvent;
                self.service(slot, settings);
            }
        }
    }

    /// Does what connection `slot` can do now; closes it if it is done or
    /// failed.
    fn service(&mut self, slot: u32, settings: &ServerSettings) {
        let limits = self.limits(settings);
        let Some(Some(connection)) = self.connections.get_mut(slot as usize) else {
            return;
        };
        let held_before = connection.held();
        let mut cx = ServiceContext {
            engine: &self.shared.engine,
            sink: self.shared.sink,
            limits,
            errors: &mut self.errors,
            now: Instant::now(),
            framing_errors: &self.shared.counters.framing_errors,
            requests_read: &self.shared.counters.requests_read,
            batch: &mut self.batch,
        };
        let serviced = connection.service(&mut cx);
        self.budget.moved(held_before, connection.held());
        match serviced {
            Ok(resume) => {
                let waiting = connection.resume;
                connection.resume = resume;
                if resume != waiting {
                    match resume {
                        Resume::NextPass => self.carried.push(slot),
                        Resume::UnderBudget => self.parked.push(slot),
                        Resume::OnEvent => {}
                    }
                }
            }
            Err(why) => self.close(slot, why),
        }
    }

    fn accept(&mut self, settings: &ServerSettings) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, say: the listener stays, the
                    // backlog waits for the next readiness.
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            };
            let shared = Arc::clone(&self.shared);
            let counters = &shared.counters;
            let limit = usize::try_from(settings.config.max_connections).unwrap_or(usize::MAX);
            let per_ip = settings.config.max_connections_per_ip;
            if !self.addresses.admits(peer.ip(), per_ip) {
                counters.refused_per_ip.fetch_add(1, Ordering::Relaxed);
                drop(socket);
                continue;
            }
            let Some(slot) = self.free_slot(limit) else {
                counters.refused_at_limit.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, "connection refused: max_connections reached");
                drop(socket);
                continue;
            };
            if let Err(e) = self.open(slot, socket, peer, settings) {
                tracing::warn!(%peer, error = %e, "cannot set up connection");
                self.free.push(slot);
                continue;
            }
            self.addresses.opened(peer.ip());
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            counters.open.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, slot, "connection open");
        }
    }

    /// A free slot below `limit` (and below the mailroom's size).
    fn free_slot(&mut self, limit: usize) -> Option<u32> {
        let limit = limit.min(self.shared.mailroom.capacity());
        if self.open_count_fast() >= limit {
            return None;
        }
        if let Some(slot) = self.free.pop() {
            return Some(slot);
        }
        let slot = u32::try_from(self.connections.len()).ok()?;
        self.connections.push(None);
        Some(slot)
    }

    /// Open connections: slots handed out minus free ones.
    fn open_count_fast(&self) -> usize {
        self.connections.len() - self.free.len()
    }

    fn open(
        &mut self,
        slot: u32,
        mut socket: mio::net::TcpStream,
        peer: std::net::SocketAddr,
        settings: &ServerSettings,
    ) -> io::Result<()> {
        socket.set_nodelay(true)?;
        let tls = match &settings.tls {
            Some(config) => {
                Some(rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?)
            }
            None => None,
        };
        self.poll.registry().register(
            &mut socket,
            Token(slot as usize + FIRST_CONNECTION),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_key += 1;
        let capacity = usize::try_from(settings.config.max_in_flight)
            .unwrap_or(usize::MAX)
            .saturating_add(OUTBOX_SPARE);
        let outbox = self.shared.mailroom.outbox(capacity);
        self.shared
            .mailroom
            .open(slot, self.next_generation, crate::sync::Arc::clone(&outbox));
        let connection = Connection::new(Opening {
            socket,
            peer,
            slot,
            generation: self.next_generation,
            key: self.next_key,
            tls,
            outbox,
            max_message_size: settings.max_message_size,
            now: Instant::now(),
        });
        if let Some(place) = self.connections.get_mut(slot as usize) {
            *place = Some(connection);
        }
        Ok(())
    }

    fn close(&mut self, slot: u32, why: Close) {
        let Some(place) = self.connections.get_mut(slot as usize) else {
            return;
        };
        let Some(mut connection) = place.take() else {
            return;
        };
        let counters = &self.shared.counters;
        match &why {
            Close::Done => {
                connection.wire.close_notify();
                tracing::debug!(peer = %connection.peer, "connection closed");
            }
            Close::Failed(ConnectionError::Io(e)) => {
                tracing::debug!(peer = %connection.peer, error = %e, "connection failed")
            }
            Close::Failed(ConnectionError::Tls(e)) => {
                counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                tracing::info!(peer = %connection.peer, error = %e, "TLS refused");
            }
            Close::Idle => {
                counters.closed_idle.fetch_add(1, Ordering::Relaxed);
                connection.wire.close_notify();
                tracing::debug!(peer = %connection.peer, "idle connection closed");
            }
            Close::FrameTimeout => {
                counters
                    .closed_frame_timeout
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    peer = %connection.peer,
                    "a frame did not arrive whole within frame_timeout_ms; connection closed"
                );
            }
            Close::HandshakeTimeout => {
                counters
                    .closed_handshake_timeout
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(peer = %connection.peer, "TLS handshake timed out");
            }
            Close::Stalled => {
                counters.closed_stalled.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    peer = %connection.peer,
                    in_flight = connection.in_flight,
                    "peer does not read its replies; connection closed"
                );
            }
        }
        let _ = self.poll.registry().deregister(&mut connection.wire.socket);
        self.budget.moved(connection.held(), 0);
        self.addresses.closed(connection.peer.ip());
        self.shared.mailroom.close(slot);
        counters.open.fetch_sub(1, Ordering::Relaxed);
        self.free.push(slot);
    }

    /// Closes connections past their timeouts.
    fn sweep(&mut self, settings: &ServerSettings, now: Instant) {
        let config = &settings.config;
        let idle = Duration::from_millis(config.idle_timeout_ms);
        let handshake = Duration::from_millis(config.handshake_timeout_ms);
        let stall = Duration::from_millis(config.write_stall_ms);
        let frame = Duration::from_millis(config.frame_timeout_ms);
        let min_rate = config.frame_min_rate_kib.saturating_mul(1024);
        let mut doomed = Vec::new();
        for connection in self.connections.iter().flatten() {
            if connection.wire.is_handshaking()
                && now.duration_since(connection.opened_at) > handshake
            {
                doomed.push((connection.slot, Close::HandshakeTimeout));
            } else if connection
                .full_since
                .is_some_and(|since| now.duration_since(since) > stall)
            {
                doomed.push((connection.slot, Close::Stalled));
            } else if connection
                .frame_deadline(frame, min_rate)
                .is_some_and(|deadline| now > deadline)
            {
                doomed.push((connection.slot, Close::FrameTimeout));
            } else if connection.is_quiet() && now.duration_since(connection.last_activity) > idle {
                doomed.push((connection.slot, Close::Idle));
            }
        }
        for connection in self.connections.iter_mut().flatten() {
            if now.duration_since(connection.last_activity) > RELEASE_AFTER {
                connection.release_buffers();
            }
        }
        for (slot, why) in doomed {
            self.close(slot, why);
        }
    }

    /// Stops accepting and reading; returns the deadline after which the
    /// remaining connections are closed regardless.
    fn begin_drain(&mut self) -> Instant {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let slots: Vec<u32> = self.connections.iter().flatten().map(|c| c.slot).collect();
        for connection in self.connections.iter_mut().flatten() {
            connection.end_input();
        }
        let settings = self.shared.settings.load_full();
        for slot in slots {
            self.service(slot, &settings);
        }
        let drain_ms = self.shared.engine.config().engine.drain_ms;
        // The engine's drain, its grace for stragglers, and time to write.
        Instant::now() + Duration::from_millis(drain_ms) + Duration::from_secs(7)
    }

    fn close_all(&mut self) {
        let slots: Vec<u32> = self.connections.iter().flatten().map(|c| c.slot).collect();
        for slot in slots {
            self.close(slot, Close::Done);
        }
    }
}
