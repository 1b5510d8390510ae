//! `b64u`: base64url without padding (PROTOCOL.md section 1), strict.
//!
//! The `base64` crate's URL-safe, no-padding engine already refuses what the
//! protocol refuses: padding, whitespace, characters outside the alphabet,
//! and non-zero trailing bits (so each byte string has exactly one text).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Appends the decoded bytes of `text` to `out`; `None` (with `out` as it
/// was) if `text` is not strict base64url.
pub(crate) fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    if URL_SAFE_NO_PAD.decode_vec(text, out).is_err() {
        out.truncate(start);
        return None;
    }
    Some(())
}

/// The decoded bytes of `text` if they are exactly `N` long.
pub(crate) fn decode_array<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    // N bytes take exactly ceil(4N/3) characters without padding.
    if text.len() != (N * 4).div_ceil(3) {
        return None;
    }
    let mut out = [0u8; N];
    match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
        Ok(n) if n == N => Some(out),
        _ => None,
    }
}

/// Appends the base64url text of `bytes` to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// The base64url text of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The bytes of strict base64url `text`, or `None`.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decode_into(text.as_bytes(), &mut out)?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_whitespace_and_foreign_characters_are_refused() {
        assert_eq!(decode("aGk").as_deref(), Some(&b"hi"[..]));
        for bad in ["aGk=", "aG k", "aGk\n", "aG+k", "aG/k", "a", "aGl"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fixed_length_decoding_refuses_other_lengths() {
        let twelve = encode(&[7u8; 12]);
        assert_eq!(decode_array::<12>(twelve.as_bytes()), Some([7u8; 12]));
        assert_eq!(decode_array::<12>(encode(&[7u8; 11]).as_bytes()), None);
        assert_eq!(decode_array::<12>(encode(&[7u8; 13]).as_bytes()), None);
    }
}
