//! [`Envelopes`]: building requests for any security level and opening the
//! replies (checking their signature, decrypting their payload), as a
//! client does.

use ring::rand::{SecureRandom, SystemRandom};

use super::Credentials;
use crate::codec::{AlignedBytes, Codec, Decoder, Limits, binary, json};
use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::message::{
    Field, Message, MessageType, SecurityLevel, Timestamp, named_payload, unix_nanos_now,
};
use crate::security::cipher::CipherScratch;
use crate::security::signature::SignatureScratch;
use crate::security::{Keyring, ReplayStream, Sealer, open_reply};

/// A request ready to send: its id (replies correlate by it) and its frame
/// body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The message id.
    pub id: String,
    /// The body's codec.
    pub codec: Codec,
    /// The encoded envelope.
    pub body: Vec<u8>,
}

/// A reply, checked and decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The envelope with its payload in plaintext.
    pub message: Message,
    /// `metadata.correlation_id`.
    pub correlation_id: Option<String>,
}

impl Opened {
    /// Whether it is an Error.
    pub fn is_error(&self) -> bool {
        self.message.kind == MessageType::Error
    }

    /// The envelope as JSON text.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        json::encode(&self.message, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Builds requests and opens replies with one set of keys.
#[derive(Debug)]
pub struct Envelopes {
    sealer: Sealer,
    keyring: Keyring,
    decoder: Decoder,
    prefix: String,
    next: u64,
    signatures: SignatureScratch,
    cipher: CipherScratch,
}

impl Envelopes {
    /// Envelopes speaking with `token` (for levels from `Standard` up),
    /// sealing with the keys of `keyring`: `signing_kid` and
    /// `encryption_kid` name the keys for signatures and payloads. Their
    /// messages go on a replay stream of their own (a fresh random name,
    /// docs/protocol.md section 7a), so that the receiver keeps one window
    /// for them however many they send; see [`set_stream`](Self::set_stream).
    pub fn new(
        keyring: Keyring,
        token: Option<String>,
        signing_kid: &str,
        encryption_kid: &str,
    ) -> Result<Envelopes, Error> {
        let mut random = [0u8; 6];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| Error::new(Code::InternalError, "no randomness for message ids"))?;
        let prefix = random.iter().fold(String::from("c-"), |mut text, byte| {
            text.push_str(&format!("{byte:02x}"));
            text
        });
        let mut sealer = Sealer::new(keyring.clone(), token, signing_kid, encryption_kid)?;
        sealer.set_stream(Some(ReplayStream::new()?));
        Ok(Envelopes {
            sealer,
            keyring,
            decoder: Decoder::new(Limits {
                max_message_size: u32::MAX as usize - 1,
                ..Limits::default()
            }),
            prefix: prefix + "-",
            next: 0,
            signatures: SignatureScratch::default(),
            cipher: CipherScratch::default(),
        })
    }

    /// Envelopes from `credentials`, speaking as the holder of the token of
    /// `role`.
    pub fn from_credentials(credentials: &Credentials, role: &str) -> Result<Envelopes, Error> {
        let token = credentials.token(role).map(str::to_owned);
        let signing = credentials.signing.as_ref().map_or("", |k| k.kid.as_str());
        let encryption = credentials
            .encryption
            .as_ref()
            .map_or("", |k| k.kid.as_str());
        Envelopes::new(credentials.keyring()?, token, signing, encryption)
    }

    /// Puts the messages built from now on on `stream` (clones of one
    /// stream, on several threads, share its numbers), or on none: `None`
    /// sends version `1.0` messages that the receiver checks by id.
    pub fn set_stream(&mut self, stream: Option<ReplayStream>) {
        self.sealer.set_stream(stream);
    }

    /// The replay stream messages are numbered on, if any.
    pub fn stream(&self) -> Option<&ReplayStream> {
        self.sealer.stream()
    }

    /// A fresh message id: unique per `Envelopes` and, by its random
    /// prefix, across clients.
    pub fn next_id(&mut self) -> String {
        self.next += 1;
        format!("{}{}", self.prefix, self.next)
    }

    /// A Command `{"command": name, "args": args}` at `level`.
    pub fn command(
        &mut self,
        codec: Codec,
        level: SecurityLevel,
        name: &str,
        args: Option<&RawJson>,
    ) -> Result<Outgoing, Error> {
        let payload = named_payload("command", name, "args", args)?;
        self.build(codec, MessageType::Command, level, payload, None)
    }

    /// An Event `{"event": name, "data": data}` at `level`, asking for an
    /// acknowledgement if `ack`.
    pub fn event(
        &mut self,
        codec: Codec,
        level: SecurityLevel,
        name: &str,
        data: Option<&RawJson>,
        ack: bool,
    ) -> Result<Outgoing, Error> {
        let payload = named_payload("event", name, "data", data)?;
        let metadata = ack.then(|| RawJson::parse("{\"ack\":true}")).transpose()?;
        self.build(codec, MessageType::Event, level, payload, metadata)
    }

    /// A message of `kind` with `payload` (plaintext), stamped now, sealed
    /// as `level` requires, encoded.
    pub fn build(
        &mut self,
        codec: Codec,
        kind: MessageType,
        level: SecurityLevel,
        payload: RawJson,
        metadata: Option<RawJson>,
    ) -> Result<Outgoing, Error> {
        let id = self.next_id();
        let mut message = Message::new(id.clone(), kind, level, payload);
        if let Some(metadata) = metadata {
            message.metadata = Field::Present(metadata);
        }
        let now = unix_nanos_now();
        message.timestamp = Timestamp::from_unix_nanos(now);
        self.sealer.seal(&mut message, now)?;
        Ok(Outgoing {
            id,
            codec,
            body: encode(&message, codec)?,
        })
    }

    /// Decodes a reply body, checks its signature if it is signed, and
    /// decrypts its payload if it is encrypted.
    pub fn open(&mut self, codec: Codec, body: &[u8]) -> Result<Opened, Error> {
        let bytes = body.to_vec();
        let now = unix_nanos_now();
        let view = self.decoder.decode(codec, &bytes, now)?;
        let mut message = view.to_message();
        let correlation_id = view.correlation_id().map(str::to_owned);
        let opened = open_reply(
            &view,
            &self.keyring,
            now,
            &mut self.signatures,
            &mut self.cipher,
        )?;
        if let Some(plaintext) = opened {
            let text = std::str::from_utf8(plaintext)
                .map_err(|_| Error::new(Code::EncryptionFailed, "plaintext is not UTF-8"))?;
            message.payload = RawJson::parse(text)
                .map_err(|_| Error::new(Code::EncryptionFailed, "plaintext is not JSON"))?;
            message.security.encryption_info = Field::Absent;
        }
        Ok(Opened {
            message,
            correlation_id,
        })
    }
}

/// `message` encoded in `codec`.
pub fn encode(message: &Message, codec: Codec) -> Result<Vec<u8>, Error> {
    match codec {
        Codec::Json => {
            let mut body = Vec::new();
            json::encode(message, &mut body);
            Ok(body)
        }
        Codec::Binary => {
            let mut body = AlignedBytes::new();
            binary::encode(message, &mut body)?;
            Ok(body.to_vec())
        }
    }
}
