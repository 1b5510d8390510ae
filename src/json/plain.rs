//! [`read_plain`]: the tape of plain JSON text, read without simd-json.
//!
//! Nearly all JSON the engine reads is plain: no string holds an escape and
//! every number is a short integer. Such text is read here in one pass,
//! straight into the nodes simd-json would make, strings borrowed where
//! they stand. simd-json instead copies the text into a padded buffer,
//! marks every structural byte in it, then walks those marks: for an
//! envelope of a few hundred bytes that is over a third of a Standard
//! message's work (callgrind), and most of it goes to what this reader
//! skips in one scan, the bytes inside strings.
//!
//! Anything not plain (an escape, a fraction or exponent, an integer of 18
//! digits or more, nesting past the limit) and any fault at all makes the
//! reader give up and leave the text to the parser, which also words every
//! error. So this is a shortcut, never a second judge: what it reads, the
//! parser reads the same, which the tests and the `parse_json` fuzz target
//! check against simd-json.

use simd_json::{Node, StaticNode};

use super::repeated_keys::{PAIRWISE_LIMIT, repeated_key};
use super::scan::scan_block;
use super::value::first_members;

/// Digits an integer may have to be read here: up to 17 it is exact in the
/// parser's fast path too, with the same node.
const MAX_DIGITS: usize = 17;

/// Appends to `nodes` the tape of `text` and returns true, if `text` is one
/// plain JSON value (see the module) nested at most `max_depth` deep, with
/// no key repeated within an object. Otherwise leaves `nodes` as it was and
/// returns false: the parser must judge the text.
pub(crate) fn read_plain<'t>(
    text: &'t [u8],
    max_depth: usize,
    nodes: &mut Vec<Node<'t>>,
    scratch: &mut ReadScratch,
) -> bool {
    let start = nodes.len();
    let mut reader = Reader {
        bytes: text,
        at: 0,
        nodes,
    };
    let read = reader.document(max_depth, scratch).is_some();
    if !read {
        nodes.truncate(start);
    }
    read
}

/// A plain text read piece by piece, for a caller that knows the shape it
/// expects (the envelope's reader): the caller steps through the structure
/// it knows and has the values it does not read onto the tape, as
/// [`read_plain`] would. Every method returns `None` to give up, and then
/// the caller leaves the text to the parser, which judges it whole.
pub(crate) struct PlainCursor<'t, 'n, 's> {
    reader: Reader<'t, 'n>,
    scratch: &'s mut ReadScratch,
}

impl<'t, 'n, 's> PlainCursor<'t, 'n, 's> {
    /// A cursor at the start of `text`, appending to `nodes`.
    pub(crate) fn new(
        text: &'t [u8],
        nodes: &'n mut Vec<Node<'t>>,
        scratch: &'s mut ReadScratch,
    ) -> Self {
        PlainCursor {
            reader: Reader {
                bytes: text,
                at: 0,
                nodes,
            },
            scratch,
        }
    }

    /// The next byte that is not whitespace, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.reader.next_byte()
    }

    /// The next byte that is not whitespace, consumed.
    pub(crate) fn take(&mut self) -> Option<u8> {
        let byte = self.reader.next_byte()?;
        self.reader.at += 1;
        Some(byte)
    }

    /// The first byte of the key that comes next (after whitespace), not
    /// consumed: a cheap first sort before [`skip`](Self::skip).
    pub(crate) fn key_initial(&mut self) -> Option<u8> {
        if self.reader.next_byte()? != b'"' {
            return None;
        }
        self.reader.bytes.get(self.reader.at + 1).copied()
    }

    /// Consumes `quoted`, a string in quotes with no quote, backslash or
    /// control character inside, if it is what comes next: then the next
    /// string is exactly that one, read without a scan.
    #[inline(always)]
    pub(crate) fn skip(&mut self, quoted: &[u8]) -> bool {
        let at = self.reader.at;
        let next = self.reader.bytes.get(at..at + quoted.len());
        let skipped = next == Some(quoted);
        if skipped {
            self.reader.at = at + quoted.len();
        }
        skipped
    }

    /// One plain value, nested at most `max_depth` deep, onto the tape: its
    /// position there.
    pub(crate) fn value(&mut self, max_depth: usize) -> Option<usize> {
        let at = self.reader.nodes.len();
        // Most of an envelope's values are strings: no container to track.
        if self.reader.next_byte()? == b'"' {
            let string = self.reader.string()?;
            self.reader.nodes.push(Node::String(string));
        } else {
            self.reader.value(max_depth, self.scratch)?;
        }
        Some(at)
    }

    /// Whether nothing but whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.reader.next_byte().is_none()
    }
}

