//! Canonical JSON, RFC 8785 (JCS), for signatures (docs/protocol.md section 5).
//!
//! JCS writes a value so that every party derives the same bytes: no
//! whitespace; object members sorted by their keys' UTF-16 code units;
//! strings with minimal escaping; numbers as ECMAScript writes doubles.
//!
//! No published crate canonicalizes a borrowed simd-json tape (they take a
//! `serde_json::Value`, which would cost a copy of every message), so this
//! module writes it: the sorting and escaping are short, and the hard part,
//! shortest round-trip ECMAScript number formatting, is ryu-js. It is tested
//! against the RFC's own examples and its Appendix B number table.

use std::cmp::Ordering;

use simd_json::{Node, StaticNode};

use super::response::{ResponseParts, SealedPayload};
use super::value_text::ValueTexts;
use crate::error::Error;
use crate::json::write::{write_f64, write_number, write_str, write_unescaped_str};
use crate::json::{
    JsonNumber, JsonRef, MAX_VALUE_DEPTH, Parser, RawJson, TapeLease, members, span, str_at,
};
use crate::message::{
    Field, Message, MessageType, MessageView, PROTOCOL_VERSION, SecurityMetadata, TypeKey,
};

/// Integers up to 2^53 in magnitude are exact as doubles, so JCS writes them
/// as plain digits; beyond, they take the double's ECMAScript form.
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// Writes canonical JSON, reusing its scratch space between calls.
pub struct Canonicalizer {
    /// Key positions of the objects being written, innermost last.
    keys: Vec<usize>,
    /// For owned messages: their JSON text, parsed to tapes.
    parser: Parser,
    text: Vec<u8>,
    tape: Vec<Node<'static>>,
    metadata_tape: Vec<Node<'static>>,
}

impl std::fmt::Debug for Canonicalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canonicalizer").finish_non_exhaustive()
    }
}

impl Default for Canonicalizer {
    fn default() -> Canonicalizer {
        Canonicalizer::new()
    }
}

/// The envelope fields the signed form is made of, however the envelope is
/// held.
struct EnvelopeParts<'v> {
    version: Option<&'v str>,
    id: &'v str,
    kind: MessageType,
    type_key: TypeKey,
    payload: JsonRef<'v>,
    metadata: Field<JsonRef<'v>>,
    security: SecurityMetadata<&'v str>,
    timestamp: &'v str,
    /// Whether every string is plain (see [`MessageView`]'s `plain`): then
    /// they are written as they are, without looking for bytes to escape.
    plain: bool,
}

/// Appends a string, quoted: [`write_str`], or [`write_unescaped_str`] for
/// strings known to need no escaping.
type WriteText = fn(&mut Vec<u8>, &str);

impl Canonicalizer {
    /// A canonicalizer with empty scratch space.
    pub fn new() -> Canonicalizer {
        Canonicalizer {
            keys: Vec::new(),
            parser: Parser::new(MAX_VALUE_DEPTH),
            text: Vec::new(),
            tape: Vec::new(),
            metadata_tape: Vec::new(),
        }
    }

    /// Appends the canonical form of `value`.
    pub fn write_value(&mut self, value: JsonRef<'_>, out: &mut Vec<u8>) {
        write_node(out, value.nodes(), 0, &mut self.keys, write_str);
    }

    /// Appends the signed input of docs/protocol.md section 5: the canonical form
    /// of the whole envelope with `security.signature` left out (absent, not
    /// null).
    pub fn write_signing_input(&mut self, message: &MessageView<'_>, out: &mut Vec<u8>) {
        let parts = EnvelopeParts {
            version: message.version(),
            id: message.id(),
            kind: message.kind(),
            type_key: message.type_key(),
            payload: message.payload(),
            metadata: message.metadata(),
            security: message.security().borrowed(),
            timestamp: message.timestamp(),
            plain: message.plain,
        };
        write_envelope(out, &parts, &mut self.keys);
    }

