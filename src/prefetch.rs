//! Asking the CPU to fetch memory before it is read, where a read is known
//! to miss the cache and there is other work to do meanwhile.
//!
//! - A body comes from another thread (a connection's reader, an embedding
//!   program's submitter), so its first read on the worker misses: that
//!   read was 5% of a worker's time at peak (`perf`, the body copy into
//!   simd-json's buffer). The worker asks for the next queued body's lines
//!   while it runs the current message, so they have arrived by its turn.
//! - The replay guard's table is far larger than the cache, so each check
//!   misses: its bucket is asked for before the token check (see
//!   `security/replay.rs`).
#![allow(unsafe_code)]

/// Lines past this many bytes are left to the hardware prefetcher, which
/// follows a sequential read by then.
const AHEAD_BYTES: usize = 1024;

const LINE: usize = 64;

/// Asks for the cache line holding `address`. Any address will do: nothing
/// is read from it.
#[inline]
pub(crate) fn prefetch_line(address: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is in the x86_64 baseline, and a prefetch is a hint:
        // it reads nothing the program can observe and never faults, even
        // on an address nothing is mapped at.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::without_provenance(address)) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Asks for the cache lines of `bytes` (its first [`AHEAD_BYTES`]).
#[inline]
pub(crate) fn prefetch(bytes: &[u8]) {
    let head = bytes.get(..AHEAD_BYTES).unwrap_or(bytes);
    for line in head.chunks(LINE) {
        prefetch_line(line.as_ptr() as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_any_slice_or_address_is_harmless_and_changes_nothing() {
        let body: Vec<u8> = (0..=255).cycle().take(3000).collect();
        for range in [0..0, 0..1, 5..70, 0..1024, 0..3000, 2999..3000] {
            prefetch(&body[range]);
        }
        prefetch(&[]);
        for address in [0, 1, usize::MAX, body.as_ptr() as usize] {
            prefetch_line(address);
        }
        assert!(body.iter().copied().eq((0..=255).cycle().take(3000)));
    }
}
