//! What every engine thread shares: sinks, handlers, the live config, the
//! security state, the clock, metrics, and the shutdown phase.

use std::sync::OnceLock;
use std::time::Instant;

use crate::config::Config;
use crate::security::SecurityState;
use crate::sync::{Arc, AtomicU32, Ordering, SwapCell};

use super::mailbox::Mailbox;
use super::metrics::Metrics;
use super::registry::Registry;
use super::sink::SinkTable;
use super::timer::TimerInbox;

/// The engine's monotonic clock: nanoseconds since it started.
#[derive(Debug)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

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
    /// `mailboxes` again (see [`Mailbox::close_intake`]).
    pub(crate) fn close_intake(&self, mailboxes: &[Arc<Mailbox>]) {
        self.advance(Phase::Draining);
        for mailbox in mailboxes {
            mailbox.close_intake();
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) sinks: SinkTable,
    pub(crate) registry: Registry,
    pub(crate) config: SwapCell<Config>,
    pub(crate) security: Arc<SecurityState>,
    pub(crate) clock: Clock,
    pub(crate) metrics: Metrics,
    /// A random number naming this run, in reply ids.
    pub(crate) boot: u32,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) mailboxes: OnceLock<Box<[Arc<Mailbox>]>>,
    pub(crate) timer: TimerInbox,
}

impl Shared {
    pub(crate) fn new(
        registry: Registry,
        config: Config,
        security: Arc<SecurityState>,
        boot: u32,
        workers: usize,
        timer: TimerInbox,
    ) -> Shared {
        Shared {
            sinks: SinkTable::default(),
            registry,
            config: SwapCell::new(Arc::new(config)),
            security,
            clock: Clock::new(),
            // Workers, the timer, and one slot for submitting threads.
            metrics: Metrics::new(workers + 2),
            boot,
            lifecycle: Lifecycle::default(),
            mailboxes: OnceLock::new(),
            timer,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.lifecycle.phase()
    }

    /// Moves to `phase` if that is forward.
    pub(crate) fn advance(&self, phase: Phase) {
        self.lifecycle.advance(phase);
    }

    pub(crate) fn mailboxes(&self) -> &[Arc<Mailbox>] {
        self.mailboxes.get().map_or(&[], |m| m)
    }

    /// The timer's counters slot.
    pub(crate) fn timer_slot(&self) -> usize {
        self.mailboxes().len()
    }

    /// The submitting threads' counters slot.
    pub(crate) fn intake_slot(&self) -> usize {
        self.mailboxes().len() + 1
    }
}