    /// Appends the signed input of an owned message (see
    /// [`write_signing_input`](Self::write_signing_input)).
    ///
    /// Parses the message's payload and metadata text to canonicalize them;
    /// fails only if that text is not valid JSON, which a [`RawJson`](crate::json::RawJson)
    /// never is.
    pub fn write_message_signing_input(
        &mut self,
        message: &Message,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let Canonicalizer {
            keys,
            parser,
            text,
            tape,
            metadata_tape,
        } = self;
        let mut lease = TapeLease::take(tape);
        let metadata_text = message.metadata.present().map(RawJson::as_str);
        let metadata_at = ValueTexts {
            parser,
            text,
            metadata_tape,
        }
        .parse(
            message.payload.as_bytes(),
            metadata_text.map(str::as_bytes),
            &mut lease,
        )?;
        let metadata = match (&message.metadata, metadata_at) {
            (Field::Absent, _) => Field::Absent,
            (Field::Null, _) | (Field::Present(_), None) => Field::Null,
            (Field::Present(_), Some(at)) => lease.value(at).map_or(Field::Null, Field::Present),
        };
        let parts = EnvelopeParts {
            version: message.version.as_deref(),
            id: &message.id,
            kind: message.kind,
            type_key: message.type_key,
            payload: lease.value(0).unwrap_or(JsonRef::NULL),
            metadata,
            security: message.security.borrowed(),
            timestamp: message.timestamp.as_str(),
            plain: false,
        };
        write_envelope(out, &parts, keys);
        Ok(())
    }
}

impl Canonicalizer {
    /// Appends the signed input of the Response `parts` describe, payload
    /// `sealed` if given: the bytes [`write_message_signing_input`] makes
    /// of that Response as a [`Message`] (version `1.0`, key `type`,
    /// metadata `{"correlation_id": ...}`, `auth_token` null), written from
    /// the parts without building one.
    ///
    /// [`write_message_signing_input`]: Self::write_message_signing_input
    pub(crate) fn write_response_signing_input(
        &mut self,
        parts: &ResponseParts<'_>,
        sealed: Option<&SealedPayload<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        out.extend_from_slice(b"{\"id\":");
        write_str(out, parts.id);
        out.extend_from_slice(b",\"metadata\":{\"correlation_id\":");
        write_str(out, parts.correlation_id);
        out.extend_from_slice(b"},\"payload\":");
        match sealed {
            Some(sealed) => write_unescaped_str(out, sealed.ciphertext),
            None => {
                // `{"result": r}` has one member: its canonical form is
                // that of `r` inside.
                out.extend_from_slice(b"{\"result\":");
                self.write_raw(parts.result, out)?;
                out.push(b'}');
            }
        }
        out.extend_from_slice(b",\"security\":{\"auth_token\":null");
        if let Some(sealed) = sealed {
            sealed.write_encryption_info(out);
        }
        out.extend_from_slice(b",\"security_level\":\"");
        out.extend_from_slice(parts.level.as_str().as_bytes());
        out.extend_from_slice(b"\"},\"timestamp\":");
        write_unescaped_str(out, parts.timestamp);
        out.extend_from_slice(b",\"type\":\"Response\",\"version\":");
        write_unescaped_str(out, PROTOCOL_VERSION);
        out.push(b'}');
        Ok(())
    }

    /// Appends the canonical form of `raw` (read without the parser when it
    /// is plain).
    fn write_raw(&mut self, raw: &RawJson, out: &mut Vec<u8>) -> Result<(), Error> {
        let Canonicalizer {
            keys,
            parser,
            text,
            tape,
            ..
        } = self;
        let mut lease = TapeLease::take(tape);
        parser.parse_text(raw.as_bytes(), text, &mut lease.tape)?;
        write_node(out, &lease.tape.0, 0, keys, write_str);
        Ok(())
    }
}

/// The envelope's members in JCS order. The key set is fixed by the
/// envelope rules (unknown keys are refused), so the order is too:
/// `id < metadata < payload < security < timestamp < type < type_ < version`,
/// and inside `security`:
/// `auth_token < encryption_info < security_level` (`signature` left out).
fn write_envelope(out: &mut Vec<u8>, parts: &EnvelopeParts<'_>, keys: &mut Vec<usize>) {
    let text: WriteText = if parts.plain {
        write_unescaped_str
    } else {
        write_str
    };
    out.extend_from_slice(b"{\"id\":");
    text(out, parts.id);
    match parts.metadata {
        Field::Absent => {}
        Field::Null => out.extend_from_slice(b",\"metadata\":null"),
        Field::Present(metadata) => {
            out.extend_from_slice(b",\"metadata\":");
            write_node(out, metadata.nodes(), 0, keys, text);
        }
    }
    out.extend_from_slice(b",\"payload\":");
    write_node(out, parts.payload.nodes(), 0, keys, text);
    out.extend_from_slice(b",\"security\":{");
    let security = &parts.security;
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &[u8]| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(name);
    };
    match &security.auth_token {
        Field::Absent => {}
        Field::Null => {
            key(out, b"\"auth_token\":");
            out.extend_from_slice(b"null");
        }
        Field::Present(token) => {
            key(out, b"\"auth_token\":");
            text(out, token);
        }
    }
    match &security.encryption_info {
        Field::Absent => {}
        Field::Null => {
            key(out, b"\"encryption_info\":");
            out.extend_from_slice(b"null");
        }
        Field::Present(info) => {
            key(out, b"\"encryption_info\":{\"algorithm\":");
            text(out, info.algorithm);
            out.extend_from_slice(b",\"key_id\":");
            text(out, info.key_id);
            out.extend_from_slice(b",\"nonce\":");
            text(out, info.nonce);
            out.push(b'}');
        }
    }
    key(out, b"\"security_level\":\"");
    out.extend_from_slice(security.security_level.as_str().as_bytes());
    out.extend_from_slice(b"\"},\"timestamp\":");
    text(out, parts.timestamp);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(parts.type_key.as_str().as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(parts.kind.as_str().as_bytes());
    out.push(b'"');
    if let Some(version) = parts.version {
        out.extend_from_slice(b",\"version\":");
        text(out, version);
    }
    out.push(b'}');
}

