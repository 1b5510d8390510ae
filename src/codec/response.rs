//! A Response the engine writes, by parts, and its JSON envelope.
//!
//! Every Response the engine sends has one shape: version `1.0`, key
//! `type`, payload `{"result": ...}` (or its ciphertext), metadata
//! `{"correlation_id": ...}`, `auth_token` null. Written from these parts,
//! it needs no owned [`Message`](crate::Message) in between; the envelope's
//! bytes are those [`json::encode`](super::json::encode) writes for that
//! message, field for field, and its signed input comes from
//! [`Canonicalizer::write_response_signing_input`](super::Canonicalizer).

use crate::json::RawJson;
use crate::json::write::{write_str, write_unescaped_str};
use crate::message::{ENCRYPTION_ALGORITHM, PROTOCOL_VERSION, SecurityLevel};

/// A Response the engine writes, by parts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseParts<'a> {
    /// The Response's own id.
    pub(crate) id: &'a str,
    /// The id of the message it answers.
    pub(crate) correlation_id: &'a str,
    pub(crate) level: SecurityLevel,
    /// The payload is `{"result": result}`.
    pub(crate) result: &'a RawJson,
    pub(crate) timestamp: &'a str,
}

/// A Response's encrypted payload: `encryption_info` and the ciphertext,
/// as base64url text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SealedPayload<'a> {
    pub(crate) key_id: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) ciphertext: &'a str,
}

impl SealedPayload<'_> {
    /// Appends `,"encryption_info":{...}`: its keys are in JCS order, so
    /// the envelope and its signed input have the same bytes.
    pub(crate) fn write_encryption_info(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"encryption_info\":{\"algorithm\":");
        write_unescaped_str(out, ENCRYPTION_ALGORITHM);
        out.extend_from_slice(b",\"key_id\":");
        write_str(out, self.key_id);
        out.extend_from_slice(b",\"nonce\":");
        write_unescaped_str(out, self.nonce);
        out.push(b'}');
    }
}

/// Appends the JSON envelope of the Response `parts` describe: payload
/// `sealed` if given, else `{"result": ...}` in plain; `security.signature`
/// if given.
pub(crate) fn encode_response(
    parts: &ResponseParts<'_>,
    sealed: Option<&SealedPayload<'_>>,
    signature: Option<&str>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"{\"version\":");
    write_unescaped_str(out, PROTOCOL_VERSION);
    out.extend_from_slice(b",\"id\":");
    write_str(out, parts.id);
    out.extend_from_slice(b",\"type\":\"Response\",\"payload\":");
    match sealed {
        Some(sealed) => write_unescaped_str(out, sealed.ciphertext),
        None => {
            out.extend_from_slice(b"{\"result\":");
            out.extend_from_slice(parts.result.as_bytes());
            out.push(b'}');
        }
    }
    out.extend_from_slice(b",\"metadata\":{\"correlation_id\":");
    write_str(out, parts.correlation_id);
    out.extend_from_slice(b"},\"security\":{\"security_level\":\"");
    out.extend_from_slice(parts.level.as_str().as_bytes());
    out.push(b'"');
    if let Some(sealed) = sealed {
        sealed.write_encryption_info(out);
    }
    if let Some(signature) = signature {
        out.extend_from_slice(b",\"signature\":");
        write_unescaped_str(out, signature);
    }
    out.extend_from_slice(b",\"auth_token\":null},\"timestamp\":");
    write_unescaped_str(out, parts.timestamp);
    out.push(b'}');
}
