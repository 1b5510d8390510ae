//! The binary codec on rkyv 0.8 (docs/protocol.md section 8).
//!
//! The binary envelope carries the JSON envelope's fields one to one:
//! `payload` and `metadata` as the bytes of their JSON text, everything else
//! typed, absent and `null` kept apart, so that a message converts between
//! the codecs without changing its signed form.
//!
//! Input is always validated (`rkyv::access`, bytecheck) before anything is
//! read; never unchecked. Validation proves the structure sound, not the
//! content honest: a corrupted byte can still decode as other valid data,
//! which is why integrity comes from the signature. The layout is fixed by
//! the crate's rkyv features: little-endian, 32-bit offsets, aligned.

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use super::rules::{self, Limits, MetadataFields};
use super::value_text::ValueTexts;
use crate::error::{Code, Error};
use crate::json::TapeLease;
use crate::message::{
    EncryptionInfo, Field, Message, MessageType, MessageView, SecurityLevel, SecurityMetadata,
    TypeKey,
};

/// Alignment of binary bodies; rkyv refuses misaligned input.
pub const BINARY_ALIGNMENT: usize = 16;

/// A buffer aligned for the binary codec.
pub type AlignedBytes = AlignedVec<BINARY_ALIGNMENT>;

/// The binary envelope. Field order and types are the wire format: change
/// them and old peers can no longer read new messages.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct WireEnvelope {
    pub(crate) version: Option<String>,
    pub(crate) id: String,
    pub(crate) kind: WireKind,
    /// Whether the JSON form says `type_` rather than `type`.
    pub(crate) type_underscore: bool,
    /// The payload's JSON text.
    pub(crate) payload: Vec<u8>,
    /// The metadata's JSON text.
    pub(crate) metadata: WireField<Vec<u8>>,
    pub(crate) security: WireSecurity,
    pub(crate) timestamp: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq, Clone, Copy)]
#[rkyv(derive(Debug))]
pub(crate) enum WireKind {
    Command,
    Response,
    Event,
    Error,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq, Clone, Copy)]
