//! [`JsonRef`]: a borrowed JSON value over a simd-json tape.
//!
//! A tape is simd-json's flat parse result: one node per value, containers
//! carrying how many nodes they span. `JsonRef` reads it in place: strings are
//! borrowed from the input buffer (unescaped there by the parser), nothing is
//! copied or allocated. Every access is bounds-checked, so even a malformed
//! tape could only yield `None`, never a panic.

use std::fmt;

use simd_json::{Node, StaticNode};

/// The JSON type of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonKind {
    /// `null`
    Null,
    /// `true` or `false`
    Bool,
    /// Any number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonKind {
    /// The lowercase name, e.g. `object`, for messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "boolean",
            JsonKind::Number => "number",
            JsonKind::String => "string",
            JsonKind::Array => "array",
            JsonKind::Object => "object",
        }
    }
}

/// A number as the parser read it: integers stay exact, everything else is a
/// double.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JsonNumber {
    /// A negative integer that fits `i64` (or zero).
    Int(i64),
    /// A non-negative integer that fits `u64`.
    Uint(u64),
    /// A number with a fraction or exponent.
    Float(f64),
}

impl JsonNumber {
    /// The value as an IEEE 754 double (how RFC 8785 sees every number).
    pub fn as_f64(self) -> f64 {
        match self {
            JsonNumber::Int(v) => v as f64,
            JsonNumber::Uint(v) => v as f64,
            JsonNumber::Float(v) => v,
        }
    }
}

/// A borrowed JSON value: a view into a parsed tape.
///
/// Cheap to copy; valid as long as the tape and the input it was parsed from.
#[derive(Clone, Copy)]
pub struct JsonRef<'a> {
    /// The value's nodes: the first is the value itself, the slice spans
    /// exactly the value (and its children, for containers).
    nodes: &'a [Node<'a>],
}

/// How many tape nodes the value starting with `node` spans.
pub(crate) fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count.saturating_add(1),
        Node::String(_) | Node::Static(_) => 1,
    }
}

/// The single node of a `null` value.
const NULL_NODES: [Node<'static>; 1] = [Node::Static(StaticNode::Null)];

impl JsonRef<'static> {
    /// A `null` value.
    pub const NULL: JsonRef<'static> = JsonRef { nodes: &NULL_NODES };
}

impl<'a> JsonRef<'a> {
    /// The value whose nodes start at `nodes[0]`, or `None` for an empty
    /// slice. Trailing nodes past the value's span are cut off.
    pub(crate) fn from_nodes(nodes: &'a [Node<'a>]) -> Option<JsonRef<'a>> {
        let first = nodes.first()?;
        let nodes = nodes.get(..span(first))?;
        Some(JsonRef { nodes })
    }

    /// The tape nodes of this value (for the crate's writers).
    pub(crate) fn nodes(self) -> &'a [Node<'a>] {
        self.nodes
    }

    fn head(self) -> Option<&'a Node<'a>> {
        self.nodes.first()
    }

    /// The value's JSON type.
    pub fn kind(self) -> JsonKind {
        match self.head() {
            Some(Node::String(_)) => JsonKind::String,
            Some(Node::Object { .. }) => JsonKind::Object,
            Some(Node::Array { .. }) => JsonKind::Array,
            Some(Node::Static(StaticNode::Bool(_))) => JsonKind::Bool,
            Some(Node::Static(StaticNode::Null)) | None => JsonKind::Null,
            Some(Node::Static(_)) => JsonKind::Number,
        }
    }

    /// Whether the value is `null`.
    pub fn is_null(self) -> bool {
        self.kind() == JsonKind::Null
    }

    /// The boolean, if the value is one.
    pub fn as_bool(self) -> Option<bool> {
        match self.head() {
            Some(Node::Static(StaticNode::Bool(b))) => Some(*b),
            _ => None,
        }
    }

    /// The string, if the value is one (unescaped, borrowed from the input).
    pub fn as_str(self) -> Option<&'a str> {
        match self.head() {
            Some(Node::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The number, if the value is one.
    pub fn as_number(self) -> Option<JsonNumber> {
        match self.head() {
            Some(Node::Static(StaticNode::I64(v))) => Some(JsonNumber::Int(*v)),
            Some(Node::Static(StaticNode::U64(v))) => Some(JsonNumber::Uint(*v)),
            Some(Node::Static(StaticNode::F64(v))) => Some(JsonNumber::Float(*v)),
            _ => None,
        }
    }

    /// The number as `i64`, if it is an integer in range.
    pub fn as_i64(self) -> Option<i64> {
        match self.as_number()? {
            JsonNumber::Int(v) => Some(v),
            JsonNumber::Uint(v) => i64::try_from(v).ok(),
            JsonNumber::Float(_) => None,
        }
    }

    /// The number as `u64`, if it is a non-negative integer in range.
    pub fn as_u64(self) -> Option<u64> {
        match self.as_number()? {
            JsonNumber::Int(v) => u64::try_from(v).ok(),
            JsonNumber::Uint(v) => Some(v),
            JsonNumber::Float(_) => None,
        }
    }

    /// The number as a double.
    pub fn as_f64(self) -> Option<f64> {
        self.as_number().map(JsonNumber::as_f64)
    }

    /// The member `key` of an object (`None` for other types or no such key).
    pub fn get(self, key: &str) -> Option<JsonRef<'a>> {
        self.entries().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The members of an object in input order (empty for other types).
    pub fn entries(self) -> Entries<'a> {
        Entries {
            nodes: self.nodes,
            members: members(self.nodes, 0),
        }
    }

    /// The elements of an array in order (empty for other types).
    pub fn elements(self) -> Elements<'a> {
        let rest = match self.head() {
            Some(Node::Array { .. }) => self.nodes.get(1..).unwrap_or_default(),
            _ => &[],
        };
        Elements { rest }
    }

    /// The number of members or elements of a container (`None` otherwise).
    pub fn len(self) -> Option<usize> {
        match self.head() {
            Some(Node::Object { len, .. } | Node::Array { len, .. }) => Some(*len),
            _ => None,
        }
    }

    /// Whether the value is an empty array or object.
    pub fn is_empty(self) -> bool {
        self.len() == Some(0)
    }
}

