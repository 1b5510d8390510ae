//! The envelope rules both codecs apply once a body has decoded
//! (docs/protocol.md section 3): version, id, timestamp window, metadata.
//!
//! Kept apart from the codecs so that a JSON and a binary message are held to
//! the same rules by the same code.

use std::borrow::Cow;

use simd_json::{Node, StaticNode};

use crate::error::{Code, Error};
use crate::json::{JsonKind, JsonRef, members, str_at};
use crate::message::{
    Field, MAX_SEQ, MessageType, MessageView, PROTOCOL_VERSION, ReplayMark, is_valid_id,
    is_valid_stream, timestamp,
};

/// The limits a decoder holds messages to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest body, in bytes (`max_message_size`).
    pub max_message_size: usize,
    /// How far a timestamp may lie from the receiver's clock, either way, in
    /// nanoseconds (`replay_window`).
    pub replay_window_nanos: i128,
}

impl Limits {
    /// Limits of `max_message_size` bytes and a timestamp window of
    /// `replay_window_secs` either way.
    pub fn new(max_message_size: u64, replay_window_secs: u64) -> Limits {
        Limits {
            max_message_size: usize::try_from(max_message_size).unwrap_or(usize::MAX),
            replay_window_nanos: i128::from(replay_window_secs) * 1_000_000_000,
        }
    }

    /// Refuses a body over `max_message_size` with `message_too_large`.
    pub fn check_size(&self, len: usize) -> Result<(), Error> {
        if len > self.max_message_size {
            return Err(Error::new(
                Code::MessageTooLarge,
                format!(
                    "message of {len} bytes exceeds max_message_size of {} bytes",
                    self.max_message_size
                ),
            ));
        }
        Ok(())
    }
}

/// The default `max_message_size`: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// The default `replay_window_secs`: five minutes.
pub const DEFAULT_REPLAY_WINDOW_SECS: u64 = 300;

impl Default for Limits {
    /// The limits of the default configuration: 1 MiB, 300 s.
    fn default() -> Limits {
        Limits::new(DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_REPLAY_WINDOW_SECS)
    }
}

pub(crate) fn invalid(message: impl Into<Cow<'static, str>>) -> Error {
    Error::new(Code::ValidationFailed, message)
}

/// Refuses a `version` whose major is not 1 with `unsupported_version`.
///
/// Only that: a version that is not a string or not of the form
/// `MAJOR[.MINOR…]` is a field error, reported by [`check_version_form`] in
/// the later field pass, because `unsupported_version` comes first in the
/// protocol's order of checks.
pub(crate) fn check_version_major(version: Option<&str>) -> Result<(), Error> {
    let Some(version) = version else {
        return Ok(());
    };
    if version == PROTOCOL_VERSION {
        return Ok(());
    }
    let major = version.split_once('.').map_or(version, |(major, _)| major);
    let numeric = !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit());
    if numeric && major.trim_start_matches('0') != "1" {
        return Err(Error::new(
            Code::UnsupportedVersion,
            "only protocol version 1 is supported",
        ));
    }
    Ok(())
}

/// Refuses a `version` that is not `MAJOR[.MINOR…]`: dot-separated runs of 1
/// to 9 decimal digits.
pub(crate) fn check_version_form(version: &str) -> Result<(), Error> {
    if version == PROTOCOL_VERSION {
        return Ok(());
    }
    let mut run = 0;
    for b in version.bytes() {
        match b {
            b'0'..=b'9' if run < 9 => run += 1,
            b'.' if run > 0 => run = 0,
            _ => return Err(invalid("field `version` must look like \"1.0\"")),
        }
    }
    if run == 0 {
        return Err(invalid("field `version` must look like \"1.0\""));
    }
    Ok(())
}

