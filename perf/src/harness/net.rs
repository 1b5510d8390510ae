//! The network runs: the same messages over TCP or TLS 1.3, to a server
//! this process starts (so its threads' CPU can be read) or to a running
//! one (`--addr`).
//!
//! The load generator is two threads whatever the number of connections:
//! the sender paces the frames into per-connection outboxes, and one I/O
//! thread drives every connection from one `mio` poll (TLS, writes, reads)
//! and times each reply by its correlation id. A thread per connection, as
//! the client library has, spent more CPU on the shared two cores than the
//! server it measured.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mcp_engine::client::{Connector, Credentials, Envelopes};
use mcp_engine::codec::{Codec, Decoder, Limits};
use mcp_engine::frame::{FrameDecoder, write_frame};
use mcp_engine::framed_connection::{ConnectionError, FramedConnection, Read};
use mcp_engine::message::unix_nanos_now;
use mcp_engine::server::Server;
use mcp_engine::{Code, Config, Error};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;

use super::generator::index_of_id;
use super::inproc::{ENGINE_THREADS, LOAD_THREADS, drive, processing_p99, settle, start_engine};
use super::report::{Figures, measure};
use super::workload::{Messages, Prepared};
use super::{Plan, Recorder};
use crate::process;

/// The I/O thread's waker; connections are tokens 0..n.
const WAKER: Token = Token(usize::MAX);

/// The largest reply frame taken.
const MAX_REPLY: usize = 64 * 1024 * 1024;

/// How long the TLS handshakes may take (connecting: the Connector's 10 s).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the network run sends.
#[derive(Debug)]
pub enum NetTarget {
    /// A server started in this process on a free loopback port, with the
    /// run's config.
    Own {
        /// TLS 1.3 (else plain TCP).
        tls: bool,
    },
    /// A running server, reached as its credentials say.
    Addr {
        /// Its address.
        addr: SocketAddr,
    },
}

pub(super) fn network(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(Code::NetworkError, format!("{what}: {e}"))
}

/// Runs `messages` over `connections` connections to `target`.
/// `credentials` reach the server (CA, server name) and `config` is what an
/// own server runs.
pub fn run_net(
    target: &NetTarget,
    mut config: Config,
    credentials: &Credentials,
    messages: impl Into<Messages>,
    plan: &Plan,
    connections: usize,
) -> Result<Figures, Error> {
    let messages = messages.into();
    let own = match target {
        NetTarget::Own { tls } => {
            config.server.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
            if !tls {
                config.server.tls = None;
                config.server.plain_tcp = true;
            }
            // The run's load, not a limit of the default config, decides.
            config.server.max_connections =
                config.server.max_connections.max(connections as u64 + 16);
            config.server.max_connections_per_ip = config.server.max_connections;
            let engine = Arc::new(start_engine(config.clone())?);
            Some(Server::start(engine, &config)?)
        }
        NetTarget::Addr { .. } => None,
    };
    let reach = match (target, &own) {
        (NetTarget::Own { tls: false }, Some(server)) => Connector::plain(server.local_addr()),
        (NetTarget::Own { tls: true }, Some(server)) => {
            let mut reach = credentials.clone();
            reach.addr = server.local_addr().to_string();
            reach.tls = true;
            Connector::from_credentials(&reach)?
        }
        (NetTarget::Addr { addr }, _) => {
            let mut reach = credentials.clone();
            reach.addr = addr.to_string();
            Connector::from_credentials(&reach)?
        }
        _ => return Err(Error::new(Code::InternalError, "no server to reach")),
    };
    let links = Links::connect(&reach, connections.max(1))?;

    // A pool: which message each id is, and every frame, made before the
    // clock starts. Messages made while the run goes come framed, their
    // index in their id.
    let (index_of, mut frames) = match messages {
        Messages::Pool(pool) => {
            let index_of: HashMap<String, usize> = pool
                .iter()
                .enumerate()
                .map(|(index, message)| (message.id.clone(), index))
                .collect();
            let frames: Vec<Prepared> = pool
                .into_iter()
                .map(|message| {
                    let mut frame =
                        Vec::with_capacity(message.body.len() + mcp_engine::frame::HEADER_LEN);
                    write_frame(&mut frame, message.codec, &message.body).map_err(|e| {
                        Error::new(Code::MessageTooLarge, e.to_error().message().to_owned())
                    })?;
                    Ok(Prepared {
                        id: message.id,
                        codec: message.codec,
                        body: frame,
                        lane: message.lane,
                    })
                })
                .collect::<Result<_, Error>>()?;
            (index_of, Messages::Pool(frames))
        }
        made @ Messages::Made(_) => (HashMap::new(), made),
    };

    let recorder = Arc::new(frames.recorder(plan));
    let outboxes = Arc::clone(&links.outboxes);
    let io = {
        let recorder = Arc::clone(&recorder);
        let mut timing = Timing {
            recorder,
            index_of,
            envelopes: Envelopes::from_credentials(credentials, "admin")?,
            binary: Decoder::new(Limits {
                max_message_size: MAX_REPLY,
                ..Limits::default()
            }),
            scratch: Vec::new(),
        };
        std::thread::Builder::new()
            .name("bench-io".into())
            .spawn(move || links.pump(&mut timing))
            .map_err(|e| Error::new(Code::InternalError, format!("thread: {e}")))?
    };

    let measured_here = own.is_some();
    let mut warm_cpu = 0.0;
    let mut warm_load = 0.0;
    let sent = drive(
        frames.take(),
        plan,
        &recorder,
        |batch| {
            for (_, frame) in batch.drain(..) {
                outboxes.push(frame.lane, &frame.body);
            }
        },
        || {
            if let Some(server) = &own {
                server.engine().reset_latencies();
            }
            warm_cpu = process::cpu_of_threads(ENGINE_THREADS);
            warm_load = process::cpu_of_threads(LOAD_THREADS);
        },
    );
    let plan = &plan.measured(recorder.start().elapsed());
    let cpu = process::cpu_of_threads(ENGINE_THREADS) - warm_cpu;
    let load = process::cpu_of_threads(LOAD_THREADS) - warm_load;
    // Messages still being made stop now, once their threads are counted.
    drop(frames);
    let threads = process::threads("self");
    settle(&recorder, sent, Duration::from_secs(10));
    outboxes.stop();
    let lost = io.join().unwrap_or(connections as u64);
    let processing = own
        .as_ref()
        .and_then(|server| processing_p99(server.engine()));
    if let Some(server) = own {
        server.shutdown();
    }
    let mut figures = measure(
        &recorder,
        plan,
        if measured_here { cpu } else { f64::NAN },
        threads,
        processing,
    );
    if !measured_here {
        figures.cpu_share = None;
        figures.cpu_us_per_msg = None;
    }
    figures.sender_cpu_share = Some(load / plan.duration.as_secs_f64().max(1e-9));
    if lost > 0 {
        figures.errors.insert("connection_lost".into(), lost);
    }
    Ok(figures)
}