impl fmt::Debug for JsonRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for JsonRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// The string at tape position `at`, borrowed from the input (not the tape).
pub(crate) fn str_at<'a>(nodes: &[Node<'a>], at: usize) -> Option<&'a str> {
    match nodes.get(at) {
        Some(Node::String(s)) => Some(s),
        _ => None,
    }
}

/// The members of the object at tape position `at`: `(key, value position)`.
/// Empty if there is no object there.
pub(crate) fn members<'t, 'a>(nodes: &'t [Node<'a>], at: usize) -> Members<'t, 'a> {
    let left = match nodes.get(at) {
        Some(Node::Object { len, .. }) => *len,
        _ => 0,
    };
    Members {
        nodes,
        at: at + 1,
        left,
    }
}

/// The first `count` members of the object whose node is at tape position
/// `at`, read without its node (which may not be complete yet).
pub(crate) fn first_members<'t, 'a>(
    nodes: &'t [Node<'a>],
    at: usize,
    count: usize,
) -> Members<'t, 'a> {
    Members {
        nodes,
        at: at + 1,
        left: count,
    }
}

/// Iterator of [`members`].
#[derive(Clone, Debug)]
pub(crate) struct Members<'t, 'a> {
    nodes: &'t [Node<'a>],
    at: usize,
    left: usize,
}

impl<'a> Iterator for Members<'_, 'a> {
    type Item = (&'a str, usize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let key = str_at(self.nodes, self.at)?;
        let value_at = self.at + 1;
        self.at = value_at + span(self.nodes.get(value_at)?);
        Some((key, value_at))
    }
}

/// Iterator over an object's members: `(key, value)`.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    nodes: &'a [Node<'a>],
    members: Members<'a, 'a>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, JsonRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, at) = self.members.next()?;
        Some((key, JsonRef::from_nodes(self.nodes.get(at..)?)?))
    }
}

/// Iterator over an array's elements.
#[derive(Clone, Debug)]
pub struct Elements<'a> {
    rest: &'a [Node<'a>],
}

impl<'a> Iterator for Elements<'a> {
    type Item = JsonRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let value = JsonRef::from_nodes(self.rest)?;
        self.rest = self.rest.get(value.nodes.len()..).unwrap_or_default();
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Parser;

    #[test]
    fn reads_members_elements_and_scalars_in_place() {
        let mut text =
            br#"{"a":[1,-2,3.5,"x\ny"],"b":{"c":true,"d":null},"e":18446744073709551615}"#.to_vec();
        let mut parser = Parser::new(64);
        let mut tape = simd_json::Tape::null().reset();
        parser.parse(&mut text, &mut tape).unwrap();
        let v = JsonRef::from_nodes(&tape.0).unwrap();
        assert_eq!(v.kind(), JsonKind::Object);
        assert_eq!(v.len(), Some(3));
        let a: Vec<_> = v.get("a").unwrap().elements().collect();
        assert_eq!(a.len(), 4);
        assert_eq!(a[0].as_i64(), Some(1));
        assert_eq!(a[1].as_i64(), Some(-2));
        assert_eq!(a[1].as_u64(), None);
        assert_eq!(a[2].as_f64(), Some(3.5));
        assert_eq!(a[3].as_str(), Some("x\ny"));
        let b = v.get("b").unwrap();
        assert_eq!(b.get("c").unwrap().as_bool(), Some(true));
        assert!(b.get("d").unwrap().is_null());
        assert!(b.get("zz").is_none());
        assert_eq!(v.get("e").unwrap().as_u64(), Some(u64::MAX));
        assert_eq!(v.get("e").unwrap().as_i64(), None);
        let keys: Vec<_> = v.entries().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "e"]);
        assert_eq!(a[0].entries().count(), 0);
        assert_eq!(b.elements().count(), 0);
    }
}
