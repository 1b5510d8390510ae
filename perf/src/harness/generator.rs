//! [`Generated`]: a run's messages made while it goes (`mcp-bench
//! --sustained`), so that its length is bounded by time, not by a pool in
//! memory.
//!
//! Generator threads (`bench-gen`), apart from the sender and the engine,
//! each make whole lanes (see [`Lanes`]): every message fresh (its own id,
//! stream number, timestamp, nonce, signature), into a short queue per
//! lane that the sender takes from in order. What they cost is theirs, not
//! the engine's: `mcp-bench` reports it as the sender's share of the cores.
//!
//! JSON messages are written straight from their parts in RFC 8785 order
//! (sorted keys, no whitespace), so that a signature is the HMAC of the
//! very text sent, minus the `signature` member; none of the strings needs
//! escaping. That costs a fraction of a microsecond at `Standard`, where
//! building a `Message` and encoding it cost several times the engine's
//! work. The binary codec goes through the library (`Sealer`, `encode`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use mcp_engine::client::{Credentials, encode};
use mcp_engine::codec::Codec;
use mcp_engine::message::{Timestamp, unix_nanos_now};
use mcp_engine::security::{NonceSequence, NonceSource, ReplayStream, Sealer, b64u};
use mcp_engine::{Code, Error, Field, Message, MessageType, RawJson, SecurityLevel};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;

use super::workload::{Lanes, Prepared, Workload};

/// Messages made ahead, per lane: enough to keep the sender busy while a
/// generator is descheduled, few enough that timestamps stay fresh.
const AHEAD: usize = 4096;

/// What goes before each message's envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Nothing: a body for `Engine::submit`.
    Bare,
    /// A frame header (length, codec byte): for TCP and TLS.
    Frame,
    /// The codec byte alone: for NATS.
    CodecByte,
}

/// Where a run's messages come from while it goes.
pub struct Generated {
    queues: Arc<[ArrayQueue<Prepared>]>,
    lanes: Lanes,
    next: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<(), Error>>>,
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generated")
            .field("lanes", &self.lanes)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Generated {
    /// Starts `threads` generator threads making `workload`'s messages on
    /// `lanes` as the admin of `credentials`, each behind `framing`.
    pub fn start(
        workload: Workload,
        credentials: &Credentials,
        lanes: Lanes,
        threads: usize,
        framing: Framing,
    ) -> Result<Generated, Error> {
        let count = lanes.count.max(1);
        let threads = threads.clamp(1, count);
        let queues: Arc<[ArrayQueue<Prepared>]> =
            (0..count).map(|_| ArrayQueue::new(AHEAD)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let makers = (0..count)
                .filter(|lane| lane % threads == t)
                .map(|lane| Maker::new(workload, credentials, lanes, lane, framing))
                .collect::<Result<Vec<_>, Error>>()?;
            let (queues, stop) = (Arc::clone(&queues), Arc::clone(&stop));
            let handle = std::thread::Builder::new()
                .name(format!("bench-gen-{t}"))
                .spawn(move || generate(makers, &queues, &stop))
                .map_err(|e| Error::new(Code::InternalError, format!("thread: {e}")))?;
            handles.push(handle);
        }
        Ok(Generated {
            queues,
            lanes,
            next: 0,
            stop,
            threads: handles,
        })
    }
}

/// How long a generator whose queues are all full sleeps: a yielding one
/// took a core from the engine at low rates. At full load the sender takes
/// far less than a queue's worth meanwhile.
const FULL_NAP: std::time::Duration = std::time::Duration::from_micros(200);

/// Fills each of its lanes' queues until told to stop.
fn generate(
    mut makers: Vec<Maker>,
    queues: &[ArrayQueue<Prepared>],
    stop: &AtomicBool,
) -> Result<(), Error> {
    while !stop.load(Ordering::Relaxed) {
        let mut made = false;
        for maker in &mut makers {
            let Some(queue) = queues.get(maker.lane) else {
                continue;
            };
            // Topped up a slice at a time, so that lanes take turns.
            for _ in 0..64 {
                if queue.is_full() {
                    break;
                }
                let message = maker.next()?;
                if queue.push(message).is_err() {
                    break;
                }
                made = true;
            }
        }
        if !made {
            std::thread::sleep(FULL_NAP);
        }
    }
    Ok(())
}

impl Iterator for Generated {
    type Item = Prepared;

