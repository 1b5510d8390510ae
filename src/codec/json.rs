//! The JSON codec: envelope decoding in place on simd-json, and encoding.
//!
//! Decoding applies the checks in the protocol's order (PROTOCOL.md section
//! 7): size, then well-formedness (JSON, an object, no repeated key, nesting),
//! then the version's major, then every field rule. Encoding writes the
//! envelope bytes directly, field by field.

use simd_json::{Node, StaticNode};

use super::rules::{self, Limits, MetadataFields, invalid};
use crate::error::{Code, Error};
use crate::json::write::write_str;
use crate::json::{Parser, TapeLease, members, quoted_prefix, str_at};
use crate::message::{
    EncryptionInfo, Field, Message, MessageType, MessageView, SecurityLevel, SecurityMetadata,
    TypeKey,
};

/// Where each top-level member sits on the tape.
#[derive(Default)]
struct Slots<'a> {
    version: Option<usize>,
    id: Option<usize>,
    kind: Option<usize>,
    kind_alias: Option<usize>,
    payload: Option<usize>,
    metadata: Option<usize>,
    security: Option<usize>,
    timestamp: Option<usize>,
    unknown: Option<&'a str>,
}

/// Decodes and validates one JSON envelope, whose size the caller (the
/// [`Decoder`](super::Decoder)) has checked; `spare` holds a copy of the
/// body if it must be parsed rather than read (see
/// [`Decoder::decode_json`](super::Decoder::decode_json)).
pub(crate) fn decode<'a>(
    parser: &mut Parser,
    body: &'a [u8],
    spare: &'a mut Vec<u8>,
    mut lease: TapeLease<'a>,
    limits: &Limits,
    now: i128,
) -> Result<MessageView<'a>, Error> {
    parser.parse_text(body, spare, &mut lease.tape)?;
    let nodes = &lease.tape.0;
    if !matches!(nodes.first(), Some(Node::Object { .. })) {
        return Err(Error::new(
            Code::InvalidFormat,
            "the message must be a JSON object",
        ));
    }
    let mut slots = Slots::default();
    for (key, at) in members(nodes, 0) {
        let slot = match key {
            "version" => &mut slots.version,
            "id" => &mut slots.id,
            "type" => &mut slots.kind,
            "type_" => &mut slots.kind_alias,
            "payload" => &mut slots.payload,
            "metadata" => &mut slots.metadata,
            "security" => &mut slots.security,
            "timestamp" => &mut slots.timestamp,
            _ => {
                slots.unknown.get_or_insert(key);
                continue;
            }
        };
        *slot = Some(at);
    }

    let version = optional_str(nodes, slots.version, "field `version` must be a string");
    rules::check_version_major(version.as_ref().ok().copied().flatten())?;
    // From here on every fault is `validation_failed`.
    let version = version?;
    if let Some(version) = version {
        rules::check_version_form(version)?;
    }
    if let Some(key) = slots.unknown {
        return Err(invalid(format!("unknown field {}", quoted_prefix(key))));
    }
    let id = required_str(nodes, slots.id, "id")?;
    rules::check_id(id)?;
    let (kind, type_key) = read_type(nodes, slots.kind, slots.kind_alias)?;
    let payload_at = slots
        .payload
        .ok_or_else(|| invalid("missing field `payload`"))?;
    let (
        metadata,
        MetadataFields {
            correlation_id,
            ack,
        },
    ) = rules::read_metadata(nodes, slots.metadata)?;
    let security = read_security(nodes, slots.security)?;
    let timestamp = required_str(nodes, slots.timestamp, "timestamp")?;
    let timestamp_nanos = rules::check_timestamp(timestamp, now, limits)?;

    Ok(MessageView {
        version,
        id,
        kind,
        type_key,
        security,
        timestamp,
        timestamp_nanos,
        correlation_id,
        ack,
        payload_at,
        metadata,
        tape: lease,
    })
}

