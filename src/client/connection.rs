//! [`Client`]: one connection to a server, with many requests in flight.
//!
//! A thread of the client's own drives the socket (TLS or plain) with
//! `mio`; callers append frames to a shared buffer and wake it, and each
//! reply goes to the caller waiting for its `correlation_id`.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;
use rustls_pki_types::ServerName;

use super::{Credentials, Outgoing, client_config};
use crate::codec::{Codec, Decoder, Limits};
use crate::error::{Code, Error};
use crate::frame::{FrameDecoder, write_frame};
use crate::framed_connection::{ConnectionError, FramedConnection, Read};
use crate::message::unix_nanos_now;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// The largest reply frame the client takes.
const MAX_REPLY: usize = 64 * 1024 * 1024;

/// A reply as it came off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientReply {
    /// Its codec.
    pub codec: Codec,
    /// The envelope (open it with [`Envelopes::open`](super::Envelopes::open)).
    pub body: Vec<u8>,
    /// Its `metadata.correlation_id`, if readable.
    pub correlation_id: Option<String>,
}

/// How to reach a server.
#[derive(Clone, Debug)]
pub struct Connector {
    addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
}

fn network(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(Code::NetworkError, format!("{what}: {e}"))
}

impl Connector {
    /// Plain TCP to `addr`.
    pub fn plain(addr: SocketAddr) -> Connector {
        Connector {
            addr,
            tls: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// TLS to `addr`, expecting a certificate for `server_name`.
    pub fn tls(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<Connector, Error> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| Error::new(Code::ConfigurationError, format!("server name: {e}")))?;
        Ok(Connector {
            addr,
            tls: Some((config, name)),
            timeout: Duration::from_secs(10),
        })
    }

    /// As `credentials` say: their address, TLS with their CA and server
    /// name.
    pub fn from_credentials(credentials: &Credentials) -> Result<Connector, Error> {
        let addr = credentials.addr.parse().map_err(|_| {
            Error::new(
                Code::ConfigurationError,
                format!(
                    "credentials: `addr` {:?} is not an address",
                    credentials.addr
                ),
            )
        })?;
        if !credentials.tls {
            return Ok(Connector::plain(addr));
        }
        let ca = credentials.ca_cert.as_deref().ok_or_else(|| {
            Error::new(Code::ConfigurationError, "credentials: TLS needs `ca_cert`")
        })?;
        let name = credentials.server_name.as_deref().unwrap_or("localhost");
        Connector::tls(addr, client_config(ca, None)?, name)
    }

    /// How long connecting (and the TLS handshake) may take (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Connector {
        self.timeout = timeout;
        self
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connects and returns the non-blocking connection, its TLS handshake
    /// not yet driven: for programs that run connections from an event
    /// loop of their own (`mcp-bench` does); [`connect`](Self::connect)
    /// gives a ready [`Client`].
    pub fn open_wire(&self) -> Result<FramedConnection, Error> {
        let stream = StdStream::connect_timeout(&self.addr, self.timeout)
            .map_err(|e| network(&format!("cannot connect to {}", self.addr), e))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_nonblocking(true))
            .map_err(|e| network("socket", e))?;
        let tls = match &self.tls {
            Some((config, name)) => Some(rustls::Connection::from(
                rustls::ClientConnection::new(Arc::clone(config), name.clone())
                    .map_err(|e| network("TLS", e))?,
            )),
            None => None,
        };
        Ok(FramedConnection::new(
            mio::net::TcpStream::from_std(stream),
            tls,
        ))
    }

    /// Connects, and finishes the TLS handshake before returning.
    pub fn connect(&self) -> Result<Client, Error> {
        let mut wire = self.open_wire()?;
        let poll = Poll::new().map_err(|e| network("poll", e))?;
        poll.registry()
            .register(
                wire.socket_mut(),
                SOCKET,
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| network("poll", e))?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(|e| network("poll", e))?;
        let (unmatched_tx, unmatched) = mpsc::channel();
        let shared = Arc::new(ConnectionShared {
            waiting: Mutex::new(HashMap::new()),
            outgoing: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            why: Mutex::new(None),
            waker,
        });
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let driver = Driver {
            poll,
            wire,
            decoder: FrameDecoder::new(MAX_REPLY),
            replies: Decoder::new(Limits {
                max_message_size: MAX_REPLY,
                ..Limits::default()
            }),
            shared: Arc::clone(&shared),
            unmatched: unmatched_tx,
            ready: Some(ready_tx),
        };
        let thread = std::thread::Builder::new()
            .name("mcp-client".to_owned())
            .spawn(move || driver.run())
            .map_err(|e| network("thread", e))?;
        let client = Client {
            shared,
            thread: Some(thread),
            unmatched: Mutex::new(unmatched),
        };
        match ready.recv_timeout(self.timeout) {
            Ok(Ok(())) => Ok(client),
            Ok(Err(why)) => Err(network("handshake", why)),
            Err(RecvTimeoutError::Timeout) => Err(network("handshake", "timed out")),
            Err(RecvTimeoutError::Disconnected) => Err(network(
                "handshake",
                client.shared.why.lock().clone().unwrap_or_default(),
            )),
        }
    }
}

