//! [`Message`]: the owned envelope, for building and keeping messages.

use super::{Field, MessageType, SecurityLevel, SecurityMetadata, Timestamp, TypeKey};
use crate::json::RawJson;

/// The protocol version this engine writes.
pub const PROTOCOL_VERSION: &str = "1.0";

/// An MCP message (`MCPMessage` of docs/seed-specification.md), owned.
///
/// Build one to send, or get one from a [`MessageView`](super::MessageView)
/// with `to_message`. Fields mirror the wire envelope one to one (docs/protocol.md
/// section 3), absent and `null` kept apart, so that decoding and re-encoding,
/// in either codec, gives back the same envelope and the same signed form.
///
/// The model does not police itself: a message built with a bad id encodes
/// fine and is refused by the receiver's decoder, which is where the rules
/// are enforced.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// `version`; `None` leaves the key out (which means `1.0`).
    pub version: Option<String>,
    /// `id`: 1 to 128 characters of `[A-Za-z0-9._:-]`, unique per sender.
    pub id: String,
    /// `type`.
    pub kind: MessageType,
    /// Whether the type is written as `type` or `type_`.
    pub type_key: TypeKey,
    /// `payload`: any JSON value; the ciphertext string when encrypted.
    pub payload: RawJson,
    /// `metadata`: an object, `null`, or absent.
    pub metadata: Field<RawJson>,
    /// `security`.
    pub security: SecurityMetadata,
    /// `timestamp`.
    pub timestamp: Timestamp,
}

impl Message {
    /// A version-1 message stamped now, with no metadata and every optional
    /// security field absent.
    pub fn new(
        id: impl Into<String>,
        kind: MessageType,
        security_level: SecurityLevel,
        payload: RawJson,
    ) -> Message {
        Message {
            version: Some(PROTOCOL_VERSION.to_owned()),
            id: id.into(),
            kind,
            type_key: TypeKey::Type,
            payload,
            metadata: Field::Absent,
            security: SecurityMetadata::new(security_level),
            timestamp: Timestamp::now(),
        }
    }
}
