//! [`RunCredit`]: how many messages submitters may run in a parked
//! worker's seat, as a bucket of the worker's idle time.
//!
//! A message run on its submitter saves a wake-up, which at low rates costs
//! more than the message. At high rates the worker is worth waking, and a
//! submitter running every message would make the engine one thread. Each
//! run on a submitter costs [`COST`] of idle time, earned between runs (the
//! runs themselves earn nothing), up to [`BURST`] runs' worth. A steady
//! 10k msg/s leaves 95 us idle between messages and runs every one there;
//! a few messages due at once (a sender that was descheduled) still do;
//! back-to-back messages run there at most once per [`COST`].

use super::idle::SHORT_PARK;

/// Idle time, ns, that one run on a submitter costs.
const COST: u64 = SHORT_PARK.as_nanos() as u64;

/// Runs the bucket holds at most.
const BURST: u64 = 4;

/// Idle time earned and not yet spent, on the engine's clock.
#[derive(Debug)]
pub(crate) struct RunCredit {
    /// Credit at `since`, ns.
    credit: u64,
    /// When the last run on a submitter ended (`None`: never).
    since: Option<u64>,
}

impl RunCredit {
    /// A full bucket.
    pub(crate) fn new() -> RunCredit {
        RunCredit {
            credit: BURST * COST,
            since: None,
        }
    }

    fn available(&self, now: u64) -> u64 {
        let earned = self.since.map_or(0, |since| now.saturating_sub(since));
        self.credit.saturating_add(earned).min(BURST * COST)
    }

    /// Whether a submitter may run a message at `now`.
    pub(crate) fn allows(&self, now: u64) -> bool {
        self.available(now) >= COST
    }

    /// A submitter ran a message from `began` to `ended`.
    pub(crate) fn spend(&mut self, began: u64, ended: u64) {
        self.credit = self.available(began).saturating_sub(COST);
        self.since = Some(ended.max(began));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: u64 = 1_000;

    #[test]
    fn a_steady_ten_thousand_a_second_runs_every_message() {
        let mut credit = RunCredit::new();
        for n in 0..10_000 {
            let began = n * 100 * US;
            assert!(credit.allows(began), "message {n}");
            credit.spend(began, began + 6 * US);
        }
    }

    #[test]
    fn a_late_bunch_runs_within_the_burst() {
        let mut credit = RunCredit::new();
        credit.spend(0, 6 * US);
        // 300 us later, three messages are due at once.
        let mut now = 306 * US;
        for n in 0..3 {
            assert!(credit.allows(now), "message {n}");
            credit.spend(now, now + 6 * US);
            now += 6 * US;
        }
    }

    #[test]
    fn back_to_back_messages_run_at_most_once_per_cost() {
        let mut credit = RunCredit::new();
        let (mut now, mut ran) = (0, 0);
        // 10 ms of messages, each 1 us after the last and 1 us long.
        while now < 10_000 * US {
            if credit.allows(now) {
                credit.spend(now, now + US);
                ran += 1;
                now += US;
            }
            now += US;
        }
        // The burst, then one per 50 us of the time between runs.
        assert!(ran <= BURST + 10_000 / 50, "{ran}");
        assert!(ran >= 10_000 / 50 / 2, "{ran}");
    }

    #[test]
    fn time_spent_running_earns_nothing() {
        let mut credit = RunCredit::new();
        let mut now = 0;
        // Messages that take a millisecond each, back to back (a debug
        // build): the bucket empties and stays empty.
        for _ in 0..BURST {
            assert!(credit.allows(now));
            credit.spend(now, now + 1_000 * US);
            now += 1_000 * US;
        }
        assert!(!credit.allows(now));
        assert!(!credit.allows(now + COST - 1));
        assert!(credit.allows(now + COST));
    }
}
