//! [`Parser`]: strict JSON parsing on simd-json, in place, with reused buffers.
//!
//! simd-json checks the grammar, UTF-8 and the nesting limit, and writes
//! unescaped strings back into the input buffer, so the tape borrows from the
//! input and nothing is copied. What simd-json does not check, this module
//! does: a key repeated within one object (simd-json keeps both copies or
//! only the last, depending on the object's size; the protocol refuses both).

use simd_json::{Buffers, ErrorType, Node, Tape};

use super::plain::{PlainCursor, ReadScratch, read_plain};
use super::repeated_keys::find_repeated_key;
use crate::error::{Code, Error};

/// A reusable strict JSON parser.
///
/// Holds simd-json's working buffers and a scratch list for key checks, so
/// that parsing a stream of messages allocates nothing once warm.
pub(crate) struct Parser {
    buffers: Buffers,
    keys: Vec<usize>,
    plain: ReadScratch,
    max_depth: usize,
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser")
            .field("max_depth", &self.max_depth)
            .finish_non_exhaustive()
    }
}

impl Parser {
    /// A parser that refuses nesting deeper than `max_depth` containers (the
    /// outermost container is level 1).
    pub(crate) fn new(max_depth: usize) -> Parser {
        Parser {
            buffers: Buffers::with_max_depth(1024, max_depth),
            keys: Vec::new(),
            plain: ReadScratch::default(),
            max_depth,
        }
    }

    /// Appends to `nodes` the tape of `text` and returns true, if `text` is
    /// plain JSON that [`parse`](Self::parse) would accept (see
    /// [`read_plain`](super::plain::read_plain)): read where it stands, with
    /// nothing copied. Otherwise leaves `nodes` as it was and returns false.
    pub(crate) fn read_plain<'t>(&mut self, text: &'t [u8], nodes: &mut Vec<Node<'t>>) -> bool {
        read_plain(text, self.max_depth, nodes, &mut self.plain)
    }

    /// A cursor over plain `text`, appending to `nodes` (see
    /// [`PlainCursor`]); the nesting limit is the caller's to apply, with
    /// [`max_depth`](Self::max_depth).
    pub(crate) fn cursor<'t, 'n, 's>(
        &'s mut self,
        text: &'t [u8],
        nodes: &'n mut Vec<Node<'t>>,
    ) -> PlainCursor<'t, 'n, 's> {
        PlainCursor::new(text, nodes, &mut self.plain)
    }

    /// The deepest nesting this parser accepts.
    pub(crate) fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Parses `text` into `tape`, as [`parse`](Self::parse) does, without
    /// changing it: plain text is read where it stands; anything else is
    /// copied into `spare` and parsed there.
    pub(crate) fn parse_text<'a>(
        &mut self,
        text: &'a [u8],
        spare: &'a mut Vec<u8>,
        tape: &mut Tape<'a>,
    ) -> Result<(), Error> {
        tape.0.clear();
        if self.read_plain(text, &mut tape.0) {
            return Ok(());
        }
        spare.clear();
        spare.extend_from_slice(text);
        self.parse(spare, tape)
    }

    /// Parses `input` in place into `tape`.
    ///
    /// Refuses with `invalid_format`: text that is not one JSON value in
    /// UTF-8, nesting deeper than the limit, and a key repeated within an
    /// object.
    pub(crate) fn parse<'a>(
        &mut self,
        input: &'a mut [u8],
        tape: &mut Tape<'a>,
    ) -> Result<(), Error> {
        if let Err(e) = simd_json::fill_tape(input, &mut self.buffers, tape) {
            return Err(Error::new(
                Code::InvalidFormat,
                match e.error() {
                    ErrorType::DepthLimitExceeded => {
                        format!("nesting deeper than {} levels", self.max_depth)
                    }
                    kind => format!("not valid JSON: {} (at byte {})", describe(kind), e.index()),
                },
            ));
        }
        if let Some(key) = find_repeated_key(&tape.0, &mut self.keys) {
            return Err(Error::new(
                Code::InvalidFormat,
                format!("duplicate key {}", quoted_prefix(key)),
            ));
        }
        Ok(())
    }
}