/// Frames the sender has queued, per connection, and how it wakes the I/O
/// thread: only when that thread said it is about to sleep, so that a busy
/// run costs no wake-up per message.
struct Outboxes {
    queued: Vec<Mutex<Vec<u8>>>,
    asleep: AtomicBool,
    stop: AtomicBool,
    waker: Waker,
}

impl Outboxes {
    /// Queues a frame of `lane` on the lane's connection.
    fn push(&self, lane: usize, frame: &[u8]) {
        if let Some(queue) = self.queued.get(lane % self.queued.len()) {
            queue.lock().extend_from_slice(frame);
        }
        // SeqCst pairs with the I/O thread's store-then-check in `pump`:
        // either it sees this frame, or this sees it asleep.
        if self.asleep.swap(false, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }

    fn any_queued(&self) -> bool {
        self.queued.iter().any(|queue| !queue.lock().is_empty())
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// One connection of the load generator.
struct Link {
    wire: FramedConnection,
    decoder: FrameDecoder,
    open: bool,
}

/// Every connection, and the poll that drives them.
struct Links {
    poll: Poll,
    links: Vec<Link>,
    outboxes: Arc<Outboxes>,
}

impl Links {
    /// Connects `count` times and finishes every TLS handshake.
    fn connect(reach: &Connector, count: usize) -> Result<Links, Error> {
        let poll = Poll::new().map_err(|e| network("poll", e))?;
        let mut links = Vec::with_capacity(count);
        for token in 0..count {
            let mut wire = reach.open_wire()?;
            poll.registry()
                .register(
                    wire.socket_mut(),
                    Token(token),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| network("poll", e))?;
            links.push(Link {
                wire,
                decoder: FrameDecoder::new(MAX_REPLY),
                open: true,
            });
        }
        let waker = Waker::new(poll.registry(), WAKER).map_err(|e| network("poll", e))?;
        let outboxes = Arc::new(Outboxes {
            queued: (0..count).map(|_| Mutex::new(Vec::new())).collect(),
            asleep: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            waker,
        });
        let mut links = Links {
            poll,
            links,
            outboxes,
        };
        links.handshake()?;
        Ok(links)
    }

    fn handshake(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let mut events = Events::with_capacity(1024);
        while self.links.iter().any(|link| link.wire.is_handshaking()) {
            if Instant::now() > deadline {
                return Err(network("handshake", "timed out"));
            }
            for link in &mut self.links {
                link.wire
                    .flush()
                    .map_err(|e| network("handshake", describe(e)))?;
                loop {
                    match link.wire.read_into(&mut link.decoder) {
                        Ok(Read::Progress) => {}
                        Ok(Read::WouldBlock) => break,
                        Ok(Read::Ended) => {
                            return Err(network("handshake", "closed by the server"));
                        }
                        Err(e) => return Err(network("handshake", describe(e))),
                    }
                }
                link.wire
                    .flush()
                    .map_err(|e| network("handshake", describe(e)))?;
            }
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(10)));
        }
        Ok(())
    }

    /// Moves queued frames onto the wires, writes, reads and times replies
    /// until told to stop; returns how many connections were lost.
    fn pump(mut self, timing: &mut Timing) -> u64 {
        let mut events = Events::with_capacity(1024);
        let outboxes = Arc::clone(&self.outboxes);
        loop {
            for (link, queue) in self.links.iter_mut().zip(&outboxes.queued) {
                {
                    let mut queued = queue.lock();
                    if !queued.is_empty() {
                        link.wire.out().extend_from_slice(&queued);
                        queued.clear();
                    }
                }
                if link.open && link.wire.flush().is_err() {
                    link.open = false;
                }
            }
            if outboxes.stop.load(Ordering::SeqCst) {
                break;
            }
            outboxes.asleep.store(true, Ordering::SeqCst);
            let timeout = if outboxes.any_queued() {
                Duration::ZERO
            } else {
                Duration::from_millis(10)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                break;
            }
            outboxes.asleep.store(false, Ordering::SeqCst);
            for event in &events {
                let Some(link) = self.links.get_mut(event.token().0) else {
                    continue;
                };
                if event.is_readable() {
                    link.read(timing);
                }
            }
        }
        let mut lost = 0;
        for link in &mut self.links {
            if link.open {
                link.wire.close_notify();
            } else {
                lost += 1;
            }
        }
        lost
    }
}

impl Link {
    /// Reads until the socket has nothing more, timing every reply.
    fn read(&mut self, timing: &mut Timing) {
        while self.open {
            let step = self.wire.read_into(&mut self.decoder);
            while let Some(Ok(frame)) = self.decoder.next_frame() {
                timing.reply(frame.codec, frame.body);
            }
            match step {
                Ok(Read::Progress) => {}
                Ok(Read::WouldBlock) => break,
                Ok(Read::Ended) | Err(_) => self.open = false,
            }
            if self.decoder.is_failed() {
                self.open = false;
            }
        }
    }
}

fn describe(e: ConnectionError) -> String {
    match e {
        ConnectionError::Io(e) => format!("socket: {e}"),
        ConnectionError::Tls(e) => format!("TLS: {e}"),
    }
}

/// Times replies against the messages they answer.
struct Timing {
    recorder: Arc<Recorder>,
    index_of: HashMap<String, usize>,
    envelopes: Envelopes,
    binary: Decoder,
    scratch: Vec<u8>,
}

impl Timing {
    /// The message `id` names: from the pool's table, or from the id of a
    /// message made while the run goes.
    fn index(&self, id: &str) -> Option<usize> {
        self.index_of.get(id).copied().or_else(|| index_of_id(id))
    }

