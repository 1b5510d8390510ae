//! Where the engine is in its life (running, draining, abandoning,
//! stopped), as submitters, workers, the timer and shutdown see it.

use crate::sync::{Arc, AtomicU32, Ordering};

use super::worker_shared::WorkerShared;

/// Where the engine is in its life. Only ever moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub(crate) enum Phase {
    /// Taking messages.
    Running = 0,
    /// Intake closed; accepted messages finish normally.
    Draining = 1,
    /// Past the drain deadline: what is left is answered `unavailable`.
    Abandoning = 2,
    /// Threads exit.
    Stopped = 3,
}

/// The engine's phase, shared by submitters, workers, the timer and
/// shutdown.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    phase: AtomicU32,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle {
            phase: AtomicU32::new(Phase::Running as u32),
        }
    }
}

impl Lifecycle {
    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Running,
            1 => Phase::Draining,
            2 => Phase::Abandoning,
            _ => Phase::Stopped,
        }
    }

    /// Moves to `phase` if that is forward.
    pub(crate) fn advance(&self, phase: Phase) {
        self.phase.fetch_max(phase as u32, Ordering::SeqCst);
    }

    /// Closes intake: after this returns, no submitter pushes to any of
    /// `workers_shared` again (see [`WorkerShared::close_intake`]).
    pub(crate) fn close_intake(&self, workers_shared: &[Arc<WorkerShared>]) {
        self.advance(Phase::Draining);
        for worker_shared in workers_shared {
            worker_shared.close_intake();
        }
    }
}
