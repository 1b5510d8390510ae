//! Message ids: 1 to 128 bytes of `[A-Za-z0-9._:-]` (docs/protocol.md section 3).

/// The longest id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Whether `id` is a valid message id.
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_of_a_safe_alphabet() {
        assert!(is_valid_id("c2f1-0001"));
        assert!(is_valid_id("a.b_c:d-E9"));
        assert!(is_valid_id(&"x".repeat(128)));
        for bad in ["", " a", "a b", "a/b", "é", "a\n", "a\"", "a+b", "a#"] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
        assert!(!is_valid_id(&"x".repeat(129)));
    }
}
