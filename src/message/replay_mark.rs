//! [`ReplayMark`]: where a message stands on its sender's replay stream
//! (`metadata.replay`, docs/protocol.md section 7a).

/// The longest stream name, in bytes.
pub const MAX_STREAM_LEN: usize = 64;

/// The largest sequence number: 2^53 - 1, the largest integer every JSON
/// peer (a JavaScript one included) reads exactly.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// A message's `metadata.replay`: the sender's stream and the message's
/// number on it. The receiver keeps a sliding window of numbers per
/// `(principal, stream)` instead of every id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplayMark<'a> {
    /// The stream: 1 to 64 bytes of `[A-Za-z0-9_-]`.
    pub stream: &'a str,
    /// The number: `1..=MAX_SEQ`, strictly increasing over the messages the
    /// sender makes on the stream.
    pub seq: u64,
}

/// Whether `stream` is a valid stream name.
pub fn is_valid_stream(stream: &str) -> bool {
    (1..=MAX_STREAM_LEN).contains(&stream.len())
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_short_names_of_the_b64u_alphabet() {
        assert!(is_valid_stream("a"));
        assert!(is_valid_stream("Zm9v_YmFy-9"));
        assert!(is_valid_stream(&"s".repeat(64)));
        for bad in ["", "a.b", "a b", "a:b", "a=", "é", "a/b", "a+b"] {
            assert!(!is_valid_stream(bad), "{bad:?}");
        }
        assert!(!is_valid_stream(&"s".repeat(65)));
    }
}