/// Refuses an `id` outside 1 to 128 bytes of `[A-Za-z0-9._:-]`.
pub(crate) fn check_id(id: &str) -> Result<(), Error> {
    if !is_valid_id(id) {
        return Err(invalid(
            "field `id` must be 1 to 128 characters of [A-Za-z0-9._:-]",
        ));
    }
    Ok(())
}

/// Reads a `timestamp` and refuses it outside the replay window around `now`.
pub(crate) fn check_timestamp(text: &str, now: i128, limits: &Limits) -> Result<i128, Error> {
    let Some(instant) = timestamp::parse_rfc3339(text) else {
        return Err(invalid("field `timestamp` must be an RFC 3339 date-time"));
    };
    if (instant - now).abs() > limits.replay_window_nanos {
        return Err(invalid("field `timestamp` is outside the replay window"));
    }
    Ok(instant)
}

/// What the engine reads from `metadata`: `correlation_id`, `ack` and
/// `replay`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MetadataFields<'a> {
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) ack: bool,
    pub(crate) replay: Option<ReplayMark<'a>>,
}

/// Reads `metadata` from tape position `at` (`None`: absent): whether it is
/// absent, null or present, and what the engine reads from it.
pub(crate) fn read_metadata<'a>(
    nodes: &[Node<'a>],
    at: Option<usize>,
) -> Result<(Field<usize>, MetadataFields<'a>), Error> {
    match at {
        None => Ok((Field::Absent, MetadataFields::default())),
        Some(at) if matches!(nodes.get(at), Some(Node::Static(StaticNode::Null))) => {
            Ok((Field::Null, MetadataFields::default()))
        }
        Some(at) => Ok((Field::Present(at), check_metadata(nodes, at)?)),
    }
}

/// Reads the `metadata` object at tape position `at`: `correlation_id` must
/// be a message id or null, `ack` a boolean or null, `replay` a replay mark
/// (section 7a) or null. Other members are free.
fn check_metadata<'a>(nodes: &[Node<'a>], at: usize) -> Result<MetadataFields<'a>, Error> {
    if !matches!(nodes.get(at), Some(Node::Object { .. })) {
        return Err(invalid("field `metadata` must be an object or null"));
    }
    let mut fields = MetadataFields::default();
    for (key, value_at) in members(nodes, at) {
        let value = nodes.get(value_at);
        if matches!(value, Some(Node::Static(StaticNode::Null))) {
            continue;
        }
        match key {
            "correlation_id" => match str_at(nodes, value_at) {
                Some(id) if is_valid_id(id) => fields.correlation_id = Some(id),
                _ => {
                    return Err(invalid(
                        "field `metadata.correlation_id` must be a message id or null",
                    ));
                }
            },
            "ack" => match value {
                Some(Node::Static(StaticNode::Bool(ack))) => fields.ack = *ack,
                _ => return Err(invalid("field `metadata.ack` must be a boolean or null")),
            },
            "replay" => fields.replay = Some(read_replay(nodes, value_at)?),
            _ => {}
        }
    }
    Ok(fields)
}

/// Reads `metadata.replay` at tape position `at` (not null): an object of
/// exactly `stream` (1 to 64 bytes of `[A-Za-z0-9_-]`) and `seq` (an
/// integer from 1 to 2^53 - 1; written with a zero fraction or an exponent
/// it is still that integer, as JSON Schema and RFC 8785 read it).
/// Anything else is `validation_failed`.
fn read_replay<'a>(nodes: &[Node<'a>], at: usize) -> Result<ReplayMark<'a>, Error> {
    const BAD: &str = "field `metadata.replay` must be {\"stream\": 1 to 64 characters of \
         [A-Za-z0-9_-], \"seq\": an integer from 1 to 2^53 - 1}";
    if !matches!(nodes.get(at), Some(Node::Object { .. })) {
        return Err(invalid(BAD));
    }
    let (mut stream, mut seq) = (None, None);
    for (key, value_at) in members(nodes, at) {
        match key {
            "stream" => stream = str_at(nodes, value_at).filter(|s| is_valid_stream(s)),
            "seq" => seq = nodes.get(value_at).and_then(sequence_number),
            _ => return Err(invalid(BAD)),
        }
        if (key == "stream" && stream.is_none()) || (key == "seq" && seq.is_none()) {
            return Err(invalid(BAD));
        }
    }
    match (stream, seq) {
        (Some(stream), Some(seq)) => Ok(ReplayMark { stream, seq }),
        _ => Err(invalid(BAD)),
    }
}

