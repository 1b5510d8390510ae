//! What every engine thread shares: sinks, handlers, the live config, the
//! security state, the clock, metrics, and the shutdown phase.

use super::audit_log::AuditLog;
use crate::audit::AuditEvent;
use std::sync::OnceLock;

use crate::config::{Config, Topology};
use crate::error::Error;
use crate::message::unix_nanos_now;
use crate::security::SecurityState;
use crate::sync::{Arc, SwapCell};

use super::clock::Clock;
use super::error_log::ErrorLog;
use super::lifecycle::{Lifecycle, Phase};
use super::metrics::Metrics;
use super::outbound::Outbound;
use super::recovery::BreakerPermit;
use super::registry::Registry;
use super::sink::SinkTable;
use super::stage_gate::StageGate;
use super::state::RecentIds;
use super::thread_plan::ThreadPlan;
use super::timer_inbox::TimerInbox;
use super::worker_shared::WorkerShared;

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
    pub(crate) workers_shared: OnceLock<Box<[Arc<WorkerShared>]>>,
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
    /// The audit log (`[audit]`), when configured.
    pub(crate) audit: Option<AuditLog>,
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
        clock: Clock,
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
            clock,
            // Workers, the timer, and one slot for submitting threads.
            metrics: Metrics::new(workers + 2),
            boot: boot_number(),
            lifecycle: Lifecycle::default(),
            workers_shared: OnceLock::new(),
            timer: TimerInbox::new(workers.saturating_mul(max_deferred).max(64)),
            errors,
            timer_recent: RecentIds::new(history),
            outbound: Outbound::default(),
            plan: *threads,
            gate: StageGate::new(match threads.topology {
                Topology::Sharded => 0,
                Topology::Staged => threads.workers,
            }),
            audit: None,
        }
    }

    /// Hands `event` to the audit log, if there is one: made only then.
    #[inline]
    pub(crate) fn audit(&self, event: impl FnOnce() -> AuditEvent) {
        if let Some(audit) = &self.audit {
            audit.record(event());
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.lifecycle.phase()
    }

    /// Moves to `phase` if that is forward.
    pub(crate) fn advance(&self, phase: Phase) {
        self.lifecycle.advance(phase);
    }

    pub(crate) fn workers_shared(&self) -> &[Arc<WorkerShared>] {
        self.workers_shared.get().map_or(&[], |m| m)
    }

    /// Thread `slot` sent `error` in answer to message `correlation_id`:
    /// count it, keep it in the history, run its hooks.
    pub(crate) fn sent_error(&self, slot: usize, error: &Error, correlation_id: Option<&str>) {
        self.metrics.counters(slot).error(error.code());
        self.errors
            .record(slot, error, correlation_id, unix_nanos_now());
    }

    /// Reports a command's outcome to its handler's breaker.
    pub(crate) fn report(&self, handler: Option<(usize, BreakerPermit)>, failed: bool) {
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
    pub(crate) fn intake_workers(&self) -> &[Arc<WorkerShared>] {
        let all = self.workers_shared();
        all.get(..self.plan.workers.min(all.len())).unwrap_or(all)
    }

    /// The back stage's queues (staged; empty when sharded).
    pub(crate) fn back_workers(&self) -> &[Arc<WorkerShared>] {
        match self.plan.topology {
            Topology::Sharded => &[],
            Topology::Staged => self
                .workers_shared()
                .get(self.plan.workers..)
                .unwrap_or(&[]),
        }
    }

    /// Whether nothing accepted is still unanswered: front queues (or
    /// every queue, sharded), then messages in transit, then back queues,
    /// in the order a message moves.
    pub(crate) fn drained(&self) -> bool {
        self.intake_workers().iter().all(|m| m.is_drained())
            && self.gate.in_transit() == 0
            && self.back_workers().iter().all(|m| m.is_drained())
    }

    /// The timer's counters slot.
    pub(crate) fn timer_slot(&self) -> usize {
        self.workers_shared().len()
    }

    /// The submitting threads' counters slot.
    pub(crate) fn intake_slot(&self) -> usize {
        self.workers_shared().len() + 1
    }
}
