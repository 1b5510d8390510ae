//! The sending side of a level's protection: number the message on its
//! replay stream, attach a token, encrypt the payload, sign the envelope
//! (in that order: the signature covers the stream's number and the
//! ciphertext). What a client does before it sends, and what the engine's
//! tests and benchmarks do to speak to it.

use std::sync::Arc;

use super::cipher::{CipherScratch, NonceSequence, NonceSource, seal_payload};
use super::keyring::Keyring;
use super::sending_stream::ReplayStream;
use super::signature::{SignatureScratch, sign_message};
use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::message::{Field, Message, SecurityLevel};

/// The version a message on a replay stream carries (section 7a).
pub const STREAM_PROTOCOL_VERSION: &str = "1.1";

/// Protects outgoing messages as their level requires (see the module
/// docs). One per sending thread: it keeps working buffers and a block of
/// nonces.
#[derive(Debug)]
pub struct Sealer {
    keyring: Keyring,
    token: Option<String>,
    signing_key: String,
    encryption_key: String,
    nonces: NonceSource,
    cipher: CipherScratch,
    signatures: SignatureScratch,
    stream: Option<ReplayStream>,
}

impl Sealer {
    /// A sealer using `keyring`'s keys `signing_key` and `encryption_key`,
    /// and `token` for levels that need one.
    pub fn new(
        keyring: Keyring,
        token: Option<String>,
        signing_key: &str,
        encryption_key: &str,
    ) -> Result<Sealer, Error> {
        Ok(Sealer {
            keyring,
            token,
            signing_key: signing_key.to_owned(),
            encryption_key: encryption_key.to_owned(),
            nonces: NonceSource::new(Arc::new(NonceSequence::new()?)),
            cipher: CipherScratch::default(),
            signatures: SignatureScratch::default(),
            stream: None,
        })
    }

    /// Numbers every message sealed from now on on `stream` (`metadata.replay`,
    /// version `1.1`), or on none (`None`: the receiver checks the id).
    pub fn set_stream(&mut self, stream: Option<ReplayStream>) {
        self.stream = stream;
    }

    /// The stream messages are numbered on, if any.
    pub fn stream(&self) -> Option<&ReplayStream> {
        self.stream.as_ref()
    }

    /// Protects `message` as its level requires, at `now` (unix
    /// nanoseconds): the token from `Standard` up, encryption at
    /// `Critical`, a signature from `High` up. Its id, type, timestamp and
    /// payload must be final.
    pub fn seal(&mut self, message: &mut Message, now: i128) -> Result<(), Error> {
        if let Some(stream) = &self.stream {
            number(message, stream)?;
        }
        let level = message.security.security_level;
        if level >= SecurityLevel::Standard
            && let Some(token) = &self.token
        {
            message.security.auth_token = Field::Present(token.clone());
        }
        if level >= SecurityLevel::Critical {
            let plaintext = message.payload.clone();
            seal_payload(
                message,
                &plaintext,
                &self.keyring,
                &self.encryption_key,
                now,
                &mut self.nonces,
                &mut self.cipher,
            )?;
        }
        if level >= SecurityLevel::High {
            sign_message(
                message,
                &self.keyring,
                &self.signing_key,
                now,
                &mut self.signatures,
            )?;
        }
        Ok(())
    }

    /// Replaces the token (after `auth.renew`).
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }
}

/// Puts `message` on `stream`: `metadata.replay` with the stream's next
/// number, and version `1.1`. A message that names a stream of its own
/// keeps it.
fn number(message: &mut Message, stream: &ReplayStream) -> Result<(), Error> {
    let seq = stream.next_seq().ok_or_else(|| {
        Error::new(
            Code::ResourceExhausted,
            "the replay stream's numbers are used up: open a new stream",
        )
    })?;
    // Stream names need no escaping (their alphabet is base64url's).
    let mark = format!(r#""replay":{{"stream":"{}","seq":{seq}}}"#, stream.name());
    let metadata = match &message.metadata {
        Field::Present(metadata) if metadata.is_object() => {
            let rest = metadata
                .as_str()
                .trim_start()
                .strip_prefix('{')
                .unwrap_or("}");
            let rest = rest.trim_start();
            let separator = if rest.starts_with('}') { "" } else { "," };
            format!("{{{mark}{separator}{rest}")
        }
        Field::Present(_) => {
            return Err(Error::new(
                Code::ValidationFailed,
                "metadata must be an object to carry a replay stream",
            ));
        }
        Field::Absent | Field::Null => format!("{{{mark}}}"),
    };
    // A repeated key (it has a `replay` of its own) does not parse: then
    // the message is left as it is.
    if let Ok(metadata) = RawJson::parse(&metadata) {
        message.metadata = Field::Present(metadata);
        message.version = Some(STREAM_PROTOCOL_VERSION.to_owned());
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::message::MessageType;

    fn sealed(sealer: &mut Sealer, metadata: Field<RawJson>) -> Message {
        let payload = RawJson::parse(r#"{"command":"x.y"}"#).unwrap();
        let mut message = Message::new("m-1", MessageType::Command, SecurityLevel::Low, payload);
        message.metadata = metadata;
        sealer.seal(&mut message, 0).unwrap();
        message
    }

    #[test]
    fn a_sealer_on_a_stream_numbers_each_message_in_its_metadata() {
        let mut sealer = Sealer::new(Keyring::new(), None, "s", "e").unwrap();
        let plain = sealed(&mut sealer, Field::Absent);
        assert_eq!(plain.metadata, Field::Absent);
        let stream = ReplayStream::named("st-1").unwrap();
        sealer.set_stream(Some(stream));
        let first = sealed(&mut sealer, Field::Absent);
        assert_eq!(first.version.as_deref(), Some("1.1"));
        assert_eq!(
            first.metadata.present().map(RawJson::as_str),
            Some(r#"{"replay":{"stream":"st-1","seq":1}}"#)
        );
        let ack = RawJson::parse(r#"{"ack":true}"#).unwrap();
        let second = sealed(&mut sealer, Field::Present(ack));
        assert_eq!(
            second.metadata.present().map(RawJson::as_str),
            Some(r#"{"replay":{"stream":"st-1","seq":2},"ack":true}"#)
        );
        let empty = RawJson::parse("{}").unwrap();
        let third = sealed(&mut sealer, Field::Present(empty));
        assert_eq!(
            third.metadata.present().map(RawJson::as_str),
            Some(r#"{"replay":{"stream":"st-1","seq":3}}"#)
        );
        // A message on a stream of its own keeps it.
        let own = RawJson::parse(r#"{"replay":{"stream":"mine","seq":9}}"#).unwrap();
        let kept = sealed(&mut sealer, Field::Present(own.clone()));
        assert_eq!(kept.metadata, Field::Present(own));
    }
}
