//! How an envelope travels in a NATS message (`docs/scaling.md`).
//!
//! A NATS message has no frame, so its codec is told one of three ways,
//! each unmistakable:
//!
//! - a header `Mcp-Codec: json` or `Mcp-Codec: binary`, and the body is
//!   the envelope;
//! - no header, and the body starts with the codec byte of docs/protocol.md
//!   section 2 (`J` or `R`): a frame without its length;
//! - no header, and the body starts with `{` or JSON whitespace: a JSON
//!   envelope as it is (what `nats req subject '{...}'` sends).
//!
//! The reply is written the way the request was.

use crate::codec::Codec;
use crate::error::{Code, Error};

/// The header that names a NATS message's codec: `json` or `binary`.
pub const CODEC_HEADER: &str = "Mcp-Codec";

/// How a request told its codec, so that its reply tells it the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// By the `Mcp-Codec` header.
    Header,
    /// By a leading codec byte.
    CodecByte,
    /// A JSON envelope, bare.
    BareJson,
}

/// A request body read: how it was framed, its codec, and the envelope.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Body<'a> {
    pub(crate) framing: Framing,
    pub(crate) codec: Codec,
    pub(crate) envelope: &'a [u8],
}

/// Reads a NATS message's body, given its `Mcp-Codec` header if it has
/// one. Refuses a body over `max_message_size` (`message_too_large`) and
/// one whose codec cannot be told (`invalid_format`).
pub(crate) fn read_body<'a>(
    header: Option<&[u8]>,
    payload: &'a [u8],
    max_message_size: usize,
) -> Result<Body<'a>, Error> {
    let (framing, codec, envelope) = match header {
        Some(name) => (Framing::Header, codec_named(name)?, payload),
        None => match payload.split_first() {
            None => return Err(Error::new(Code::InvalidFormat, "empty message")),
            Some((&first, rest)) => match Codec::from_byte(first) {
                Some(codec) => (Framing::CodecByte, codec, rest),
                None if matches!(first, b'{' | b' ' | b'\t' | b'\n' | b'\r') => {
                    (Framing::BareJson, Codec::Json, payload)
                }
                None => {
                    return Err(Error::new(
                        Code::InvalidFormat,
                        "no codec: send an Mcp-Codec header, a codec byte, or a JSON envelope",
                    ));
                }
            },
        },
    };
    if envelope.len() > max_message_size {
        return Err(Error::new(
            Code::MessageTooLarge,
            "message over max_message_size",
        ));
    }
    Ok(Body {
        framing,
        codec,
        envelope,
    })
}

/// The codec and envelope of a NATS message's body, told as a request's
/// are (`header` is its `Mcp-Codec` value, if any): for clients reading
/// the replies, which come back framed as their requests were.
pub fn read_envelope<'a>(
    header: Option<&[u8]>,
    payload: &'a [u8],
) -> Result<(Codec, &'a [u8]), Error> {
    read_body(header, payload, usize::MAX).map(|body| (body.codec, body.envelope))
}

/// A message's `Mcp-Codec` header value, if it has one.
pub(crate) fn codec_header(headers: Option<&async_nats::HeaderMap>) -> Option<&[u8]> {
    headers
        .and_then(|headers| headers.get(CODEC_HEADER))
        .map(|value| value.as_str().as_bytes())
}

fn codec_named(name: &[u8]) -> Result<Codec, Error> {
    if name.eq_ignore_ascii_case(b"json") {
        Ok(Codec::Json)
    } else if name.eq_ignore_ascii_case(b"binary") {
        Ok(Codec::Binary)
    } else {
        Err(Error::new(
            Code::InvalidFormat,
            "Mcp-Codec is neither json nor binary",
        ))
    }
}

/// The header value naming `codec`.
pub(crate) fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Json => "json",
        Codec::Binary => "binary",
    }
}

/// A reply as the sink copies it: the codec byte, then the envelope. The
/// byte is kept or skipped when it is published, by the request's framing.
pub(crate) fn reply_with_codec_byte(codec: Codec, envelope: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(envelope.len() + 1);
    out.push(codec.byte());
    out.extend_from_slice(envelope);
    out
}

/// How many leading bytes of a [`reply_with_codec_byte`] buffer to skip
/// when publishing a reply to a request framed `framing`.
pub(crate) fn reply_skip(framing: Framing) -> usize {
    match framing {
        Framing::CodecByte => 0,
        Framing::Header | Framing::BareJson => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64;

    #[test]
    fn each_framing_is_told_apart() {
        let header = read_body(Some(b"JSON"), b"{}", MAX).unwrap();
        assert_eq!(
            (header.framing, header.codec),
            (Framing::Header, Codec::Json)
        );
        assert_eq!(header.envelope, b"{}");
        let binary = read_body(Some(b"binary"), b"J{}", MAX).unwrap();
        assert_eq!(
            (binary.codec, binary.envelope),
            (Codec::Binary, &b"J{}"[..])
        );
        let byte = read_body(None, b"R\x01\x02", MAX).unwrap();
        assert_eq!(
            (byte.framing, byte.codec, byte.envelope),
            (Framing::CodecByte, Codec::Binary, &b"\x01\x02"[..])
        );
        let json_byte = read_body(None, b"J{}", MAX).unwrap();
        assert_eq!(
            (json_byte.codec, json_byte.envelope),
            (Codec::Json, &b"{}"[..])
        );
        for bare in [&b"{}"[..], b" {}", b"\n{}", b"\t{}", b"\r\n{}"] {
            let body = read_body(None, bare, MAX).unwrap();
            assert_eq!((body.framing, body.envelope), (Framing::BareJson, bare));
        }
    }

    #[test]
    fn what_cannot_be_told_is_refused_with_its_code() {
        let code = |header: Option<&[u8]>, payload: &[u8]| {
            read_body(header, payload, MAX).unwrap_err().code()
        };
        assert_eq!(code(None, b""), Code::InvalidFormat);
        assert_eq!(code(None, b"[1]"), Code::InvalidFormat);
        assert_eq!(code(None, b"x"), Code::InvalidFormat);
        assert_eq!(code(Some(b"yaml"), b"{}"), Code::InvalidFormat);
        assert_eq!(code(Some(b""), b"{}"), Code::InvalidFormat);
        let big = vec![b' '; MAX + 1];
        assert_eq!(code(None, &big), Code::MessageTooLarge);
        let mut framed = vec![b'J'];
        framed.extend_from_slice(&[b' '; MAX]);
        assert!(
            read_body(None, &framed, MAX).is_ok(),
            "the codec byte is not counted"
        );
        assert_eq!(code(Some(b"json"), &big), Code::MessageTooLarge);
    }

    #[test]
    fn a_reply_goes_back_framed_as_its_request() {
        let copied = reply_with_codec_byte(Codec::Binary, b"xyz");
        assert_eq!(copied, b"Rxyz");
        for (framing, published) in [
            (Framing::CodecByte, &b"Rxyz"[..]),
            (Framing::Header, b"xyz"),
            (Framing::BareJson, b"xyz"),
        ] {
            assert_eq!(copied.get(reply_skip(framing)..), Some(published));
        }
        assert_eq!(codec_name(Codec::Json), "json");
        assert_eq!(
            read_envelope(None, &copied),
            Ok((Codec::Binary, &b"xyz"[..]))
        );
        assert_eq!(codec_name(Codec::Binary), "binary");
    }
}
