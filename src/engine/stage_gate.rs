//! The staged topology's hand-over between its two groups of workers, as
//! shutdown sees it.

use crate::sync::{Arc, AtomicUsize, Ordering};

use super::worker_shared::WorkerShared;

/// The staged topology's hand-over from front to back stage, as shutdown
/// sees it: how many front-stage workers still run (a back-stage worker
/// exits only after all of them), and how many messages are between a
/// front worker and a back queue (shutdown is not drained while any are).
/// Checked by `loom-tests/tests/staged_handover.rs`.
#[derive(Debug)]
pub(crate) struct StageGate {
    fronts: AtomicUsize,
    in_transit: AtomicUsize,
}

impl StageGate {
    pub(crate) fn new(fronts: usize) -> StageGate {
        StageGate {
            fronts: AtomicUsize::new(fronts),
            in_transit: AtomicUsize::new(0),
        }
    }

    /// A front-stage worker starts handing a message over.
    pub(crate) fn transit_begins(&self) {
        self.in_transit.fetch_add(1, Ordering::AcqRel);
    }

    /// The hand-over is done: the message is in a back-stage queue.
    pub(crate) fn transit_ends(&self) {
        self.in_transit.fetch_sub(1, Ordering::AcqRel);
    }

    /// Messages being handed over now.
    pub(crate) fn in_transit(&self) -> usize {
        self.in_transit.load(Ordering::Acquire)
    }

    /// A front-stage worker exited; wakes the back stage to notice.
    pub(crate) fn front_exited(&self, backs: &[Arc<WorkerShared>]) {
        self.fronts.fetch_sub(1, Ordering::AcqRel);
        for back in backs {
            back.parker.wake();
        }
    }

    /// Whether a back-stage worker that finds its queue empty once the
    /// engine is stopped may exit: no front worker can feed it any more.
    pub(crate) fn back_may_exit(&self) -> bool {
        self.fronts.load(Ordering::Acquire) == 0
    }
}
