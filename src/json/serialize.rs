//! [`RawJson::from_serialize`]: a value written straight into the compact
//! text a [`RawJson`] holds, with no JSON text in between to parse.
//!
//! serde_json walks the value; [`CompactFormatter`] writes each piece as
//! this crate's own writer would (numbers in the shortest round-trip form
//! RFC 8785 uses, the same string escapes), and refuses what [`RawJson`]
//! may not hold: nesting deeper than [`MAX_VALUE_DEPTH`] and a key repeated
//! in one object.

use std::io;

use serde::Serialize;

use super::raw::{MAX_VALUE_DEPTH, RawJson};
use super::repeated_keys::PAIRWISE_LIMIT;
use crate::error::{Code, Error};

impl RawJson {
    /// The compact JSON text of `value` (a number, a string, a map, a
    /// struct: anything `Serialize`), written directly: equal to
    /// [`RawJson::parse`] of the value's JSON text, without that text.
    ///
    /// Refuses with `invalid_format` a value nested deeper than
    /// [`MAX_VALUE_DEPTH`], a key repeated in one object, and what
    /// serde_json cannot write (a map whose keys are not strings or
    /// numbers). A float that is not finite is written `null`, as
    /// serde_json does.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use mcp_engine::RawJson;
    ///
    /// let sizes = BTreeMap::from([("small", 1.5), ("large", 1e21)]);
    /// let json = RawJson::from_serialize(&sizes)?;
    /// assert_eq!(json.as_str(), r#"{"large":1e+21,"small":1.5}"#);
    /// assert_eq!(json, RawJson::parse(r#"{"large": 1e21, "small": 1.50}"#)?);
    /// # Ok::<(), mcp_engine::Error>(())
    /// ```
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<RawJson, Error> {
        let mut out = Vec::with_capacity(64);
        let mut serializer =
            serde_json::Serializer::with_formatter(&mut out, CompactFormatter::default());
        value.serialize(&mut serializer).map_err(|error| {
            Error::new(
                Code::InvalidFormat,
                format!("the value cannot be written as JSON: {error}"),
            )
        })?;
        Ok(RawJson::from_compact(out))
    }
}

/// serde_json's compact output, with this crate's number forms, a depth
/// limit and repeated keys refused.
#[derive(Debug, Default)]
struct CompactFormatter {
    /// The keys of each object open now, innermost last, each as the
    /// pieces it was written in (equal keys are written alike).
    objects: Vec<Vec<Vec<u8>>>,
    /// Containers open now.
    depth: usize,
    /// The key being written, while one is.
    key: Option<Vec<u8>>,
}

impl CompactFormatter {
    fn open(&mut self) -> io::Result<()> {
        self.depth += 1;
        if self.depth > MAX_VALUE_DEPTH {
            return Err(io::Error::other(format!(
                "nesting deeper than {MAX_VALUE_DEPTH} levels"
            )));
        }
        Ok(())
    }

    /// Notes `text` as part of the key being written, if one is.
    fn key_piece(&mut self, text: &[u8]) {
        if let Some(key) = &mut self.key {
            key.extend_from_slice(text);
        }
    }

    fn write_piece<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        text: &[u8],
    ) -> io::Result<()> {
        self.key_piece(text);
        writer.write_all(text)
    }
}

