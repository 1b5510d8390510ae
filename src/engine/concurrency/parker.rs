//! [`Parker`]: a worker parks, a producer wakes it, and no wake-up is lost.
//!
//! The park/wake-up handshake cannot lose a wake-up: the worker announces
//! `SLEEPING` and then looks at its queue once more; a producer pushes and
//! then looks at the announcement. Both sides put a SeqCst fence between
//! their write and their read, so at least one of them sees the other's:
//! either the worker finds the new work, or the producer finds the worker
//! asleep and unparks it (an unpark before the park makes the park return
//! at once). Checked by `loom-tests/tests/parker.rs`.

// Public for the loom models (`engine::test_support`, feature
// test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use crate::sync::thread::{self, Thread};
use crate::sync::{AtomicU32, Ordering, fence};

const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;

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
    #[cfg(any(test, feature = "test-support"))]
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
