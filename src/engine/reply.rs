//! Building reply envelopes (PROTOCOL.md section 7) into reused buffers.

use crate::codec::{self, AlignedBytes, Codec};
use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::json::write::write_str;
use crate::message::timestamp::MillisecondClock;
use crate::message::{
    Field, Message, MessageType, PROTOCOL_VERSION, SecurityLevel, SecurityMetadata, TypeKey,
};
use crate::security::{Admission, ReplyProtection};
use crate::sync::{Ordering, StaticCounter};

use super::recovery::Admission as BreakerAdmission;
use super::sink::{Destination, Outcome, Reply, SinkTable};

/// Everything needed to answer a message after its buffers are gone (a
/// deferred command, a timeout).
#[derive(Clone, Debug)]
pub(crate) struct ReplyTo {
    pub(crate) to: Destination,
    pub(crate) id: Box<str>,
    pub(crate) level: SecurityLevel,
    pub(crate) protection: ReplyProtection,
    /// The command's handler (its index) and whether this call is its
    /// breaker's probe, to report the outcome to the breaker.
    pub(crate) handler: Option<(usize, BreakerAdmission)>,
    /// When the message was accepted (engine clock).
    pub(crate) accepted_at: u64,
}

impl ReplyTo {
    pub(crate) fn header(&self) -> ReplyHeader<'_> {
        ReplyHeader {
            to: self.to,
            id: &self.id,
            level: self.level,
            protection: &self.protection,
        }
    }
}

/// Where a Response goes and how it is protected, borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplyHeader<'a> {
    pub(crate) to: Destination,
    pub(crate) id: &'a str,
    pub(crate) level: SecurityLevel,
    pub(crate) protection: &'a ReplyProtection,
}

/// Fresh reply ids: `r-<boot>-<writer>-<n>`, unique per engine run and
/// writer thread.
#[derive(Debug)]
pub(crate) struct ReplyIds {
    prefix: String,
    next: u64,
    text: String,
}

static WRITERS: StaticCounter = StaticCounter::new(0);

impl ReplyIds {
    pub(crate) fn new(boot: u32) -> ReplyIds {
        let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
        ReplyIds {
            prefix: format!("r-{boot:08x}-{writer:x}-"),
            next: 0,
            text: String::with_capacity(48),
        }
    }

    fn next(&mut self) -> &str {
        self.next += 1;
        self.text.clear();
        self.text.push_str(&self.prefix);
        self.text.push_str(itoa::Buffer::new().format(self.next));
        &self.text
    }
}

/// A thread's reply buffers.
#[derive(Debug)]
pub(crate) struct ReplyWriter {
    ids: ReplyIds,
    json: Vec<u8>,
    binary: AlignedBytes,
    clock: MillisecondClock,
}

impl ReplyWriter {
    pub(crate) fn new(boot: u32) -> ReplyWriter {
        ReplyWriter {
            ids: ReplyIds::new(boot),
            json: Vec::with_capacity(1024),
            binary: AlignedBytes::new(),
            clock: MillisecondClock::default(),
        }
    }

    /// Encodes `message` in `codec` and hands it to the sink.
    pub(crate) fn send(
        &mut self,
        sinks: &SinkTable,
        to: Destination,
        message: &Message,
        correlation_id: Option<&str>,
        outcome: Outcome,
    ) {
        let codec = to.codec;
        let body: &[u8] = match codec {
            Codec::Json => {
                self.json.clear();
                codec::json::encode(message, &mut self.json);
                &self.json
            }
            Codec::Binary => {
                self.binary.clear();
                match codec::binary::encode(message, &mut self.binary) {
                    Ok(()) => &self.binary,
                    // Replies are built by us and always fit; should one not,
                    // the JSON form still answers.
                    Err(_) => {
                        self.json.clear();
                        codec::json::encode(message, &mut self.json);
                        &self.json
                    }
                }
            }
        };
        deliver(sinks, to, correlation_id, outcome, body);
    }

    /// Tells the sink what became of a message that gets no reply envelope
    /// (an Event without `ack`, an incoming Response or Error).
    pub(crate) fn silent(
        &mut self,
        sinks: &SinkTable,
        to: Destination,
        correlation_id: Option<&str>,
        outcome: Outcome,
    ) {
        deliver(sinks, to, correlation_id, outcome, &[]);
    }

    /// Answers with an Error (plaintext, unsigned, level Low).
    pub(crate) fn error(
        &mut self,
        sinks: &SinkTable,
        to: Destination,
        correlation_id: Option<&str>,
        error: &Error,
    ) {
        let id = self.ids.next().to_owned();
        let message = error.to_envelope(id, correlation_id, self.clock.now());
        self.send(
            sinks,
            to,
            &message,
            correlation_id,
            Outcome::Error(error.code()),
        );
    }

    /// Builds the Response carrying `{"result": result}`, protected as the
    /// request was and stamped `at` (Unix nanoseconds: the worker's time
    /// when the message began, for an answer given while it ran);
    /// [`send`](Self::send) delivers it. If protecting fails (a key rotated
    /// away), the answer must be that Error instead.
    pub(crate) fn seal_response(
        &mut self,
        admission: &mut Admission,
        reply_to: ReplyHeader<'_>,
        result: &RawJson,
        at: i128,
    ) -> Result<Message, Error> {
        // Sized once: growing it would reallocate on every reply.
        const OPEN: &[u8] = b"{\"result\":";
        let mut text = Vec::with_capacity(OPEN.len() + result.as_bytes().len() + 1);
        text.extend_from_slice(OPEN);
        text.extend_from_slice(result.as_bytes());
        text.push(b'}');
        let payload = RawJson::from_compact(text);
        let id = self.ids.next().to_owned();
        // Ids need no escapes (PROTOCOL.md section 3), so this is exact.
        let mut metadata = Vec::with_capacity(reply_to.id.len() + 21);
        metadata.extend_from_slice(b"{\"correlation_id\":");
        write_str(&mut metadata, reply_to.id);
        metadata.push(b'}');
        let mut security = SecurityMetadata::new(reply_to.level);
        security.auth_token = Field::Null;
        let mut message = Message {
            version: Some(PROTOCOL_VERSION.to_owned()),
            id,
            kind: MessageType::Response,
            type_key: TypeKey::Type,
            payload: RawJson::null(),
            metadata: Field::Present(RawJson::from_compact(metadata)),
            security,
            timestamp: self.clock.at(at),
        };
        let now = message.timestamp.unix_nanos();
        admission.protect_reply(&mut message, payload, reply_to.protection, now)?;
        Ok(message)
    }
}

/// Hands one reply to its sink.
fn deliver(
    sinks: &SinkTable,
    to: Destination,
    correlation_id: Option<&str>,
    outcome: Outcome,
    body: &[u8],
) {
    let Destination { sink, tag, codec } = to;
    sinks.deliver(
        sink,
        Reply {
            tag,
            correlation_id,
            outcome,
            codec,
            body,
        },
    );
}

/// The Error a message gets when the engine shuts down before answering it.
pub(crate) fn shutting_down() -> Error {
    Error::new(Code::Unavailable, "the engine is shutting down")
}
