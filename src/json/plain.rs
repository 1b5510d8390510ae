//! [`read_plain`]: the tape of JSON text simple enough to need no parser.
//!
//! The engine's own replies carry small texts of a fixed shape: an
//! encrypted payload is one base64url string, the metadata is
//! `{"correlation_id":"..."}`. Signing a reply canonicalizes them, which
//! took a parse of each (4% of a Critical worker's time in `perf`, for two
//! texts of a few dozen bytes). Text of those shapes is read here instead,
//! into exactly the nodes the parser would make; anything else is left to
//! the parser.

use simd_json::Node;

use super::write::next_escape;

/// Members an object may have to be read here (pairs are compared for
/// repeated keys, as the parser does).
const MAX_MEMBERS: usize = 8;

/// Appends to `nodes` the tape of `text` and returns true, if `text` is a
/// string with no escape, or an object of at most [`MAX_MEMBERS`] members
/// whose keys and values are all such strings, with no repeated key and no
/// whitespace. Otherwise leaves `nodes` as it was and returns false: the
/// parser must judge the text.
pub(crate) fn read_plain<'t>(text: &'t str, nodes: &mut Vec<Node<'t>>) -> bool {
    let start = nodes.len();
    let read = match text.as_bytes().first() {
        Some(b'"') => plain_string(text).is_some_and(|(s, rest)| {
            nodes.push(Node::String(s));
            rest.is_empty()
        }),
        Some(b'{') => read_object(text, nodes),
        _ => false,
    };
    if !read {
        nodes.truncate(start);
    }
    read
}

/// `{"k":"v",...}` of plain strings, members pairwise distinct.
fn read_object<'t>(text: &'t str, nodes: &mut Vec<Node<'t>>) -> bool {
    let head = nodes.len();
    nodes.push(Node::Object { len: 0, count: 0 });
    let Some(mut rest) = text.strip_prefix('{') else {
        return false;
    };
    let mut members = 0;
    if let Some(after) = rest.strip_prefix('}') {
        rest = after;
    } else {
        loop {
            let Some((key, after)) = plain_string(rest) else {
                return false;
            };
            let Some(after) = after.strip_prefix(':') else {
                return false;
            };
            let Some((value, after)) = plain_string(after) else {
                return false;
            };
            let repeated = nodes
                .get(head + 1..)
                .unwrap_or_default()
                .iter()
                .step_by(2)
                .any(|node| matches!(node, Node::String(k) if *k == key));
            if repeated || members == MAX_MEMBERS {
                return false;
            }
            nodes.push(Node::String(key));
            nodes.push(Node::String(value));
            members += 1;
            if let Some(after) = after.strip_prefix(',') {
                rest = after;
            } else if let Some(after) = after.strip_prefix('}') {
                rest = after;
                break;
            } else {
                return false;
            }
        }
    }
    if let Some(object) = nodes.get_mut(head) {
        *object = Node::Object {
            len: members,
            count: 2 * members,
        };
    }
    rest.is_empty()
}

/// The string literal opening `text`, unquoted, and the text after it, if
/// the literal has no escape (so no `\`) and no control character (which
/// valid JSON would have escaped).
fn plain_string(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('"')?;
    // The first byte JSON escapes: the closing quote, if the string is plain.
    let end = next_escape(body.as_bytes(), 0)?;
    if body.as_bytes().get(end) != Some(&b'"') {
        return None;
    }
    Some((body.get(..end)?, body.get(end + 1..)?))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use simd_json::Tape;

    use super::*;
    use crate::json::Parser;

    /// The parser's tape of `text`, if it accepts it.
    fn parsed(text: &str) -> Option<Vec<String>> {
        let mut input = text.as_bytes().to_vec();
        let mut parser = Parser::new(64);
        let mut tape = Tape::null().reset();
        parser.parse(&mut input, &mut tape).ok()?;
        Some(tape.0.iter().map(|node| format!("{node:?}")).collect())
    }

    fn plain(text: &str) -> Option<Vec<String>> {
        let mut nodes = vec![Node::String("before")];
        let read = read_plain(text, &mut nodes);
        let before = nodes.remove(0);
        assert_eq!(before, Node::String("before"));
        if read {
            Some(nodes.iter().map(|node| format!("{node:?}")).collect())
        } else {
            assert!(nodes.is_empty(), "{text}: left {nodes:?}");
            None
        }
    }

    #[test]
    fn the_shapes_of_a_reply_are_read_as_the_parser_reads_them() {
        for text in [
            r#""6BFAkqKYCAniTcFvzjn8rj67vkubtMpeNfFrXdWE-_""#,
            r#""""#,
            r#""é ∑ 😀""#,
            r#"{"correlation_id":"c-247e6101c27a-1"}"#,
            r#"{}"#,
            r#"{"b":"1","a":"2","":""}"#,
        ] {
            assert!(plain(text).is_some(), "{text}");
            assert_eq!(plain(text), parsed(text), "{text}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_parser() {
        for text in [
            r#""a\"b""#,
            r#""a\u0041""#,
            "\"tab\there\"",
            r#""open"#,
            r#""a""b""#,
            r#""a" "#,
            r#"{"a":1}"#,
            r#"{"a":"1","a":"2"}"#,
            r#"{"a":"1",}"#,
            r#"{"a" :"1"}"#,
            r#"{"a":"1"}}"#,
            r#"{"a":{"b":"c"}}"#,
            r#"{"0":"","1":"","2":"","3":"","4":"","5":"","6":"","7":"","8":""}"#,
            "null",
            "[]",
            "",
            "{",
        ] {
            assert_eq!(plain(text), None, "{text}");
        }
    }

    proptest! {
        #[test]
        fn whatever_is_read_is_what_the_parser_reads(text in r#"[{}":,a-c\\ ]{0,14}"#) {
            if let Some(read) = plain(&text) {
                prop_assert_eq!(Some(read), parsed(&text));
            }
        }

        #[test]
        fn objects_of_plain_strings_are_read_as_the_parser_reads_them(
            members in proptest::collection::vec(("[a-e]{0,3}", "[ -!#-\\[\\]-~é]{0,6}"), 0..10)
        ) {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
            let text = format!("{{{}}}", body.join(","));
            match plain(&text) {
                Some(read) => prop_assert_eq!(Some(read), parsed(&text)),
                // Refused: a key repeated (the parser refuses it too) or
                // more members than are read here.
                None => prop_assert!(parsed(&text).is_none() || members.len() > MAX_MEMBERS),
            }
        }
    }
}
