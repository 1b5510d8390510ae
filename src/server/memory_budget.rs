//! What the server's connections hold, in bytes, against one budget.
//!
//! A connection holds its partial frame (the decoder's buffered bytes), its
//! requests in the engine (each charged its frame's size from submission
//! until its reply is taken from the outbox, so a reply waiting there is
//! covered by its request's charge) and its outbound buffer. The I/O thread
//! keeps the sum over connections; reading stops while a connection is
//! over its own limit, or while the server is over `memory_budget_mib` and
//! the connection holds more than an equal share of it.
//!
//! A request's charge travels with it through the engine in its tag (see
//! [`Tag`]), so that its reply gives back exactly what it took.

/// A charge as 12 bits: a 7-bit mantissa and a 5-bit shift, never less
/// than the bytes it stands for and at most 1/64 (plus rounding) more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Charge(u16);

impl Charge {
    const MANTISSA_BITS: u32 = 7;

    /// The smallest charge covering `bytes` (saturating at the largest,
    /// about 8 GiB, far above any frame).
    pub(crate) fn covering(bytes: usize) -> Charge {
        let mut mantissa = bytes as u64;
        let mut shift = 0u16;
        while mantissa >= 1 << Self::MANTISSA_BITS {
            mantissa = mantissa.div_ceil(2);
            shift += 1;
        }
        if shift >= 1 << (12 - Self::MANTISSA_BITS) {
            return Charge(0x0fff);
        }
        Charge((shift << Self::MANTISSA_BITS) | mantissa as u16)
    }

    /// The bytes it stands for.
    pub(crate) fn bytes(self) -> usize {
        let mantissa = usize::from(self.0 & ((1 << Self::MANTISSA_BITS) - 1));
        mantissa << (self.0 >> Self::MANTISSA_BITS)
    }
}

/// The tag a submission carries through the engine: which connection (slot
/// and generation, so that a reply for a closed connection cannot reach its
/// successor in the slot) and the request's charge.
///
/// Bits: generation 63..32, charge 31..20, slot 19..0 (`max_connections`
/// is at most 1,000,000 < 2^20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) charge: Charge,
}

impl Tag {
    const SLOT_BITS: u32 = 20;

    pub(crate) fn encode(self) -> u64 {
        (u64::from(self.generation) << 32)
            | (u64::from(self.charge.0) << Self::SLOT_BITS)
            | u64::from(self.slot & ((1 << Self::SLOT_BITS) - 1))
    }

    pub(crate) fn decode(tag: u64) -> Tag {
        Tag {
            slot: (tag as u32) & ((1 << Self::SLOT_BITS) - 1),
            generation: (tag >> 32) as u32,
            charge: Charge(((tag >> Self::SLOT_BITS) & 0x0fff) as u16),
        }
    }
}

/// The server's budget and what its connections hold against it (I/O
/// thread only).
#[derive(Debug, Default)]
pub(crate) struct MemoryBudget {
    limit: usize,
    held: usize,
}

impl MemoryBudget {
    pub(crate) fn set_limit(&mut self, bytes: usize) {
        self.limit = bytes;
    }

    /// A connection went from holding `before` to holding `after`.
    pub(crate) fn moved(&mut self, before: usize, after: usize) {
        self.held = self.held.saturating_sub(before).saturating_add(after);
    }

    /// What the connections hold in all.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// The most a connection may hold and still be read from, now that
    /// `open` connections share the budget: no bound while the server is
    /// under it, an equal share once it is over.
    pub(crate) fn share(&self, open: usize) -> usize {
        if self.held < self.limit {
            usize::MAX
        } else {
            self.limit / open.max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_covers_its_bytes_closely() {
        for bytes in (0..5000).chain([65_535, 65_536, 1 << 20, (1 << 20) + 6, u32::MAX as usize]) {
            let charged = Charge::covering(bytes).bytes();
            assert!(charged >= bytes, "{bytes} charged {charged}");
            assert!(
                charged <= bytes + bytes / 32 + 1,
                "{bytes} overcharged: {charged}"
            );
        }
        assert!(Charge::covering(usize::MAX).bytes() >= 1 << 32);
    }

    #[test]
    fn a_tag_gives_back_slot_generation_and_charge() {
        for (slot, generation, bytes) in [
            (0, 0, 0),
            (999_999, u32::MAX, 1 << 20),
            (12, 7, 300),
            ((1 << 20) - 1, 1, u32::MAX as usize),
        ] {
            let tag = Tag {
                slot,
                generation,
                charge: Charge::covering(bytes),
            };
            assert_eq!(Tag::decode(tag.encode()), tag);
        }
    }

    #[test]
    fn over_the_budget_each_connection_gets_an_equal_share() {
        let mut budget = MemoryBudget::default();
        budget.set_limit(1000);
        budget.moved(0, 600);
        assert_eq!(budget.share(4), usize::MAX);
        budget.moved(0, 500);
        assert_eq!(budget.held(), 1100);
        assert_eq!(budget.share(4), 250);
        budget.moved(500, 0);
        assert_eq!(budget.share(4), usize::MAX);
    }
}