fn required_str<'a>(
    nodes: &[Node<'a>],
    at: Option<usize>,
    name: &'static str,
) -> Result<&'a str, Error> {
    let at = at.ok_or_else(|| invalid(format!("missing field `{name}`")))?;
    str_at(nodes, at).ok_or_else(|| invalid(format!("field `{name}` must be a string")))
}

/// A string member that may be absent; `wrong_type` if present but not a string.
fn optional_str<'a>(
    nodes: &[Node<'a>],
    at: Option<usize>,
    wrong_type: &'static str,
) -> Result<Option<&'a str>, Error> {
    match at {
        None => Ok(None),
        Some(at) => str_at(nodes, at)
            .map(Some)
            .ok_or_else(|| invalid(wrong_type)),
    }
}

/// A member that may be absent or null, or else must be a string.
fn nullable_str<'a>(
    nodes: &[Node<'a>],
    at: Option<usize>,
    wrong_type: &'static str,
) -> Result<Field<&'a str>, Error> {
    let Some(at) = at else {
        return Ok(Field::Absent);
    };
    match nodes.get(at) {
        Some(Node::String(s)) => Ok(Field::Present(s)),
        Some(Node::Static(StaticNode::Null)) => Ok(Field::Null),
        _ => Err(invalid(wrong_type)),
    }
}

fn read_type(
    nodes: &[Node<'_>],
    kind: Option<usize>,
    alias: Option<usize>,
) -> Result<(MessageType, TypeKey), Error> {
    let (at, key) = match (kind, alias) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "fields `type` and `type_` must not both be present",
            ));
        }
        (Some(at), None) => (at, TypeKey::Type),
        (None, Some(at)) => (at, TypeKey::TypeUnderscore),
        (None, None) => return Err(invalid("missing field `type`")),
    };
    let name = str_at(nodes, at)
        .ok_or_else(|| invalid(format!("field `{}` must be a string", key.as_str())))?;
    let kind = MessageType::from_name(name).ok_or_else(|| {
        invalid(format!(
            "field `{}` must be Command, Response, Event or Error",
            key.as_str()
        ))
    })?;
    Ok((kind, key))
}

fn read_security<'a>(
    nodes: &[Node<'a>],
    at: Option<usize>,
) -> Result<SecurityMetadata<&'a str>, Error> {
    let at = at.ok_or_else(|| invalid("missing field `security`"))?;
    if !matches!(nodes.get(at), Some(Node::Object { .. })) {
        return Err(invalid("field `security` must be an object"));
    }
    let (mut level, mut encryption, mut signature, mut token) = (None, None, None, None);
    for (key, value_at) in members(nodes, at) {
        let slot = match key {
            "security_level" => &mut level,
            "encryption_info" => &mut encryption,
            "signature" => &mut signature,
            "auth_token" => &mut token,
            _ => {
                return Err(invalid(format!(
                    "unknown field {} in `security`",
                    quoted_prefix(key)
                )));
            }
        };
        *slot = Some(value_at);
    }
    let level = level.ok_or_else(|| invalid("missing field `security.security_level`"))?;
    let security_level = str_at(nodes, level)
        .and_then(SecurityLevel::from_name)
        .ok_or_else(|| {
            invalid("field `security.security_level` must be Low, Standard, High or Critical")
        })?;
    Ok(SecurityMetadata {
        security_level,
        encryption_info: read_encryption_info(nodes, encryption)?,
        signature: nullable_str(
            nodes,
            signature,
            "field `security.signature` must be a string or null",
        )?,
        auth_token: nullable_str(
            nodes,
            token,
            "field `security.auth_token` must be a string or null",
        )?,
    })
}

