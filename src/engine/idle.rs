//! How a worker waits for work: spin briefly, then yield, then park until a
//! producer wakes it (the handshake is the [`Parker`]'s, in
//! `concurrency/parker.rs`). An idle engine sleeps; a busy one never
//! parks.

// Public for the loom models and the queue bench (`engine::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use std::time::{Duration, Instant};

use super::concurrency::Parker;
use crate::sync::thread;

/// The spin and yield budget before a worker parks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleStrategy {
    /// Empty polls that spin (a few dozen cycles each) before yielding.
    pub spins: u32,
    /// Empty polls that yield the core before parking, at most: a worker
    /// whose parks are long yields fewer, down to none at a steady low rate.
    pub yields: u32,
}

impl Default for IdleStrategy {
    fn default() -> IdleStrategy {
        // Spinning loses to yielding on two cores (docs/tuning.md), so the
        // spin phase is short and yields carry the wait.
        IdleStrategy {
            spins: 6,
            yields: 8,
        }
    }
}

/// A park shorter than this would have been cheaper spent yielding: it
/// costs the worker a futex wait and two context switches, and its
/// producer a futex wake, some 10 to 20 us together on these cores.
pub(crate) const SHORT_PARK: Duration = Duration::from_micros(50);

/// A worker's wait loop state: counts empty polls since the last work, and
/// learns how many yields are worth making before it parks.
///
/// Yielding pays when work comes back within a few microseconds (a busy
/// engine); at a steady low rate (10k msg/s: a message every 100 us) every
/// yield phase ends in a park anyway, and its yields are wasted CPU. So
/// the yield budget halves after each long park and doubles (up to the
/// strategy's) after each short one: a park that was woken soon after it
/// began says the yields would have found the work.
#[derive(Debug)]
pub(crate) struct Idle {
    strategy: IdleStrategy,
    empty_polls: u32,
    /// Yields before parking now, `0..=strategy.yields`.
    yields: u32,
}

impl Idle {
    /// A fresh wait loop.
    pub(crate) fn new(strategy: IdleStrategy) -> Idle {
        Idle {
            strategy,
            empty_polls: 0,
            yields: strategy.yields,
        }
    }

    /// Work was found: the next wait starts from spinning again.
    pub(crate) fn reset(&mut self) {
        self.empty_polls = 0;
    }

    /// Whether the next [`wait`](Self::wait) parks.
    pub(crate) fn parks_next(&self) -> bool {
        self.empty_polls >= self.strategy.spins.saturating_add(self.yields)
    }

    /// The yields the next wait phase makes before parking.
    #[cfg(test)]
    pub(crate) fn yield_budget(&self) -> u32 {
        self.yields
    }

    /// Nothing was found: spin, yield or park, by how long it has been.
    pub(crate) fn wait(&mut self, parker: &Parker, has_work: impl Fn() -> bool) {
        let spins = self.strategy.spins;
        if self.empty_polls < spins {
            for _ in 0..(1u32 << self.empty_polls.min(6)) {
                std::hint::spin_loop();
            }
        } else if self.empty_polls < spins.saturating_add(self.yields) {
            thread::yield_now();
        } else {
            let parked_at = Instant::now();
            parker.park_unless(has_work);
            self.learn(parked_at.elapsed());
            self.empty_polls = 0;
            return;
        }
        self.empty_polls += 1;
    }

    /// Adapts the yield budget to how long a park lasted.
    pub(crate) fn learn(&mut self, parked_for: Duration) {
        self.yields = if parked_for < SHORT_PARK {
            self.yields
                .saturating_mul(2)
                .max(1)
                .min(self.strategy.yields)
        } else {
            self.yields / 2
        };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn long_parks_drop_the_yields_and_short_ones_bring_them_back() {
        let mut idle = Idle::new(IdleStrategy {
            spins: 2,
            yields: 8,
        });
        assert_eq!(idle.yield_budget(), 8);
        let long = SHORT_PARK * 10;
        let budgets: Vec<u32> = (0..5)
            .map(|_| {
                idle.learn(long);
                idle.yield_budget()
            })
            .collect();
        assert_eq!(budgets, [4, 2, 1, 0, 0]);
        // With no yields left it parks right after spinning.
        idle.reset();
        for _ in 0..2 {
            assert!(!idle.parks_next());
            idle.empty_polls += 1;
        }
        assert!(idle.parks_next());
        let budgets: Vec<u32> = (0..5)
            .map(|_| {
                idle.learn(Duration::ZERO);
                idle.yield_budget()
            })
            .collect();
        assert_eq!(budgets, [1, 2, 4, 8, 8]);
    }

    #[test]
    fn a_parked_worker_is_woken_by_work_and_learns_from_it() {
        // Zero spins and yields: the first wait parks; the producer's wake
        // (or the work already there) ends it.
        let parker = std::sync::Arc::new(Parker::for_current_thread());
        let work = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producer = {
            let parker = std::sync::Arc::clone(&parker);
            let work = std::sync::Arc::clone(&work);
            std::thread::spawn(move || {
                work.store(true, std::sync::atomic::Ordering::SeqCst);
                parker.wake();
            })
        };
        let mut idle = Idle::new(IdleStrategy {
            spins: 0,
            yields: 0,
        });
        while !work.load(std::sync::atomic::Ordering::SeqCst) {
            idle.wait(&parker, || work.load(std::sync::atomic::Ordering::SeqCst));
        }
        assert!(producer.join().is_ok());
        assert_eq!(idle.yield_budget(), 0);
    }
}