/// What [`read_plain`] reuses from one text to the next.
#[derive(Debug, Default)]
pub(crate) struct ReadScratch {
    /// The containers open, innermost last.
    open: Vec<Open>,
    /// Key positions, for the check of large objects.
    keys: Vec<usize>,
}

/// A container being read: where its node is, how many items it has and,
/// for an object, a filter of the keys it has (see [`Reader::key`]).
#[derive(Clone, Copy, Debug)]
struct Open {
    at: usize,
    items: usize,
    object: bool,
    keys_seen: u64,
}

/// The text and the position reached; every method returns `None` to give
/// up.
struct Reader<'t, 'n> {
    bytes: &'t [u8],
    at: usize,
    nodes: &'n mut Vec<Node<'t>>,
}

impl<'t> Reader<'t, '_> {
    /// One value and nothing after it but whitespace.
    fn document(&mut self, max_depth: usize, scratch: &mut ReadScratch) -> Option<()> {
        self.value(max_depth, scratch)?;
        self.next_byte().is_none().then_some(())
    }

    /// One value, the reader left just after it.
    #[inline(always)]
    fn value(&mut self, max_depth: usize, scratch: &mut ReadScratch) -> Option<()> {
        let ReadScratch { open, keys } = scratch;
        open.clear();
        'value: loop {
            match self.next_byte()? {
                byte @ (b'{' | b'[') => {
                    if open.len() >= max_depth {
                        return None;
                    }
                    let object = byte == b'{';
                    let at = self.nodes.len();
                    self.nodes.push(if object {
                        Node::Object { len: 0, count: 0 }
                    } else {
                        Node::Array { len: 0, count: 0 }
                    });
                    self.at += 1;
                    if self.next_byte()? == if object { b'}' } else { b']' } {
                        // Empty: its node is already right.
                        self.at += 1;
                    } else {
                        open.push(Open {
                            at,
                            items: 0,
                            object,
                            keys_seen: 0,
                        });
                        if object {
                            self.key(open.last_mut()?)?;
                        }
                        continue 'value;
                    }
                }
                b'"' => {
                    let string = self.string()?;
                    self.nodes.push(Node::String(string));
                }
                b't' => self.literal(b"true", StaticNode::Bool(true))?,
                b'f' => self.literal(b"false", StaticNode::Bool(false))?,
                b'n' => self.literal(b"null", StaticNode::Null)?,
                b'-' | b'0'..=b'9' => self.integer()?,
                _ => return None,
            }
            // A value is complete: it is an item of the innermost open
            // container, which either goes on or closes (itself an item of
            // the next one out).
            loop {
                let Some(inner) = open.last_mut() else {
                    // The outermost value is complete.
                    return Some(());
                };
                inner.items += 1;
                let byte = self.next_byte()?;
                self.at += 1;
                match (byte, inner.object) {
                    (b',', true) => {
                        self.next_byte()?;
                        self.key(inner)?;
                        continue 'value;
                    }
                    (b',', false) => continue 'value,
                    (b'}', true) | (b']', false) => {
                        let Open {
                            at, items, object, ..
                        } = *inner;
                        let count = self.nodes.len().checked_sub(at + 1)?;
                        *self.nodes.get_mut(at)? = if object {
                            Node::Object { len: items, count }
                        } else {
                            Node::Array { len: items, count }
                        };
                        // Small objects were checked key by key.
                        if object
                            && items > PAIRWISE_LIMIT
                            && repeated_key(self.nodes, at, keys).is_some()
                        {
                            return None;
                        }
                        open.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    /// The next byte that is not whitespace, not consumed; `None` at the end.
    fn next_byte(&mut self) -> Option<u8> {
        loop {
            let byte = *self.bytes.get(self.at)?;
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(byte);
            }
            self.at += 1;
        }
    }

    /// A member's key and its colon, the reader at the key's quote; gives
    /// up on a key the object already has.
    ///
    /// The first [`PAIRWISE_LIMIT`] keys are checked as they come: a key
    /// whose bit in the object's 64-bit filter (by length and end bytes) is
    /// clear is new, and only a key whose bit is set is compared with the
    /// earlier keys. An object with more keys is checked whole when it
    /// closes, by sorting, so that a hostile object of 100,000 keys costs
    /// n log n.
    #[inline(always)]
    fn key(&mut self, object: &mut Open) -> Option<()> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let key = self.string()?;
        if object.items < PAIRWISE_LIMIT {
            let bit = 1 << key_hash(key);
            if object.keys_seen & bit != 0
                && first_members(self.nodes, object.at, object.items).any(|(seen, _)| seen == key)
            {
                return None;
            }
            object.keys_seen |= bit;
        }
        self.nodes.push(Node::String(key));
        if self.next_byte()? != b':' {
            return None;
        }
        self.at += 1;
        Some(())
    }

    /// The string whose opening quote the reader is at, if it has no escape
    /// (so no backslash) and no control character (which JSON must escape).
    #[inline(always)]
    fn string(&mut self) -> Option<&'t str> {
        let from = self.at + 1;
        let (end, ascii) = string_end(self.bytes, from)?;
        if self.bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        let content = self.bytes.get(from..end)?;
        if ascii {
            // SAFETY: `string_end` found no byte of `content` at or above
            // 0x80, so it is ASCII, and ASCII is valid UTF-8.
            #[allow(unsafe_code)]
            Some(unsafe { std::str::from_utf8_unchecked(content) })
        } else {
            std::str::from_utf8(content).ok()
        }
    }

    fn literal(&mut self, word: &[u8], node: StaticNode) -> Option<()> {
        if self.bytes.get(self.at..self.at + word.len())? != word {
            return None;
        }
        self.at += word.len();
        self.nodes.push(Node::Static(node));
        Some(())
    }

    /// An integer of at most [`MAX_DIGITS`] digits, as the parser stores it:
    /// `U64` when not negative, `I64` when negative (`-0` included).
    fn integer(&mut self) -> Option<()> {
        let negative = self.bytes.get(self.at) == Some(&b'-');
        let first = self.at + usize::from(negative);
        let mut end = first;
        let mut value: u64 = 0;
        while let Some(&digit) = self.bytes.get(end)
            && digit.is_ascii_digit()
        {
            if end - first == MAX_DIGITS {
                return None;
            }
            value = value * 10 + u64::from(digit - b'0');
            end += 1;
        }
        let leading_zero = self.bytes.get(first) == Some(&b'0') && end - first > 1;
        let fraction = matches!(self.bytes.get(end), Some(b'.' | b'e' | b'E'));
        if end == first || leading_zero || fraction {
            return None;
        }
        self.at = end;
        self.nodes.push(Node::Static(if negative {
            // At most 17 digits: fits, and negating cannot overflow.
            StaticNode::I64(-i64::try_from(value).ok()?)
        } else {
            StaticNode::U64(value)
        }));
        Some(())
    }
}

