//! How a worker waits for work: spin briefly, then yield, then park until a
//! producer wakes it. An idle engine sleeps; a busy one never parks.
//!
//! The park/wake-up handshake cannot lose a wake-up: the worker announces
//! `SLEEPING` and then looks at its queue once more; a producer pushes and
//! then looks at the announcement. Both sides put a SeqCst fence between
//! their write and their read, so at least one of them sees the other's:
//! either the worker finds the new work, or the producer finds the worker
//! asleep and unparks it (an unpark before the park makes the park return
//! at once). Checked by `loom-tests/tests/parker.rs`.

use crate::sync::thread::{self, Thread};
use crate::sync::{AtomicU32, Ordering, fence};

const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;

/// The spin and yield budget before a worker parks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleStrategy {
    /// Empty polls that spin (a few dozen cycles each) before yielding.
    pub spins: u32,
    /// Empty polls that yield the core before parking.
    pub yields: u32,
}

impl Default for IdleStrategy {
    fn default() -> IdleStrategy {
        // KNOWN.md: spinning loses to yielding on these two cores, so the
        // spin phase is short and yields carry the wait.
        IdleStrategy {
            spins: 6,
            yields: 8,
        }
    }
}

/// The worker's side of the handshake, shared with its producers.
#[derive(Debug)]
pub struct Parker {
    state: AtomicU32,
    thread: Thread,
}

impl Parker {
    /// A parker for `thread` (the worker).
    pub fn new(thread: Thread) -> Parker {
        Parker {
            state: AtomicU32::new(AWAKE),
            thread,
        }
    }

    /// A parker for the calling thread.
    pub fn for_current_thread() -> Parker {
        Parker::new(thread::current())
    }

    /// Worker: parks unless `has_work` says otherwise after the announcement.
    /// May return spuriously; the caller polls again either way.
    pub fn park_unless(&self, has_work: impl Fn() -> bool) {
        self.state.store(SLEEPING, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !has_work() {
            thread::park();
        }
        self.state.store(AWAKE, Ordering::SeqCst);
    }

    /// Producer: after publishing work, wakes the worker if it sleeps.
    pub fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.state.load(Ordering::SeqCst) == SLEEPING
            && self
                .state
                .compare_exchange(SLEEPING, AWAKE, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.thread.unpark();
        }
    }
}

/// A worker's wait loop state: counts empty polls since the last work.
#[derive(Debug)]
pub struct Idle {
    strategy: IdleStrategy,
    empty_polls: u32,
}

impl Idle {
    /// A fresh wait loop.
    pub fn new(strategy: IdleStrategy) -> Idle {
        Idle {
            strategy,
            empty_polls: 0,
        }
    }

    /// Work was found: the next wait starts from spinning again.
    pub fn reset(&mut self) {
        self.empty_polls = 0;
    }

    /// Whether the next [`wait`](Self::wait) parks.
    pub fn parks_next(&self) -> bool {
        self.empty_polls >= self.strategy.spins.saturating_add(self.strategy.yields)
    }

    /// Nothing was found: spin, yield or park, by how long it has been.
    pub fn wait(&mut self, parker: &Parker, has_work: impl Fn() -> bool) {
        let IdleStrategy { spins, yields } = self.strategy;
        if self.empty_polls < spins {
            for _ in 0..(1u32 << self.empty_polls.min(6)) {
                std::hint::spin_loop();
            }
        } else if self.empty_polls < spins.saturating_add(yields) {
            thread::yield_now();
        } else {
            parker.park_unless(has_work);
            self.empty_polls = 0;
            return;
        }
        self.empty_polls += 1;
    }
}