/// `encryption_info`: absent, null, or an object of exactly `algorithm`,
/// `key_id` and `nonce`, all strings. What they say (a known key, a 12-byte
/// nonce) is the decryption stage's to judge, as `encryption_failed`.
fn read_encryption_info<'a>(
    nodes: &[Node<'a>],
    at: Option<usize>,
) -> Result<Field<EncryptionInfo<&'a str>>, Error> {
    const SHAPE: &str = "field `security.encryption_info` must be null or an object of the strings `algorithm`, `key_id` and `nonce`";
    let Some(at) = at else {
        return Ok(Field::Absent);
    };
    match nodes.get(at) {
        Some(Node::Static(StaticNode::Null)) => return Ok(Field::Null),
        Some(Node::Object { .. }) => {}
        _ => return Err(invalid(SHAPE)),
    }
    let (mut algorithm, mut key_id, mut nonce) = (None, None, None);
    for (key, value_at) in members(nodes, at) {
        let slot = match key {
            "algorithm" => &mut algorithm,
            "key_id" => &mut key_id,
            "nonce" => &mut nonce,
            _ => return Err(invalid(SHAPE)),
        };
        *slot = Some(str_at(nodes, value_at).ok_or_else(|| invalid(SHAPE))?);
    }
    match (algorithm, key_id, nonce) {
        (Some(algorithm), Some(key_id), Some(nonce)) => Ok(Field::Present(EncryptionInfo {
            algorithm,
            key_id,
            nonce,
        })),
        _ => Err(invalid(SHAPE)),
    }
}

/// Appends `message` as a compact JSON envelope.
///
/// Keys in the protocol's order: `version`, `id`, `type`, `payload`,
/// `metadata`, `security`, `timestamp`; absent fields are left out.
pub fn encode(message: &Message, out: &mut Vec<u8>) {
    out.reserve(256 + message.payload.as_str().len());
    out.push(b'{');
    if let Some(version) = &message.version {
        out.extend_from_slice(b"\"version\":");
        write_str(out, version);
        out.push(b',');
    }
    out.extend_from_slice(b"\"id\":");
    write_str(out, &message.id);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(message.type_key.as_str().as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(message.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"payload\":");
    out.extend_from_slice(message.payload.as_bytes());
    match &message.metadata {
        Field::Absent => {}
        Field::Null => out.extend_from_slice(b",\"metadata\":null"),
        Field::Present(metadata) => {
            out.extend_from_slice(b",\"metadata\":");
            out.extend_from_slice(metadata.as_bytes());
        }
    }
    out.extend_from_slice(b",\"security\":");
    write_security(out, &message.security);
    out.extend_from_slice(b",\"timestamp\":");
    write_str(out, message.timestamp.as_str());
    out.push(b'}');
}

fn write_security<S: AsRef<str>>(out: &mut Vec<u8>, security: &SecurityMetadata<S>) {
    out.extend_from_slice(b"{\"security_level\":\"");
    out.extend_from_slice(security.security_level.as_str().as_bytes());
    out.push(b'"');
    match &security.encryption_info {
        Field::Absent => {}
        Field::Null => out.extend_from_slice(b",\"encryption_info\":null"),
        Field::Present(info) => {
            out.extend_from_slice(b",\"encryption_info\":{\"algorithm\":");
            write_str(out, info.algorithm.as_ref());
            out.extend_from_slice(b",\"key_id\":");
            write_str(out, info.key_id.as_ref());
            out.extend_from_slice(b",\"nonce\":");
            write_str(out, info.nonce.as_ref());
            out.push(b'}');
        }
    }
    write_nullable(out, b",\"signature\":", &security.signature);
    write_nullable(out, b",\"auth_token\":", &security.auth_token);
    out.push(b'}');
}

fn write_nullable<S: AsRef<str>>(out: &mut Vec<u8>, key: &[u8], field: &Field<S>) {
    match field {
        Field::Absent => {}
        Field::Null => {
            out.extend_from_slice(key);
            out.extend_from_slice(b"null");
        }
        Field::Present(s) => {
            out.extend_from_slice(key);
            write_str(out, s.as_ref());
        }
    }
}