impl serde_json::ser::Formatter for CompactFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        // serde_json writes `null` itself for what is not finite.
        let mut buffer = ryu_js::Buffer::new();
        let text = buffer.format_finite(value);
        self.write_piece(writer, text.as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        // Its own shortest form ("0.1", not the f64 0.10000000149011612):
        // at most nine digits, which a double reads back and writes alike.
        let mut buffer = ryu_js::Buffer::new();
        let text = buffer.format_finite(value);
        self.write_piece(writer, text.as_bytes())
    }

    fn write_i128<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i128) -> io::Result<()> {
        // Beyond 64 bits the parser reads a double (RFC 8785's numbers);
        // written so, the text is what parsing the value's text gives.
        match i64::try_from(value) {
            Ok(small) => self.write_i64(writer, small),
            Err(_) => self.write_f64(writer, value as f64),
        }
    }

    fn write_u128<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u128) -> io::Result<()> {
        match u64::try_from(value) {
            Ok(small) => self.write_u64(writer, small),
            Err(_) => self.write_f64(writer, value as f64),
        }
    }

    // Each integer width written here, not by the default: a map's integer
    // key is written through them, and the key must be noted.
    fn write_i8<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i8) -> io::Result<()> {
        self.write_i64(writer, i64::from(value))
    }

    fn write_i16<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i16) -> io::Result<()> {
        self.write_i64(writer, i64::from(value))
    }

    fn write_i32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i32) -> io::Result<()> {
        self.write_i64(writer, i64::from(value))
    }

    fn write_u8<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u8) -> io::Result<()> {
        self.write_u64(writer, u64::from(value))
    }

    fn write_u16<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u16) -> io::Result<()> {
        self.write_u64(writer, u64::from(value))
    }

    fn write_u32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u32) -> io::Result<()> {
        self.write_u64(writer, u64::from(value))
    }

    fn write_i64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: i64) -> io::Result<()> {
        let mut buffer = itoa::Buffer::new();
        let text = buffer.format(value);
        self.write_piece(writer, text.as_bytes())
    }

    fn write_u64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: u64) -> io::Result<()> {
        let mut buffer = itoa::Buffer::new();
        let text = buffer.format(value);
        self.write_piece(writer, text.as_bytes())
    }

    fn write_bool<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: bool) -> io::Result<()> {
        self.write_piece(writer, if value { b"true" } else { b"false" })
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.write_piece(writer, fragment.as_bytes())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        let short = |c: u8| [b'\\', c];
        let text: &[u8] = match escape {
            CharEscape::Quote => &short(b'"'),
            CharEscape::ReverseSolidus => &short(b'\\'),
            CharEscape::Solidus => &short(b'/'),
            CharEscape::Backspace => &short(b'b'),
            CharEscape::FormFeed => &short(b'f'),
            CharEscape::LineFeed => &short(b'n'),
            CharEscape::CarriageReturn => &short(b'r'),
            CharEscape::Tab => &short(b't'),
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let digit =
                    |nibble: u8| HEX.get(usize::from(nibble & 0xf)).copied().unwrap_or(b'0');
                &[b'\\', b'u', b'0', b'0', digit(byte >> 4), digit(byte)]
            }
        };
        self.write_piece(writer, text)
    }

    // Text serde_json would copy unchecked (its `raw_value` and
    // `arbitrary_precision` features, should any crate turn them on).
    fn write_raw_fragment<W: ?Sized + io::Write>(
        &mut self,
        _writer: &mut W,
        _fragment: &str,
    ) -> io::Result<()> {
        Err(io::Error::other(
            "a raw JSON fragment is not checked: use a RawJson",
        ))
    }

    fn write_number_str<W: ?Sized + io::Write>(
        &mut self,
        _writer: &mut W,
        _number: &str,
    ) -> io::Result<()> {
        Err(io::Error::other(
            "a number as text is not checked: use an f64",
        ))
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open()?;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        writer.write_all(b"]")
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open()?;
        self.objects.push(Vec::new());
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        if let Some(mut keys) = self.objects.pop()
            && keys.len() > PAIRWISE_LIMIT
        {
            // A large object's keys, sorted: n log n, as the parser's check.
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|pair| pair.first() == pair.get(1)) {
                return Err(repeated(pair.first().map_or(&[][..], Vec::as_slice)));
            }
        }
        writer.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.key = Some(Vec::new());
        if first {
            Ok(())
        } else {
            writer.write_all(b",")
        }
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        let key = self.key.take().unwrap_or_default();
        let Some(keys) = self.objects.last_mut() else {
            return Ok(());
        };
        // A small object's keys pairwise as they come; a larger one's when it
        // ends (see `end_object`).
        if keys.len() < PAIRWISE_LIMIT && keys.contains(&key) {
            return Err(repeated(&key));
        }
        keys.push(key);
        Ok(())
    }
}

