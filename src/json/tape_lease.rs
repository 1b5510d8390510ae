//! [`TapeLease`]: reusing one parse tape across inputs of different lifetimes.
//!
//! A simd-json tape borrows the input it was parsed from, so it cannot be
//! stored between messages as is. Its owner keeps the emptied allocation
//! under `'static` and lends it out for each parse.

use simd_json::{Node, Tape};

use super::JsonRef;

/// A parse tape on loan from its owner (a decoder, a canonicalizer): handed
/// back, emptied with its allocation kept, when the lease is dropped, so a
/// stream of messages is parsed without allocating.
pub(crate) struct TapeLease<'a> {
    pub(crate) tape: Tape<'a>,
    home: &'a mut Vec<Node<'static>>,
}

impl<'a> TapeLease<'a> {
    /// Borrows the tape stored at `home` (empty afterwards until returned).
    pub(crate) fn take(home: &'a mut Vec<Node<'static>>) -> TapeLease<'a> {
        let tape = Tape(std::mem::take(home)).reset();
        TapeLease { tape, home }
    }

    /// The value starting at tape position `at`.
    pub(crate) fn value(&self, at: usize) -> Option<JsonRef<'_>> {
        JsonRef::from_nodes(self.tape.0.get(at..)?)
    }
}

impl Drop for TapeLease<'_> {
    fn drop(&mut self) {
        // `reset` empties the tape, which is what makes handing it back under
        // another lifetime sound (simd-json's own API for reuse).
        *self.home = Tape(std::mem::take(&mut self.tape.0)).reset().0;
    }
}
