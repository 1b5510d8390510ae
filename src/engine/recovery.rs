//! Recovery per handler: retries with exponential backoff and jitter for
//! failures that say they may pass, and a circuit breaker that stops
//! calling a handler that keeps failing.
//!
//! The breaker's state is three atomics shared by every worker; a call
//! reads one of them when the breaker is closed (the common case).

use std::time::Duration;

use crate::error::{Category, Code, Error};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// How a handler's retryable failures are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included (1: no retry).
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles each time.
    pub base_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// No retries (the default).
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// The wait before retry number `retry` (0 for the first), with jitter
    /// from `random` (any u64): between half and all of the exponential
    /// step, so that workers retrying together spread out.
    pub fn delay(&self, retry: u32, random: u64) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let nanos = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
        let half = nanos / 2;
        Duration::from_nanos(half + random % (nanos - half + 1))
    }
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy::NONE
    }
}

/// When a handler's breaker opens, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker (0: never).
    pub failure_threshold: u32,
    /// How long it stays open before one probe call is let through.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> BreakerPolicy {
        BreakerPolicy {
            failure_threshold: 20,
            open_for: Duration::from_secs(1),
        }
    }
}

/// Whether `error` counts against the handler: it failed (panicked, timed
/// out, ran out of something), as opposed to refusing a bad request.
pub(crate) fn is_failure(error: &Error) -> bool {
    error.category() == Category::System && error.code() != Code::ConfigurationError
}

const CLOSED: u32 = 0;
const OPEN: u32 = 1;
const PROBING: u32 = 2;

/// One handler's circuit breaker (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    state: AtomicU32,
    failures: AtomicU32,
    /// When it opened, on the engine's clock.
    opened_at: AtomicU64,
}

/// Whether a call may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BreakerPermit {
    /// Closed: call.
    Call,
    /// The one probe after the open period: call, and report how it went.
    Probe,
}

impl Breaker {
    /// Asks to call the handler at `now`.
    pub(crate) fn admit(&self, policy: &BreakerPolicy, now: u64) -> Result<BreakerPermit, Error> {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Ok(BreakerPermit::Call),
            OPEN => {
                let opened = self.opened_at.load(Ordering::Acquire);
                let open_for = u64::try_from(policy.open_for.as_nanos()).unwrap_or(u64::MAX);
                if now.saturating_sub(opened) >= open_for
                    && self
                        .state
                        .compare_exchange(OPEN, PROBING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    return Ok(BreakerPermit::Probe);
                }
                Err(open())
            }
            _ => Err(open()),
        }
    }

    /// Reports how a call went (`failed`: see [`is_failure`]); `now` reads
    /// the engine's clock, only if the breaker opens (a clock read is 25 ns
    /// here, and nearly every call succeeds).
    pub(crate) fn record(
        &self,
        policy: &BreakerPolicy,
        admission: BreakerPermit,
        failed: bool,
        now: impl FnOnce() -> u64,
    ) {
        if policy.failure_threshold == 0 {
            return;
        }
        match (admission, failed) {
            (BreakerPermit::Probe, false) => {
                self.failures.store(0, Ordering::Release);
                self.state.store(CLOSED, Ordering::Release);
            }
            (BreakerPermit::Probe, true) => {
                self.opened_at.store(now(), Ordering::Release);
                self.state.store(OPEN, Ordering::Release);
            }
            (BreakerPermit::Call, false) => {
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
            }
            (BreakerPermit::Call, true) => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= policy.failure_threshold
                    && self
                        .state
                        .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    self.opened_at.store(now(), Ordering::Release);
                }
            }
        }
    }
}

fn open() -> Error {
    Error::new(Code::Unavailable, "the handler's circuit breaker is open")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_and_stop_at_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(10),
        };
        for random in [0, 1, u64::MAX, 12345] {
            let d0 = policy.delay(0, random);
            assert!(d0 >= Duration::from_millis(1) && d0 <= Duration::from_millis(2));
            let d2 = policy.delay(2, random);
            assert!(d2 >= Duration::from_millis(4) && d2 <= Duration::from_millis(8));
            let d9 = policy.delay(9, random);
            assert!(d9 >= Duration::from_millis(5) && d9 <= Duration::from_millis(10));
        }
        assert_eq!(RetryPolicy::NONE.delay(3, 99), Duration::ZERO);
    }

    #[test]
    fn opens_after_n_failures_probes_once_and_closes_on_success() {
        let policy = BreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_nanos(100),
        };
        let breaker = Breaker::default();
        for _ in 0..2 {
            let a = breaker.admit(&policy, 0).unwrap();
            breaker.record(&policy, a, true, || 0);
        }
        // A success resets the count.
        breaker.record(&policy, BreakerPermit::Call, false, || 0);
        for _ in 0..3 {
            let a = breaker.admit(&policy, 10).unwrap();
            breaker.record(&policy, a, true, || 10);
        }
        // Open: fast-fail until the period ends.
        assert_eq!(
            breaker.admit(&policy, 50).unwrap_err().code(),
            Code::Unavailable
        );
        // One probe; a second caller meanwhile is refused.
        assert_eq!(breaker.admit(&policy, 110), Ok(BreakerPermit::Probe));
        assert!(breaker.admit(&policy, 111).is_err());
        // The probe fails: open again, from then.
        breaker.record(&policy, BreakerPermit::Probe, true, || 120);
        assert!(breaker.admit(&policy, 200).is_err());
        assert_eq!(breaker.admit(&policy, 220), Ok(BreakerPermit::Probe));
        breaker.record(&policy, BreakerPermit::Probe, false, || 221);
        assert_eq!(breaker.admit(&policy, 222), Ok(BreakerPermit::Call));
    }

    #[test]
    fn refusals_are_not_failures() {
        assert!(is_failure(&Error::new(Code::InternalError, "")));
        assert!(is_failure(&Error::new(Code::Timeout, "")));
        assert!(!is_failure(&Error::new(Code::AccessDenied, "")));
        assert!(!is_failure(&Error::new(Code::ValidationFailed, "")));
    }
}
