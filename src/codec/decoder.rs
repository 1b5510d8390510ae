//! [`Decoder`]: frame bodies in, validated [`MessageView`]s out.

use simd_json::Node;

use super::binary::{self, AlignedBytes, BINARY_ALIGNMENT};
use super::value_text::ValueTexts;
use super::{Codec, Limits, json};
use crate::error::Error;
use crate::json::{MAX_VALUE_DEPTH, Parser, TapeLease};
use crate::message::{MessageView, is_valid_id};

/// The deepest an envelope may nest (docs/protocol.md section 3).
pub const MAX_DEPTH: usize = 64;

/// Decodes message bodies of either codec and applies the envelope rules.
///
/// One decoder per thread: it owns the parser's buffers and the tape that
/// views borrow, so a stream of messages decodes without allocating once the
/// buffers have grown to the largest message seen. A view borrows the
/// decoder; drop it before decoding the next message.
///
/// ```
/// use mcp_engine::codec::{Decoder, Limits};
/// use mcp_engine::{MessageType, Timestamp};
///
/// let now = Timestamp::now();
/// let body = format!(
///     r#"{{"id":"m-1","type":"Command","payload":{{"command":"sys.ping"}},
///         "security":{{"security_level":"Low"}},"timestamp":"{now}"}}"#
/// )
/// .into_bytes();
/// let mut decoder = Decoder::new(Limits::default());
/// let view = decoder.decode_json(&body, now.unix_nanos()).unwrap();
/// assert_eq!(view.kind(), MessageType::Command);
/// assert_eq!(view.payload().get("command").and_then(|c| c.as_str()), Some("sys.ping"));
/// ```
pub struct Decoder {
    limits: Limits,
    envelope_parser: Parser,
    value_parser: Parser,
    tape: Vec<Node<'static>>,
    metadata_tape: Vec<Node<'static>>,
    text: Vec<u8>,
    aligned: AlignedBytes,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder that holds messages to `limits`.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            envelope_parser: Parser::new(MAX_DEPTH),
            value_parser: Parser::new(MAX_VALUE_DEPTH),
            tape: Vec::new(),
            metadata_tape: Vec::new(),
            text: Vec::new(),
            aligned: AlignedBytes::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits for the messages decoded from now on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Decodes a body of either codec. `now` is the receiver's clock (Unix
    /// nanoseconds) for the timestamp window.
    ///
    /// The view borrows from `body` where it can; the body is left as it
    /// was.
    pub fn decode<'a>(
        &'a mut self,
        codec: Codec,
        body: &'a [u8],
        now: i128,
    ) -> Result<MessageView<'a>, Error> {
        match codec {
            Codec::Json => self.decode_json(body, now),
            Codec::Binary => self.decode_binary(body, now),
        }
    }

    /// Decodes a JSON body (see [`decode`](Self::decode)).
    ///
    /// Plain JSON, with no escape in any string and no number but short
    /// integers, is read where it stands; anything else is copied into the
    /// decoder and parsed there (strings unescaped in the copy).
    pub fn decode_json<'a>(
        &'a mut self,
        body: &'a [u8],
        now: i128,
    ) -> Result<MessageView<'a>, Error> {
        self.decode_json_by(body, now, json::decode)
    }

    /// [`decode_json`](Self::decode_json) without its plain envelope
    /// reader: the reference that reader is checked against (tests and the
    /// `parse_json` fuzz target).
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn decode_json_parsed<'a>(
        &'a mut self,
        body: &'a [u8],
        now: i128,
    ) -> Result<MessageView<'a>, Error> {
        self.decode_json_by(body, now, json::decode_parsed)
    }

    #[inline(always)]
    fn decode_json_by<'a>(
        &'a mut self,
        body: &'a [u8],
        now: i128,
        decode: impl FnOnce(
            &mut Parser,
            &'a [u8],
            &'a mut Vec<u8>,
            TapeLease<'a>,
            &Limits,
            i128,
        ) -> Result<MessageView<'a>, Error>,
    ) -> Result<MessageView<'a>, Error> {
        let Decoder {
            limits,
            envelope_parser,
            tape,
            text,
            ..
        } = self;
        limits.check_size(body.len())?;
        let lease = TapeLease::take(tape);
        decode(envelope_parser, body, text, lease, limits, now)
    }

    /// The `id` of a body that was refused, when a reader can trust it to
    /// name the message: the body is within the size limit and readable (a
    /// JSON object by every rule of well-formedness, or a binary envelope
    /// that passes validation) and its `id` is valid (docs/protocol.md section
    /// 3). The Error about such a body carries that id as its
    /// `correlation_id` (section 7), whichever rule it broke. `None`
    /// otherwise: an Error about it then says `null`.
    ///
    /// Reads the body again, so it belongs on the path of refusals only.
    ///
    /// ```
    /// use mcp_engine::codec::{Codec, Decoder, Limits};
    ///
    /// let mut decoder = Decoder::new(Limits::default());
    /// // A version this engine does not speak: refused, and still named.
    /// let body = br#"{"version":"2.0","id":"c-7","type":"Command"}"#;
    /// assert!(decoder.decode(Codec::Json, body, 0).is_err());
    /// assert_eq!(decoder.readable_id(Codec::Json, body).as_deref(), Some("c-7"));
    /// assert_eq!(decoder.readable_id(Codec::Json, b"{not json"), None);
    /// assert_eq!(decoder.readable_id(Codec::Json, br#"{"id":"not an id"}"#), None);
    /// ```
    pub fn readable_id(&mut self, codec: Codec, body: &[u8]) -> Option<String> {
        self.limits.check_size(body.len()).ok()?;
        let id = match codec {
            Codec::Json => {
                let Decoder {
                    envelope_parser,
                    tape,
                    text,
                    ..
                } = self;
                let mut lease = TapeLease::take(tape);
                envelope_parser
                    .parse_text(body, text, &mut lease.tape)
                    .ok()?;
                let envelope = lease.value(0)?;
                envelope.get("id")?.as_str()?.to_owned()
            }
            Codec::Binary => {
                let body: &[u8] = if body.as_ptr().align_offset(BINARY_ALIGNMENT) == 0 {
                    body
                } else {
                    self.aligned.clear();
                    self.aligned.extend_from_slice(body);
                    self.aligned.as_slice()
                };
                binary::archived_id(body)?.to_owned()
            }
        };
        is_valid_id(&id).then_some(id)
    }

    /// Decodes a binary body. Zero-copy when `body` is aligned to
    /// [`BINARY_ALIGNMENT`]; otherwise it is first copied into an aligned
    /// buffer of the decoder's.
    pub fn decode_binary<'a>(
        &'a mut self,
        body: &'a [u8],
        now: i128,
    ) -> Result<MessageView<'a>, Error> {
        let Decoder {
            limits,
            value_parser,
            tape,
            metadata_tape,
            text,
            aligned,
            ..
        } = self;
        // Size first: never copy an oversized body.
        limits.check_size(body.len())?;
        let body: &'a [u8] = if body.as_ptr().align_offset(BINARY_ALIGNMENT) == 0 {
            body
        } else {
            aligned.clear();
            aligned.extend_from_slice(body);
            aligned.as_slice()
        };
        let texts = ValueTexts {
            parser: value_parser,
            text,
            metadata_tape,
        };
        binary::decode(body, texts, TapeLease::take(tape), limits, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::RawJson;
    use crate::message::{Message, MessageType, SecurityLevel};

    #[test]
    fn a_refused_binary_body_is_named_aligned_or_not() {
        let mut message = Message::new(
            "b-1",
            MessageType::Command,
            SecurityLevel::Low,
            RawJson::parse(r#"{"command":"x.y"}"#).unwrap(),
        );
        message.version = Some("7.0".into());
        let mut body = AlignedBytes::new();
        binary::encode(&message, &mut body).unwrap();
        let mut decoder = Decoder::new(Limits::default());
        assert!(decoder.decode_binary(&body, 0).is_err());
        assert_eq!(
            decoder.readable_id(Codec::Binary, &body).as_deref(),
            Some("b-1")
        );
        // One byte off its alignment: copied, then read the same.
        let mut shifted = vec![0u8; body.len() + 1];
        shifted[1..].copy_from_slice(&body);
        assert_eq!(
            decoder.readable_id(Codec::Binary, &shifted[1..]).as_deref(),
            Some("b-1")
        );
        // A body that fails validation, or one over the limit, is not read.
        assert_eq!(
            decoder.readable_id(Codec::Binary, &body[..body.len() / 2]),
            None
        );
        decoder.set_limits(Limits {
            max_message_size: 8,
            ..Limits::default()
        });
        assert_eq!(decoder.readable_id(Codec::Binary, &body), None);
        assert_eq!(
            decoder.readable_id(Codec::Json, br#"{"id":"long-enough"}"#),
            None
        );
    }
}
