//! [`WallClock`]: Unix time for a worker without a system clock read per
//! message.
//!
//! A worker reads the engine's monotonic clock when a message starts, and
//! needs Unix time too (the timestamp window, token expiry, the history,
//! the reply's timestamp). A clock read is 25-30 ns here and clock reads
//! were 6% of a worker's samples at peak, so Unix time is the monotonic
//! reading plus an offset, taken afresh from the system clock once a
//! millisecond. Between two readings the system clock can only drift from
//! the monotonic one by its slew (at most 0.05%, 0.5 us in a millisecond);
//! a step (an operator setting the clock) shows within a millisecond.

use crate::message::unix_nanos_now;

/// How long an offset is used before the system clock is read again.
const RESYNC_NANOS: u64 = 1_000_000;

/// A worker's Unix time, derived from the engine's monotonic clock.
#[derive(Debug, Default)]
pub(crate) struct WallClock {
    /// Unix nanoseconds minus monotonic nanoseconds, and the monotonic
    /// reading it was taken at.
    offset: Option<(i128, u64)>,
}

impl WallClock {
    /// Unix nanoseconds at the engine clock's reading `monotonic`, which
    /// must be a reading just taken.
    pub(crate) fn at(&mut self, monotonic: u64) -> i128 {
        match self.offset {
            Some((offset, taken_at))
                if monotonic >= taken_at && monotonic - taken_at < RESYNC_NANOS =>
            {
                offset + i128::from(monotonic)
            }
            _ => {
                let unix = unix_nanos_now();
                self.offset = Some((unix - i128::from(monotonic), monotonic));
                unix
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_monotonic_reading_and_resyncs_each_millisecond() {
        let mut clock = WallClock::default();
        let first = clock.at(5_000);
        let system = unix_nanos_now();
        // The first reading is the system clock's.
        assert!(
            (system - first).abs() < 1_000_000_000,
            "{first} vs {system}"
        );
        // Within a millisecond: the offset, exactly.
        assert_eq!(clock.at(5_000 + 999_999), first + 999_999);
        // A millisecond on, or a reading from before the last sync: the
        // system clock again (here, far from what the offset would say,
        // since these readings are not the engine clock's).
        let later = clock.at(5_000 + 3_600_000_000_000);
        assert!((unix_nanos_now() - later).abs() < 1_000_000_000);
        let earlier = clock.at(4_000);
        assert!((unix_nanos_now() - earlier).abs() < 1_000_000_000);
    }
}