struct ConnectionShared {
    waiting: Mutex<HashMap<String, SyncSender<ClientReply>>>,
    outgoing: Mutex<Vec<u8>>,
    closed: AtomicBool,
    stop: AtomicBool,
    why: Mutex<Option<String>>,
    waker: Waker,
}

/// A connection to a server.
pub struct Client {
    shared: Arc<ConnectionShared>,
    thread: Option<JoinHandle<()>>,
    unmatched: Mutex<Receiver<ClientReply>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Waits for the reply to one request.
#[derive(Debug)]
pub struct ReplyWaiter {
    replies: Receiver<ClientReply>,
}

impl ReplyWaiter {
    /// The reply, or `timeout` (code `timeout`), or the connection's end
    /// (code `network_error`).
    pub fn wait(&self, timeout: Duration) -> Result<ClientReply, Error> {
        self.replies.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => Error::new(Code::Timeout, "no reply in time"),
            RecvTimeoutError::Disconnected => {
                Error::new(Code::NetworkError, "connection closed before the reply")
            }
        })
    }
}

impl Client {
    /// Sends `request`; its reply comes through the returned waiter.
    pub fn request(&self, request: &Outgoing) -> Result<ReplyWaiter, Error> {
        let (tx, replies) = mpsc::sync_channel(1);
        self.shared.waiting.lock().insert(request.id.clone(), tx);
        let mut frame = Vec::with_capacity(request.body.len() + crate::frame::HEADER_LEN);
        write_frame(&mut frame, request.codec, &request.body)
            .map_err(|e| Error::new(Code::MessageTooLarge, e.to_error().message().to_owned()))?;
        if let Err(e) = self.send_raw(&frame) {
            self.shared.waiting.lock().remove(&request.id);
            return Err(e);
        }
        Ok(ReplyWaiter { replies })
    }

    /// Sends `request` and waits up to `timeout` for its reply.
    pub fn call(&self, request: &Outgoing, timeout: Duration) -> Result<ClientReply, Error> {
        self.request(request)?.wait(timeout)
    }

    /// Writes `bytes` as they are (whole frames, or anything else: for
    /// tests of what a server does with bad input).
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::new(Code::NetworkError, "connection closed"));
        }
        self.shared.outgoing.lock().extend_from_slice(bytes);
        self.shared.waker.wake().map_err(|e| network("wake", e))
    }

    /// The next reply that matched no waiting request (an Error without a
    /// correlation id, say), waiting up to `timeout`.
    pub fn next_unmatched(&self, timeout: Duration) -> Option<ClientReply> {
        self.unmatched.lock().recv_timeout(timeout).ok()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Why the connection ended, if it has.
    pub fn close_reason(&self) -> Option<String> {
        self.shared.why.lock().clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The client's I/O thread.
struct Driver {
    poll: Poll,
    wire: FramedConnection,
    decoder: FrameDecoder,
    replies: Decoder,
    shared: Arc<ConnectionShared>,
    unmatched: mpsc::Sender<ClientReply>,
    ready: Option<SyncSender<Result<(), String>>>,
}

impl Driver {
    fn run(mut self) {
        let why = self.drive();
        *self.shared.why.lock() = Some(why.clone());
        self.shared.closed.store(true, Ordering::Release);
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(why));
        }
        // Dropping the senders tells every waiter the connection is gone.
        self.shared.waiting.lock().clear();
    }

    /// Runs until the connection ends; returns why.
    fn drive(&mut self) -> String {
        let mut events = Events::with_capacity(64);
        loop {
            if let Err(e) = self
                .poll
                .poll(&mut events, Some(Duration::from_millis(200)))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                return format!("poll: {e}");
            }
            if self.shared.stop.load(Ordering::Acquire) {
                self.wire.close_notify();
                return "closed by the client".to_owned();
            }
            {
                let mut outgoing = self.shared.outgoing.lock();
                if !outgoing.is_empty() {
                    self.wire.out().extend_from_slice(&outgoing);
                    outgoing.clear();
                }
            }
            loop {
                match self.wire.read_into(&mut self.decoder) {
                    Ok(Read::Progress) => self.dispatch(),
                    Ok(Read::WouldBlock) => break,
                    Ok(Read::Ended) => {
                        self.dispatch();
                        return "closed by the server".to_owned();
                    }
                    Err(e) => return describe(e),
                }
                if self.decoder.is_failed() {
                    return "the server sent a frame that cannot be read".to_owned();
                }
            }
            if let Err(e) = self.wire.flush() {
                return describe(e);
            }
            if !self.wire.is_handshaking()
                && let Some(ready) = self.ready.take()
            {
                let _ = ready.send(Ok(()));
            }
        }
    }

    /// Hands every complete frame to its waiter.
    fn dispatch(&mut self) {
        while let Some(Ok(frame)) = self.decoder.next_frame() {
            let codec = frame.codec;
            let body = frame.body.to_vec();
            let scratch = body.clone();
            let correlation_id = self
                .replies
                .decode(codec, &scratch, unix_nanos_now())
                .ok()
                .and_then(|view| view.correlation_id().map(str::to_owned));
            let reply = ClientReply {
                codec,
                body,
                correlation_id,
            };
            let waiter = reply
                .correlation_id
                .as_ref()
                .and_then(|id| self.shared.waiting.lock().remove(id));
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(reply);
                }
                None => {
                    let _ = self.unmatched.send(reply);
                }
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
