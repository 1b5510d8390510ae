//! A submitter's pass through one worker's intake.
//!
//! A pass enters the intake once for a run of messages bound for the same
//! worker (a connection's frames, a batch from [`Engine::submit_batch`](super::Engine::submit_batch)),
//! so that the run pays the entry and exit, the clock read, the config
//! read, the wake-up's fence and the accepted count once, not per message.
//! A single [`Engine::submit`](super::Engine::submit) is a pass of one.

use crossbeam_utils::Backoff;

use crate::config::Overflow;
use crate::error::Code;
use crate::sync::Arc;

use super::concurrency::Seat;
use super::lifecycle::Phase;
use super::shared::Shared;
use super::worker::Worker;
use super::worker_shared::{Job, Submission, WorkerShared};

/// Inside one worker's intake (see the module docs). Dropping it counts
/// what it queued, wakes the worker for it, and leaves the intake, also
/// when a panic unwinds through it: shutdown waits for every submitter
/// inside to leave. Refusals are answered after the drop, outside.
pub(super) struct Pass<'a> {
    shared: &'a Shared,
    /// The workers' seats, by intake index (sharded topology only).
    seats: &'a [Arc<Seat<Worker>>],
    index: usize,
    worker_shared: &'a WorkerShared,
    /// Counted in the intake's word: false once a re-entry found it closed.
    inside: bool,
    /// Whether the next message may try to run on this thread: nothing
    /// queued by this pass yet, and the last try did not fail.
    may_run_here: bool,
    /// The acceptance time and overflow rule, read at the first push.
    accepting: Option<(u64, Overflow)>,
    /// Messages queued by this pass.
    queued: u64,
    /// Whether messages were queued since the worker was last woken.
    unwoken: bool,
}

impl<'a> Pass<'a> {
    /// Enters the intake of worker `index`; `None` if it is closed (the
    /// engine is shutting down) or there is no such worker.
    pub(super) fn enter(
        shared: &'a Shared,
        seats: &'a [Arc<Seat<Worker>>],
        index: usize,
    ) -> Option<Pass<'a>> {
        let worker_shared = shared.intake_workers().get(index)?;
        if !worker_shared.enter() {
            return None;
        }
        Some(Pass {
            shared,
            seats,
            index,
            worker_shared,
            inside: true,
            may_run_here: true,
            accepting: None,
            queued: 0,
            unwoken: false,
        })
    }

    /// The worker this pass feeds.
    pub(super) fn index(&self) -> usize {
        self.index
    }

    /// Takes one message: runs it on this thread if the worker is idle (see
    /// `Pass::run_here`), or queues it; gives it back with the refusal's
    /// code when it can be neither, for the caller to answer.
    pub(super) fn submit(&mut self, submission: Submission) -> Result<(), (Submission, Code)> {
        if !self.inside {
            return Err((submission, Code::Unavailable));
        }
        let mut submission = submission;
        if self.may_run_here {
            match self.run_here(submission) {
                Ok(()) => {
                    // Running it left the intake: the next message enters
                    // again, or is refused if shutdown closed it meanwhile.
                    self.inside = self.worker_shared.enter();
                    return Ok(());
                }
                Err(back) => {
                    submission = back;
                    self.may_run_here = false;
                }
            }
        }
        self.push(submission)?;
        self.queued += 1;
        // The first message queued wakes the worker at once (it starts on
        // the run while the rest is queued); the others wait for the drop,
        // or for a full queue.
        if self.queued == 1 {
            self.worker_shared.parker.wake();
        } else {
            self.unwoken = true;
        }
        Ok(())
    }

    /// Runs the submission on this thread if its worker is parked with
    /// nothing queued (see `concurrency/seat.rs`) and has idle time saved for it (see
    /// `run_credit.rs`): at low rates a wake-up costs more than most
    /// messages. Called inside the intake, which it leaves once the message
    /// is running; gives the submission back (still inside) when it must be
    /// pushed instead.
    fn run_here(&self, submission: Submission) -> Result<(), Submission> {
        let (shared, index, worker_shared) = (self.shared, self.index, self.worker_shared);
        // The seat first: at full load its worker holds it, and the
        // submission goes to the queue without the other checks.
        let Some(mut worker) = self
            .seats
            .get(index)
            .and_then(|seat| seat.take_if_idle(|| !worker_shared.jobs.is_empty()))
        else {
            return Err(submission);
        };
        if shared.phase() != Phase::Running || !shared.config.load().engine.run_on_submitter {
            return Err(submission);
        }
        let now = shared.clock.now();
        if !worker.may_run_on_submitter(now) {
            return Err(submission);
        }
        shared.metrics.counters(shared.intake_slot()).accepted(1);
        let job = Job {
            submission,
            accepted_at: now,
            staged: None,
        };
        worker.process_on_submitter(shared, job, || worker_shared.leave());
        Ok(())
    }

    /// Queues, waiting for room if overflow is `block`.
    fn push(&mut self, submission: Submission) -> Result<(), (Submission, Code)> {
        let shared = self.shared;
        if shared.phase() != Phase::Running {
            return Err((submission, Code::Unavailable));
        }
        let (accepted_at, overflow) = *self
            .accepting
            .get_or_insert_with(|| (shared.clock.now(), shared.config.load().engine.overflow));
        let mut job = Job {
            submission,
            accepted_at,
            staged: None,
        };
        let backoff = Backoff::new();
        loop {
            match self.worker_shared.jobs.push(job) {
                Ok(()) => return Ok(()),
                Err(back) => job = back,
            }
            // Full: the worker must know of everything queued before this
            // waits for it to make room, or refuses for want of room.
            if self.unwoken {
                self.worker_shared.parker.wake();
                self.unwoken = false;
            }
            if overflow == Overflow::Refuse {
                return Err((job.submission, Code::ResourceExhausted));
            }
            if shared.phase() != Phase::Running {
                return Err((job.submission, Code::Unavailable));
            }
            if backoff.is_completed() {
                std::thread::sleep(std::time::Duration::from_micros(50));
            } else {
                backoff.snooze();
            }
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.queued > 0 {
            let counters = self.shared.metrics.counters(self.shared.intake_slot());
            counters.accepted(self.queued);
        }
        if self.unwoken {
            self.worker_shared.parker.wake();
        }
        if self.inside {
            self.worker_shared.leave();
        }
    }
}