/// Appends the canonical form of the value at tape position `at`.
///
/// `keys` is a stack shared by the nested objects being written: each object
/// pushes its key positions, sorts its own slice, writes, and truncates back.
/// Recursion depth is bounded by the tape's nesting (at most 64).
fn write_node(
    out: &mut Vec<u8>,
    nodes: &[Node<'_>],
    at: usize,
    keys: &mut Vec<usize>,
    text: WriteText,
) {
    match nodes.get(at) {
        None => {}
        Some(Node::Object { .. }) => {
            let start = keys.len();
            keys.extend(members(nodes, at).map(|(_, value_at)| value_at - 1));
            let end = keys.len();
            if let Some(own) = keys.get_mut(start..end) {
                own.sort_unstable_by(|&a, &b| {
                    utf16_cmp(
                        str_at(nodes, a).unwrap_or_default(),
                        str_at(nodes, b).unwrap_or_default(),
                    )
                });
            }
            out.push(b'{');
            for i in start..end {
                let Some(&key_at) = keys.get(i) else { break };
                if i > start {
                    out.push(b',');
                }
                text(out, str_at(nodes, key_at).unwrap_or_default());
                out.push(b':');
                write_node(out, nodes, key_at + 1, keys, text);
            }
            out.push(b'}');
            keys.truncate(start);
        }
        Some(Node::Array { len, .. }) => {
            out.push(b'[');
            let mut element = at + 1;
            for i in 0..*len {
                if i > 0 {
                    out.push(b',');
                }
                write_node(out, nodes, element, keys, text);
                element += nodes.get(element).map_or(1, span);
            }
            out.push(b']');
        }
        Some(Node::Static(StaticNode::I64(v))) => {
            if v.unsigned_abs() <= MAX_EXACT_INTEGER {
                write_number(out, JsonNumber::Int(*v));
            } else {
                write_f64(out, *v as f64);
            }
        }
        Some(Node::Static(StaticNode::U64(v))) => {
            if *v <= MAX_EXACT_INTEGER {
                write_number(out, JsonNumber::Uint(*v));
            } else {
                write_f64(out, *v as f64);
            }
        }
        Some(Node::String(string)) => text(out, string),
        Some(scalar) => {
            crate::json::write::write_scalar(out, scalar);
        }
    }
}

/// Orders strings by their UTF-16 code units, as RFC 8785 section 3.2.3 asks.
///
/// UTF-8 byte order is code point order, and UTF-16 order agrees with it
/// except where a character in U+E000..U+FFFF (UTF-8 lead byte EE or EF)
/// meets one above U+FFFF (lead F0 to F4, a surrogate pair in UTF-16, which
/// sorts below it). Two strings first differ either at such lead bytes, or
/// at bytes of characters of the same kind, where byte order holds; so one
/// look at the first differing bytes decides.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    let first_difference = a.bytes().zip(b.bytes()).find(|(x, y)| x != y);
    match first_difference {
        None => a.len().cmp(&b.len()),
        Some((x, y)) => {
            let high_bmp = |b: u8| matches!(b, 0xEE | 0xEF);
            let supplementary = |b: u8| b >= 0xF0;
            if (high_bmp(x) && supplementary(y)) || (supplementary(x) && high_bmp(y)) {
                y.cmp(&x)
            } else {
                x.cmp(&y)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        let mut input = text.as_bytes().to_vec();
        let mut parser = Parser::new(64);
        let mut tape = simd_json::Tape::null().reset();
        parser.parse(&mut input, &mut tape).unwrap();
        let mut out = Vec::new();
        Canonicalizer::new().write_value(JsonRef::from_nodes(&tape.0).unwrap(), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// RFC 8785 section 3.2.2: the sample input and its canonical output.
    #[test]
    fn rfc_8785_sample_canonicalizes_as_the_rfc_says() {
        let input = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        assert_eq!(
            canonical(input),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    /// RFC 8785 section 3.2.3: sorting by UTF-16 code units.
    #[test]
    fn rfc_8785_sorting_example_orders_by_utf16_code_units() {
        let input = r#"{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"#;
        let out = canonical(input);
        let values: Vec<&str> = out
            .split("\":\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert_eq!(
            values,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh"
            ]
        );
    }

    /// RFC 8785 Appendix B: IEEE 754 values and their canonical text (NaN and
    /// the infinities cannot occur in JSON).
    #[test]
    fn rfc_8785_appendix_b_numbers() {
        const TABLE: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for &(bits, expected) in TABLE {
            let value = f64::from_bits(bits);
            // Through the parser, as a number arrives: Rust's shortest
            // round-trip text of the double reads back to the same double.
            let text = format!("[{value:e}]");
            assert_eq!(canonical(&text), format!("[{expected}]"), "{bits:#018x}");
            // And straight from the double.
            let mut out = Vec::new();
            write_f64(&mut out, value);
            assert_eq!(std::str::from_utf8(&out).unwrap(), expected, "{bits:#018x}");
        }
    }

    #[test]
    fn integers_beyond_2_pow_53_take_their_double_form() {
        assert_eq!(
            canonical(
                "[9007199254740992, 9007199254740993, 18446744073709551615, -9007199254740993, 100, -0]"
            ),
            "[9007199254740992,9007199254740992,18446744073709552000,-9007199254740992,100,0]"
        );
    }

    #[test]
    fn integer_text_beyond_64_bits_reads_as_a_double_and_writes_back_the_same() {
        // JCS writes doubles from 2^64 up to 1e21 as plain integer digits;
        // such text must read back (as a double), canonically unchanged.
        for text in [
            "[100000000000000000000]",
            "[668704570190726000000]",
            "[-295147905179352830000]",
        ] {
            assert_eq!(canonical(text), text);
            let raw = crate::json::RawJson::parse(text).unwrap();
            assert_eq!(raw.as_str(), text);
        }
    }

    #[test]
    fn nested_objects_are_sorted_at_every_level_and_arrays_keep_order() {
        assert_eq!(
            canonical(r#"{"b":[{"z":1,"a":{"y":2,"x":[3,{"d":4,"c":5}]}}],"a":[]}"#),
            r#"{"a":[],"b":[{"a":{"x":[3,{"c":5,"d":4}],"y":2},"z":1}]}"#
        );
    }

    proptest::proptest! {
        #[test]
        fn byte_shortcut_agrees_with_comparing_utf16_code_units(
            a in proptest::collection::vec(proptest::sample::select(vec!['a', 'z', '\u{7f}', '\u{80}', 'é', '\u{d7ff}', '\u{e000}', '\u{fb33}', '\u{ffff}', '\u{10000}', '😀', '\u{10ffff}']), 0..5),
            b in proptest::collection::vec(proptest::sample::select(vec!['a', 'z', '\u{7f}', '\u{80}', 'é', '\u{d7ff}', '\u{e000}', '\u{fb33}', '\u{ffff}', '\u{10000}', '😀', '\u{10ffff}']), 0..5),
            c in "(?s).{0,6}",
            d in "(?s).{0,6}",
        ) {
            let a: String = a.into_iter().collect();
            let b: String = b.into_iter().collect();
            for (x, y) in [(&a, &b), (&c, &d), (&a, &c)] {
                proptest::prop_assert_eq!(utf16_cmp(x, y), x.encode_utf16().cmp(y.encode_utf16()), "{:?} {:?}", x, y);
            }
        }
    }

    #[test]
    fn utf16_order_differs_from_code_point_order_only_above_the_bmp() {
        assert_eq!(utf16_cmp("\u{ffff}", "\u{10000}"), Ordering::Greater);
        assert_eq!(utf16_cmp("\u{e000}", "\u{10000}"), Ordering::Greater);
        assert_eq!(utf16_cmp("\u{d7ff}", "\u{10000}"), Ordering::Less);
        assert_eq!(utf16_cmp("a", "ab"), Ordering::Less);
        assert_eq!(utf16_cmp("é", "e"), Ordering::Greater);
    }
}
