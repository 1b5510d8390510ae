//! Finding the bytes that end or must escape a JSON string, 16 at a time.
//!
//! The plain reader looks for where a string ends (a quote, or a backslash
//! or control character that makes it not plain); the writer for the bytes
//! it must escape: the same three kinds. Both scan blocks of 16 bytes with
//! SSE2, which is part of the x86_64 baseline (a byte loop elsewhere).

/// Bit masks of `block`'s bytes that end a plain string or must be escaped
/// (quote, backslash, control character), and of its bytes at or above
/// 0x80.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn scan_block(block: &[u8; 16]) -> (u32, u32) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics run
    // on every CPU this code is built for; `block` is 16 readable bytes and
    // `loadu` reads exactly 16, with no alignment requirement.
    let (stops, high) = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        // A byte is a control character when its unsigned minimum with 0x1f
        // is itself (SSE2 has no unsigned less-than).
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        (
            _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))),
            _mm_movemask_epi8(v),
        )
    };
    (stops as u32, high as u32)
}

/// Bit masks of `block`'s bytes that end a plain string or must be escaped
/// (quote, backslash, control character), and of its bytes at or above
/// 0x80.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn scan_block(block: &[u8; 16]) -> (u32, u32) {
    let (mut stops, mut high) = (0, 0);
    for (i, &byte) in block.iter().enumerate() {
        if is_stop(byte) {
            stops |= 1 << i;
        }
        if byte >= 0x80 {
            high |= 1 << i;
        }
    }
    (stops, high)
}

/// A quote, a backslash or a control character.
fn is_stop(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether any of the 8 bytes of `word` is a quote, a backslash or a
/// control character.
///
/// SWAR: `(x - 0x01..01 * n) & !x & 0x80..80` is non-zero exactly when some
/// byte of `x` is below `n` (n <= 0x80); a byte equal to `c` is a zero byte
/// of `x ^ c..c`, that is, a byte below 1.
fn has_stop(word: &[u8; 8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let word = u64::from_le_bytes(*word);
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    (control | quote | backslash) != 0
}

/// The position of the first byte at or after `from` that must be escaped
/// (a quote, a backslash or a control character).
///
/// Blocks of 16 bytes; the few bytes after the last whole block are scanned
/// as the text's last 16 (overlapping bytes already cleared), and a text
/// shorter than 16 as its first and last 8 bytes, so that no step copies
/// bytes into a padded buffer. Only texts under 8 bytes go byte by byte.
pub(crate) fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let text = bytes.get(from..)?;
    let mut at = 0;
    while let Some(block) = text.get(at..).and_then(|rest| rest.first_chunk::<16>()) {
        let stops = scan_block(block).0;
        if stops != 0 {
            return Some(from + at + stops.trailing_zeros() as usize);
        }
        at += 16;
    }
    if at == text.len() {
        return None;
    }
    if let Some(last) = text.last_chunk::<16>() {
        let stops = scan_block(last).0;
        let last_at = text.len() - 16;
        return (stops != 0).then(|| from + last_at + stops.trailing_zeros() as usize);
    }
    if let (Some(head), Some(tail)) = (text.first_chunk::<8>(), text.last_chunk::<8>())
        && !has_stop(head)
        && !has_stop(tail)
    {
        return None;
    }
    text.iter().position(|&b| is_stop(b)).map(|at| from + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_value_is_found_at_every_position_in_texts_of_every_length() {
        // Lengths up to 40 cover: byte by byte (under 8), two overlapping
        // words (8 to 15), whole blocks, and a last block overlapping the
        // one before.
        for len in 0..=40 {
            for position in 0..len {
                for b in 0u8..=255 {
                    let mut bytes = vec![b'a'; len];
                    bytes[position] = b;
                    let expected = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(
                        next_escape(&bytes, 0),
                        expected.then_some(position),
                        "{b:#x} at {position} of {len}"
                    );
                    // And from an offset, so that steps start mid-text.
                    assert_eq!(
                        next_escape(&bytes, 3),
                        (expected && position >= 3).then_some(position),
                        "{b:#x} at {position} of {len}, from 3"
                    );
                }
            }
            assert_eq!(next_escape(&vec![b'a'; len], 0), None);
        }
        assert_eq!(next_escape(b"ab", 3), None);
    }

    #[test]
    fn blocks_flag_stops_and_high_bytes() {
        let mut block = [b'a'; 16];
        block[1] = b'"';
        block[4] = b'\\';
        block[7] = 0x1f;
        block[9] = 0x80;
        block[15] = 0xff;
        assert_eq!(scan_block(&block), (0b1001_0010, 0b1000_0010_0000_0000));
    }
}
