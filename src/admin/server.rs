//! [`AdminServer`]: the admin endpoint's listener and its one thread.
//!
//! One request per connection (`Connection: close`), on a mio loop of its
//! own, off the message path. What a peer can hold is bounded: at most
//! [`AdminLimits::max_connections`] connections (more are closed as they
//! are accepted), each for at most [`AdminLimits::timeout`] from accept to
//! the last byte of its response, with a request head of at most
//! [`AdminLimits::max_head_bytes`].

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::Exposition;
use super::request::{Asked, read_head, write_response};
use crate::error::{Code, Error};

/// The content type of the Prometheus text exposition format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the engine should be sent traffic (`/readyz`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Listening, workers running, keys loaded, brokers connected.
    Ready,
    /// Not now, and why (the 503's body).
    NotReady(String),
}

/// What the endpoint serves: the metrics text and the readiness, asked
/// for on the admin thread whenever a request comes.
pub trait AdminSource: Send + Sync + 'static {
    /// Appends every metric in the Prometheus text format 0.0.4.
    fn write_metrics(&self, out: &mut String);
    /// Whether to take traffic now.
    fn readiness(&self) -> Readiness;
}

/// What one peer, and all of them, may hold of the admin endpoint.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AdminLimits {
    /// Connections open at once; more are closed as they are accepted.
    pub max_connections: usize,
    /// The largest request head (request line and headers).
    pub max_head_bytes: usize,
    /// From accept to the last byte of the response.
    pub timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> AdminLimits {
        AdminLimits {
            max_connections: 64,
            max_head_bytes: 8 * 1024,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What the endpoint did, counted since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminStats {
    /// Responses written whole (any status).
    pub responses: u64,
    /// Connections closed as they were accepted: the limit was reached.
    pub refused: u64,
    /// Connections closed at their timeout, before their response was out.
    pub timed_out: u64,
}

#[derive(Debug, Default)]
struct Counters {
    responses: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> AdminStats {
        AdminStats {
            responses: self.responses.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
        }
    }
}

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// The admin endpoint, serving until stopped or dropped.
pub struct AdminServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl AdminServer {
    /// Listens on `listen` (port 0: a free one) and serves `source` from a
    /// thread of its own.
    pub fn start(
        listen: SocketAddr,
        limits: AdminLimits,
        source: Arc<dyn AdminSource>,
    ) -> Result<AdminServer, Error> {
        let refuse = |what: &str, e: io::Error| {
            Error::new(
                Code::ConfigurationError,
                format!("admin endpoint on {listen}: {what}: {e}"),
            )
        };
        let mut listener = TcpListener::bind(listen).map_err(|e| refuse("cannot listen", e))?;
        let addr = listener.local_addr().map_err(|e| refuse("no address", e))?;
        let poll = Poll::new().map_err(|e| refuse("no poll", e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| refuse("cannot register", e))?;
        let waker =
            Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| refuse("no waker", e))?);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let admin = AdminLoop {
            poll,
            listener,
            connections: Vec::new(),
            open: 0,
            limits,
            source,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
        };
        let thread = std::thread::Builder::new()
            .name("mcp-admin".to_owned())
            .spawn(move || admin.run())
            .map_err(|e| refuse("no thread", e))?;
        Ok(AdminServer {
            addr,
            stop,
            waker,
            counters,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it did so far.
    pub fn stats(&self) -> AdminStats {
        self.counters.snapshot()
    }

    /// Closes the listener and every connection, and waits for the thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// One request's connection.
struct Connection {
    stream: TcpStream,
    head: Vec<u8>,
    /// The response, once there is one, and how much of it is out.
    out: Vec<u8>,
    written: usize,
    answered: bool,
    deadline: Instant,
}

/// What a connection came to after an event.
enum Next {
    Open,
    Close,
}

struct AdminLoop {
    poll: Poll,
    listener: TcpListener,
    connections: Vec<Option<Connection>>,
    open: usize,
    limits: AdminLimits,
    source: Arc<dyn AdminSource>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl AdminLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::Acquire) {
            let wait = self.until_next_deadline();
            if let Err(e) = self.poll.poll(&mut events, Some(wait))
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "admin endpoint: poll failed; it stops");
                return;
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(token) => {
                        let index = token.saturating_sub(FIRST_CONNECTION);
                        if matches!(self.serve(index), Next::Close) {
                            self.close(index);
                        }
                    }
                }
            }
            self.close_overdue();
        }
    }

    /// The poll's wait: to the nearest deadline, at most a second.
    fn until_next_deadline(&self) -> Duration {
        let now = Instant::now();
        self.connections
            .iter()
            .flatten()
            .map(|connection| connection.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1))
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.open >= self.limits.max_connections {
                        // Closed at once: a flood holds no slot.
                        self.counters.refused.fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                        continue;
                    }
                    self.insert(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors, say: the next connection tries again.
                    tracing::warn!(error = %e, "admin endpoint: accept failed");
                    return;
                }
            }
        }
    }

    fn insert(&mut self, mut stream: TcpStream) {
        let index = match self.connections.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.connections.push(None);
                self.connections.len() - 1
            }
        };
        let token = Token(FIRST_CONNECTION + index);
        if self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            return;
        }
        if let Some(slot) = self.connections.get_mut(index) {
            *slot = Some(Connection {
                stream,
                head: Vec::new(),
                out: Vec::new(),
                written: 0,
                answered: false,
                deadline: Instant::now() + self.limits.timeout,
            });
            self.open += 1;
        }
    }

    fn close(&mut self, index: usize) {
        if let Some(mut connection) = self.connections.get_mut(index).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut connection.stream);
            self.open = self.open.saturating_sub(1);
        }
    }

    fn close_overdue(&mut self) {
        let now = Instant::now();
        for index in 0..self.connections.len() {
            let overdue = self
                .connections
                .get(index)
                .and_then(Option::as_ref)
                .is_some_and(|connection| connection.deadline <= now);
            if overdue {
                self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                self.close(index);
            }
        }
    }

    /// Reads what came, answers once the head is whole, writes what the
    /// socket takes.
    fn serve(&mut self, index: usize) -> Next {
        let limits = &self.limits;
        let source = &self.source;
        let counters = &self.counters;
        let Some(Some(connection)) = self.connections.get_mut(index) else {
            return Next::Open;
        };
        if !connection.answered {
            // A peer may close its side once its request is out (half-close):
            // what it sent is still read.
            let still_sending = match read_more(connection, limits.max_head_bytes) {
                Ok(open) => open,
                Err(_) => return Next::Close,
            };
            let asked = match read_head(&connection.head) {
                Some(asked) => Some(asked),
                None if connection.head.len() >= limits.max_head_bytes => {
                    Some((Asked::HeadTooLarge, false))
                }
                None => None,
            };
            match asked {
                Some((asked, head_only)) => {
                    respond(
                        &mut connection.out,
                        asked,
                        head_only,
                        source.as_ref(),
                        counters,
                    );
                    connection.answered = true;
                }
                // It closed before a whole head: nothing to answer.
                None if !still_sending => return Next::Close,
                None => return Next::Open,
            }
        }
        match write_more(connection) {
            Ok(true) => {
                self.counters.responses.fetch_add(1, Ordering::Relaxed);
                Next::Close
            }
            Ok(false) => Next::Open,
            Err(_) => Next::Close,
        }
    }
}