fn repeated(key: &[u8]) -> io::Error {
    io::Error::other(format!(
        "the key {:?} is repeated in one object",
        String::from_utf8_lossy(key)
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Serialize;

    use crate::error::Code;
    use crate::json::{MAX_VALUE_DEPTH, RawJson};

    /// What parsing the value's text (by serde_json) gives.
    fn parsed<T: Serialize + ?Sized>(value: &T) -> RawJson {
        RawJson::parse(&serde_json::to_string(value).unwrap()).unwrap()
    }

    #[test]
    fn a_value_is_written_as_parsing_its_text_would_give() {
        #[derive(Serialize)]
        struct Reading<'a> {
            name: &'a str,
            celsius: f64,
            tags: Vec<&'a str>,
            counts: BTreeMap<u32, i64>,
            missing: Option<bool>,
        }
        let reading = Reading {
            name: "say \"hi\"\n\u{1}\u{7f}é \u{2028} /",
            celsius: -0.5,
            tags: vec!["a", ""],
            counts: BTreeMap::from([(1, -9_007_199_254_740_993), (20, i64::MAX)]),
            missing: None,
        };
        let values: [&dyn erased::Check; 14] = [
            &reading,
            &1.0f64,
            &1e21f64,
            &1e-7f64,
            &0.1f32,
            &-0.0f64,
            &u64::MAX,
            &i64::MIN,
            &u128::MAX,
            &(i128::from(i64::MIN) - 1),
            &"",
            &(),
            &vec![Some(1u8), None],
            &HashMap::from([("only", [1.5f64, 2.0])]),
        ];
        for value in values {
            value.check();
        }
    }

    /// Each value of a mixed list checked against its parsed text.
    mod erased {
        use super::{RawJson, Serialize, parsed};

        pub(super) trait Check {
            fn check(&self);
        }

        impl<T: Serialize> Check for T {
            fn check(&self) {
                let written = RawJson::from_serialize(self).unwrap();
                assert_eq!(written, parsed(self), "{}", written.as_str());
            }
        }
    }

    #[test]
    fn a_float_that_is_not_finite_is_null() {
        assert_eq!(
            RawJson::from_serialize(&[f64::NAN, f64::INFINITY])
                .unwrap()
                .as_str(),
            "[null,null]"
        );
    }

    #[test]
    fn nesting_is_limited_as_parsing_limits_it() {
        fn nested(depth: usize) -> serde_json::Value {
            (0..depth).fold(serde_json::Value::Null, |inner, _| {
                serde_json::Value::Array(vec![inner])
            })
        }
        let deepest = nested(MAX_VALUE_DEPTH);
        assert_eq!(RawJson::from_serialize(&deepest).unwrap(), parsed(&deepest));
        let too_deep = nested(MAX_VALUE_DEPTH + 1);
        let text = serde_json::to_string(&too_deep).unwrap();
        assert_eq!(
            RawJson::parse(&text).unwrap_err().code(),
            Code::InvalidFormat
        );
        let refused = RawJson::from_serialize(&too_deep).unwrap_err();
        assert_eq!(refused.code(), Code::InvalidFormat);
        assert!(refused.message().contains("nesting"), "{refused}");
    }

    #[test]
    fn a_key_repeated_in_one_object_is_refused_as_parsing_refuses_it() {
        /// Writes the same key twice, as no derived type can.
        struct Twice(&'static str);
        impl Serialize for Twice {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry(self.0, &1)?;
                map.serialize_entry(self.0, &2)?;
                map.end()
            }
        }
        for key in ["k", "a\"b", "\u{1}"] {
            let refused = RawJson::from_serialize(&Twice(key)).unwrap_err();
            assert_eq!(refused.code(), Code::InvalidFormat);
            assert!(refused.message().contains("repeated"), "{refused}");
            let text = serde_json::to_string(&Twice(key)).unwrap();
            assert_eq!(
                RawJson::parse(&text).unwrap_err().code(),
                Code::InvalidFormat
            );
        }
        // In a large object too, wherever the repeat falls.
        struct Many(usize);
        impl Serialize for Many {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(self.0 + 1))?;
                for n in 0..self.0 {
                    map.serialize_entry(&format!("k{n}"), &n)?;
                }
                map.serialize_entry("k3", &0)?;
                map.end()
            }
        }
        for members in [5, 9, 1_000] {
            let refused = RawJson::from_serialize(&Many(members)).unwrap_err();
            assert!(
                refused.message().contains("\"k3\" is repeated"),
                "{refused}"
            );
        }
        let large: BTreeMap<String, u32> = (0..1_000).map(|n| (format!("k{n}"), n)).collect();
        assert_eq!(RawJson::from_serialize(&large).unwrap(), parsed(&large));
        // The same key in two objects, or at two depths, is not repeated;
        // integer keys are compared as the text they are written as.
        let fine = serde_json::json!({"k": {"k": 1}, "j": [{"k": 2}, {"k": 3}]});
        assert_eq!(RawJson::from_serialize(&fine).unwrap(), parsed(&fine));
        let numbered = BTreeMap::from([(1, "a"), (10, "b")]);
        assert_eq!(
            RawJson::from_serialize(&numbered).unwrap(),
            parsed(&numbered)
        );
    }

    #[test]
    fn a_map_with_keys_json_cannot_hold_is_refused() {
        let keyed_by_pairs = BTreeMap::from([((1, 2), "x")]);
        let refused = RawJson::from_serialize(&keyed_by_pairs).unwrap_err();
        assert_eq!(refused.code(), Code::InvalidFormat);
    }
}
