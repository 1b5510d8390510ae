//! A worker: takes messages from its queue and runs every stage on each
//! (the sharded topology), and finishes deferred commands whose answers
//! come back.
//!
//! The stages are the pipeline's (`pipeline/`), called in order by
//! [`Worker::process`]; the worker keeps the loop, the hand-over to the
//! back stage (staged) and the recovery from a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::Config;
use crate::codec::{Decoder, Limits};
use crate::error::{Code, Error};
use crate::json::{MAX_VALUE_DEPTH, Parser, TapeLease};
use crate::message::{MessageType, SecurityLevel};
use crate::prefetch::prefetch;
use crate::security::Admission;
use crate::sync::{Arc, CellCache};

use super::audit_log::{audited, refusal};
use super::concurrency::Seat;
use super::concurrency::{Address, IdBytes};
use super::idle::{Idle, IdleStrategy};
use super::lifecycle::Phase;
use super::load_shedding::{self, Shedding};
use super::metrics::{Counters, TIMED_EVERY};
use super::pipeline::{
    self, Context, Laps, Replier, Replying, Running, Stage, Verdict, replying_to,
};
use super::reply::{ReplyWriter, shutting_down};
use super::run_credit::RunCredit;
use super::shared::Shared;
use super::sink::Destination;
use super::staged::{Staged, StagedView};
use super::thread_plan::Role;
use super::timer;
use super::wall_clock::WallClock;
use super::worker_shared::{Job, Submission, WorkerShared};

