//! The JSON codec: envelope decoding, and encoding.
//!
//! Decoding applies the checks in the protocol's order (docs/protocol.md section
//! 7): size, then well-formedness (JSON, an object, no repeated key, nesting),
//! then the version's major, then every field rule. A plain envelope (see
//! `json/plain.rs`) with only known members is read in one pass, its
//! members matched where they stand and only their values put on the tape;
//! any other body is parsed whole and its members found on the tape. Both
//! feed the same field rules, and the tests and the `parse_json` fuzz
//! target check that both give the same result. Encoding writes the
//! envelope bytes directly, field by field.

use simd_json::{Node, StaticNode};

use super::rules::{self, Limits, MetadataFields, invalid};
use crate::error::{Code, Error};
use crate::json::write::write_str;
use crate::json::{Parser, PlainCursor, TapeLease, members, quoted_prefix, str_at};
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
    security: Security,
    timestamp: Option<usize>,
    unknown: Option<&'a str>,
}

/// The known members of an object and the slot each goes to, listed once
/// for both ways a member is found: by its key on a parsed tape (`slot`),
/// and where it stands in plain text (`slot_here`).
macro_rules! member_slots {
    ($slots:ty { $($key:literal => $field:ident),+ $(,)? }) => {
        impl $slots {
            /// The slot of member `key`; none for a key not listed.
            fn slot(&mut self, key: &str) -> Option<&mut Option<usize>> {
                match key {
                    $($key => Some(&mut self.$field),)+
                    _ => None,
                }
            }

            /// The slot of the member whose key the cursor is at, the key
            /// matched where it stands (its quoted form compared whole, no
            /// scan) and the cursor moved past it; none for a key not
            /// listed, the cursor left at it.
            fn slot_here(
                &mut self,
                cursor: &mut PlainCursor<'_, '_, '_>,
            ) -> Option<&mut Option<usize>> {
                let initial = cursor.key_initial()?;
                $(
                    if initial == const { first_byte($key) }
                        && cursor.skip(concat!("\"", $key, "\"").as_bytes())
                    {
                        return Some(&mut self.$field);
                    }
                )+
                None
            }
        }
    };
}

/// The first byte of `key` (0 for none), for a cheap first sort of keys.
const fn first_byte(key: &str) -> u8 {
    match key.as_bytes() {
        [first, ..] => *first,
        [] => 0,
    }
}

// `security` is not listed: it is read differently (see `Security`).
member_slots!(Slots<'_> {
    "version" => version,
    "id" => id,
    "type" => kind,
    "type_" => kind_alias,
    "payload" => payload,
    "metadata" => metadata,
    "timestamp" => timestamp,
});

/// Member `security`, as far as it has been read.
#[derive(Default)]
enum Security {
    #[default]
    Missing,
    /// On the tape at this position, not yet looked into.
    At(usize),
    /// Its members found while reading.
    Read(SecuritySlots),
}

/// Where each member of `security` sits on the tape.
#[derive(Default)]
struct SecuritySlots {
    level: Option<usize>,
    encryption: Option<usize>,
    signature: Option<usize>,
    token: Option<usize>,
}

member_slots!(SecuritySlots {
    "security_level" => level,
    "encryption_info" => encryption,
    "signature" => signature,
    "auth_token" => token,
});

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
    lease.tape.0.clear();
    let max_depth = parser.max_depth();
    match read_plain_envelope(&mut parser.cursor(body, &mut lease.tape.0), max_depth) {
        // Every string it read is plain (it gives up on any other).
        Some(slots) => validate(slots, lease, limits, now, true),
        None => decode_parsed(parser, body, spare, lease, limits, now),
    }
}

/// [`decode`] without the plain envelope reader: the parser reads the body
/// whole (itself reading plain text where it stands), and the members are
/// found on its tape. The path every body that is not a plain envelope
/// takes, and the reference the reader is checked against.
pub(crate) fn decode_parsed<'a>(
    parser: &mut Parser,
    body: &'a [u8],
    spare: &'a mut Vec<u8>,
    mut lease: TapeLease<'a>,
    limits: &Limits,
    now: i128,
) -> Result<MessageView<'a>, Error> {
    parser.parse_text(body, spare, &mut lease.tape)?;
    let slots = find_slots(&lease.tape.0)?;
    validate(slots, lease, limits, now, false)
}

/// Every field rule, in the protocol's order, on the members found;
/// `plain` if every string on the tape is (see [`MessageView`]).
fn validate<'a>(
    slots: Slots<'a>,
    lease: TapeLease<'a>,
    limits: &Limits,
    now: i128,
    plain: bool,
) -> Result<MessageView<'a>, Error> {
    let nodes = &lease.tape.0;

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
            replay,
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
        replay,
        payload_at,
        metadata,
        tape: lease,
        plain,
    })
}

