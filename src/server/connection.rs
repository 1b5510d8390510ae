//! One client connection, as the I/O thread drives it: bytes in through TLS
//! (or not) and the frame decoder into the engine; reply frames from the
//! connection's outbox back out, within a bounded buffer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::memory_budget::{Charge, Tag};
use super::outbox::Outbox;
use crate::engine::{Engine, SinkId, Submission};
use crate::frame::{FrameDecoder, HEADER_LEN};
use crate::framed_connection::{ConnectionError, FramedConnection, Read};
use crate::sync::Arc;
use crate::transport_error::TransportErrors;

/// Why a connection is closed.
#[derive(Debug)]
pub(crate) enum Close {
    /// Its input ended and everything it asked was answered and written.
    Done,
    /// The socket or TLS failed.
    Failed(ConnectionError),
    /// Nothing happened on it for `idle_timeout_ms`.
    Idle,
    /// A frame did not arrive whole by its deadline (`frame_timeout_ms`,
    /// extended by `frame_min_rate_kib`).
    FrameTimeout,
    /// Its TLS handshake took longer than `handshake_timeout_ms`.
    HandshakeTimeout,
    /// Its outbound buffer stayed full for `write_stall_ms`.
    Stalled,
}

/// The limits a connection is driven with (from the server's settings).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    pub(crate) max_in_flight: usize,
    /// What its requests in the engine and its replies waiting to be
    /// written may hold together (`outbound_buffer_kib`).
    pub(crate) outbound_bytes: usize,
    /// What it may hold in all and still be read from: its share of the
    /// server's memory budget (see `memory_budget.rs`).
    pub(crate) share: usize,
}

/// Bytes one connection may have read in one service: past it, the
/// others get their turn before it gets another.
const READ_QUANTUM: u64 = 256 * 1024;

/// Frames one connection may have submitted in one service.
const FRAME_QUANTUM: usize = 64;

/// When a connection wants servicing again, beyond its own readiness
/// events and replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Its next event or reply will do.
    OnEvent,
    /// It used its quantum with input perhaps still waiting: in the next
    /// pass of the loop, after the others.
    NextPass,
    /// It holds more than its share of the server's budget: when the
    /// server is back under it.
    UnderBudget,
}

/// What a connection needs from the loop while it runs.
pub(crate) struct ServiceContext<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) sink: SinkId,
    pub(crate) limits: ConnectionLimits,
    pub(crate) errors: &'a mut TransportErrors,
    pub(crate) now: Instant,
    pub(crate) framing_errors: &'a AtomicU64,
    /// Requests read and handed to the engine.
    pub(crate) requests_read: &'a AtomicU64,
    /// Frames read and not yet handed to the engine (reused: empty between
    /// connections).
    pub(crate) batch: &'a mut Vec<Submission>,
}

impl ServiceContext<'_> {
    /// Hands the frames read so far to the engine, in one batch.
    fn submit_batch(&mut self) {
        if !self.batch.is_empty() {
            // Refusals are answered through the sink like any reply, so
            // they are counted in flight all the same.
            self.requests_read
                .fetch_add(self.batch.len() as u64, Ordering::Relaxed);
            self.engine.submit_batch(self.batch.drain(..));
        }
    }
}

/// Whether more requests are read from the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// Reading.
    Open,
    /// Not any more: the peer closed its side, a fatal framing error, or
    /// the server is draining. The connection closes once its requests are
    /// answered and written.
    Ended,
}

/// One connection.
pub(crate) struct Connection {
    pub(crate) wire: FramedConnection,
    pub(crate) peer: SocketAddr,
    pub(crate) slot: u32,
    generation: u32,
    /// The engine's routing key: a connection's messages stay on one
    /// worker, in order.
    key: u64,
    decoder: FrameDecoder,
    outbox: Arc<Outbox>,
    /// Requests submitted and not yet answered back into the outbox and
    /// taken from it.
    pub(crate) in_flight: usize,
    /// What those requests are charged (see `memory_budget.rs`).
    in_flight_bytes: usize,
    pub(crate) input: Input,
    pub(crate) opened_at: Instant,
    /// When bytes last moved, in or out.
    pub(crate) last_activity: Instant,
    /// The frame being received: since when, and the bytes received before
    /// its first (see [`Connection::frame_deadline`]). None while no
    /// partial frame is buffered, or while the server is not reading.
    frame_started: Option<(Instant, u64)>,
    /// Since when the outbound buffer has been full.
    pub(crate) full_since: Option<Instant>,
    /// When the loop is to service it again (set by the loop from
    /// [`Connection::service`]).
    pub(crate) resume: Resume,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("slot", &self.slot)
            .field("in_flight", &self.in_flight)
            .field("input", &self.input)
            .finish()
    }
}

