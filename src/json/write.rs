//! Writing JSON text straight into a byte buffer.
//!
//! Strings get the minimal escaping of RFC 8785 (JCS): `"`, `\` and control
//! characters only, controls as `\b \t \n \f \r` or `\u00xx` in lowercase hex.
//! That is valid JSON for any reader and already canonical, so one escaper
//! serves plain and canonical output. Numbers: integers exactly as parsed,
//! doubles in the shortest form that reads back to the same double
//! (ECMAScript style, via ryu-js).

use simd_json::{Node, StaticNode};

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

/// Whether any of the 8 bytes of `word` needs escaping: a control
/// character (below 0x20), `"` or `\`.
///
/// SWAR: `(x - 0x01..01 * n) & !x & 0x80..80` is non-zero exactly when some
/// byte of `x` is below `n` (n <= 0x80); a byte equal to `c` is a zero byte
/// of `x ^ c..c`, that is, a byte below 1.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    (control | quote | backslash) != 0
}

/// The position in `chunk` of its first byte that needs escaping, 16 bytes
/// at once with SSE2 (which every x86_64 has): a third of the instructions
/// of two SWAR words, on strings that are mostly tokens, signatures and
/// ciphertext hundreds of bytes long.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn escape_in_16(chunk: &[u8; 16]) -> Option<usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics run
    // on every CPU this code is built for; `chunk` is 16 readable bytes and
    // `loadu` reads exactly 16, with no alignment requirement.
    let mask = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        // A byte is a control character when its unsigned minimum with 0x1f
        // is itself (SSE2 has no unsigned less-than).
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash)))
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// The position of the first byte at or after `from` that needs escaping.
///
/// Words of 8 bytes are checked at once; a tail shorter than a word is
/// checked as one word padded with a harmless byte, so short strings (most
/// keys) are cleared in one step too.
pub(crate) fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes
        .get(i..i + 16)
        .and_then(|c| <&[u8; 16]>::try_from(c).ok())
    {
        if let Some(at) = escape_in_16(chunk) {
            return Some(i + at);
        }
        i += 16;
    }
    while let Some(chunk) = bytes
        .get(i..i + 8)
        .and_then(|c| <[u8; 8]>::try_from(c).ok())
    {
        if needs_escape(u64::from_le_bytes(chunk)) {
            break;
        }
        i += 8;
    }
    let rest = bytes.get(i..).unwrap_or_default();
    if rest.len() < 8 {
        let mut word = [b'a'; 8];
        if let Some(head) = word.get_mut(..rest.len()) {
            head.copy_from_slice(rest);
        }
        if !needs_escape(u64::from_le_bytes(word)) {
            return None;
        }
    }
    rest.iter()
        .position(|&b| ESCAPE.get(usize::from(b)).is_some_and(|&e| e != 0))
        .map(|at| i + at)
}

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
    fn every_byte_value_at_every_position_of_a_long_string_is_found() {
        // 40 bytes: two 16-byte SSE2 steps on x86_64, then a full SWAR
        // word (every position of it); from offset 3, a padded tail word.
        // Elsewhere, SWAR words throughout.
        for position in 0..40 {
            for b in 0u8..=255 {
                let mut bytes = [b'a'; 40];
                bytes[position] = b;
                let expected = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(
                    next_escape(&bytes, 0),
                    expected.then_some(position),
                    "{b:#x} at {position}"
                );
                // And from an offset, so that steps start mid-string.
                assert_eq!(
                    next_escape(&bytes, 3),
                    (expected && position >= 3).then_some(position),
                    "{b:#x} at {position}, from 3"
                );
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
