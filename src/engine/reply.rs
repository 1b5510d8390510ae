//! Building reply envelopes (docs/protocol.md section 7) into reused buffers.

use crate::codec::{self, AlignedBytes, Codec, ResponseParts};
use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::json::write::write_str;
use crate::message::timestamp::MillisecondClock;
use crate::message::{
    Field, Message, MessageType, PROTOCOL_VERSION, SecurityLevel, SecurityMetadata, TypeKey,
};
use crate::security::{ReplyProtection, ReplyProtector};
use crate::sync::{Ordering, StaticCounter};

use super::recovery::BreakerPermit;
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
    pub(crate) handler: Option<(usize, BreakerPermit)>,
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
///
/// Writing a reply and handing it to its sink are two steps, so that a
/// worker can finish its own bookkeeping for the message (its latency
/// sample) in between: once the sink has the reply, whoever waits for it
/// may read the metrics. [`send`](Self::send) and [`error`](Self::error)
/// do both at once for the threads that keep no such books.
#[derive(Debug)]
pub(crate) struct ReplyWriter {
    ids: ReplyIds,
    json: Vec<u8>,
    binary: AlignedBytes,
    /// Which buffer holds the reply written last.
    written: Codec,
    clock: MillisecondClock,
}

impl ReplyWriter {
    pub(crate) fn new(boot: u32) -> ReplyWriter {
        ReplyWriter {
            ids: ReplyIds::new(boot),
            json: Vec::with_capacity(1024),
            binary: AlignedBytes::new(),
            written: Codec::Json,
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
        self.encode(to.codec, message);
        self.send_written(sinks, to, correlation_id, outcome);
    }

    /// Encodes `message` in `codec` as the reply to deliver next (with
    /// [`send_written`](Self::send_written)).
    pub(crate) fn encode(&mut self, codec: Codec, message: &Message) {
        if codec == Codec::Binary {
            self.binary.clear();
            if codec::binary::encode(message, &mut self.binary).is_ok() {
                self.written = Codec::Binary;
                return;
            }
            // Replies are built by us and always fit; should one not, the
            // JSON form still answers.
        }
        self.json.clear();
        codec::json::encode(message, &mut self.json);
        self.written = Codec::Json;
    }

    /// Tells the sink what became of a message that gets no reply envelope
    /// (an Event without `ack`, an incoming Response or Error).
    pub(crate) fn silent(
        &self,
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
        let outcome = self.encode_error(to.codec, correlation_id, error);
        self.send_written(sinks, to, correlation_id, outcome);
    }

    /// Encodes the Error envelope for `error` as the reply to deliver next
    /// (with [`send_written`](Self::send_written)); its outcome.
    pub(crate) fn encode_error(
        &mut self,
        codec: Codec,
        correlation_id: Option<&str>,
        error: &Error,
    ) -> Outcome {
        let id = self.ids.next().to_owned();
        let message = error.to_envelope(id, correlation_id, self.clock.now());
        self.encode(codec, &message);
        Outcome::Error(error.code())
    }

    /// Whether Responses in `codec` are written straight from their parts
    /// ([`write_response`](Self::write_response)): JSON. The binary codec
    /// encodes an owned Message ([`seal_response`](Self::seal_response)).
    pub(crate) fn writes_directly(codec: Codec) -> bool {
        codec == Codec::Json
    }

    /// Writes the JSON Response carrying `{"result": result}` into the reply
    /// buffer, protected as the request was and stamped `at` (see
    /// `ReplyProtector::write_response`): the bytes that
    /// [`seal_response`](Self::seal_response) then [`send`](Self::send)
    /// make, without the owned [`Message`] and its allocations in between;
    /// [`send_written`] delivers it. If protecting fails (a key rotated
    /// away), the answer must be that Error instead.
    ///
    /// [`send_written`]: Self::send_written
    pub(crate) fn write_response(
        &mut self,
        protector: &mut ReplyProtector,
        reply_to: ReplyHeader<'_>,
        result: &RawJson,
        at: i128,
    ) -> Result<(), Error> {
        let timestamp = self.clock.borrow_at(at);
        let parts = ResponseParts {
            id: self.ids.next(),
            correlation_id: reply_to.id,
            level: reply_to.level,
            result,
            timestamp: timestamp.as_str(),
        };
        self.json.clear();
        self.written = Codec::Json;
        protector.write_response(
            &parts,
            reply_to.protection,
            timestamp.unix_nanos(),
            &mut self.json,
        )
    }

    /// Hands the reply written last ([`encode`](Self::encode),
    /// [`encode_error`](Self::encode_error),
    /// [`write_response`](Self::write_response)) to the sink.
    pub(crate) fn send_written(
        &self,
        sinks: &SinkTable,
        to: Destination,
        correlation_id: Option<&str>,
        outcome: Outcome,
    ) {
        let body: &[u8] = match self.written {
            Codec::Json => &self.json,
            Codec::Binary => &self.binary,
        };
        deliver(sinks, to, correlation_id, outcome, body);
    }

    /// Builds the Response carrying `{"result": result}`, protected as the
    /// request was and stamped `at` (Unix nanoseconds: the worker's time
    /// when the message began, for an answer given while it ran);
    /// [`send`](Self::send) delivers it. If protecting fails (a key rotated
    /// away), the answer must be that Error instead.
    pub(crate) fn seal_response(
        &mut self,
        protector: &mut ReplyProtector,
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
        // Ids need no escapes (docs/protocol.md section 3), so this is exact.
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
        protector.protect_reply(&mut message, payload, reply_to.protection, now)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::sink::SinkId;
    use crate::message::unix_nanos_now;
    use crate::security::SecurityState;
    use crate::sync::Arc;

    fn json_header(protection: &ReplyProtection, level: SecurityLevel) -> ReplyHeader<'_> {
        ReplyHeader {
            to: Destination {
                sink: SinkId(0),
                tag: 0,
                codec: Codec::Json,
            },
            id: "m-1",
            level,
            protection,
        }
    }

    #[test]
    fn a_plain_response_is_byte_for_byte_what_sealing_then_encoding_make() {
        let config = Config::default();
        let state = SecurityState::from_config(&config, unix_nanos_now()).unwrap();
        let mut protector = ReplyProtector::new(&Arc::new(state));
        let protection = ReplyProtection::default();
        let mut writer = ReplyWriter::new(7);
        let at = unix_nanos_now();
        for level in [
            SecurityLevel::Low,
            SecurityLevel::Standard,
            SecurityLevel::High,
            SecurityLevel::Critical,
        ] {
            for result in ["null", r#"{"b":[1,2.5,"x\"y\u0001"],"a":{}}"#, r#""é""#] {
                let result = RawJson::parse(result).unwrap();
                let header = json_header(&protection, level);
                assert!(header.protection.is_empty());
                writer.ids.next = 0;
                let sealed = writer
                    .seal_response(&mut protector, header, &result, at)
                    .unwrap();
                let mut encoded = Vec::new();
                codec::json::encode(&sealed, &mut encoded);
                writer.ids.next = 0;
                writer
                    .write_response(&mut protector, header, &result, at)
                    .unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&writer.json),
                    String::from_utf8_lossy(&encoded)
                );
            }
        }
        // Protected replies take keys; binary ones go by an owned Message.
        for protection in [
            ReplyProtection {
                signature_key: Some("k".into()),
                encryption_key: None,
            },
            ReplyProtection {
                signature_key: None,
                encryption_key: Some("k".into()),
            },
        ] {
            assert!(!protection.is_empty());
        }
        assert!(ReplyWriter::writes_directly(Codec::Json));
        assert!(!ReplyWriter::writes_directly(Codec::Binary));
    }

    #[test]
    fn a_protected_response_is_what_sealing_then_encoding_make() {
        use crate::codec::{Decoder, Limits};
        use crate::security::cipher::{CipherScratch, open_payload};
        use crate::security::signature::{SignatureScratch, verify_signature};

        let suffix = crate::dev_setup::random_key().unwrap()[0];
        let dir =
            std::env::temp_dir().join(format!("mcp-reply-test-{}-{suffix}", std::process::id()));
        let dev = crate::dev_setup::DevSetup::write(&dir, "127.0.0.1:1".parse().unwrap()).unwrap();
        let config = Config::load(&dev.config_path).unwrap();
        let at = unix_nanos_now();
        let state = Arc::new(SecurityState::from_config(&config, at).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
        let mut protector = ReplyProtector::new(&state);
        let mut writer = ReplyWriter::new(7);
        let result = RawJson::parse(r#"{"b":[1,"x\"y"],"a":2.5}"#).unwrap();

        // Signed only: byte for byte.
        let signed = ReplyProtection {
            signature_key: Some("dev-sign-1".into()),
            encryption_key: None,
        };
        writer.ids.next = 0;
        let sealed = writer
            .seal_response(
                &mut protector,
                json_header(&signed, SecurityLevel::Critical),
                &result,
                at,
            )
            .unwrap();
        let mut encoded = Vec::new();
        codec::json::encode(&sealed, &mut encoded);
        writer.ids.next = 0;
        writer
            .write_response(
                &mut protector,
                json_header(&signed, SecurityLevel::Critical),
                &result,
                at,
            )
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&writer.json),
            String::from_utf8_lossy(&encoded)
        );

        // Encrypted and signed: each takes a fresh nonce, so compare what a
        // client reads: the signature verifies, the payload opens, and
        // every other field is the general path's.
        let both = ReplyProtection {
            signature_key: Some("dev-sign-1".into()),
            encryption_key: Some("dev-enc-1".into()),
        };
        writer.ids.next = 0;
        let sealed = writer
            .seal_response(
                &mut protector,
                json_header(&both, SecurityLevel::Critical),
                &result,
                at,
            )
            .unwrap();
        writer.ids.next = 0;
        writer
            .write_response(
                &mut protector,
                json_header(&both, SecurityLevel::Critical),
                &result,
                at,
            )
            .unwrap();
        let body = writer.json.clone();
        let mut decoder = Decoder::new(Limits::default());
        let view = decoder.decode_json(&body, at).unwrap();
        let keyring = state.keyring.load();
        let mut signatures = SignatureScratch::default();
        assert_eq!(
            verify_signature(&view, &keyring, at, &mut signatures).unwrap(),
            "dev-sign-1"
        );
        let mut cipher = CipherScratch::default();
        let (plain, key_id) = open_payload(&view, &keyring, at, &mut cipher).unwrap();
        assert_eq!(key_id, "dev-enc-1");
        assert_eq!(&plain[..], br#"{"result":{"b":[1,"x\"y"],"a":2.5}}"#);
        let mut written = view.to_message();
        let mut general = sealed;
        for message in [&mut written, &mut general] {
            message.payload = RawJson::null();
            message.security.signature = crate::message::Field::Absent;
            if let crate::message::Field::Present(info) = &mut message.security.encryption_info {
                info.nonce.clear();
            }
        }
        assert_eq!(written, general);

        // A key not there: the general path's error, and nothing written.
        for missing in [
            ReplyProtection {
                signature_key: Some("nope".into()),
                encryption_key: None,
            },
            ReplyProtection {
                signature_key: Some("dev-sign-1".into()),
                encryption_key: Some("nope".into()),
            },
        ] {
            let general = writer
                .seal_response(
                    &mut protector,
                    json_header(&missing, SecurityLevel::Critical),
                    &result,
                    at,
                )
                .unwrap_err();
            let written = writer
                .write_response(
                    &mut protector,
                    json_header(&missing, SecurityLevel::Critical),
                    &result,
                    at,
                )
                .unwrap_err();
            assert_eq!(
                (written.code(), written.message()),
                (general.code(), general.message())
            );
            assert!(writer.json.is_empty());
        }
    }
}