/// A key's bit in an object's filter: from its length and its first and
/// last bytes, which tell the keys of most objects apart.
fn key_hash(key: &str) -> u32 {
    let bytes = key.as_bytes();
    let first = u32::from(bytes.first().copied().unwrap_or(0));
    let last = u32::from(bytes.last().copied().unwrap_or(0));
    (first ^ last.wrapping_mul(7) ^ (bytes.len() as u32).wrapping_mul(13)) & 63
}

/// Where the string whose content starts at `from` ends, and whether its
/// content is all ASCII: the first quote, backslash or control character
/// (the closing quote, if the string is plain).
///
/// The first 16 bytes are scanned as one block (most strings are keys,
/// shorter than that), the rest 32 at a time; the last few bytes of the
/// text are scanned as a block padded with quotes, so a string left open
/// "ends" past the text.
#[inline(always)]
fn string_end(bytes: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut at = from;
    let mut high_seen = 0;
    let mut wide = false;
    loop {
        let rest = bytes.get(at..)?;
        let (stops, high, width) = match (wide, rest.first_chunk::<32>()) {
            (true, Some(pair)) => {
                let (stops_low, high_low) = scan_block(pair.first_chunk()?);
                let (stops_high, high_high) = scan_block(pair.last_chunk()?);
                (stops_low | stops_high << 16, high_low | high_high << 16, 32)
            }
            _ => {
                let (stops, high) = match rest.first_chunk::<16>() {
                    Some(block) => scan_block(block),
                    None => {
                        let mut padded = [b'"'; 16];
                        padded.get_mut(..rest.len())?.copy_from_slice(rest);
                        scan_block(&padded)
                    }
                };
                (stops, high, 16)
            }
        };
        if stops != 0 {
            let stop = stops.trailing_zeros();
            let before = high & ((1 << stop) - 1);
            return Some((at + stop as usize, (high_seen | before) == 0));
        }
        high_seen |= high;
        at += width;
        wide = true;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use simd_json::Tape;

    use super::*;
    use crate::json::Parser;

    /// The parser's tape of `text`, if it accepts it.
    fn parsed(text: &[u8], max_depth: usize) -> Option<Vec<String>> {
        let mut input = text.to_vec();
        let mut parser = Parser::new(max_depth);
        let mut tape = Tape::null().reset();
        parser.parse(&mut input, &mut tape).ok()?;
        Some(tape.0.iter().map(|node| format!("{node:?}")).collect())
    }

    /// The reader's tape of `text`, read after a node already on the tape
    /// (which it must leave alone, read or not).
    fn plain_at(text: &[u8], max_depth: usize) -> Option<Vec<String>> {
        let mut nodes = vec![Node::String("before")];
        let read = read_plain(text, max_depth, &mut nodes, &mut ReadScratch::default());
        let before = nodes.remove(0);
        assert_eq!(before, Node::String("before"));
        if read {
            Some(nodes.iter().map(|node| format!("{node:?}")).collect())
        } else {
            assert!(nodes.is_empty(), "{text:?}: left {nodes:?}");
            None
        }
    }

    fn plain(text: &str) -> Option<Vec<String>> {
        plain_at(text.as_bytes(), 64)
    }

    /// What must hold for any text: what is read is what the parser reads.
    fn agrees_with_the_parser(text: &[u8], max_depth: usize) -> Result<(), TestCaseError> {
        if let Some(read) = plain_at(text, max_depth) {
            prop_assert_eq!(
                Some(read),
                parsed(text, max_depth),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        Ok(())
    }

    #[test]
    fn plain_text_is_read_as_the_parser_reads_it() {
        for text in [
            r#"{"version":"1.0","id":"m-1","type":"Command","payload":{"command":"demo.echo","args":"xxxx"},"security":{"security_level":"Standard","auth_token":"eyJ.eyJ.sig"},"timestamp":"2026-11-23T12:00:00.123Z"}"#,
            " { \"a\" : [ 1 , -2 , 0 , -0 , true , false , null ] ,\n\t\"b\" : { } , \"c\" : [ ] }\r\n",
            r#""6BFAkqKYCAniTcFvzjn8rj67vkubtMpeNfFrXdWE-_""#,
            r#""""#,
            r#""é ∑ 😀""#,
            // Non-ASCII bytes in a block before the closing quote's block,
            // and in the closing quote's block after a full ASCII one.
            r#"["é-------------------------","-------------------------é"]"#,
            // Keys of one length and the same end bytes (one filter bit).
            r#"{"axb":1,"ayb":2,"azb":3,"a":{"q":0,"q0":0,"0q":0}}"#,
            r#"{"correlation_id":"c-247e6101c27a-1"}"#,
            r#"{"b":"1","a":"2","":""}"#,
            r#"[[[]],[{}],{"a":[{"b":null}]}]"#,
            r#"{"0":0,"1":1,"2":2,"3":3,"4":4,"5":5,"6":6,"7":7,"8":8,"9":9}"#,
            "12345678901234567",
            "-12345678901234567",
            "null",
            "  true  ",
        ] {
            assert!(plain(text).is_some(), "{text}");
            assert_eq!(plain(text), parsed(text.as_bytes(), 64), "{text}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_parser() {
        for text in [
            // Not plain, but valid: the parser reads it.
            r#""a\"b""#,
            r#""a\u0041""#,
            r#"{"a\u0062":1}"#,
            "1.5",
            "1e3",
            "-2E-3",
            "123456789012345678",
            "-123456789012345678",
            // Invalid: the parser words the error.
            "\"tab\there\"",
            r#""open"#,
            r#""a""b""#,
            r#"{"a":"1","a":"2"}"#,
            r#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k3":9}"#,
            r#"[{"x":{"y":1,"y":1}}]"#,
            r#"{"a":"1",}"#,
            r#"[1,]"#,
            r#"[,1]"#,
            r#"{"a":"1"}}"#,
            r#"{"a" "1"}"#,
            r#"{1:2}"#,
            r#"{"a":1 "b":2}"#,
            "[1 2]",
            "[01]",
            "[-]",
            "[-01]",
            "[1.]",
            "[tru]",
            "[nul]",
            "[truex]",
            "[1x]",
            "\u{feff}{}",
            "[\"\u{7f}\"]\u{0}",
            "{} {}",
            "",
            "   ",
            "{",
            "[",
            "]",
        ] {
            assert_eq!(plain(text), None, "{text}");
        }
        // Not UTF-8: a stray continuation byte, a truncated sequence, an
        // encoded surrogate, an overlong form; in strings and out.
        for text in [
            &b"[\"\x80\"]"[..],
            b"[\"\xc3\"]",
            b"\"\xed\xa0\x80\"",
            b"\"\xc0\xaf\"",
            b"\"abcdefghijklmnopqrstuvwxyz\xff\"",
            b"\"\xffabcdefghijklmnopqrstuvwxyz\"",
            b"[1,\xc3\xa9]",
        ] {
            assert_eq!(plain_at(text, 64), None, "{text:?}");
            assert_eq!(parsed(text, 64), None, "{text:?}");
        }
    }

    #[test]
    fn nesting_past_the_limit_is_left_to_the_parser() {
        let nested = |d: usize| "[".repeat(d) + &"]".repeat(d);
        assert!(plain_at(nested(5).as_bytes(), 5).is_some());
        assert_eq!(plain_at(nested(6).as_bytes(), 5), None);
        assert!(parsed(nested(6).as_bytes(), 5).is_none());
        let deep = nested(200);
        assert!(plain_at(deep.as_bytes(), 200).is_some());
        assert_eq!(plain_at(deep.as_bytes(), 200), parsed(deep.as_bytes(), 200));
        let objects = |d: usize| "{\"a\":".repeat(d) + "1" + &"}".repeat(d);
        let five = objects(5);
        assert_eq!(plain_at(five.as_bytes(), 5), parsed(five.as_bytes(), 5));
        assert_eq!(plain_at(objects(6).as_bytes(), 5), None);
    }

    #[test]
    fn the_json_test_suite_is_read_as_the_parser_reads_it() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/JSONTestSuite/test_parsing"
        );
        let mut read = 0;
        for entry in std::fs::read_dir(dir).expect("JSONTestSuite is in tests/data") {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).expect("a readable file");
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            let plain = plain_at(&bytes, 64);
            if name.starts_with("n_") {
                assert_eq!(plain, None, "{name}");
            }
            agrees_with_the_parser(&bytes, 64).unwrap_or_else(|e| panic!("{name}: {e}"));
            read += usize::from(plain.is_some());
        }
        // Half of the 95 `y_` files: the rest have escapes, fractions or
        // exponents. Fewer would mean the reader gives up on plain text.
        assert_eq!(read, 48);
    }

    /// JSON text of plain values, with or without whitespace around tokens.
    fn plain_json() -> impl Strategy<Value = String> {
        // Whitespace between tokens; inside strings too, where a space is
        // still plain.
        let space = prop_oneof!["", " ", "  "];
        let leaf = prop_oneof![
            Just("null".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            (-99_999_999_999_999_999i64..=99_999_999_999_999_999).prop_map(|n| n.to_string()),
            "[ -!#-\\[\\]-~é😀]{0,12}".prop_map(|s| format!("\"{s}\"")),
        ];
        let value = leaf.prop_recursive(5, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| { format!("[{}]", items.join(",")) }),
                proptest::collection::vec(("[a-f]{0,2}", inner), 0..10).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        });
        (value, space).prop_map(|(text, space)| {
            let spaced = text
                .replace(',', &format!("{space},{space}"))
                .replace(':', &format!("{space}:"));
            format!("\n\t{spaced}\r\n")
        })
    }

    proptest! {
        #[test]
        fn plain_values_are_read_as_the_parser_reads_them(text in plain_json()) {
            match plain(&text) {
                Some(read) => prop_assert_eq!(Some(read), parsed(text.as_bytes(), 64)),
                // Left to the parser only when it refuses too: a key
                // repeated within an object.
                None => prop_assert!(parsed(text.as_bytes(), 64).is_none(), "{}", text),
            }
        }

        #[test]
        fn whatever_is_read_is_what_the_parser_reads(
            text in r#"[{}\[\]":,a-c0-9\-.eE\\ \ntrufalsn]{0,24}"#
        ) {
            agrees_with_the_parser(text.as_bytes(), 64)?;
        }

        #[test]
        fn mutated_plain_values_are_read_only_when_the_parser_reads_them_the_same(
            text in plain_json(),
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![Just(b'"'), Just(b'\\'), Just(b','), Just(b'}'), Just(b']'), Just(b'.'), Just(b'0'), Just(b' '), Just(0u8), any::<u8>()],
            insert in any::<bool>(),
        ) {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                if insert {
                    bytes.insert(at, byte);
                } else if let Some(slot) = bytes.get_mut(at) {
                    *slot = byte;
                }
            }
            agrees_with_the_parser(&bytes, 64)?;
        }
    }
}