    fn reply(&mut self, codec: Codec, body: &[u8]) {
        let index = match codec {
            Codec::Json => json_correlation_id(body).and_then(|id| self.index(id)),
            Codec::Binary => {
                self.scratch.clear();
                self.scratch.extend_from_slice(body);
                let id = self
                    .binary
                    .decode(codec, &self.scratch, unix_nanos_now())
                    .ok()
                    .and_then(|view| view.correlation_id().map(str::to_owned));
                id.and_then(|id| self.index(&id))
            }
        };
        let Some(index) = index else {
            return;
        };
        let code = reply_code(&mut self.envelopes, codec, body);
        self.recorder.answered(index, code);
    }
}

/// The code of a reply that is an Error (or cannot be opened), `None` for
/// a Response. Only an Error needs opening: a JSON reply says so in plain
/// text; a binary one is opened.
pub(super) fn reply_code(envelopes: &mut Envelopes, codec: Codec, body: &[u8]) -> Option<Code> {
    let maybe_error = match codec {
        Codec::Json => find(body, br#""type":"Error""#).is_some(),
        Codec::Binary => true,
    };
    if !maybe_error {
        return None;
    }
    match envelopes.open(codec, body) {
        Ok(opened) if opened.is_error() => Some(error_code(&opened).unwrap_or(Code::InternalError)),
        Ok(_) => None,
        Err(e) => Some(e.code()),
    }
}

/// A JSON reply's `metadata.correlation_id`, found without parsing: the
/// engine writes `metadata` after `payload`, so the last occurrence is it,
/// and ids need no escapes (docs/protocol.md section 3).
fn json_correlation_id(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#""correlation_id":""#;
    let start = rfind(body, KEY)? + KEY.len();
    let rest = body.get(start..)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(rest.get(..end)?).ok()
}

/// The `code` of an opened Error's payload.
fn error_code(opened: &mcp_engine::client::Opened) -> Option<Code> {
    let value: serde_json::Value = serde_json::from_str(opened.message.payload.as_str()).ok()?;
    let code = value.get("code")?.as_str()?;
    Code::ALL.iter().copied().find(|c| c.as_str() == code)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_correlation_id_is_read_from_metadata() {
        let body = br#"{"version":"1.0","id":"r-1","type":"Response","payload":{"result":{"note":"\"correlation_id\":\"decoy\""}},"metadata":{"correlation_id":"m-42"},"security":{}}"#;
        assert_eq!(json_correlation_id(body), Some("m-42"));
        assert_eq!(json_correlation_id(br#"{"metadata":null}"#), None);
        assert_eq!(
            json_correlation_id(br#"{"metadata":{"correlation_id":"cut"#),
            None
        );
    }
}