/// simd-json's error kinds in an operator's words.
fn describe(kind: &ErrorType) -> &'static str {
    match kind {
        ErrorType::InvalidUtf8 => "invalid UTF-8",
        ErrorType::Eof => "unexpected end of input",
        ErrorType::TrailingData => "bytes after the value",
        ErrorType::InvalidEscape
        | ErrorType::InvalidUnicodeEscape
        | ErrorType::InvalidUnicodeCodepoint => "invalid escape in a string",
        ErrorType::UnterminatedString => "unterminated string",
        ErrorType::InvalidNumber | ErrorType::InvalidExponent | ErrorType::Overflow => {
            "invalid or out-of-range number"
        }
        ErrorType::KeyMustBeAString | ErrorType::ExpectedObjectKey => "object key must be a string",
        _ => "syntax error",
    }
}

/// `"key"` for a message, cut to 40 characters so that a hostile key cannot
/// inflate the reply.
pub(crate) fn quoted_prefix(key: &str) -> String {
    let mut end = key.len().min(40);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    let cut = key.get(..end).unwrap_or_default();
    let mut out = Vec::with_capacity(cut.len() + 5);
    super::write::write_str(&mut out, cut);
    if end < key.len() {
        out.pop();
        out.extend_from_slice("…\"".as_bytes());
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<usize, Error> {
        let mut input = text.as_bytes().to_vec();
        let mut parser = Parser::new(64);
        let mut tape = Tape::null().reset();
        parser.parse(&mut input, &mut tape).map(|()| tape.0.len())
    }

    #[test]
    fn accepts_distinct_keys_at_every_level() {
        assert!(parse(r#"{"a":1,"b":{"a":1,"b":[{"a":1},{"a":2}]},"c":{}}"#).is_ok());
    }

    #[test]
    fn refuses_a_repeated_key_in_small_and_large_objects_at_any_depth() {
        for text in [
            r#"{"a":1,"a":2}"#.to_string(),
            r#"{"x":{"sub":"user","sub":"admin"}}"#.to_string(),
            r#"[1,{"k":[],"j":{},"k":null}]"#.to_string(),
            {
                // 33 keys: simd-json's value API would keep only the last copy.
                let mut members: Vec<String> = (0..32).map(|i| format!("\"k{i}\":{i}")).collect();
                members.push("\"k7\":0".into());
                format!("{{\"outer\":{{{}}}}}", members.join(","))
            },
        ] {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.code(), Code::InvalidFormat, "{text}");
            assert!(e.message().starts_with("duplicate key"), "{}", e.message());
        }
    }

    #[test]
    fn keys_that_differ_only_by_escaping_are_the_same_key() {
        let e = parse(r#"{"ab":1,"a\u0062":2}"#).unwrap_err();
        assert_eq!(e.message(), "duplicate key \"ab\"");
    }

    #[test]
    fn nesting_is_limited_to_the_configured_depth() {
        let nested = |d: usize| "[".repeat(d) + &"]".repeat(d);
        assert!(parse(&nested(64)).is_ok());
        let e = parse(&nested(65)).unwrap_err();
        assert_eq!(e.code(), Code::InvalidFormat);
        assert_eq!(e.message(), "nesting deeper than 64 levels");
        let objects = "{\"a\":".repeat(65) + "1" + &"}".repeat(65);
        assert_eq!(parse(&objects).unwrap_err().code(), Code::InvalidFormat);
    }

    #[test]
    fn long_keys_are_cut_in_messages() {
        let key = "é".repeat(50);
        let quoted = quoted_prefix(&key);
        assert!(quoted.chars().count() < 30, "{quoted}");
        assert!(quoted.ends_with("…\""));
    }
}
