//! Writing JSON text straight into a byte buffer.
//!
//! Strings get the minimal escaping of RFC 8785 (JCS): `"`, `\` and control
//! characters only, controls as `\b \t \n \f \r` or `\u00xx` in lowercase hex.
//! That is valid JSON for any reader and already canonical, so one escaper
//! serves plain and canonical output. Numbers: integers exactly as parsed,
//! doubles in the shortest form that reads back to the same double
//! (ECMAScript style, via ryu-js).

use simd_json::{Node, StaticNode};

use super::scan::next_escape;
use super::value::{JsonNumber, JsonRef};

/// For each byte: 0 = copy as is, otherwise the escape character to write
/// after a backslash (`u` means `\u00xx`).
// Indexing here runs at compile time: out of bounds would fail the build.
#[allow(clippy::indexing_slicing)]
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal, quotes included.
///
/// Runs that need no escaping, most of any message, are found a word at a
/// time and copied whole.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(at) = next_escape(bytes, start) {
        out.extend_from_slice(bytes.get(start..at).unwrap_or_default());
        let b = bytes.get(at).copied().unwrap_or(0);
        match ESCAPE.get(usize::from(b)).copied().unwrap_or(0) {
            b'u' => {
                // Controls are below 0x20: the high nibble is 0 or 1.
                out.extend_from_slice(if b < 0x10 { b"\\u000" } else { b"\\u001" });
                out.push(HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'));
            }
            escape => {
                out.push(b'\\');
                out.push(escape);
            }
        }
        start = at + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// Appends `s` quoted, without looking for bytes to escape: only for text
/// that never has any, base64url (`[A-Za-z0-9_-]`), the engine's own
/// ASCII constants and timestamps, and strings the plain reader read
/// (it gives up on a quote, a backslash or a control character). The
/// longest strings of a protected reply are such (ciphertext, signature,
/// nonce), each written twice, and so are a plain request's when its
/// signed form is written. Debug builds check.
pub(crate) fn write_unescaped_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(
        next_escape(s.as_bytes(), 0).is_none(),
        "{s:?} needs escaping"
    );
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Appends a double in its shortest round-trip form, ECMAScript style
/// (`1e+30`, `0.002`, `-0` as `0`). JSON has no non-finite numbers and the
/// parser never produces one; should one reach here it is written as `null`.
pub(crate) fn write_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        let mut buffer = ryu_js::Buffer::new();
        out.extend_from_slice(buffer.format_finite(value).as_bytes());
    } else {
        debug_assert!(false, "non-finite number in a JSON tape");
        out.extend_from_slice(b"null");
    }
}

/// Appends a number exactly as parsed (integers keep every digit).
pub(crate) fn write_number(out: &mut Vec<u8>, number: JsonNumber) {
    let mut buffer = itoa::Buffer::new();
    match number {
        JsonNumber::Int(v) => out.extend_from_slice(buffer.format(v).as_bytes()),
        JsonNumber::Uint(v) => out.extend_from_slice(buffer.format(v).as_bytes()),
        JsonNumber::Float(v) => write_f64(out, v),
    }
}

/// Appends a scalar tape node; `false` (and nothing written) for a container.
pub(crate) fn write_scalar(out: &mut Vec<u8>, node: &Node<'_>) -> bool {
    match node {
        Node::String(s) => write_str(out, s),
        Node::Static(StaticNode::Null) => out.extend_from_slice(b"null"),
        Node::Static(StaticNode::Bool(true)) => out.extend_from_slice(b"true"),
        Node::Static(StaticNode::Bool(false)) => out.extend_from_slice(b"false"),
        Node::Static(StaticNode::I64(v)) => write_number(out, JsonNumber::Int(*v)),
        Node::Static(StaticNode::U64(v)) => write_number(out, JsonNumber::Uint(*v)),
        Node::Static(StaticNode::F64(v)) => write_number(out, JsonNumber::Float(*v)),
        Node::Object { .. } | Node::Array { .. } => return false,
    }
    true
}

/// Appends a value as compact JSON, members in input order.
///
/// Recursive: every tape the crate builds is at most 64 levels deep (the
/// parser refuses deeper input), which bounds the recursion.
pub(crate) fn write_value(out: &mut Vec<u8>, value: JsonRef<'_>) {
    let Some(head) = value.nodes().first() else {
        return;
    };
    match head {
        Node::Object { .. } => {
            out.push(b'{');
            for (i, (key, member)) in value.entries().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, member);
            }
            out.push(b'}');
        }
        Node::Array { .. } => {
            out.push(b'[');
            for (i, element) in value.elements().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, element);
            }
            out.push(b']');
        }
        scalar => {
            write_scalar(out, scalar);
        }
    }
}

impl JsonRef<'_> {
    /// Appends the value as compact JSON.
    pub fn write_to(self, out: &mut Vec<u8>) {
        write_value(out, self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Parser;

    fn compact(text: &str) -> String {
        let mut input = text.as_bytes().to_vec();
        let mut parser = Parser::new(64);
        let mut tape = simd_json::Tape::null().reset();
        parser.parse(&mut input, &mut tape).unwrap();
        let mut out = Vec::new();
        write_value(&mut out, JsonRef::from_nodes(&tape.0).unwrap());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_only_what_json_requires() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\u{0}\u{1f}\u{8}\t\n\u{c}\r/\u{7f}é€😀");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "\"a\\\"b\\\\c\\u0000\\u001f\\b\\t\\n\\f\\r/\u{7f}é€😀\""
        );
    }

    /// The escaping of RFC 8785, one character at a time: the reference the
    /// word-at-a-time writer must agree with.
    fn reference(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{8}' => out.push_str("\\b"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\u{c}' => out.push_str("\\f"),
                '\r' => out.push_str("\\r"),
                c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        #[test]
        fn word_at_a_time_escaping_agrees_with_the_reference(s in "(?s).{0,40}", t in proptest::collection::vec(proptest::sample::select(vec!['a', '"', '\\', '\u{0}', '\u{1f}', '\u{20}', '\u{7f}', '\u{80}', 'é', '😀', '\n']), 0..40)) {
            let t: String = t.into_iter().collect();
            for text in [s.as_str(), t.as_str()] {
                let mut out = Vec::new();
                write_str(&mut out, text);
                proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), reference(text));
            }
        }
    }

    #[test]
    fn writes_compact_json_in_input_order() {
        assert_eq!(
            compact(
                r#" { "b" : [ 1 , { } , [ ] , [ [ ] ] ] , "a" : { "x" : null } , "c" : "s" } "#
            ),
            r#"{"b":[1,{},[],[[]]],"a":{"x":null},"c":"s"}"#
        );
        assert_eq!(compact("[]"), "[]");
        assert_eq!(compact("{}"), "{}");
        assert_eq!(
            compact(r#"[{"a":[{"b":{}}]},2]"#),
            r#"[{"a":[{"b":{}}]},2]"#
        );
        assert_eq!(compact("\"x\""), "\"x\"");
        assert_eq!(compact("-0"), "0");
    }

    #[test]
    fn numbers_keep_integers_exact_and_doubles_shortest() {
        assert_eq!(
            compact(
                "[9007199254740993, 18446744073709551615, -9223372036854775808, 1.0, 1E30, 4.50, 2e-3]"
            ),
            "[9007199254740993,18446744073709551615,-9223372036854775808,1,1e+30,4.5,0.002]"
        );
    }
}
