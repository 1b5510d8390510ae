//! The Error payload and envelope that answer a message (docs/protocol.md
//! section 7), written from an [`Error`]: here, beside the envelope, so that
//! the error table itself knows nothing of messages or JSON.

use super::{
    Field, Message, MessageType, PROTOCOL_VERSION, SecurityLevel, SecurityMetadata, Timestamp,
    TypeKey,
};
use crate::error::Error;
use crate::json::RawJson;
use crate::json::write::write_str;

impl Error {
    /// Appends the Error payload of docs/protocol.md section 7 as compact JSON:
    /// `{"category":…,"code":…,"message":…,"retryable":…}`.
    pub fn write_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"category\":\"");
        out.extend_from_slice(self.category().as_str().as_bytes());
        out.extend_from_slice(b"\",\"code\":\"");
        out.extend_from_slice(self.code().as_str().as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        write_str(out, self.wire_message());
        out.extend_from_slice(if self.is_retryable() {
            b",\"retryable\":true}"
        } else {
            b",\"retryable\":false}"
        });
    }

    /// The Error envelope answering a message (docs/protocol.md section 7): type
    /// `Error`, a fresh `id`, `metadata.correlation_id` = the offending
    /// message's id (`null` when unknown), level `Low`, plaintext, unsigned.
    pub fn to_envelope(
        &self,
        id: impl Into<String>,
        correlation_id: Option<&str>,
        timestamp: Timestamp,
    ) -> Message {
        let mut payload = Vec::with_capacity(128);
        self.write_payload(&mut payload);
        let mut metadata = Vec::with_capacity(64);
        metadata.extend_from_slice(b"{\"correlation_id\":");
        match correlation_id {
            Some(id) => write_str(&mut metadata, id),
            None => metadata.extend_from_slice(b"null"),
        }
        metadata.push(b'}');
        let mut security = SecurityMetadata::new(SecurityLevel::Low);
        security.encryption_info = Field::Null;
        security.signature = Field::Null;
        security.auth_token = Field::Null;
        Message {
            version: Some(PROTOCOL_VERSION.to_owned()),
            id: id.into(),
            kind: MessageType::Error,
            type_key: TypeKey::Type,
            payload: RawJson::from_compact(payload),
            metadata: Field::Present(RawJson::from_compact(metadata)),
            security,
            timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn security_errors_say_no_more_than_their_code_on_the_wire() {
        let e = Error::new(Code::SignatureInvalid, "kid k7 unknown");
        assert_eq!(e.message(), "kid k7 unknown");
        assert_eq!(e.wire_message(), "the signature is invalid");
        let mut out = Vec::new();
        e.write_payload(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"category":"security","code":"signature_invalid","message":"the signature is invalid","retryable":false}"#
        );
    }

    #[test]
    fn the_error_envelope_is_a_valid_low_level_error_answering_its_message() {
        use crate::codec::{Decoder, Limits};
        let now = Timestamp::now();
        let e = Error::new(Code::ResourceExhausted, "queue full");
        for correlation in [Some("c-9"), None] {
            let envelope = e.to_envelope("err-1", correlation, now.clone());
            let mut body = Vec::new();
            crate::codec::json::encode(&envelope, &mut body);
            let mut decoder = Decoder::new(Limits::default());
            let view = decoder.decode_json(&body, now.unix_nanos()).unwrap();
            assert_eq!(view.kind(), MessageType::Error);
            assert_eq!(view.correlation_id(), correlation);
            assert_eq!(view.security().security_level, SecurityLevel::Low);
            assert_eq!(view.security().signature, Field::Null);
            let payload = view.payload();
            assert_eq!(
                payload.get("code").unwrap().as_str(),
                Some("resource_exhausted")
            );
            assert_eq!(payload.get("category").unwrap().as_str(), Some("system"));
            assert_eq!(payload.get("retryable").unwrap().as_bool(), Some(true));
            assert_eq!(payload.get("message").unwrap().as_str(), Some("queue full"));
        }
    }

    #[test]
    fn protocol_error_payload_escapes_its_message() {
        let e = Error::new(Code::ValidationFailed, "bad \"id\"\n");
        let mut out = Vec::new();
        e.write_payload(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "bad \"id\"\n");
        assert_eq!(v["retryable"], false);
        assert_eq!(v["category"], "protocol");
    }
}
