//! The engine's monotonic clock, which deadlines, timeouts, breakers and
//! latency samples count in.

/// The engine's monotonic clock: nanoseconds since it started.
///
/// Read straight from `CLOCK_MONOTONIC`, the clock `Instant` reads, in
/// whole nanoseconds: `Instant::elapsed` adds a normalising subtraction and
/// 128-bit arithmetic to every read, and a worker reads the clock at least
/// once a message.
#[derive(Debug)]
pub(crate) struct Clock {
    base: u64,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            base: monotonic_nanos(),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        monotonic_nanos().saturating_sub(self.base)
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
