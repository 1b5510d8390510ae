//! What every engine thread shares: sinks, handlers, the live config, the
//! security state, the clock, metrics, and the shutdown phase.

use std::sync::OnceLock;

use crate::config::{Config, Topology};
use crate::error::Error;
use crate::message::unix_nanos_now;
use crate::security::SecurityState;
use crate::sync::{Arc, AtomicU32, AtomicUsize, Ordering, SwapCell};

use super::errors::ErrorLog;
use super::mailbox::Mailbox;
use super::metrics::Metrics;
use super::outbound::Outbound;
use super::recovery::Admission as BreakerAdmission;
use super::registry::Registry;
use super::sink::SinkTable;
use super::state::RecentIds;
use super::timer::TimerInbox;
use super::worker::Role;

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

/// A random number naming this run (in reply ids).
fn boot_number() -> u32 {
    let mut bytes = [0u8; 4];
    // A failing system RNG only makes reply ids less unique across runs.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u32::from_le_bytes(bytes)
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
    pub(crate) errors: ErrorLog,
    /// What the timer answered (deadlines, shutdown), as worker histories
    /// keep what the workers answered.
    pub(crate) timer_recent: RecentIds,
    /// Commands the engine sent, waiting for their answers.
    pub(crate) outbound: Outbound,
    pub(crate) plan: ThreadPlan,
    /// The hand-over between the stage groups (staged).
    pub(crate) gate: StageGate,
}

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
    pub(crate) fn front_exited(&self, backs: &[Arc<Mailbox>]) {
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

impl Shared {
    /// The shared state of an engine with `threads` (its workers and
    /// bounds come from `threads`).
    pub(crate) fn new(
        registry: Registry,
        config: Config,
        security: Arc<SecurityState>,
        threads: &ThreadPlan,
        errors: ErrorLog,
    ) -> Shared {
        let ThreadPlan {
            max_deferred,
            history,
            ..
        } = *threads;
        let workers = threads.threads();
        Shared {
            sinks: SinkTable::default(),
            registry,
            config: SwapCell::new(Arc::new(config)),
            security,
            clock: Clock::new(),
            // Workers, the timer, and one slot for submitting threads.
            metrics: Metrics::new(workers + 2),
            boot: boot_number(),
            lifecycle: Lifecycle::default(),
            mailboxes: OnceLock::new(),
            timer: TimerInbox::new(workers.saturating_mul(max_deferred).max(64)),
            errors,
            timer_recent: RecentIds::new(history),
            outbound: Outbound::default(),
            plan: *threads,
            gate: StageGate::new(match threads.topology {
                Topology::Sharded => 0,
                Topology::Staged => threads.workers,
            }),
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

    /// Thread `slot` sent `error` in answer to message `correlation_id`:
    /// count it, keep it in the history, run its hooks.
    pub(crate) fn sent_error(&self, slot: usize, error: &Error, correlation_id: Option<&str>) {
        self.metrics.counters(slot).error(error.code());
        self.errors
            .record(slot, error, correlation_id, unix_nanos_now());
    }

    /// Reports a command's outcome to its handler's breaker.
    pub(crate) fn report(&self, handler: Option<(usize, BreakerAdmission)>, failed: bool) {
        if let Some((index, admission)) = handler
            && let Some(entry) = self.registry.command_at(index)
        {
            entry
                .breaker
                .record(entry.spec.breaker_policy(), admission, failed, || {
                    self.clock.now()
                });
        }
    }

    /// The queues submissions go to: every worker's (sharded), the front
    /// stage's (staged).
    pub(crate) fn intake_mailboxes(&self) -> &[Arc<Mailbox>] {
        let all = self.mailboxes();
        all.get(..self.plan.workers.min(all.len())).unwrap_or(all)
    }

    /// The back stage's queues (staged; empty when sharded).
    pub(crate) fn back_mailboxes(&self) -> &[Arc<Mailbox>] {
        match self.plan.topology {
            Topology::Sharded => &[],
            Topology::Staged => self.mailboxes().get(self.plan.workers..).unwrap_or(&[]),
        }
    }

    /// Whether nothing accepted is still unanswered: front queues (or
    /// every queue, sharded), then messages in transit, then back queues,
    /// in the order a message moves.
    pub(crate) fn drained(&self) -> bool {
        self.intake_mailboxes().iter().all(|m| m.is_drained())
            && self.gate.in_transit() == 0
            && self.back_mailboxes().iter().all(|m| m.is_drained())
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