/// The members of a parsed envelope: refuses anything but an object.
fn find_slots<'a>(nodes: &[Node<'a>]) -> Result<Slots<'a>, Error> {
    if !matches!(nodes.first(), Some(Node::Object { .. })) {
        return Err(Error::new(
            Code::InvalidFormat,
            "the message must be a JSON object",
        ));
    }
    let mut slots = Slots::default();
    for (key, at) in members(nodes, 0) {
        if key == "security" {
            slots.security = Security::At(at);
        } else if let Some(slot) = slots.slot(key) {
            *slot = Some(at);
        } else {
            slots.unknown.get_or_insert(key);
        }
    }
    Ok(slots)
}

/// The envelope of plain text (see `json/plain.rs`) read in one pass: the
/// members found straight into their slots, and only their values put on
/// the tape (no node for the envelope, `security` or their keys, which
/// nothing reads after this). `None` for anything else, down to an unknown
/// or repeated member: the parser then reads the text whole, and the
/// general path finds and words the fault.
fn read_plain_envelope<'a>(
    cursor: &mut PlainCursor<'a, '_, '_>,
    max_depth: usize,
) -> Option<Slots<'a>> {
    let inner = max_depth.checked_sub(1)?;
    let mut slots = Slots::default();
    each_member(cursor, |cursor| {
        // A plain key that is neither listed nor `security` is unknown, for
        // the general path to refuse.
        if let Some(slot) = slots.slot_here(cursor) {
            return member_value(cursor, slot, inner);
        }
        if !cursor.skip(b"\"security\"")
            || cursor.take()? != b':'
            || !matches!(slots.security, Security::Missing)
        {
            return None;
        }
        slots.security = Security::Read(read_plain_security(cursor, inner)?);
        Some(())
    })?;
    cursor.at_end().then_some(slots)
}

/// `security` of a plain envelope, as [`read_plain_envelope`] reads the
/// envelope: an object nested at most `max_depth` deep (itself included).
fn read_plain_security(
    cursor: &mut PlainCursor<'_, '_, '_>,
    max_depth: usize,
) -> Option<SecuritySlots> {
    let inner = max_depth.checked_sub(1)?;
    let mut slots = SecuritySlots::default();
    each_member(cursor, |cursor| {
        let slot = slots.slot_here(cursor)?;
        member_value(cursor, slot, inner)
    })?;
    Some(slots)
}

/// The plain object the cursor is at, member by member: `member` reads
/// each from its key on; `None` as soon as anything is not as expected.
#[inline(always)]
fn each_member<'a>(
    cursor: &mut PlainCursor<'a, '_, '_>,
    mut member: impl FnMut(&mut PlainCursor<'a, '_, '_>) -> Option<()>,
) -> Option<()> {
    if cursor.take()? != b'{' {
        return None;
    }
    if cursor.peek()? == b'}' {
        cursor.take()?;
        return Some(());
    }
    loop {
        member(cursor)?;
        match cursor.take()? {
            b',' => {}
            b'}' => return Some(()),
            _ => return None,
        }
    }
}

