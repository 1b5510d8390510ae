//! [`ReplayClock`]: the time both replay tables (ids, `replay.rs`; streams,
//! `replay_streams.rs`) and the shares of them (`replay_shares.rs`) count
//! in: whole seconds since one epoch, and when a message may be forgotten.

const NANOS: i128 = 1_000_000_000;

/// Seconds since an epoch, for messages valid a window past their
/// timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplayClock {
    epoch: i128,
    window_nanos: i128,
}

impl ReplayClock {
    /// A clock counting from `now` (Unix nanoseconds), for messages valid
    /// `window_secs` past their timestamp.
    pub(crate) fn new(window_secs: u64, now: i128) -> ReplayClock {
        ReplayClock {
            epoch: now,
            window_nanos: i128::from(window_secs) * NANOS,
        }
    }

    /// Whole seconds from the epoch to `at` (0 before it).
    pub(crate) fn seconds(&self, at: i128) -> u32 {
        let since = (at - self.epoch).max(0) / NANOS;
        u32::try_from(since).unwrap_or(u32::MAX)
    }

    /// When a message stamped `timestamp` and seen at `now` may be
    /// forgotten (every copy of it then fails the timestamp check), and
    /// `now`, both in seconds since the epoch.
    pub(crate) fn expiry_secs(&self, timestamp: i128, now: i128) -> (u32, u32) {
        // Rounded up, plus one: nothing is forgotten early.
        let expiry = self
            .seconds(timestamp.max(now).saturating_add(self.window_nanos))
            .saturating_add(2);
        (expiry, self.seconds(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_past_the_window_of_the_later_of_timestamp_and_arrival() {
        let clock = ReplayClock::new(300, 1_000 * NANOS);
        assert_eq!(clock.seconds(999 * NANOS), 0);
        assert_eq!(clock.seconds(1_010 * NANOS + 1), 10);
        // Stamped in the past: counted from arrival.
        assert_eq!(
            clock.expiry_secs(1_000 * NANOS, 1_010 * NANOS),
            (10 + 300 + 2, 10)
        );
        // Stamped ahead: counted from the timestamp.
        assert_eq!(
            clock.expiry_secs(1_020 * NANOS, 1_010 * NANOS),
            (20 + 300 + 2, 10)
        );
    }
}
