//! [`RawJson`]: an owned, validated JSON value kept as compact text.

use std::fmt;

use simd_json::Tape;

use super::{JsonRef, Parser};
use crate::error::Error;

/// The deepest a value may nest on its own: it sits one level below the
/// envelope object, whose nesting limit is 64.
pub const MAX_VALUE_DEPTH: usize = 63;

/// An owned JSON value, held as compact JSON text.
///
/// This is how the owned [`Message`](crate::Message) holds `payload` and
/// `metadata`, and what the binary codec carries for them (docs/protocol.md
/// section 8): encoding copies the text, nothing is re-serialized. The text
/// is always one valid JSON value, without repeated keys, at most
/// [`MAX_VALUE_DEPTH`] levels deep, written by this crate's compact writer:
/// two `RawJson` made from the same value are byte-identical.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Box<str>);

impl RawJson {
    /// Parses and validates `text` (any JSON value), keeping its compact form.
    ///
    /// Refuses with `invalid_format` what the protocol refuses in a payload:
    /// invalid JSON, a repeated key, nesting deeper than [`MAX_VALUE_DEPTH`].
    pub fn parse(text: &str) -> Result<RawJson, Error> {
        let mut input = text.as_bytes().to_vec();
        let mut parser = Parser::new(MAX_VALUE_DEPTH);
        let mut tape = Tape::null().reset();
        parser.parse(&mut input, &mut tape)?;
        Ok(JsonRef::from_nodes(&tape.0).map_or_else(RawJson::null, RawJson::from_json))
    }

    /// The compact text of a borrowed value.
    pub fn from_json(value: JsonRef<'_>) -> RawJson {
        let mut out = Vec::new();
        value.write_to(&mut out);
        RawJson::from_compact(out)
    }

    /// A JSON string holding `text`, escaped as JSON requires.
    ///
    /// ```
    /// use mcp_engine::RawJson;
    /// assert_eq!(RawJson::string("say \"hi\"\n").as_str(), r#""say \"hi\"\n""#);
    /// ```
    pub fn string(text: &str) -> RawJson {
        let mut out = Vec::with_capacity(text.len() + 2);
        super::write::write_str(&mut out, text);
        RawJson::from_compact(out)
    }

    /// Text this crate wrote itself with its compact writer (valid by
    /// construction), taken without re-parsing.
    pub(crate) fn from_compact(text: Vec<u8>) -> RawJson {
        // Valid, so this takes the buffer as it is; lossy only if a bug
        // ever wrote invalid UTF-8.
        RawJson(
            String::from_utf8(text)
                .unwrap_or_else(|bad| String::from_utf8_lossy(bad.as_bytes()).into_owned())
                .into(),
        )
    }

    /// `null`.
    pub fn null() -> RawJson {
        RawJson("null".into())
    }

    /// The compact JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The compact JSON text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether the value is an object.
    pub fn is_object(&self) -> bool {
        self.0.starts_with('{')
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        &*self.0 == "null"
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RawJson {
    type Err = Error;

    fn from_str(text: &str) -> Result<RawJson, Error> {
        RawJson::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn keeps_a_compact_canonical_text() {
        let a = RawJson::parse(" { \"x\" : [1, 2.50, \"\\u0041\"] } ").unwrap();
        assert_eq!(a.as_str(), r#"{"x":[1,2.5,"A"]}"#);
        assert_eq!(a, RawJson::parse(a.as_str()).unwrap());
        assert!(a.is_object());
        assert!(RawJson::parse("null").unwrap().is_null());
    }

    #[test]
    fn refuses_what_a_payload_may_not_be() {
        for bad in ["", "{", r#"{"a":1,"a":2}"#, "[1,]", "\"\\ud800\""] {
            assert_eq!(
                RawJson::parse(bad).unwrap_err().code(),
                Code::InvalidFormat,
                "{bad:?}"
            );
        }
        let deep = |d: usize| "[".repeat(d) + &"]".repeat(d);
        assert!(RawJson::parse(&deep(MAX_VALUE_DEPTH)).is_ok());
        assert!(RawJson::parse(&deep(MAX_VALUE_DEPTH + 1)).is_err());
    }
}