    /// The next message in index order: the next of its lane's queue,
    /// waited for if its generator is behind.
    fn next(&mut self) -> Option<Prepared> {
        let lane = self.lanes.of(self.next);
        let queue = self.queues.get(lane)?;
        let backoff = Backoff::new();
        loop {
            if let Some(message) = queue.pop() {
                self.next += 1;
                return Some(message);
            }
            if self.threads.iter().any(JoinHandle::is_finished) {
                // A generator ended: on an error, so the run does.
                return None;
            }
            backoff.snooze();
        }
    }
}

impl Drop for Generated {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(Err(e)) => eprintln!("mcp-bench: a generator stopped: {e}"),
                Err(_) => eprintln!("mcp-bench: a generator panicked"),
                Ok(Ok(())) => {}
            }
        }
    }
}

/// Whether message `index` of `workload` is an Event.
fn is_event(workload: &Workload, index: usize) -> bool {
    (index % 100) < usize::from(workload.event_percent)
}

/// The id of message `index` of a sustained run. `index_of_id` reads it
/// back.
pub fn id_of(index: usize) -> String {
    format!("g-{index}")
}

/// The index in a sustained run's message id.
pub fn index_of_id(id: &str) -> Option<usize> {
    id.strip_prefix("g-")?.parse().ok()
}

/// One lane's messages, in index order.
struct Maker {
    lane: usize,
    lanes: Lanes,
    /// Turns of this lane so far: its next run starts at message
    /// `(turn * lanes.count + lane) * lanes.run`.
    turn: usize,
    within: usize,
    workload: Workload,
    framing: Framing,
    how: How,
    /// The largest message so far: the next one's room.
    size: usize,
}

/// How a lane writes its messages.
enum How {
    /// JSON, straight from its parts.
    Written(Box<Writer>),
    /// Through the library (the binary codec).
    Sealed(Box<Sealer>),
}

impl Maker {
    fn new(
        workload: Workload,
        credentials: &Credentials,
        lanes: Lanes,
        lane: usize,
        framing: Framing,
    ) -> Result<Maker, Error> {
        let stream = ReplayStream::new()?;
        let how = match workload.codec {
            Codec::Json => How::Written(Box::new(Writer::new(workload, credentials, stream)?)),
            Codec::Binary => {
                let token = credentials.token("admin").map(str::to_owned);
                let kid = |key: &Option<mcp_engine::client::NamedKey>| {
                    key.as_ref().map_or_else(String::new, |k| k.kid.clone())
                };
                let mut sealer = Sealer::new(
                    credentials.keyring()?,
                    token,
                    &kid(&credentials.signing),
                    &kid(&credentials.encryption),
                )?;
                sealer.set_stream(workload.streams.then_some(stream));
                How::Sealed(Box::new(sealer))
            }
        };
        Ok(Maker {
            lane,
            lanes,
            turn: 0,
            within: 0,
            workload,
            framing,
            how,
            size: 512,
        })
    }

