//! Keys repeated within one object, which the protocol refuses and
//! simd-json does not check: found on the tape in one pass, pairwise in
//! small objects and by sorting in large ones.

use simd_json::Node;

use super::value::members;

/// Objects with at most this many members are checked for repeated keys by
/// comparing every pair; larger ones by sorting the keys.
pub(super) const PAIRWISE_LIMIT: usize = 8;

/// The first key found twice within one object, anywhere in the tape: one
/// pass, each object's keys found by hopping over its members' spans.
pub(super) fn find_repeated_key<'a>(
    nodes: &[Node<'a>],
    scratch: &mut Vec<usize>,
) -> Option<&'a str> {
    (0..nodes.len()).find_map(|at| repeated_key(nodes, at, scratch))
}

/// The first key found twice in the object at tape position `at` (none if
/// there is no object there): compared pairwise in small objects, most of
/// a message's, and sorted in large ones, so that a hostile object of
/// 100,000 keys costs n log n, not n².
pub(super) fn repeated_key<'a>(
    nodes: &[Node<'a>],
    at: usize,
    scratch: &mut Vec<usize>,
) -> Option<&'a str> {
    match nodes.get(at) {
        Some(Node::Object { len, .. }) if *len > PAIRWISE_LIMIT => {
            repeated_in_large(nodes, at, scratch)
        }
        Some(Node::Object { len, .. }) if *len > 1 => repeated_in_small(nodes, at),
        _ => None,
    }
}

/// Pairwise, with each key resolved once: keys of different lengths or
/// first bytes (nearly every pair) are told apart without a byte compare.
fn repeated_in_small<'a>(nodes: &[Node<'a>], at: usize) -> Option<&'a str> {
    let mut keys = [""; PAIRWISE_LIMIT];
    let mut count = 0;
    for ((key, _), slot) in members(nodes, at).zip(keys.iter_mut()) {
        *slot = key;
        count += 1;
    }
    let keys = keys.get(..count).unwrap_or_default();
    for (n, a) in keys.iter().enumerate() {
        let head = a.as_bytes().first();
        let later = keys.get(n + 1..).unwrap_or_default();
        if later
            .iter()
            .any(|b| b.len() == a.len() && b.as_bytes().first() == head && b == a)
        {
            return Some(a);
        }
    }
    None
}

/// By sorting the key positions.
fn repeated_in_large<'a>(
    nodes: &[Node<'a>],
    at: usize,
    scratch: &mut Vec<usize>,
) -> Option<&'a str> {
    scratch.clear();
    scratch.extend(members(nodes, at).map(|(_, value_at)| value_at - 1));
    scratch.sort_unstable_by(|&a, &b| key_at(nodes, a).cmp(key_at(nodes, b)));
    for pair in scratch.windows(2) {
        if let [a, b] = *pair
            && key_at(nodes, a) == key_at(nodes, b)
        {
            return Some(key_at(nodes, a));
        }
    }
    None
}

/// The key at tape position `i` (empty if the node is not a string, which a
/// well-formed tape never has at a key position).
fn key_at<'a>(nodes: &[Node<'a>], i: usize) -> &'a str {
    match nodes.get(i) {
        Some(Node::String(s)) => s,
        _ => "",
    }
}