/// What is needed to open a connection.
pub(crate) struct Opening {
    pub(crate) socket: TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) key: u64,
    pub(crate) tls: Option<rustls::ServerConnection>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) max_message_size: usize,
    pub(crate) now: Instant,
}

impl Connection {
    pub(crate) fn new(opening: Opening) -> Connection {
        Connection {
            wire: FramedConnection::new(opening.socket, opening.tls.map(rustls::Connection::from)),
            peer: opening.peer,
            slot: opening.slot,
            generation: opening.generation,
            key: opening.key,
            decoder: FrameDecoder::new(opening.max_message_size),
            outbox: opening.outbox,
            in_flight: 0,
            in_flight_bytes: 0,
            input: Input::Open,
            opened_at: opening.now,
            last_activity: opening.now,
            frame_started: None,
            full_since: None,
            resume: Resume::OnEvent,
        }
    }

    /// Whether the engine has nothing of this connection's (for the idle
    /// timeout: bytes buffered either way do not keep a connection open).
    pub(crate) fn is_quiet(&self) -> bool {
        self.in_flight == 0
    }

    /// When the frame being received must be whole: `timeout` after its
    /// first byte, plus a second for every `min_rate` bytes of it received
    /// so far. None while no frame is on its way.
    pub(crate) fn frame_deadline(&self, timeout: Duration, min_rate: u64) -> Option<Instant> {
        let (since, before) = self.frame_started?;
        let received = self.decoder.received().saturating_sub(before);
        let earned = Duration::from_secs_f64(received as f64 / min_rate.max(1) as f64);
        Some(since + timeout + earned)
    }

    /// What the connection holds against the server's budget: its partial
    /// frame, its requests in the engine (and so their replies in the
    /// outbox) and its outbound buffer.
    pub(crate) fn held(&self) -> usize {
        self.decoder
            .buffered()
            .saturating_add(self.in_flight_bytes)
            .saturating_add(self.wire.pending())
    }

    /// Takes replies, reads requests (up to one quantum), writes:
    /// everything that can be done now without blocking. `Err` means:
    /// close it.
    pub(crate) fn service(&mut self, cx: &mut ServiceContext<'_>) -> Result<Resume, Close> {
        let written = self.wire.written();
        let mut quantum = Quantum::new(self.decoder.received());
        let mut stopped;
        loop {
            // Replies first: taking them lowers the in-flight count, which
            // may let reading go on.
            let took = self.take_replies(cx);
            stopped = self.read_input(cx, &mut quantum)?;
            self.wire.flush().map_err(Close::Failed)?;
            // Writing may have made room for replies left in the outbox, or
            // for reading on: no event will come for either (the replies
            // are not queued again; the bytes are already in), so go on now.
            let room = self.wire.pending() < cx.limits.outbound_bytes;
            let replies_waiting = room && !self.outbox.is_empty();
            let read_again = stopped == Stopped::AtLimit && self.limit(cx).is_none();
            if !took && !replies_waiting && !read_again {
                break;
            }
        }
        if self.wire.pending() >= cx.limits.outbound_bytes {
            self.full_since.get_or_insert(cx.now);
        } else {
            self.full_since = None;
        }
        if self.wire.written() != written {
            self.last_activity = cx.now;
        }
        let limit = match stopped {
            Stopped::AtLimit => self.limit(cx),
            _ => None,
        };
        self.time_the_frame(cx.now, limit == Some(Limit::Own));
        if self.input == Input::Ended && self.in_flight == 0 && self.wire.is_flushed() {
            return Err(Close::Done);
        }
        Ok(match (stopped, limit) {
            (Stopped::Quantum, _) => Resume::NextPass,
            (Stopped::AtLimit, Some(Limit::Share)) => Resume::UnderBudget,
            // Below its own limits again once replies are taken, which
            // come with events of their own.
            _ => Resume::OnEvent,
        })
    }

    /// Starts or stops the clock of the frame being received. It runs only
    /// while part of a frame is buffered and the server reads: not while
    /// the connection is held back at its own limits (its peer is not the
    /// one being slow then). Held back by the server's budget, the clock
    /// goes on: otherwise peers that each hold a partial frame could hold
    /// the budget for ever.
    fn time_the_frame(&mut self, now: Instant, held_back: bool) {
        let buffered = self.decoder.buffered();
        if buffered == 0 || held_back || self.input == Input::Ended {
            self.frame_started = None;
        } else if self.frame_started.is_none() {
            let before = self.decoder.received().saturating_sub(buffered as u64);
            self.frame_started = Some((now, before));
        }
    }

    /// Gives back the buffers of a connection that holds nothing in them
    /// (see `EventLoop::sweep`).
    pub(crate) fn release_buffers(&mut self) {
        self.decoder.release_if_empty();
        self.wire.release_if_empty();
    }

    /// Stops reading; the connection closes once it is answered.
    pub(crate) fn end_input(&mut self) {
        self.input = Input::Ended;
    }

