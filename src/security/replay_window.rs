//! The sliding window of one replay stream (docs/protocol.md section 7a):
//! the highest number accepted and which of the `W` numbers below it were,
//! as IPsec, DTLS and WireGuard keep it (RFC 6479).
//!
//! The bits sit in a ring of `W / 64 + 1` words, number `n` at bit
//! `n mod (64 x words)`. Moving the window forward clears the words it
//! enters, never shifts the others: a jump of any size costs at most one
//! pass over the words, and a number inside the window costs one bit test.
//! The extra word makes room for the word the highest number sits in, so
//! that the `W` numbers below it never share a bit with a newer one.

/// The words a window of `window` numbers needs (`window` a multiple of
/// 64).
pub(crate) const fn words_for(window: u64) -> usize {
    (window / 64) as usize + 1
}

/// What a window says of a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// New: recorded.
    Accepted,
    /// Accepted before.
    Repeat,
    /// At or below `highest - window`: too old to tell.
    TooOld,
}

/// One stream's window: `highest` (0 before the first number) and the ring
/// of `words`, of a window of `window` numbers.
pub(crate) fn accept(highest: &mut u64, words: &mut [u64], window: u64, seq: u64) -> Seen {
    let count = words.len() as u64;
    if count == 0 {
        return Seen::TooOld;
    }
    if seq > *highest {
        // Clear the words the window moves into, past the highest's own.
        let from = *highest / 64;
        let blocks = (seq / 64 - from).min(count);
        for block in from + 1..=from + blocks {
            if let Some(word) = words.get_mut((block % count) as usize) {
                *word = 0;
            }
        }
        *highest = seq;
    } else if *highest - seq >= window {
        return Seen::TooOld;
    }
    let bit = seq % (64 * count);
    let Some(word) = words.get_mut((bit / 64) as usize) else {
        return Seen::TooOld;
    };
    let mask = 1u64 << (bit % 64);
    if *word & mask != 0 {
        return Seen::Repeat;
    }
    *word |= mask;
    Seen::Accepted
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::message::MAX_SEQ;

    /// The rule of section 7a, kept the slow way: every number accepted.
    #[derive(Default)]
    struct Reference {
        accepted: BTreeSet<u64>,
    }

    impl Reference {
        fn accept(&mut self, window: u64, seq: u64) -> Seen {
            let highest = self.accepted.last().copied().unwrap_or(0);
            if seq <= highest && highest - seq >= window {
                return Seen::TooOld;
            }
            if self.accepted.insert(seq) {
                Seen::Accepted
            } else {
                Seen::Repeat
            }
        }
    }

    struct Window {
        highest: u64,
        words: Vec<u64>,
        window: u64,
    }

    impl Window {
        fn new(window: u64) -> Window {
            Window {
                highest: 0,
                words: vec![0; words_for(window)],
                window,
            }
        }

        fn accept(&mut self, seq: u64) -> Seen {
            accept(&mut self.highest, &mut self.words, self.window, seq)
        }
    }

    #[test]
    fn repeats_and_numbers_below_the_window_are_refused() {
        let mut w = Window::new(1024);
        assert_eq!(w.accept(5), Seen::Accepted);
        assert_eq!(w.accept(5), Seen::Repeat);
        assert_eq!(w.accept(3), Seen::Accepted);
        assert_eq!(w.accept(2000), Seen::Accepted);
        // 2000 - 1024 = 976 is too old; 977 is the oldest in the window.
        assert_eq!(w.accept(976), Seen::TooOld);
        assert_eq!(w.accept(977), Seen::Accepted);
        assert_eq!(w.accept(977), Seen::Repeat);
        assert_eq!(w.accept(5), Seen::TooOld);
        // A jump far past the ring clears it whole.
        assert_eq!(w.accept(1_000_000), Seen::Accepted);
        assert_eq!(w.accept(999_000), Seen::Accepted);
        assert_eq!(w.accept(998_976), Seen::TooOld);
        assert_eq!(w.accept(2000), Seen::TooOld);
    }

    #[test]
    fn the_edges_of_the_number_range() {
        let mut w = Window::new(1024);
        assert_eq!(w.accept(1), Seen::Accepted);
        assert_eq!(w.accept(1), Seen::Repeat);
        assert_eq!(w.accept(MAX_SEQ), Seen::Accepted);
        assert_eq!(w.accept(MAX_SEQ), Seen::Repeat);
        assert_eq!(w.accept(MAX_SEQ - 1), Seen::Accepted);
        assert_eq!(w.accept(MAX_SEQ - 1023), Seen::Accepted);
        assert_eq!(w.accept(MAX_SEQ - 1024), Seen::TooOld);
        assert_eq!(w.accept(1), Seen::TooOld);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Against the reference: increasing runs with gaps, numbers from
        /// the past (reordering), exact repeats, and both edges of the
        /// range, for windows of one to four blocks of 1024 bits.
        #[test]
        fn the_window_agrees_with_the_set_of_accepted_numbers(
            blocks in 1u64..=4,
            steps in prop::collection::vec((0u8..=5, 0u64..5_000), 1..400),
        ) {
            let window = 1024 * blocks;
            let mut w = Window::new(window);
            let mut reference = Reference::default();
            let mut last = 0u64;
            for (kind, amount) in steps {
                let seq = match kind {
                    // Forward, with a gap.
                    0 | 1 => last.saturating_add(amount % 70 + 1).min(MAX_SEQ),
                    // Back into (or below) the window: reordering.
                    2 => last.saturating_sub(amount % (window + 200)).max(1),
                    // The very same number again.
                    3 => last.max(1),
                    // A long jump forward.
                    4 => last.saturating_add(amount * 97 + 1).min(MAX_SEQ),
                    // The edges.
                    _ => if amount % 2 == 0 { 1 } else { MAX_SEQ - amount % 3 },
                };
                last = last.max(seq);
                prop_assert_eq!(w.accept(seq), reference.accept(window, seq), "seq {}", seq);
            }
        }
    }
}