#[rkyv(derive(Debug))]
pub(crate) enum WireLevel {
    Low,
    Standard,
    High,
    Critical,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub(crate) enum WireField<T> {
    Absent,
    Null,
    Present(T),
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct WireSecurity {
    pub(crate) level: WireLevel,
    pub(crate) encryption_info: WireField<WireEncryptionInfo>,
    pub(crate) signature: WireField<String>,
    pub(crate) auth_token: WireField<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct WireEncryptionInfo {
    pub(crate) algorithm: String,
    pub(crate) key_id: String,
    pub(crate) nonce: String,
}

impl From<MessageType> for WireKind {
    fn from(kind: MessageType) -> WireKind {
        match kind {
            MessageType::Command => WireKind::Command,
            MessageType::Response => WireKind::Response,
            MessageType::Event => WireKind::Event,
            MessageType::Error => WireKind::Error,
        }
    }
}

impl From<&ArchivedWireKind> for MessageType {
    fn from(kind: &ArchivedWireKind) -> MessageType {
        match kind {
            ArchivedWireKind::Command => MessageType::Command,
            ArchivedWireKind::Response => MessageType::Response,
            ArchivedWireKind::Event => MessageType::Event,
            ArchivedWireKind::Error => MessageType::Error,
        }
    }
}

impl From<SecurityLevel> for WireLevel {
    fn from(level: SecurityLevel) -> WireLevel {
        match level {
            SecurityLevel::Low => WireLevel::Low,
            SecurityLevel::Standard => WireLevel::Standard,
            SecurityLevel::High => WireLevel::High,
            SecurityLevel::Critical => WireLevel::Critical,
        }
    }
}

impl From<&ArchivedWireLevel> for SecurityLevel {
    fn from(level: &ArchivedWireLevel) -> SecurityLevel {
        match level {
            ArchivedWireLevel::Low => SecurityLevel::Low,
            ArchivedWireLevel::Standard => SecurityLevel::Standard,
            ArchivedWireLevel::High => SecurityLevel::High,
            ArchivedWireLevel::Critical => SecurityLevel::Critical,
        }
    }
}

fn wire_field<T, W>(field: &Field<T>, convert: impl FnOnce(&T) -> W) -> WireField<W> {
    match field {
        Field::Absent => WireField::Absent,
        Field::Null => WireField::Null,
        Field::Present(v) => WireField::Present(convert(v)),
    }
}

fn archived_field<T: Archive>(field: &ArchivedWireField<T>) -> Field<&T::Archived> {
    match field {
        ArchivedWireField::Absent => Field::Absent,
        ArchivedWireField::Null => Field::Null,
        ArchivedWireField::Present(v) => Field::Present(v),
    }
}

impl From<&Message> for WireEnvelope {
    fn from(message: &Message) -> WireEnvelope {
        let security = &message.security;
        WireEnvelope {
            version: message.version.clone(),
            id: message.id.clone(),
            kind: message.kind.into(),
            type_underscore: message.type_key == TypeKey::TypeUnderscore,
            payload: message.payload.as_bytes().to_vec(),
            metadata: wire_field(&message.metadata, |m| m.as_bytes().to_vec()),
            security: WireSecurity {
                level: security.security_level.into(),
                encryption_info: wire_field(&security.encryption_info, |info| WireEncryptionInfo {
                    algorithm: info.algorithm.clone(),
                    key_id: info.key_id.clone(),
                    nonce: info.nonce.clone(),
                }),
                signature: wire_field(&security.signature, Clone::clone),
                auth_token: wire_field(&security.auth_token, Clone::clone),
            },
            timestamp: message.timestamp.as_str().to_owned(),
        }
    }
}

/// Writes `message` in the binary form into `out` (cleared first).
///
/// Fails with `internal_error` only if the message is too large for the
/// format's 32-bit offsets.
pub fn encode(message: &Message, out: &mut AlignedBytes) -> Result<(), Error> {
    let mut buffer = std::mem::take(out);
    buffer.clear();
    let wire = WireEnvelope::from(message);
    *out = rkyv::api::high::to_bytes_in::<_, rancor::Error>(&wire, buffer)
        .map_err(|e| Error::new(Code::InternalError, format!("binary encoding failed: {e}")))?;
    Ok(())
}

/// Validates the binary layout of `body` only: that it is a well-formed
/// archive of the envelope (bytecheck), without the envelope rules or
/// parsing `payload`. `body` must be aligned to [`BINARY_ALIGNMENT`].
///
/// [`Decoder::decode_binary`](super::Decoder::decode_binary) does this and
/// everything else; this is the cost of rkyv's validation alone.
pub fn check_archive(body: &[u8]) -> Result<(), Error> {
    access(body).map(drop)
}

fn access(body: &[u8]) -> Result<&ArchivedWireEnvelope, Error> {
    rkyv::access::<ArchivedWireEnvelope, rancor::Error>(body).map_err(|e| {
        Error::new(
            Code::InvalidFormat,
            format!("the binary envelope failed validation: {e}"),
        )
    })
}

/// The `id` of a binary envelope that passes validation, whatever else it
/// holds; `body` aligned as for [`decode`].
pub(crate) fn archived_id(body: &[u8]) -> Option<&str> {
    access(body).ok().map(|envelope| envelope.id.as_str())
}

/// Validates and decodes one binary envelope, whose size the caller has
/// checked; `body` must be aligned to [`BINARY_ALIGNMENT`] (the
/// [`Decoder`](super::Decoder) sees to both).
pub(crate) fn decode<'a>(
    body: &'a [u8],
    texts: ValueTexts<'a>,
    mut lease: TapeLease<'a>,
    limits: &Limits,
    now: i128,
) -> Result<MessageView<'a>, Error> {
    let envelope = access(body)?;
    // payload and metadata are JSON text: parsing them is still
    // well-formedness, so it comes before the version check.
    let metadata = archived_field(&envelope.metadata);
    let payload_at = 0;
    let metadata_at = texts.parse(
        envelope.payload.as_slice(),
        metadata.present().map(|m| m.as_slice()),
        &mut lease,
    )?;

    let version = envelope.version.as_ref().map(|v| v.as_str());
    rules::check_version_major(version)?;
    if let Some(version) = version {
        rules::check_version_form(version)?;
    }
    let id = envelope.id.as_str();
    rules::check_id(id)?;
    let (metadata_at, metadata_fields) = match metadata {
        Field::Null => (Field::Null, MetadataFields::default()),
        Field::Absent | Field::Present(_) => rules::read_metadata(&lease.tape.0, metadata_at)?,
    };
    let timestamp = envelope.timestamp.as_str();
    let timestamp_nanos = rules::check_timestamp(timestamp, now, limits)?;
    let security = &envelope.security;
    let security = SecurityMetadata {
        security_level: SecurityLevel::from(&security.level),
        encryption_info: archived_field(&security.encryption_info).map(|info| EncryptionInfo {
            algorithm: info.algorithm.as_str(),
            key_id: info.key_id.as_str(),
            nonce: info.nonce.as_str(),
        }),
        signature: archived_field(&security.signature).map(|s| s.as_str()),
        auth_token: archived_field(&security.auth_token).map(|s| s.as_str()),
    };

    Ok(MessageView {
        version,
        id,
        kind: MessageType::from(&envelope.kind),
        type_key: if envelope.type_underscore {
            TypeKey::TypeUnderscore
        } else {
            TypeKey::Type
        },
        security,
        timestamp,
        timestamp_nanos,
        correlation_id: metadata_fields.correlation_id,
        ack: metadata_fields.ack,
        replay: metadata_fields.replay,
        payload_at,
        metadata: metadata_at,
        tape: lease,
        // Binary strings are any UTF-8.
        plain: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Decoder, Limits};

    const NOW: i128 = 1_795_435_200 * 1_000_000_000;

    fn wire() -> WireEnvelope {
        WireEnvelope {
            version: Some("1.0".into()),
            id: "b-1".into(),
            kind: WireKind::Event,
            type_underscore: false,
            payload: br#"{"event":"demo.notice","data":[1,2]}"#.to_vec(),
            metadata: WireField::Present(br#"{"ack":true}"#.to_vec()),
            security: WireSecurity {
                level: WireLevel::Low,
                encryption_info: WireField::Absent,
                signature: WireField::Null,
                auth_token: WireField::Absent,
            },
            timestamp: "2026-11-23T12:00:00Z".into(),
        }
    }

    fn bytes(wire: &WireEnvelope) -> AlignedBytes {
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(wire, AlignedBytes::new()).unwrap()
    }

    fn decode(wire: &WireEnvelope) -> Result<(), Error> {
        let body = bytes(wire);
        let mut decoder = Decoder::new(Limits::default());
        decoder.decode_binary(&body, NOW).map(drop)
    }

    #[test]
    fn a_well_formed_archive_decodes() {
        let body = bytes(&wire());
        let mut decoder = Decoder::new(Limits::default());
        let view = decoder.decode_binary(&body, NOW).unwrap();
        assert_eq!(view.kind(), MessageType::Event);
        assert!(view.ack());
        assert_eq!(
            view.payload().get("event").unwrap().as_str(),
            Some("demo.notice")
        );
        assert_eq!(view.security().signature, Field::Null);
        assert_eq!(check_archive(&body), Ok(()));
    }

    #[test]
    fn payload_and_metadata_must_be_well_formed_json() {
        for (payload, reason) in [
            (&b"{\"event\":"[..], "not valid JSON"),
            (b"", "not valid JSON"),
            (b"{\"a\":1,\"a\":2}", "duplicate key"),
            (b"1 2", "not valid JSON"),
        ] {
            let mut w = wire();
            w.payload = payload.to_vec();
            let e = decode(&w).unwrap_err();
            assert_eq!(e.code(), Code::InvalidFormat, "{payload:?}");
            assert!(e.message().starts_with("field `payload`"), "{e}");
            assert!(e.message().contains(reason), "{e}");
        }
        let mut w = wire();
        w.metadata = WireField::Present(b"{\"ack\":tru".to_vec());
        assert_eq!(decode(&w).unwrap_err().code(), Code::InvalidFormat);
    }

    #[test]
    fn the_payload_sits_one_level_down_so_it_may_nest_63_deep() {
        let nested = |d: usize| ("[".repeat(d) + &"]".repeat(d)).into_bytes();
        let mut w = wire();
        w.payload = nested(63);
        assert!(decode(&w).is_ok());
        w.payload = nested(64);
        assert_eq!(decode(&w).unwrap_err().code(), Code::InvalidFormat);
    }

    #[test]
    fn metadata_of_json_null_reads_as_null_and_other_non_objects_are_refused() {
        let mut w = wire();
        w.metadata = WireField::Present(b"null".to_vec());
        let body = bytes(&w);
        let mut decoder = Decoder::new(Limits::default());
        assert!(matches!(
            decoder.decode_binary(&body, NOW).unwrap().metadata(),
            Field::Null
        ));
        w.metadata = WireField::Present(b"[1]".to_vec());
        assert_eq!(decode(&w).unwrap_err().code(), Code::ValidationFailed);
    }

    #[test]
    fn invalid_utf8_in_a_string_fails_validation() {
        // Short strings are stored inline, long ones out of line: both checked.
        for id in ["b-1", "b-0123456789abcdef"] {
            let mut w = wire();
            w.id = id.into();
            let body = bytes(&w);
            let at = body
                .windows(id.len())
                .position(|w| w == id.as_bytes())
                .unwrap();
            let mut corrupted = AlignedBytes::new();
            corrupted.extend_from_slice(&body);
            corrupted[at + 1] = 0xC0; // a lead byte followed by ASCII
            let mut decoder = Decoder::new(Limits::default());
            let e = decoder.decode_binary(&corrupted, NOW).unwrap_err();
            assert_eq!(e.code(), Code::InvalidFormat, "{id}: {e}");
        }
    }

    #[test]
    fn an_unknown_enum_tag_fails_validation() {
        let mut w = wire();
        w.kind = WireKind::Error;
        let body = bytes(&w);
        // The kind's tag is the only byte that differs between the two.
        let other = bytes(&wire());
        let diff: Vec<usize> = (0..body.len()).filter(|&i| body[i] != other[i]).collect();
        assert_eq!(diff.len(), 1);
        let mut corrupted = AlignedBytes::new();
        corrupted.extend_from_slice(&body);
        corrupted[diff[0]] = 9;
        assert_eq!(
            check_archive(&corrupted).unwrap_err().code(),
            Code::InvalidFormat
        );
    }
}
