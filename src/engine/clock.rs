//! The engine's monotonic clock, which deadlines, timeouts, breakers and
//! latency samples count in: the system's, or a [`ManualClock`] a test
//! moves by hand.

use std::sync::Arc;
// Not the loom shim's: a clock reading is not a hand-over between threads
// for loom to model, as the system clock's is not.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A clock that moves only when told to, for tests of what takes time.
///
/// Given to [`EngineBuilder::clock`](super::EngineBuilder::clock), it is
/// the engine's clock: command deadlines and timeouts, circuit breakers'
/// open periods, the retry budget and latencies count its time, not the
/// system's. Unix time (timestamps, token expiry) still comes from the
/// system clock. Clones share one reading.
///
/// ```
/// use std::time::Duration;
/// use mcp_engine::engine::ManualClock;
///
/// let clock = ManualClock::new();
/// let seen_by_the_engine = clock.clone();
/// clock.advance(Duration::from_millis(150));
/// assert_eq!(seen_by_the_engine.now(), Duration::from_millis(150));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::AcqRel);
    }

    /// The time since the clock was made, as far as it was moved.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos())
    }

    fn nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }
}

/// The engine's monotonic clock: nanoseconds since it started.
///
/// Read straight from `CLOCK_MONOTONIC`, the clock `Instant` reads, in
/// whole nanoseconds: `Instant::elapsed` adds a normalising subtraction and
/// 128-bit arithmetic to every read, and a worker reads the clock at least
/// once a message.
#[derive(Debug)]
pub(crate) struct Clock {
    base: u64,
    /// A test's clock instead of the system's.
    manual: Option<ManualClock>,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            base: monotonic_nanos(),
            manual: None,
        }
    }

    /// A clock that reads `manual`.
    pub(crate) fn manual(manual: ManualClock) -> Clock {
        Clock {
            base: 0,
            manual: Some(manual),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        match &self.manual {
            None => monotonic_nanos().saturating_sub(self.base),
            Some(manual) => manual.nanos(),
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (never negative: it counts from boot).
fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the whole call, the
    // only memory the call writes. CLOCK_MONOTONIC exists on every Linux,
    // so the call cannot fail; if it did, `now` would stay zero.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
    }
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    seconds.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Clock;

    #[test]
    fn the_clock_reads_the_monotonic_clock_instant_reads() {
        // Both read CLOCK_MONOTONIC, so the order of the reads bounds the
        // clock's reading on both sides, however slow the machine.
        let before = Instant::now();
        let clock = Clock::new();
        std::thread::sleep(Duration::from_millis(3));
        let first = clock.now();
        let second = clock.now();
        let since_before = before.elapsed();
        assert!(Duration::from_nanos(first) >= Duration::from_millis(3));
        assert!(second >= first);
        assert!(Duration::from_nanos(second) <= since_before);
    }
}