/// A replay sequence number: an integer in `1..=MAX_SEQ`.
fn sequence_number(node: &Node<'_>) -> Option<u64> {
    let seq = match node {
        Node::Static(StaticNode::U64(n)) => *n,
        Node::Static(StaticNode::I64(n)) => u64::try_from(*n).ok()?,
        Node::Static(StaticNode::F64(f)) => {
            // Exact below 2^53; `MAX_SEQ` itself converts exactly.
            if !(f.is_finite() && f.fract() == 0.0 && *f >= 1.0 && *f <= MAX_SEQ as f64) {
                return None;
            }
            *f as u64
        }
        _ => return None,
    };
    (1..=MAX_SEQ).contains(&seq).then_some(seq)
}

/// The payload rule of a Command or an Event (docs/protocol.md section 7),
/// on a plaintext payload: a Command's is an object with a non-empty
/// string `command` (and a string `resource`, if it has one), an Event's
/// an object with a non-empty string `event`. Responses and Errors may
/// carry any payload. Fails with `validation_failed`.
pub(crate) fn check_payload_shape(payload: JsonRef<'_>, kind: MessageType) -> Result<(), Error> {
    let name_key = match kind {
        MessageType::Command => "command",
        MessageType::Event => "event",
        MessageType::Response | MessageType::Error => return Ok(()),
    };
    if payload.kind() != JsonKind::Object {
        return Err(invalid("payload is not an object"));
    }
    let named = payload
        .get(name_key)
        .and_then(JsonRef::as_str)
        .is_some_and(|name| !name.is_empty());
    if !named {
        return Err(invalid(match kind {
            MessageType::Command => "payload needs a string `command`",
            _ => "payload needs a string `event`",
        }));
    }
    if kind == MessageType::Command
        && payload
            .get("resource")
            .is_some_and(|resource| resource.as_str().is_none())
    {
        return Err(invalid("`resource` must be a string"));
    }
    Ok(())
}