    /// Moves reply frames from the outbox into the outbound buffer while it
    /// has room (one frame may take it past its limit); whether it took
    /// any.
    fn take_replies(&mut self, cx: &ServiceContext<'_>) -> bool {
        self.outbox.mark_seen();
        let mut took = false;
        while self.wire.pending() < cx.limits.outbound_bytes {
            let Some(frame) = self.outbox.pop() else {
                break;
            };
            if frame.concludes_request {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.in_flight_bytes = self.in_flight_bytes.saturating_sub(frame.charge);
            }
            self.wire.out().extend_from_slice(&frame.bytes);
            took = true;
        }
        took
    }

    /// Which limit, if any, keeps the connection from taking another
    /// request now: its own (its in-flight count; or its requests in the
    /// engine and replies waiting to go out, which include the server's
    /// own Errors for bad frames), or its share of the server's budget.
    fn limit(&self, cx: &ServiceContext<'_>) -> Option<Limit> {
        let outgoing = self.in_flight_bytes.saturating_add(self.wire.pending());
        if self.in_flight >= cx.limits.max_in_flight || outgoing >= cx.limits.outbound_bytes {
            Some(Limit::Own)
        } else if self.held() >= cx.limits.share {
            Some(Limit::Share)
        } else {
            None
        }
    }

    /// Reads and submits requests until the socket has nothing more, the
    /// connection is at a limit or has used its quantum, or its input has
    /// ended. At a limit or the quantum, reading must be tried again later
    /// by the caller: no readiness event will come for bytes already
    /// waiting.
    fn read_input(
        &mut self,
        cx: &mut ServiceContext<'_>,
        quantum: &mut Quantum,
    ) -> Result<Stopped, Close> {
        loop {
            self.submit_frames(cx, quantum);
            if self.input == Input::Ended {
                return Ok(Stopped::Drained);
            }
            if self.limit(cx).is_some() {
                return Ok(Stopped::AtLimit);
            }
            if quantum.used(self.decoder.received()) {
                return Ok(Stopped::Quantum);
            }
            // Over the budget, no further than the connection's share.
            let room = cx.limits.share.saturating_sub(self.held());
            match self.wire.read_at_most(&mut self.decoder, room) {
                Ok(Read::Progress) => self.last_activity = cx.now,
                Ok(Read::WouldBlock) => return Ok(Stopped::Drained),
                Ok(Read::Ended) => self.input = Input::Ended,
                Err(e) => return Err(Close::Failed(e)),
            }
        }
    }

    /// Submits the complete frames the decoder holds, up to the limits, in
    /// one batch (one worker's intake entered once). A framing fault is
    /// answered here, after the frames before it are submitted; a fatal
    /// one ends the input.
    fn submit_frames(&mut self, cx: &mut ServiceContext<'_>, quantum: &mut Quantum) {
        while self.input == Input::Open
            && self.limit(cx).is_none()
            && quantum.frames < FRAME_QUANTUM
        {
            let Some(next) = self.decoder.next_frame() else {
                break;
            };
            match next {
                Ok(frame) => {
                    // The next frame's clock starts when its bytes do.
                    self.frame_started = None;
                    quantum.frames += 1;
                    let charge = Charge::covering(frame.body.len() + HEADER_LEN);
                    self.in_flight += 1;
                    self.in_flight_bytes += charge.bytes();
                    let tag = Tag {
                        slot: self.slot,
                        generation: self.generation,
                        charge,
                    };
                    cx.batch.push(Submission {
                        sink: cx.sink,
                        tag: tag.encode(),
                        peer: self.peer.ip(),
                        key: self.key,
                        codec: frame.codec,
                        body: frame.body.to_vec(),
                    });
                }
                Err(fault) => {
                    cx.submit_batch();
                    cx.framing_errors.fetch_add(1, Ordering::Relaxed);
                    cx.errors.write(self.wire.out(), &fault.to_error());
                    if fault.is_fatal() {
                        self.input = Input::Ended;
                    }
                }
            }
        }
        cx.submit_batch();
    }
}

/// Which limit holds a connection back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    /// Its own: in flight, or outgoing bytes.
    Own,
    /// Its share of the server's budget.
    Share,
}

/// Why reading stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stopped {
    /// Nothing more to read now (or ever).
    Drained,
    /// A limit holds the connection back.
    AtLimit,
    /// It used its quantum.
    Quantum,
}

/// What one service has read and submitted, against the quantum.
struct Quantum {
    received_before: u64,
    frames: usize,
}

impl Quantum {
    fn new(received: u64) -> Quantum {
        Quantum {
            received_before: received,
            frames: 0,
        }
    }

    /// Whether the service has had its share, `received` bytes having
    /// been read in all.
    fn used(&self, received: u64) -> bool {
        self.frames >= FRAME_QUANTUM
            || received.saturating_sub(self.received_before) >= READ_QUANTUM
    }
}