/// Reads into the connection's head, up to `max` bytes in all: whether the
/// peer may still send.
fn read_more(connection: &mut Connection, max: usize) -> io::Result<bool> {
    let mut chunk = [0u8; 1024];
    while connection.head.len() < max {
        let room = (max - connection.head.len()).min(chunk.len());
        match connection
            .stream
            .read(chunk.get_mut(..room).unwrap_or_default())
        {
            Ok(0) => return Ok(false),
            Ok(n) => connection
                .head
                .extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Writes what the socket takes: whether the whole response is out.
fn write_more(connection: &mut Connection) -> io::Result<bool> {
    while let Some(rest) = connection
        .out
        .get(connection.written..)
        .filter(|rest| !rest.is_empty())
    {
        match connection.stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => connection.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The response to what was asked.
fn respond(
    out: &mut Vec<u8>,
    asked: Asked,
    head_only: bool,
    source: &dyn AdminSource,
    counters: &Counters,
) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match asked {
        Asked::Metrics => {
            let mut text = String::with_capacity(16 * 1024);
            source.write_metrics(&mut text);
            write_admin(&mut Exposition::new(&mut text), counters.snapshot());
            write_response(out, 200, METRICS_CONTENT_TYPE, text.as_bytes(), head_only);
        }
        Asked::Health => write_response(out, 200, TEXT, b"ok\n", head_only),
        Asked::Readiness => match source.readiness() {
            Readiness::Ready => write_response(out, 200, TEXT, b"ready\n", head_only),
            Readiness::NotReady(why) => write_response(
                out,
                503,
                TEXT,
                format!("not ready: {why}\n").as_bytes(),
                head_only,
            ),
        },
        Asked::NotFound => write_response(out, 404, TEXT, b"not found\n", head_only),
        Asked::MethodNotAllowed => write_response(out, 405, TEXT, b"method not allowed\n", false),
        Asked::HeadTooLarge => write_response(out, 431, TEXT, b"request head too large\n", false),
        Asked::BadRequest => write_response(out, 400, TEXT, b"bad request\n", false),
    }
}

/// The endpoint's own counters, after the source's.
fn write_admin(exposition: &mut Exposition<'_>, stats: AdminStats) {
    exposition.counters(&[
        (
            "mcp_admin_responses_total",
            "Responses the admin endpoint wrote whole.",
            stats.responses,
        ),
        (
            "mcp_admin_refused_total",
            "Admin connections closed as they were accepted: the limit was reached.",
            stats.refused,
        ),
        (
            "mcp_admin_timed_out_total",
            "Admin connections closed at their timeout.",
            stats.timed_out,
        ),
    ]);
}