/// The payload rule of docs/protocol.md section 7 for a decoded message,
/// as far as it can be seen without keys: on a plaintext payload, a
/// Command's must be an object with a non-empty string `command` (and a
/// string `resource`, if any), an Event's an object with a non-empty
/// string `event` (`validation_failed` otherwise); nothing on an encrypted
/// one (its shape is checked once it is decrypted, in the engine's
/// admission). Responses and Errors may carry any payload.
pub fn check_plain_payload(message: &MessageView<'_>) -> Result<(), Error> {
    if message.security().encryption_info.is_present() {
        return Ok(());
    }
    check_payload_shape(message.payload(), message.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_major_version_one_is_supported() {
        for ok in [
            None,
            Some("1.0"),
            Some("1"),
            Some("1.7"),
            Some("01.0"),
            Some("x"),
            Some(""),
        ] {
            assert!(check_version_major(ok).is_ok(), "{ok:?}");
        }
        for other in ["2.0", "0.9", "10", "2", "2.x", "11.0"] {
            assert_eq!(
                check_version_major(Some(other)).unwrap_err().code(),
                Code::UnsupportedVersion,
                "{other}"
            );
        }
    }

    #[test]
    fn version_must_be_dotted_digits() {
        for ok in ["1.0", "1", "1.0.3"] {
            assert!(check_version_form(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1.",
            ".1",
            "v1",
            "1.0-beta",
            "1..0",
            "1.0 ",
            "1.9999999999",
        ] {
            assert_eq!(
                check_version_form(bad).unwrap_err().code(),
                Code::ValidationFailed,
                "{bad}"
            );
        }
    }

    /// `metadata` of `text` read from a parse of it.
    fn replay_of(text: &str) -> Result<Option<(String, u64)>, Code> {
        let mut parser = crate::json::Parser::new(64);
        let mut spare = Vec::new();
        let mut tape = simd_json::Tape(Vec::new());
        parser
            .parse_text(text.as_bytes(), &mut spare, &mut tape)
            .map_err(|e| e.code())?;
        read_metadata(&tape.0, Some(0))
            .map(|(_, fields)| fields.replay.map(|m| (m.stream.to_owned(), m.seq)))
            .map_err(|e| e.code())
    }

    #[test]
    fn a_replay_mark_is_a_stream_and_an_integer_and_nothing_else() {
        let ok = |text: &str, stream: &str, seq: u64| {
            assert_eq!(
                replay_of(text),
                Ok(Some((stream.to_owned(), seq))),
                "{text}"
            );
        };
        ok(r#"{"replay":{"stream":"s-1","seq":1}}"#, "s-1", 1);
        ok(r#"{"replay":{"seq":7,"stream":"A_b"}}"#, "A_b", 7);
        ok(
            r#"{"replay":{"stream":"s","seq":9007199254740991}}"#,
            "s",
            MAX_SEQ,
        );
        // An integer with a zero fraction or an exponent is that integer.
        ok(r#"{"replay":{"stream":"s","seq":5.0}}"#, "s", 5);
        ok(r#"{"replay":{"stream":"s","seq":1e3}}"#, "s", 1000);
        assert_eq!(replay_of(r#"{"replay":null,"trace":1}"#), Ok(None));
        assert_eq!(replay_of(r#"{"trace":1}"#), Ok(None));
        let long = "x".repeat(65);
        for bad in [
            r#"{"replay":{"stream":"s"}}"#.to_owned(),
            r#"{"replay":{"seq":1}}"#.to_owned(),
            r#"{"replay":{}}"#.to_owned(),
            r#"{"replay":[]}"#.to_owned(),
            r#"{"replay":"s:1"}"#.to_owned(),
            r#"{"replay":{"stream":"s","seq":1,"more":1}}"#.to_owned(),
            r#"{"replay":{"stream":"s","seq":0}}"#.to_owned(),
            r#"{"replay":{"stream":"s","seq":-1}}"#.to_owned(),
            r#"{"replay":{"stream":"s","seq":1.5}}"#.to_owned(),
            r#"{"replay":{"stream":"s","seq":9007199254740992}}"#.to_owned(),
            r#"{"replay":{"stream":"s","seq":1e300}}"#.to_owned(),
            r#"{"replay":{"stream":"s","seq":"1"}}"#.to_owned(),
            r#"{"replay":{"stream":"s","seq":null}}"#.to_owned(),
            r#"{"replay":{"stream":"","seq":1}}"#.to_owned(),
            r#"{"replay":{"stream":"a.b","seq":1}}"#.to_owned(),
            r#"{"replay":{"stream":7,"seq":1}}"#.to_owned(),
            format!(r#"{{"replay":{{"stream":"{long}","seq":1}}}}"#),
        ] {
            assert_eq!(replay_of(&bad), Err(Code::ValidationFailed), "{bad}");
        }
    }

    #[test]
    fn the_replay_window_holds_both_ways_and_is_inclusive() {
        let limits = Limits::default();
        let now = 1_795_435_200 * 1_000_000_000;
        assert!(check_timestamp("2026-11-23T12:05:00Z", now, &limits).is_ok());
        assert!(check_timestamp("2026-11-23T11:55:00Z", now, &limits).is_ok());
        assert!(check_timestamp("2026-11-23T12:05:00.001Z", now, &limits).is_err());
        assert!(check_timestamp("2026-11-23T11:54:59.999Z", now, &limits).is_err());
    }
}