    /// This lane's next message.
    fn next(&mut self) -> Result<Prepared, Error> {
        let run = self.lanes.run.max(1);
        let index = (self.turn * self.lanes.count.max(1) + self.lane) * run + self.within;
        self.within += 1;
        if self.within == run {
            self.within = 0;
            self.turn += 1;
        }
        let event = is_event(&self.workload, index);
        let mut body = Vec::with_capacity(self.size + 16);
        match self.framing {
            Framing::Bare => {}
            // The length filled in below.
            Framing::Frame => body.extend_from_slice(&[0, 0, 0, 0, self.workload.codec.byte()]),
            Framing::CodecByte => body.push(self.workload.codec.byte()),
        }
        match &mut self.how {
            How::Written(writer) => writer.write(index, event, &mut body)?,
            How::Sealed(sealer) => {
                let id = id_of(index);
                let payload = if event {
                    named("event", "demo.notice", "data", self.workload.payload_bytes)
                } else {
                    named("command", "demo.echo", "args", self.workload.payload_bytes)
                };
                let kind = if event {
                    MessageType::Event
                } else {
                    MessageType::Command
                };
                let mut message = Message::new(
                    id.as_str(),
                    kind,
                    self.workload.level,
                    RawJson::parse(&payload)?,
                );
                if event {
                    message.metadata = Field::Present(RawJson::parse(r#"{"ack":true}"#)?);
                }
                let now = unix_nanos_now();
                message.timestamp = Timestamp::from_unix_nanos(now);
                sealer.seal(&mut message, now)?;
                body.extend_from_slice(&encode(&message, self.workload.codec)?);
            }
        }
        if self.framing == Framing::Frame {
            let length = u32::try_from(body.len() - 4)
                .map_err(|_| Error::new(Code::MessageTooLarge, "a message over 4 GiB"))?;
            if let Some(header) = body.get_mut(..4) {
                header.copy_from_slice(&length.to_be_bytes());
            }
        }
        self.size = self.size.max(body.len());
        // The id is in the body; replies are matched by index (in process
        // by tag, over the network by reading the index in the id).
        Ok(Prepared {
            id: String::new(),
            codec: self.workload.codec,
            body,
            lane: self.lane,
        })
    }
}

/// `{"<kind>":"<name>","<field>":"xxx..."}` with `bytes` x's.
fn named(kind: &str, name: &str, field: &str, bytes: usize) -> String {
    format!(r#"{{"{kind}":"{name}","{field}":"{}"}}"#, "x".repeat(bytes))
}

/// Writes one lane's JSON messages in canonical form (see the module).
struct Writer {
    level: SecurityLevel,
    /// The lane's stream, or none (version 1.0, checked by id).
    stream: Option<ReplayStream>,
    /// `"auth_token":"<token>",` or nothing below Standard.
    token: String,
    /// The payloads' plaintext, sorted: `{"args":"xx..","command":"demo.echo"}`.
    command: String,
    event: String,
    signing: Option<(String, hmac::Key)>,
    encryption: Option<(String, LessSafeKey)>,
    nonces: NonceSource,
    /// The timestamp text, and the millisecond it is of.
    timestamp: (u128, String),
    scratch: Vec<u8>,
    sealed: Vec<u8>,
}

impl Writer {
    fn new(
        workload: Workload,
        credentials: &Credentials,
        stream: ReplayStream,
    ) -> Result<Writer, Error> {
        let level = workload.level;
        let bad =
            |what: &str| Error::new(Code::ConfigurationError, format!("sustained run: {what}"));
        let secret = |key: &Option<mcp_engine::client::NamedKey>, what: &str| {
            key.as_ref()
                .ok_or_else(|| bad(&format!("no {what} key in the credentials")))
                .and_then(|k| {
                    let bytes = b64u::decode(&k.key).ok_or_else(|| bad(&format!("{what} key")))?;
                    Ok((k.kid.clone(), bytes))
                })
        };
        let signing = if level >= SecurityLevel::High {
            let (kid, bytes) = secret(&credentials.signing, "signing")?;
            Some((kid, hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
        } else {
            None
        };
        let encryption = if level >= SecurityLevel::Critical {
            let (kid, bytes) = secret(&credentials.encryption, "encryption")?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| bad("encryption key"))?;
            Some((kid, LessSafeKey::new(key)))
        } else {
            None
        };
        let token = if level >= SecurityLevel::Standard {
            let token = credentials
                .token("admin")
                .ok_or_else(|| bad("no admin token"))?;
            format!(r#""auth_token":"{token}","#)
        } else {
            String::new()
        };
        let x = "x".repeat(workload.payload_bytes);
        Ok(Writer {
            level,
            stream: workload.streams.then_some(stream),
            token,
            command: format!(r#"{{"args":"{x}","command":"demo.echo"}}"#),
            event: format!(r#"{{"data":"{x}","event":"demo.notice"}}"#),
            signing,
            encryption,
            nonces: NonceSource::new(Arc::new(NonceSequence::new()?)),
            timestamp: (0, String::new()),
            scratch: Vec::with_capacity(1024),
            sealed: Vec::with_capacity(512),
        })
    }

    /// Brings the timestamp up to now, in RFC 3339 with milliseconds, made
    /// again only when the millisecond changes.
    fn tick(&mut self) {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let millis = nanos / 1_000_000;
        if millis != self.timestamp.0 {
            let text = Timestamp::from_unix_nanos(i128::try_from(nanos).unwrap_or(0));
            self.timestamp = (millis, text.as_str().to_owned());
        }
    }

    /// Appends message `index` (id [`id_of`], an Event that asks for `ack`
    /// if `event`) to `out`.
    fn write(&mut self, index: usize, event: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        let seq = match &self.stream {
            Some(stream) => Some(
                stream
                    .next_seq()
                    .ok_or_else(|| Error::new(Code::ResourceExhausted, "stream used up"))?,
            ),
            None => None,
        };
        let kind = if event { "Event" } else { "Command" };
        self.tick();
        let mut text = std::mem::take(&mut self.scratch);
        let timestamp = self.timestamp.1.as_str();
        let mut id_text = itoa::Buffer::new();
        let number = id_text.format(index);
        text.clear();
        text.extend_from_slice(b"{\"id\":\"g-");
        text.extend_from_slice(number.as_bytes());
        text.extend_from_slice(b"\",");
        match (&self.stream, seq) {
            (Some(stream), Some(seq)) => {
                text.extend_from_slice(b"\"metadata\":{");
                if event {
                    text.extend_from_slice(b"\"ack\":true,");
                }
                text.extend_from_slice(b"\"replay\":{\"seq\":");
                text.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
                text.extend_from_slice(b",\"stream\":\"");
                text.extend_from_slice(stream.name().as_bytes());
                text.extend_from_slice(b"\"}},");
            }
            _ if event => text.extend_from_slice(b"\"metadata\":{\"ack\":true},"),
            _ => {}
        }
        text.extend_from_slice(b"\"payload\":");
        let plaintext = if event { &self.event } else { &self.command };
        let mut nonce_text = String::new();
        match &self.encryption {
            Some((_, key)) => {
                let nonce = self.nonces.next_nonce();
                nonce_text = b64u::encode(&nonce);
                let mut aad = Vec::with_capacity(number.len() + kind.len() + timestamp.len() + 4);
                aad.extend_from_slice(b"g-");
                aad.extend_from_slice(number.as_bytes());
                aad.push(b'\n');
                aad.extend_from_slice(kind.as_bytes());
                aad.push(b'\n');
                aad.extend_from_slice(timestamp.as_bytes());
                self.sealed.clear();
                self.sealed.extend_from_slice(plaintext.as_bytes());
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&aad),
                    &mut self.sealed,
                )
                .map_err(|_| Error::new(Code::EncryptionFailed, "sealing failed"))?;
                text.push(b'"');
                text.extend_from_slice(b64u::encode(&self.sealed).as_bytes());
                text.push(b'"');
            }
            None => text.extend_from_slice(plaintext.as_bytes()),
        }
        text.extend_from_slice(b",\"security\":{");
        text.extend_from_slice(self.token.as_bytes());
        if let Some((kid, _)) = &self.encryption {
            text.extend_from_slice(
                b"\"encryption_info\":{\"algorithm\":\"AES-256-GCM\",\"key_id\":\"",
            );
            text.extend_from_slice(kid.as_bytes());
            text.extend_from_slice(b"\",\"nonce\":\"");
            text.extend_from_slice(nonce_text.as_bytes());
            text.extend_from_slice(b"\"},");
        }
        text.extend_from_slice(b"\"security_level\":\"");
        text.extend_from_slice(self.level.as_str().as_bytes());
        text.push(b'"');
        // The security object closes here: the signature goes in before.
        let close = text.len();
        text.extend_from_slice(b"},\"timestamp\":\"");
        text.extend_from_slice(timestamp.as_bytes());
        text.extend_from_slice(b"\",\"type\":\"");
        text.extend_from_slice(kind.as_bytes());
        text.extend_from_slice(if self.stream.is_some() {
            b"\",\"version\":\"1.1\"}"
        } else {
            b"\",\"version\":\"1.0\"}"
        });
        match &self.signing {
            Some((kid, key)) => {
                let mac = hmac::sign(key, &text);
                let (before, after) = text.split_at(close);
                out.extend_from_slice(before);
                out.extend_from_slice(b",\"signature\":\"");
                out.extend_from_slice(kid.as_bytes());
                out.push(b':');
                out.extend_from_slice(b64u::encode(mac.as_ref()).as_bytes());
                out.push(b'"');
                out.extend_from_slice(after);
            }
            None => out.extend_from_slice(&text),
        }
        self.scratch = text;
        Ok(())
    }
}
