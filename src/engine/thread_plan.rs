//! The engine's threads, from `[engine]`: how many workers, what each runs
//! of a message, and the bounds of each.

use crate::config::{Config, Topology};

/// What a worker runs of each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Every stage (the sharded topology).
    Whole,
    /// Validate and admit, then hand over to a back-stage worker (staged).
    Front,
    /// Route, authorize, execute and respond, for messages a front-stage
    /// worker admitted (staged).
    Back,
}

/// The engine's threads and per-thread bounds, from `[engine]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ThreadPlan {
    pub(crate) topology: Topology,
    /// Workers per stage group (staged: this many front and as many back).
    pub(crate) workers: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) max_deferred: usize,
    pub(crate) history: usize,
    pub(crate) stack_bytes: usize,
    pub(crate) pin: bool,
}

impl ThreadPlan {
    pub(crate) fn of(config: &Config) -> ThreadPlan {
        let engine = &config.engine;
        let size = |n: u64, default: usize| usize::try_from(n).unwrap_or(default);
        ThreadPlan {
            topology: engine.topology,
            workers: size(engine.workers, 1).max(1),
            queue_capacity: size(engine.queue_capacity, 4096),
            max_deferred: size(engine.max_deferred, 1024),
            history: size(engine.message_history, 1024),
            stack_bytes: size(engine.stack_kib, 256).saturating_mul(1024),
            pin: engine.pin_threads,
        }
    }
}

impl ThreadPlan {
    /// Worker threads in all.
    pub(crate) fn threads(&self) -> usize {
        match self.topology {
            Topology::Sharded => self.workers,
            Topology::Staged => self.workers * 2,
        }
    }

    /// What worker `index` runs.
    pub(crate) fn role(&self, index: usize) -> Role {
        match self.topology {
            Topology::Sharded => Role::Whole,
            Topology::Staged if index < self.workers => Role::Front,
            Topology::Staged => Role::Back,
        }
    }
}