pub(crate) struct Worker {
    index: usize,
    role: Role,
    shared: Arc<Shared>,
    worker_shared: Arc<WorkerShared>,
    /// A back-stage worker's copy of a payload that is not plain, parsed
    /// there.
    payload_text: Vec<u8>,
    payload_parser: Parser,
    payload_tape: Vec<simd_json::Node<'static>>,
    decoder: Decoder,
    admission: Admission,
    /// Load shedding's marks over this worker's queue.
    shedding: Shedding,
    replier: Replier,
    sequence: u64,
    /// What submitters may still run here.
    run_credit: RunCredit,
    wall_clock: WallClock,
    /// The engine's config, cached: read for every message.
    config: CellCache<Config>,
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        role: Role,
        shared: Arc<Shared>,
        worker_shared: Arc<WorkerShared>,
    ) -> Worker {
        let mut config = shared.config.cache();
        let limits = Limits::from_config(config.load());
        Worker {
            index,
            role,
            payload_text: Vec::new(),
            payload_parser: Parser::new(MAX_VALUE_DEPTH),
            payload_tape: Vec::new(),
            decoder: Decoder::new(limits),
            admission: Admission::new(Arc::clone(&shared.security)),
            shedding: Shedding::new(
                worker_shared.jobs.capacity(),
                config.load().engine.shed_at_percent,
            ),
            replier: Replier::new(index, &shared, Arc::clone(&worker_shared)),
            shared,
            worker_shared,
            sequence: 0,
            run_credit: RunCredit::new(),
            wall_clock: WallClock::default(),
            config,
        }
    }

    fn counters(&self) -> &Counters {
        self.shared.metrics.counters(self.index)
    }

    /// The worker thread's loop, until the engine stops. It holds the seat
    /// except while parked, when a submitter may run messages in it.
    pub(crate) fn run(seat: &Seat<Worker>, idle: IdleStrategy) {
        let mut idle = Idle::new(idle);
        let mut worker = seat.take();
        // Kept while the seat is let go (a fresh worker after a panic on a
        // submitter shares them too).
        let (worker_shared, shared) = (
            Arc::clone(&worker.worker_shared),
            Arc::clone(&worker.shared),
        );
        loop {
            if let Some(completion) = worker.worker_shared.completions.pop() {
                let timed = worker.sequence.is_multiple_of(TIMED_EVERY);
                worker.replier.finish_deferred(&shared, completion, timed);
                idle.reset();
                continue;
            }
            if let Some(job) = worker.worker_shared.jobs.pop() {
                // SAFETY: this thread holds the seat, and only the seat's
                // holder pops its worker's queue of jobs (here; a submitter holding
                // the seat runs its own message and pops nothing).
                #[allow(unsafe_code)]
                unsafe {
                    worker
                        .worker_shared
                        .jobs
                        .peek_with(|next| prefetch(&next.submission.body));
                }
                worker.process(&shared, job, || {});
                idle.reset();
                continue;
            }
            // Intake closed before `Stopped`, so an empty queue now stays
            // empty (for a back-stage worker: once every front-stage worker,
            // which feeds it, has exited): nothing accepted is left behind.
            // A submitter still running a message here holds the seat, so
            // this worker got it back only after that message ended.
            if worker.shared.phase() == Phase::Stopped
                && (worker.role != Role::Back || worker.shared.gate.back_may_exit())
                && worker.worker_shared.jobs.is_empty()
                && worker.worker_shared.completions.is_empty()
            {
                return;
            }
            if idle.parks_next() {
                drop(worker);
                idle.wait(&worker_shared.parker, || wakes_up(&worker_shared, &shared));
                worker = seat.take();
            } else {
                idle.wait(&worker_shared.parker, || wakes_up(&worker_shared, &shared));
            }
        }
    }

    /// One message through the worker's stages, and its one reply (or its
    /// hand-over to the back stage). `begun` runs once the watch counts the
    /// message as running (a submitter running it lets go of the intake
    /// then: shutdown waits for the message from there on through the
    /// watch, and the timer can answer it if it overruns).
    ///
    /// `shared` is the engine's state this worker was made with, borrowed
    /// from the caller's own handle: cloning the worker's `Arc` for each
    /// message wrote its reference count, one cache line for all workers.
    // Out of line, so that profiles (and callgrind's --toggle-collect)
    // find one message's work under one name.
    #[inline(never)]
    pub(crate) fn process(&mut self, shared: &Shared, job: Job, begun: impl FnOnce()) {
        debug_assert!(std::ptr::eq(shared, &*self.shared));
        let Job {
            submission,
            accepted_at,
            staged,
        } = job;
        if let Some(staged) = staged {
            return self.process_staged(shared, submission, accepted_at, *staged, begun);
        }
        let Submission {
            sink,
            tag,
            peer,
            key,
            codec,
            body,
        } = submission;
        let to = Destination { sink, tag, codec };
        let started = shared.clock.now();
        self.sequence += 1;
        let ticket =
            self.worker_shared
                .watch
                .begin(self.sequence, started, &Address { to, id: None });
        begun();
        let mut laps = Laps::new(self.sequence, started);
        let config = self.config.load();
        let timeout_ms = config.timeout_ms;
        let shed_at_percent = config.engine.shed_at_percent;
        self.decoder.set_limits(Limits::from_config(config));
        let wall_now = self.wall_clock.at(started);

        let mut undecoded = false;
        let (verdict, mut replying) =
            match pipeline::validate(&mut self.decoder, codec, &body, wall_now) {
                Err(error) => {
                    undecoded = true;
                    (
                        Verdict::Fail(error),
                        Replying {
                            // Named below, once the decoder is free again.
                            id: None,
                            level: crate::message::SecurityLevel::Low,
                            protection: Default::default(),
                            kind: MessageType::Command,
                            handler: None,
                        },
                    )
                }
                Ok(view) => {
                    let id = IdBytes::new(view.id());
                    if let Some(id) = &id {
                        // A timeout from here on names the message.
                        self.worker_shared.watch.set_id(id);
                    }
                    laps.lap(&shared.clock, Stage::Validate);
                    let level = view.security().security_level;
                    if shared.phase() >= Phase::Abandoning {
                        (Verdict::Fail(shutting_down()), replying_to(id, view.kind()))
                    } else if level < SecurityLevel::Critical
                        && self
                            .shedding
                            .sheds(level, &self.worker_shared.jobs, shed_at_percent)
                    {
                        shared.metrics.counters(self.index).shed(level);
                        (
                            Verdict::Fail(load_shedding::shed(level)),
                            replying_to(id, view.kind()),
                        )
                    } else {
                        let mut principal = None;
                        match pipeline::admit(
                            &mut self.admission,
                            &view,
                            peer,
                            wall_now,
                            &mut principal,
                        ) {
                            Err(error) => {
                                if audited(&error) {
                                    shared.audit(|| {
                                        refusal(&error, &view, principal, peer, wall_now)
                                    });
                                }
                                (Verdict::Fail(error), replying_to(id, view.kind()))
                            }
                            Ok(admitted) if self.role == Role::Front => {
                                laps.lap(&shared.clock, Stage::Admit);
                                let staged = Staged {
                                    admitted: admitted.to_owned_parts(),
                                    id: Box::from(view.id()),
                                    correlation: view.correlation_id().map(Box::from),
                                    ack: view.ack(),
                                };
                                (
                                    Verdict::Forward(Box::new(staged)),
                                    replying_to(id, view.kind()),
                                )
                            }
                            Ok(admitted) => {
                                laps.lap(&shared.clock, Stage::Admit);
                                let mut replying = Replying {
                                    id,
                                    level: admitted.level,
                                    protection: admitted.protection.clone(),
                                    kind: admitted.kind,
                                    handler: None,
                                };
                                let context = Context {
                                    shared,
                                    worker_shared: &self.worker_shared,
                                    counters: shared.metrics.counters(self.index),
                                    to,
                                    peer,
                                    id: view.id(),
                                    correlation: view.correlation_id(),
                                    ack: view.ack(),
                                    accepted_at,
                                    started,
                                    timeout_ms,
                                };
                                let verdict = pipeline::route(
                                    &context,
                                    &admitted,
                                    &mut replying.handler,
                                    &mut |stage| laps.lap(&shared.clock, stage),
                                );
                                (verdict, replying)
                            }
                        }
                    }
                }
            };
        if undecoded {
            // A body refused for an envelope rule may still say which
            // message it is: its Error names it (docs/protocol.md section 7).
            replying.id = (pipeline::id_of_refused(&mut self.decoder, codec, &body).as_deref())
                .and_then(IdBytes::new);
        }
        drop(body);
        if let Verdict::Forward(staged) = verdict {
            // Before the back stage can answer it.
            laps.record(&shared.metrics, self.index);
            // Finished here before the back stage sees it, so that the
            // timer (at shutdown) and the back stage cannot both answer.
            shared.gate.transit_begins();
            if self.worker_shared.watch.finish(ticket) {
                let submission = Submission {
                    sink,
                    tag,
                    peer,
                    key,
                    codec,
                    body: Vec::new(),
                };
                self.forward(submission, accepted_at, staged);
            } else {
                self.counters().late_answer();
            }
            shared.gate.transit_ends();
            return;
        }
        let running = Running {
            ticket,
            to,
            wall_now,
            accepted_at,
            laps,
        };
        self.replier.respond(shared, running, verdict, replying);
    }

    /// Front stage: hands an admitted message to its back-stage worker
    /// (chosen by key, so a connection's order holds), waiting for room.
    fn forward(&mut self, submission: Submission, accepted_at: u64, staged: Box<Staged>) {
        let backs = self.shared.back_workers();
        let Some(back) = backs.get((submission.key % backs.len().max(1) as u64) as usize) else {
            return;
        };
        let mut job = Job {
            submission,
            accepted_at,
            staged: Some(staged),
        };
        loop {
            match back.push(job) {
                Ok(()) => return,
                Err(returned) => {
                    job = returned;
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Back stage: route, authorize, execute and respond for a message a
    /// front-stage worker admitted.
    fn process_staged(
        &mut self,
        shared: &Shared,
        submission: Submission,
        accepted_at: u64,
        staged: Staged,
        begun: impl FnOnce(),
    ) {
        let Submission {
            sink,
            tag,
            peer,
            codec,
            ..
        } = submission;
        let to = Destination { sink, tag, codec };
        let started = shared.clock.now();
        self.sequence += 1;
        let id = IdBytes::new(&staged.id);
        let ticket = self
            .worker_shared
            .watch
            .begin(self.sequence, started, &Address { to, id });
        begun();
        let mut laps = Laps::new(self.sequence, started);
        let wall_now = self.wall_clock.at(started);
        let mut replying = Replying {
            id,
            level: staged.admitted.level,
            protection: staged.admitted.protection.clone(),
            kind: staged.admitted.kind,
            handler: None,
        };
        let verdict = if shared.phase() >= Phase::Abandoning {
            Verdict::Fail(shutting_down())
        } else {
            // The payload crossed as text; read it here.
            let mut lease = TapeLease::take(&mut self.payload_tape);
            match self.payload_parser.parse_text(
                staged.admitted.payload.as_bytes(),
                &mut self.payload_text,
                &mut lease.tape,
            ) {
                Err(_) => Verdict::Fail(Error::new(
                    Code::InternalError,
                    "a staged payload did not parse",
                )),
                Ok(()) => {
                    let view = StagedView {
                        admitted: &staged.admitted,
                        payload: lease.value(0).unwrap_or(crate::json::JsonRef::NULL),
                    };
                    let context = Context {
                        shared,
                        worker_shared: &self.worker_shared,
                        counters: shared.metrics.counters(self.index),
                        to,
                        peer,
                        id: &staged.id,
                        correlation: staged.correlation.as_deref(),
                        ack: staged.ack,
                        accepted_at,
                        started,
                        timeout_ms: self.config.load().timeout_ms,
                    };
                    pipeline::route(&context, &view, &mut replying.handler, &mut |stage| {
                        laps.lap(&shared.clock, stage)
                    })
                }
            }
        };
        let running = Running {
            ticket,
            to,
            wall_now,
            accepted_at,
            laps,
        };
        self.replier.respond(shared, running, verdict, replying);
    }

    /// Whether a submitter holding the seat at `now` should run its
    /// message itself (see `run_credit.rs`).
    pub(crate) fn may_run_on_submitter(&self, now: u64) -> bool {
        self.run_credit.allows(now)
    }

    /// A submitter holding the seat (see `concurrency/seat.rs`) runs `job` on its own
    /// thread. `leave_intake` runs once the watch counts the message (at the
    /// latest when this returns). A panic that escapes the stages (an
    /// engine bug, or a sink that panicked) is answered as on the worker's
    /// thread, and the seat gets a fresh worker.
    pub(crate) fn process_on_submitter(
        &mut self,
        shared: &Shared,
        job: Job,
        leave_intake: impl FnOnce(),
    ) {
        let began = job.accepted_at;
        let mut leave_intake = Some(leave_intake);
        let finished = catch_unwind(AssertUnwindSafe(|| {
            self.process(shared, job, || {
                if let Some(leave) = leave_intake.take() {
                    leave();
                }
            });
        }));
        if let Some(leave) = leave_intake.take() {
            leave();
        }
        if finished.is_err() {
            // A sink that panics again must not reach the submitter either.
            let _ = catch_unwind(AssertUnwindSafe(|| self.renew_after_panic()));
        }
        // Wall-clock time, not the thread's CPU time: the thread CPU clock
        // is a system call (0.4 us here), this is not, and wall-clock time
        // is at least the CPU time, so the figure errs high.
        let ended = shared.clock.now();
        self.run_credit.spend(began, ended);
        self.counters()
            .ran_on_submitter(ended.saturating_sub(began));
    }

    /// After a panic escaped the stages (an engine bug, or a sink that
    /// panicked), on the worker's thread or a submitter's: counts it, gives
    /// the seat fresh state, and answers the message that was running, if
    /// nobody did.
    pub(crate) fn renew_after_panic(&mut self) {
        let (index, role) = (self.index, self.role);
        let shared = Arc::clone(&self.shared);
        let worker_shared = Arc::clone(&self.worker_shared);
        shared.metrics.counters(index).panic();
        shared.metrics.restarted();
        *self = Worker::new(index, role, Arc::clone(&shared), Arc::clone(&worker_shared));
        Worker::recover(&shared, &worker_shared, index);
    }

    /// Answers the message the worker held when a panic escaped, if nobody
    /// did.
    fn recover(shared: &Shared, worker_shared: &WorkerShared, index: usize) {
        if let Some(address) = worker_shared.watch.take_overdue(shared.clock.now(), true) {
            let mut writer = ReplyWriter::new(shared.boot);
            let error = Error::new(Code::InternalError, "the worker failed and was restarted");
            timer::answer(shared, &mut writer, &address, &error);
            let id = address.id.as_ref().map(IdBytes::as_str);
            shared.sent_error(index, &error, id);
        }
    }
}

/// Whether a waiting worker has something to do: work queued, or the
/// engine stopping.
fn wakes_up(worker_shared: &WorkerShared, shared: &Shared) -> bool {
    worker_shared.has_work() || shared.phase() == Phase::Stopped
}
