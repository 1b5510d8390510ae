//! Load shedding: when a worker's queue passes its high-water mark
//! (`engine.shed_at_percent` of its capacity), the worker answers new work
//! of the lowest levels `resource_exhausted` before spending anything on
//! it (no token check, no cryptography), so that what is left of the
//! queue's room and the worker's time goes to the higher levels. `Low`
//! from the mark; `Standard` past a third of the room above it; `High` past
//! two thirds; `Critical` never (it is refused only when the queue is
//! full). Each shed message is answered and counted by level.

use super::concurrency::Ring;
use crate::error::{Code, Error};
use crate::message::SecurityLevel;

/// A worker's marks over its queue, remade when the configured percent
/// changes (a reload).
#[derive(Debug)]
pub(crate) struct Shedding {
    capacity: usize,
    marks: ShedMarks,
}

impl Shedding {
    /// For a queue of `capacity`, shedding from `percent` of it.
    pub(crate) fn new(capacity: usize, percent: u64) -> Shedding {
        Shedding {
            capacity,
            marks: ShedMarks::new(capacity, percent),
        }
    }

    /// Whether a message of `level` is shed now, `queue` being the
    /// worker's and `percent` the configured mark.
    pub(crate) fn sheds<T>(&mut self, level: SecurityLevel, queue: &Ring<T>, percent: u64) -> bool {
        if self.marks.percent != percent {
            self.marks = ShedMarks::new(self.capacity, percent);
        }
        // Off (the default): the queue's counters are not even read.
        self.marks.low != usize::MAX && self.marks.sheds(level, queue.len())
    }
}

/// The queue depths from which each level is shed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShedMarks {
    percent: u64,
    low: usize,
    standard: usize,
    high: usize,
}

impl ShedMarks {
    /// The marks of a queue of `capacity` shedding from `percent` of it.
    pub(crate) fn new(capacity: usize, percent: u64) -> ShedMarks {
        if percent >= 100 {
            // Off: a queue refilled while its message ran is full again.
            return ShedMarks {
                percent,
                low: usize::MAX,
                standard: usize::MAX,
                high: usize::MAX,
            };
        }
        let low = (capacity as u128 * u128::from(percent) / 100) as usize;
        let room = capacity - low;
        ShedMarks {
            percent,
            low,
            standard: low + room / 3,
            high: low + room * 2 / 3,
        }
    }

    /// Whether a message of `level` is shed with `depth` messages queued
    /// behind it.
    pub(crate) fn sheds(&self, level: SecurityLevel, depth: usize) -> bool {
        match level {
            SecurityLevel::Low => depth >= self.low,
            SecurityLevel::Standard => depth >= self.standard,
            SecurityLevel::High => depth >= self.high,
            SecurityLevel::Critical => false,
        }
    }
}

/// The answer of a shed message (retryable; it says why).
pub(crate) fn shed(level: SecurityLevel) -> Error {
    Error::new(
        Code::ResourceExhausted,
        format!(
            "overloaded: the engine sheds {} work while its queue is past its high-water mark; retry later",
            level.as_str()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::ShedMarks;
    use crate::message::SecurityLevel::{Critical, High, Low, Standard};

    #[test]
    fn the_lowest_levels_go_first_and_critical_never() {
        let marks = ShedMarks::new(4096, 75);
        assert_eq!((marks.low, marks.standard, marks.high), (3072, 3413, 3754));
        for (depth, shed) in [
            (0, [false, false, false, false]),
            (3071, [false, false, false, false]),
            (3072, [true, false, false, false]),
            (3413, [true, true, false, false]),
            (3754, [true, true, true, false]),
            (4096, [true, true, true, false]),
        ] {
            let got = [Low, Standard, High, Critical].map(|level| marks.sheds(level, depth));
            assert_eq!(got, shed, "depth {depth}");
        }
        // At 100 percent nothing is shed, not even with the queue full
        // again (refilled while the message ran).
        let off = ShedMarks::new(64, 100);
        assert!(!off.sheds(Low, 64));
    }
}
