//! [`MessageView`]: a validated message, borrowed from the buffer it came in.

use super::{Field, Message, MessageType, ReplayMark, SecurityMetadata, Timestamp, TypeKey};
use crate::json::{JsonRef, RawJson, TapeLease};

/// A message that passed decoding and every envelope rule, read in place.
///
/// Strings are borrowed from the input buffer (simd-json unescapes them in
/// place), `payload` and `metadata` are [`JsonRef`]s into the parse tape. A
/// view is what the engine's stages read; [`to_message`](Self::to_message)
/// makes an owned [`Message`] when one is needed.
///
/// Made by [`Decoder`](crate::codec::Decoder); holds the decoder's tape until
/// dropped.
pub struct MessageView<'a> {
    pub(crate) version: Option<&'a str>,
    pub(crate) id: &'a str,
    pub(crate) kind: MessageType,
    pub(crate) type_key: TypeKey,
    pub(crate) security: SecurityMetadata<&'a str>,
    pub(crate) timestamp: &'a str,
    pub(crate) timestamp_nanos: i128,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) ack: bool,
    pub(crate) replay: Option<ReplayMark<'a>>,
    /// Tape position of `payload`.
    pub(crate) payload_at: usize,
    /// Tape position of `metadata`, if present and not null.
    pub(crate) metadata: Field<usize>,
    pub(crate) tape: TapeLease<'a>,
    /// Whether every string of the message (keys included) is plain: no
    /// quote, backslash or control character, so that writing it back
    /// needs no escaping. True when the plain envelope reader read it,
    /// which gives up on any such byte.
    pub(crate) plain: bool,
}

impl<'a> MessageView<'a> {
    /// `version` as sent, if sent (absent means `1.0`).
    pub fn version(&self) -> Option<&'a str> {
        self.version
    }

    /// The message id.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The message type.
    pub fn kind(&self) -> MessageType {
        self.kind
    }

    /// Which key carried the type.
    pub fn type_key(&self) -> TypeKey {
        self.type_key
    }

    /// The payload (for an encrypted message, the ciphertext string).
    pub fn payload(&self) -> JsonRef<'_> {
        self.tape.value(self.payload_at).unwrap_or(JsonRef::NULL)
    }

    /// The metadata object, or whether it was `null` or absent.
    pub fn metadata(&self) -> Field<JsonRef<'_>> {
        match self.metadata {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Present(at) => self.tape.value(at).map_or(Field::Null, Field::Present),
        }
    }

    /// The `security` object.
    pub fn security(&self) -> &SecurityMetadata<&'a str> {
        &self.security
    }

    /// The timestamp exactly as sent.
    pub fn timestamp(&self) -> &'a str {
        self.timestamp
    }

    /// The timestamp as Unix nanoseconds.
    pub fn timestamp_nanos(&self) -> i128 {
        self.timestamp_nanos
    }

    /// `metadata.correlation_id`: the id of the message this one answers.
    pub fn correlation_id(&self) -> Option<&'a str> {
        self.correlation_id
    }

    /// `metadata.ack`: whether an Event asks for a Response.
    pub fn ack(&self) -> bool {
        self.ack
    }

    /// `metadata.replay`: the sender's replay stream and this message's
    /// number on it (docs/protocol.md section 7a), if it named one.
    pub fn replay(&self) -> Option<ReplayMark<'a>> {
        self.replay
    }

    /// An owned copy of the message, field for field (absent stays absent,
    /// `null` stays `null`).
    pub fn to_message(&self) -> Message {
        Message {
            version: self.version.map(str::to_owned),
            id: self.id.to_owned(),
            kind: self.kind,
            type_key: self.type_key,
            payload: RawJson::from_json(self.payload()),
            metadata: self.metadata().map(RawJson::from_json),
            security: self.security.to_owned_metadata(),
            timestamp: Timestamp::from_parts(self.timestamp.to_owned(), self.timestamp_nanos),
        }
    }
}

impl std::fmt::Debug for MessageView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageView")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("security_level", &self.security.security_level)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}