/// A member's colon and value, after its key: the value onto the tape,
/// its position into `slot`, which a repeated member finds taken.
fn member_value(
    cursor: &mut PlainCursor<'_, '_, '_>,
    slot: &mut Option<usize>,
    max_depth: usize,
) -> Option<()> {
    if cursor.take()? != b':' || slot.is_some() {
        return None;
    }
    *slot = Some(cursor.value(max_depth)?);
    Some(())
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
    security: Security,
) -> Result<SecurityMetadata<&'a str>, Error> {
    let slots = match security {
        Security::Missing => return Err(invalid("missing field `security`")),
        Security::Read(slots) => slots,
        Security::At(at) => {
            if !matches!(nodes.get(at), Some(Node::Object { .. })) {
                return Err(invalid("field `security` must be an object"));
            }
            let mut slots = SecuritySlots::default();
            for (key, value_at) in members(nodes, at) {
                let Some(slot) = slots.slot(key) else {
                    return Err(invalid(format!(
                        "unknown field {} in `security`",
                        quoted_prefix(key)
                    )));
                };
                *slot = Some(value_at);
            }
            slots
        }
    };
    let SecuritySlots {
        level,
        encryption,
        signature,
        token,
    } = slots;
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::{Decoder, MAX_DEPTH};
    use crate::fuzzing::FUZZ_NOW;

    /// Whether the plain envelope reader takes `text` on itself.
    fn read_in_one_pass(text: &str) -> bool {
        let mut parser = Parser::new(MAX_DEPTH);
        let mut nodes = Vec::new();
        read_plain_envelope(&mut parser.cursor(text.as_bytes(), &mut nodes), MAX_DEPTH).is_some()
    }

    /// What a view holds, owned, with its signed form, or the error.
    fn outcome(
        view: Result<MessageView<'_>, Error>,
    ) -> Result<(Message, i128, bool, Vec<u8>), Error> {
        view.map(|view| {
            let mut signed = Vec::new();
            crate::codec::Canonicalizer::new().write_signing_input(&view, &mut signed);
            (
                view.to_message(),
                view.timestamp_nanos(),
                view.ack(),
                signed,
            )
        })
    }

    /// The decoder's result for `text` equals the parser's path's.
    fn agrees_with_the_parser(text: &str) -> Result<(), TestCaseError> {
        let (mut read, mut parsed) = (
            Decoder::new(Limits::default()),
            Decoder::new(Limits::default()),
        );
        prop_assert_eq!(
            outcome(read.decode_json(text.as_bytes(), FUZZ_NOW)),
            outcome(parsed.decode_json_parsed(text.as_bytes(), FUZZ_NOW)),
            "{}",
            text
        );
        Ok(())
    }

    const STAMP: &str = r#""2026-11-23T12:00:00Z""#;

    #[test]
    fn plain_envelopes_are_read_in_one_pass_as_the_parser_reads_them() {
        let texts = [
            format!(
                r#"{{"version":"1.0","id":"c-1","type":"Command","payload":{{"command":"demo.echo","args":"xx"}},"security":{{"security_level":"Standard","auth_token":"a.b.c"}},"timestamp":{STAMP}}}"#
            ),
            format!(
                r#"{{"version":"1.0","id":"c-2","type":"Command","payload":"c2VhbGVk","security":{{"security_level":"Critical","encryption_info":{{"algorithm":"AES-256-GCM","key_id":"k","nonce":"n"}},"signature":"s:x","auth_token":"t"}},"timestamp":{STAMP}}}"#
            ),
            // Any order, whitespace, the alias, metadata, nulls, an empty
            // payload and empty objects.
            format!(
                " {{ \"timestamp\" :\t{STAMP} ,\n\"security\" : {{ \"signature\" : null , \"security_level\" : \"Low\" }} , \"metadata\" : {{\"correlation_id\":\"c-0\",\"ack\":true}}, \"payload\":{{\"note\":\"é\"}}, \"type_\":\"Event\", \"id\":\"c-3\" }}\r\n"
            ),
            format!(r#"{{"id":"c-4","type":"Error","payload":[1,-2,[{{}}]],"metadata":null,"security":{{"security_level":"Low"}},"timestamp":{STAMP}}}"#),
            r#"{"security":{}}"#.to_owned(),
            "{}".to_owned(),
            // Valid JSON, faults for the rules to find.
            r#"{"id":"c-5","type":"Command","payload":{},"security":{"security_level":"Low"},"timestamp":"yesterday"}"#.to_owned(),
            r#"{"version":"2.0","id":7,"type":"Nothing","payload":null,"security":{"security_level":1},"timestamp":null}"#.to_owned(),
        ];
        for text in &texts {
            assert!(read_in_one_pass(text), "{text}");
            agrees_with_the_parser(text).unwrap();
        }
        // The first four are valid messages.
        for text in texts.iter().take(4) {
            let mut decoder = Decoder::new(Limits::default());
            let view = decoder.decode_json(text.as_bytes(), FUZZ_NOW);
            assert!(view.is_ok(), "{text}: {:?}", view.err());
        }
    }

    #[test]
    fn anything_else_is_left_to_the_parser() {
        let member = r#""payload":{},"security":{"security_level":"Low"},"timestamp":"2026-11-23T12:00:00Z""#;
        let texts = [
            // Unknown, repeated and escaped keys, at either level.
            format!(r#"{{"id":"c","type":"Command","extra":1,{member}}}"#),
            format!(r#"{{"id":"c","type":"Command","types":1,{member}}}"#),
            format!(r#"{{"id":"c","type":"Command","id":"d",{member}}}"#),
            format!(r#"{{"id":"c","type":"Command","security":{{}},{member}}}"#),
            format!(r#"{{"i\u0064":"c","type":"Command",{member}}}"#),
            format!(
                r#"{{"id":"c","type":"Command","payload":{{}},"security":{{"security_level":"Low","security_level":"Low"}},"timestamp":{STAMP}}}"#
            ),
            format!(
                r#"{{"id":"c","type":"Command","payload":{{}},"security":{{"security_level":"Low","level":"Low"}},"timestamp":{STAMP}}}"#
            ),
            format!(
                r#"{{"id":"c","type":"Command","payload":{{"a":1,"a":2}},"security":{{"security_level":"Low"}},"timestamp":{STAMP}}}"#
            ),
            // A value that is not plain, `security` not an object, broken
            // text, trailing bytes, another root.
            format!(r#"{{"id":"c\n","type":"Command",{member}}}"#),
            format!(
                r#"{{"id":"c","type":"Command","payload":1.5,"security":{{"security_level":"Low"}},"timestamp":{STAMP}}}"#
            ),
            format!(
                r#"{{"id":"c","type":"Command","payload":{{}},"security":null,"timestamp":{STAMP}}}"#
            ),
            format!(r#"{{"id":"c","type":"Command",{member}"#),
            format!(r#"{{"id":"c","type":"Command",{member}}}x"#),
            format!(r#"{{"id":"c","type":"Command",{member},}}"#),
            format!(r#"{{"id":"c","type":"Command" {member}}}"#),
            format!(r#"[{{"id":"c","type":"Command",{member}}}]"#),
            String::new(),
        ];
        for text in &texts {
            assert!(!read_in_one_pass(text), "{text}");
            agrees_with_the_parser(text).unwrap();
        }
    }

    #[test]
    fn the_nesting_limit_counts_the_envelope() {
        // The envelope is level 1: a payload may nest 63 levels, not 64.
        for (levels, read) in [(MAX_DEPTH - 1, true), (MAX_DEPTH, false)] {
            let payload = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
            let text = format!(
                r#"{{"id":"c","type":"Command","payload":{payload},"security":{{"security_level":"Low"}},"timestamp":{STAMP}}}"#
            );
            assert_eq!(read_in_one_pass(&text), read, "{levels} levels");
            agrees_with_the_parser(&text).unwrap();
        }
        // And in `security`, which is level 2.
        let nested = format!("{}{}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        let text = format!(
            r#"{{"id":"c","type":"Command","payload":{{}},"security":{{"security_level":{nested}}},"timestamp":{STAMP}}}"#
        );
        assert!(!read_in_one_pass(&text));
        agrees_with_the_parser(&text).unwrap();
    }

    /// Members and the values each may have: right and wrong ones.
    const MEMBERS: &[(&str, &[&str])] = &[
        ("version", &[r#""1.0""#, r#""1.2.3""#, "1", r#""2.0""#]),
        ("id", &[r#""m-1""#, r#""""#, "null", r#""é""#]),
        ("type", &[r#""Command""#, r#""Event""#, r#""nope""#]),
        ("type_", &[r#""Response""#]),
        (
            "payload",
            &[
                r#"{"command":"sys.ping"}"#,
                r#"{"command":"a","args":[1,{"x":null}]}"#,
                r#""abc""#,
                "{}",
                "[true,false]",
            ],
        ),
        (
            "metadata",
            &[
                r#"{"correlation_id":"c-1","ack":true}"#,
                "null",
                r#"{"ack":1}"#,
                "{}",
            ],
        ),
        (
            "security",
            &[
                r#"{"security_level":"Low"}"#,
                r#"{"auth_token":"t","security_level":"Standard"}"#,
                r#"{"security_level":"High","signature":null,"encryption_info":{"algorithm":"A","key_id":"k","nonce":"n"}}"#,
                r#"{"encryption_info":null,"security_level":"Critical","signature":"s"}"#,
                "{}",
                "[]",
                r#"{"security_level":"Low","x":1}"#,
            ],
        ),
        (
            "timestamp",
            &[STAMP, r#""2026-11-23T12:00:00.5+01:00""#, r#""now""#],
        ),
        ("extra", &["1"]),
        ("i\\u0064", &[r#""m-2""#]),
    ];

    /// An envelope: the members at `picks`, in that order, spaced by `gap`.
    fn envelope(picks: &[(usize, usize)], gap: &str) -> String {
        let members: Vec<String> = picks
            .iter()
            .filter_map(|&(member, value)| {
                let (key, values) = MEMBERS.get(member)?;
                let value = values.get(value % values.len())?;
                Some(format!("{gap}\"{key}\"{gap}:{gap}{value}{gap}"))
            })
            .collect();
        format!("{gap}{{{}}}{gap}", members.join(","))
    }

    proptest! {
        #[test]
        fn envelopes_decode_as_the_parser_decodes_them(
            // The usual members in any order, plus a few picked at random
            // (repeats and unknown ones among them).
            picks in (
                prop::collection::vec(any::<usize>(), 7),
                prop::collection::vec((0..MEMBERS.len(), any::<usize>()), 0..3),
            ).prop_flat_map(|(values, extra)| {
                let mut picks: Vec<(usize, usize)> = [0, 1, 2, 4, 5, 6, 7].into_iter().zip(values).collect();
                picks.extend(extra);
                Just(picks).prop_shuffle()
            }),
            drop in prop::option::of(0..7usize),
            gap in prop_oneof![Just(""), Just(" "), Just("\n\t")],
        ) {
            let mut picks = picks;
            if let Some(at) = drop && at < picks.len() {
                picks.remove(at);
            }
            agrees_with_the_parser(&envelope(&picks, gap))?;
        }
    }
}
