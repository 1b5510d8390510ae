//! A worker: takes messages from its queue and runs every stage on each
//! (the sharded topology), and finishes deferred commands whose answers
//! come back.
//!
//! The stages are plain functions over the message (`validate`, `admit`,
//! `route`, `authorize`, `execute`, `respond`), called in order by
//! [`Worker::process`]; `stages.rs` holds the ones that need no worker.

use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::codec::{Decoder, Limits};
use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::message::{MessageType, unix_nanos_now};
use crate::security::{Admission, Admitted, Target, renew_token};
use crate::sync::{Arc, Ordering};

use super::handler::{Answer, Caller, Event, Request};
use super::idle::{Idle, IdleStrategy};
use super::mailbox::{Job, Mailbox, Submission};
use super::metrics::{Counters, Stage, StageHistograms};
use super::outbound::PeerReply;
use super::pending::{Completion, Deferral, PendingCall};
use super::recovery::{Admission as BreakerAdmission, is_failure};
use super::registry::{Action, Builtin};
use super::reply::{ReplyHeader, ReplyTo, ReplyWriter, shutting_down};
use super::shared::{Phase, Shared};
use super::sink::{Destination, Outcome};
use super::timer;
use super::watch::{Address, IdBytes};

/// Messages between hand-overs of the latency histograms.
const HAND_OVER_EVERY: u64 = 4096;

/// What a message comes to, before the reply is written.
enum Verdict {
    /// Answer with a Response carrying `result`.
    Respond(RawJson),
    /// Answer with an Error.
    Fail(Error),
    /// A responder will answer (the pending call, if this message made
    /// it: the timer watches it once the worker is done with the message).
    Deferred(Option<Arc<PendingCall>>),
    /// An Event went to this many handlers; `ack`: answer with a Response.
    Delivered { count: u32, ack: bool },
    /// A Response or Error the engine received.
    Absorbed,
}

/// What the reply needs from the message, once its buffers are gone.
struct Replying {
    id: Option<IdBytes>,
    level: crate::message::SecurityLevel,
    protection: crate::security::ReplyProtection,
    kind: MessageType,
    /// The command's handler and its breaker admission, once routed.
    handler: Option<(usize, BreakerAdmission)>,
}

pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    mailbox: Arc<Mailbox>,
    decoder: Decoder,
    admission: Admission,
    writer: ReplyWriter,
    sequence: u64,
    histograms: Box<StageHistograms>,
}

impl Worker {
    pub(crate) fn new(index: usize, shared: Arc<Shared>, mailbox: Arc<Mailbox>) -> Worker {
        let limits = Limits::from_config(&shared.config.load());
        Worker {
            index,
            decoder: Decoder::new(limits),
            admission: Admission::new(Arc::clone(&shared.security)),
            writer: ReplyWriter::new(shared.boot),
            shared,
            mailbox,
            sequence: 0,
            histograms: Box::new(StageHistograms::new()),
        }
    }

    fn counters(&self) -> &Counters {
        self.shared.metrics.counters(self.index)
    }

    /// The worker's loop, until the engine stops.
    pub(crate) fn run(&mut self, idle: IdleStrategy) {
        let mut idle = Idle::new(idle);
        loop {
            if let Some(completion) = self.mailbox.completions.pop() {
                self.finish_deferred(completion);
                idle.reset();
                continue;
            }
            if let Some(job) = self.mailbox.jobs.pop() {
                self.process(job);
                idle.reset();
                continue;
            }
            // Intake closed before `Stopped`, so an empty queue now stays
            // empty: nothing accepted is left behind.
            if self.shared.phase() == Phase::Stopped
                && self.mailbox.jobs.is_empty()
                && self.mailbox.completions.is_empty()
            {
                return;
            }
            self.hand_over_latencies();
            let mailbox = &self.mailbox;
            let shared = &self.shared;
            idle.wait(&mailbox.parker, || {
                mailbox.has_work() || shared.phase() == Phase::Stopped
            });
        }
    }

    fn hand_over_latencies(&mut self) {
        if self.histograms.recorded() == 0 {
            return;
        }
        let fresh = Box::new(StageHistograms::new());
        let full = std::mem::replace(&mut self.histograms, fresh);
        if let Err(back) = self.shared.metrics.hand_over(full) {
            // The reader has not caught up: keep recording into these.
            self.histograms = back;
        }
    }

    /// One message through every stage, and its one reply.
    pub(crate) fn process(&mut self, job: Job) {
        let Job {
            submission,
            accepted_at,
        } = job;
        let Submission {
            sink,
            tag,
            peer,
            codec,
            mut body,
            ..
        } = submission;
        let shared = Arc::clone(&self.shared);
        let to = Destination { sink, tag, codec };
        let started = shared.clock.now();
        self.sequence += 1;
        let ticket = self
            .mailbox
            .watch
            .begin(self.sequence, started, &Address { to, id: None });
        let timed = self.sequence.is_multiple_of(4);
        let mut mark = started;
        let mut lap = |histograms: &mut StageHistograms, stage: Stage| {
            if timed {
                let now = shared.clock.now();
                histograms.record(stage, now.saturating_sub(mark));
                mark = now;
            }
        };

        let config = shared.config.load();
        self.decoder.set_limits(Limits::from_config(&config));
        let wall_now = unix_nanos_now();

        // Stage: validate.
        let (verdict, replying) = match self.decoder.decode(codec, &mut body, wall_now) {
            Err(error) => (
                Verdict::Fail(error),
                Replying {
                    id: None,
                    level: crate::message::SecurityLevel::Low,
                    protection: Default::default(),
                    kind: MessageType::Command,
                    handler: None,
                },
            ),
            Ok(view) => {
                let id = IdBytes::new(view.id());
                lap(&mut self.histograms, Stage::Validate);
                if shared.phase() >= Phase::Abandoning {
                    (Verdict::Fail(shutting_down()), replying_to(id, view.kind()))
                } else {
                    // Stage: admit (token, signature, replay, decryption).
                    match self.admission.admit(&view, peer, wall_now) {
                        Err(error) => (Verdict::Fail(error), replying_to(id, view.kind())),
                        Ok(admitted) => {
                            lap(&mut self.histograms, Stage::Admit);
                            let mut replying = Replying {
                                id,
                                level: admitted.level,
                                protection: admitted.protection.clone(),
                                kind: admitted.kind,
                                handler: None,
                            };
                            let context = Context {
                                shared: &shared,
                                mailbox: &self.mailbox,
                                counters: shared.metrics.counters(self.index),
                                to,
                                peer,
                                id: view.id(),
                                correlation: view.correlation_id(),
                                ack: view.ack(),
                                accepted_at,
                                started,
                            };
                            let verdict = dispatch(
                                &context,
                                &admitted,
                                &mut replying.handler,
                                &mut |stage| lap(&mut self.histograms, stage),
                            );
                            (verdict, replying)
                        }
                    }
                }
            }
        };
        drop(body);

        // Stage: respond. Only if the timer did not answer first.
        if !self.mailbox.watch.finish(ticket) {
            // The timer answered `timeout` (or `unavailable`) already.
            self.counters().late_answer();
            shared.report(replying.handler, true);
            let id = replying.id.as_ref().map(IdBytes::as_str);
            let code = if shared.phase() >= Phase::Abandoning {
                Code::Unavailable
            } else {
                Code::Timeout
            };
            self.mailbox.recent.push(id, Outcome::Error(code), wall_now);
            if let Verdict::Deferred(Some(call)) = verdict {
                // Answered `timeout` already: whatever the responder says
                // is late.
                call.superseded.store(true, Ordering::Release);
                if call.close() {
                    self.mailbox.release_deferred();
                }
            }
            return;
        }
        let id = replying.id.as_ref().map(IdBytes::as_str);
        let counters = shared.metrics.counters(self.index);
        match verdict {
            Verdict::Respond(result) => {
                shared.report(replying.handler, false);
                let header = ReplyHeader {
                    to,
                    id: id.unwrap_or_default(),
                    level: replying.level,
                    protection: &replying.protection,
                };
                self.respond(header, &result, Outcome::Response, wall_now);
            }
            Verdict::Fail(error) => {
                shared.report(replying.handler, is_failure(&error));
                if matches!(replying.kind, MessageType::Response | MessageType::Error) {
                    // Never answer an answer: two engines would loop.
                    counters.unmatched_reply();
                    self.mailbox.recent.push(id, Outcome::Absorbed, wall_now);
                    self.writer.silent(&shared.sinks, to, id, Outcome::Absorbed);
                } else {
                    shared.sent_error(self.index, &error, id);
                    let outcome = Outcome::Error(error.code());
                    self.mailbox.recent.push(id, outcome, wall_now);
                    self.writer.error(&shared.sinks, to, id, &error);
                }
            }
            Verdict::Deferred(call) => {
                if let Some(call) = call {
                    shared.timer.watch(call);
                }
            }
            Verdict::Delivered { count, ack } => {
                counters.event(count);
                if ack {
                    let result =
                        RawJson::from_compact(format!("{{\"delivered\":{count}}}").into_bytes());
                    let header = ReplyHeader {
                        to,
                        id: id.unwrap_or_default(),
                        level: replying.level,
                        protection: &replying.protection,
                    };
                    self.respond(header, &result, Outcome::Delivered(count), wall_now);
                } else {
                    let outcome = Outcome::Delivered(count);
                    self.mailbox.recent.push(id, outcome, wall_now);
                    self.writer.silent(&shared.sinks, to, id, outcome);
                }
            }
            Verdict::Absorbed => {
                self.mailbox.recent.push(id, Outcome::Absorbed, wall_now);
                self.writer.silent(&shared.sinks, to, id, Outcome::Absorbed);
            }
        }
        lap(&mut self.histograms, Stage::Respond);
        if timed {
            let now = shared.clock.now();
            self.histograms
                .record(Stage::Total, now.saturating_sub(accepted_at));
        }
        if self.sequence.is_multiple_of(HAND_OVER_EVERY) {
            self.hand_over_latencies();
        }
    }

    /// Sends a Response (its history entry first, so that whoever gets the
    /// reply finds it recorded); the Error instead if it cannot be
    /// protected.
    fn respond(&mut self, header: ReplyHeader<'_>, result: &RawJson, outcome: Outcome, at: i128) {
        let shared = &*self.shared;
        let id = Some(header.id);
        match self
            .writer
            .seal_response(&mut self.admission, header, result)
        {
            Ok(message) => {
                shared.metrics.counters(self.index).response();
                self.mailbox.recent.push(id, outcome, at);
                self.writer
                    .send(&shared.sinks, header.to, &message, id, outcome);
            }
            Err(error) => {
                shared.sent_error(self.index, &error, id);
                self.mailbox
                    .recent
                    .push(id, Outcome::Error(error.code()), at);
                self.writer.error(&shared.sinks, header.to, id, &error);
            }
        }
    }

    /// A deferred command's answer came back: protect and send it.
    fn finish_deferred(&mut self, completion: Completion) {
        let Completion { call, result } = completion;
        self.mailbox.release_deferred();
        let shared = Arc::clone(&self.shared);
        let counters = shared.metrics.counters(self.index);
        if call.superseded.load(Ordering::Acquire) {
            counters.late_answer();
            return;
        }
        let to = &call.reply_to;
        let now = unix_nanos_now();
        match result {
            Ok(result) => {
                shared.report(to.handler, false);
                self.respond(to.header(), &result, Outcome::Response, now);
            }
            Err(error) => {
                shared.report(to.handler, is_failure(&error));
                shared.sent_error(self.index, &error, Some(&to.id));
                let outcome = Outcome::Error(error.code());
                self.mailbox.recent.push(Some(&to.id), outcome, now);
                self.writer
                    .error(&shared.sinks, to.to, Some(&to.id), &error);
            }
        }
        if self.sequence.is_multiple_of(4) {
            let now = shared.clock.now();
            self.histograms
                .record(Stage::Total, now.saturating_sub(to.accepted_at));
        }
    }

    /// After a panic escaped the loop (an engine bug, or a sink that
    /// panicked): answers the message it held, if nobody did.
    pub(crate) fn recover(shared: &Shared, mailbox: &Mailbox, index: usize) {
        if let Some(address) = mailbox.watch.take_overdue(shared.clock.now(), true) {
            let mut writer = ReplyWriter::new(shared.boot);
            let error = Error::new(Code::InternalError, "the worker failed and was restarted");
            timer::answer(shared, &mut writer, &address, &error);
            let id = address.id.as_ref().map(IdBytes::as_str);
            shared.sent_error(index, &error, id);
        }
    }
}

fn replying_to(id: Option<IdBytes>, kind: MessageType) -> Replying {
    Replying {
        id,
        level: crate::message::SecurityLevel::Low,
        protection: Default::default(),
        kind,
        handler: None,
    }
}

/// What the route and execute stages need to know about the message.
struct Context<'a> {
    shared: &'a Shared,
    mailbox: &'a Arc<Mailbox>,
    counters: &'a Counters,
    to: Destination,
    peer: IpAddr,
    id: &'a str,
    /// The id a Response or Error answers.
    correlation: Option<&'a str>,
    ack: bool,
    accepted_at: u64,
    started: u64,
}

/// Stages route, authorize and execute, by the message's type.
fn dispatch(
    context: &Context<'_>,
    admitted: &Admitted<'_>,
    handler: &mut Option<(usize, BreakerAdmission)>,
    lap: &mut dyn FnMut(Stage),
) -> Verdict {
    match admitted.kind {
        MessageType::Command => {
            let verdict = command(context, admitted, handler, lap);
            lap(Stage::Execute);
            verdict
        }
        MessageType::Event => {
            let verdict = event(context, admitted, lap);
            lap(Stage::Execute);
            verdict
        }
        MessageType::Response | MessageType::Error => {
            let reply = PeerReply {
                kind: admitted.kind,
                payload: RawJson::from_json(admitted.payload()),
            };
            let matched = context
                .correlation
                .is_some_and(|id| context.shared.outbound.complete(id, context.to, reply));
            if !matched {
                context.counters.unmatched_reply();
            }
            Verdict::Absorbed
        }
    }
}

fn caller<'a>(context: &Context<'_>, admitted: &'a Admitted<'_>) -> Caller<'a> {
    Caller {
        token: admitted.token,
        peer: context.peer,
        level: admitted.level,
    }
}

fn command(
    context: &Context<'_>,
    admitted: &Admitted<'_>,
    handler_out: &mut Option<(usize, BreakerAdmission)>,
    lap: &mut dyn FnMut(Stage),
) -> Verdict {
    let shared = context.shared;
    let Some(name) = admitted.name() else {
        return Verdict::Fail(Error::new(
            Code::ValidationFailed,
            "payload needs a string `command`",
        ));
    };
    // Stage: route.
    let (index, entry) = match shared.registry.command_named(name) {
        Ok(found) => found,
        Err(error) => return Verdict::Fail(error),
    };
    // Stage: authorize.
    let authorized = match &entry.action {
        Action::Builtin(builtin) => authorize_builtin(*builtin, admitted),
        Action::Handler(_) => admitted.authorize(entry.target(), context.peer),
    };
    if let Err(error) = authorized {
        return Verdict::Fail(error);
    }
    lap(Stage::Route);

    // Stage: execute.
    let config = shared.config.load();
    let timeout_ms = entry.spec.timeout().unwrap_or(config.timeout_ms);
    let deadline = context
        .accepted_at
        .saturating_add(timeout_ms.saturating_mul(1_000_000));
    context.mailbox.watch.set_deadline(deadline);
    let payload = admitted.payload();
    let handler = match &entry.action {
        Action::Builtin(builtin) => return builtin_result(shared, *builtin, admitted),
        Action::Handler(handler) => handler,
    };
    let breaker = match entry
        .breaker
        .admit(entry.spec.breaker_policy(), shared.clock.now())
    {
        Ok(admission) => admission,
        Err(error) => return Verdict::Fail(error),
    };
    *handler_out = Some((index, breaker));
    let open = || -> Result<Arc<PendingCall>, Error> {
        context.mailbox.reserve_deferred()?;
        let reply_to = ReplyTo {
            to: context.to,
            id: Box::from(context.id),
            level: admitted.level,
            protection: admitted.protection.clone(),
            handler: Some((index, breaker)),
            accepted_at: context.accepted_at,
        };
        Ok(Arc::new(PendingCall::new(
            reply_to,
            deadline,
            Arc::clone(context.mailbox),
        )))
    };
    let retry = entry.spec.retry_policy();
    let mut attempt = 0u32;
    let (answer, taken) = loop {
        let deferral = Deferral::new(&open);
        let request = Request {
            id: context.id,
            command: name,
            args: payload.get("args"),
            resource: admitted.resource(),
            caller: caller(context, admitted),
            deferral: Some(&deferral),
        };
        let returned = catch_unwind(AssertUnwindSafe(|| handler.handle(&request)));
        let answer = match returned {
            Ok(answer) => answer,
            Err(_) => {
                context.counters.panic();
                Err(Error::new(Code::InternalError, "the handler failed"))
            }
        };
        let taken = deferral.into_taken();
        attempt += 1;
        if let Err(error) = &answer
            && taken.is_none()
            && error.is_retryable()
            && attempt < retry.max_attempts
        {
            let delay = retry.delay(attempt - 1, jitter(context.started, attempt));
            let delay_nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
            if shared.clock.now().saturating_add(delay_nanos) < deadline {
                std::thread::sleep(delay);
                continue;
            }
        }
        break (answer, taken);
    };
    match (answer, taken) {
        (Ok(Answer::Deferred), Some(call)) => {
            // The completion (or the timer) reports to the breaker.
            *handler_out = None;
            Verdict::Deferred(Some(call))
        }
        (Ok(Answer::Deferred), None) => Verdict::Fail(Error::new(
            Code::InternalError,
            "the handler deferred without taking its responder",
        )),
        (answer, None) => match answer {
            Ok(Answer::Result(result)) => Verdict::Respond(result),
            Ok(Answer::Deferred) => Verdict::Deferred(None),
            Err(error) => Verdict::Fail(error),
        },
        (answer, Some(call)) => {
            // The handler took a responder and returned an answer too: the
            // first to claim the call answers.
            if call.claim_answer() {
                context.mailbox.release_deferred();
                match answer {
                    Ok(Answer::Result(result)) => Verdict::Respond(result),
                    Ok(Answer::Deferred) => Verdict::Deferred(None),
                    Err(error) => Verdict::Fail(error),
                }
            } else {
                // The responder answered already; its completion is queued
                // and reports to the breaker.
                *handler_out = None;
                Verdict::Deferred(Some(call))
            }
        }
    }
}

/// A well-mixed number for retry jitter (splitmix64 of the message's start
/// time and the attempt): spreads retries without a shared generator.
fn jitter(started: u64, attempt: u32) -> u64 {
    let mut z = started.wrapping_add(u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn authorize_builtin(builtin: Builtin, admitted: &Admitted<'_>) -> Result<(), Error> {
    let allowed = match builtin {
        Builtin::Ping | Builtin::Renew => admitted.token.is_some(),
        Builtin::Metrics => admitted
            .token
            .is_some_and(|token| token.roles.iter().any(|role| &**role == "admin")),
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::new(Code::AccessDenied, "not allowed"))
    }
}

fn builtin_result(shared: &Shared, builtin: Builtin, admitted: &Admitted<'_>) -> Verdict {
    match builtin {
        Builtin::Ping => Verdict::Respond(RawJson::from_compact(b"{\"pong\":true}".to_vec())),
        Builtin::Renew => {
            let Some(token) = admitted.token else {
                return Verdict::Fail(Error::new(Code::AuthenticationFailed, "token missing"));
            };
            let keyring = shared.security.keyring.load();
            match renew_token(
                &keyring,
                token,
                shared.security.token_ttl_secs(),
                unix_nanos_now(),
            ) {
                Ok(renewed) => {
                    let mut out = Vec::with_capacity(renewed.len() + 12);
                    out.extend_from_slice(b"{\"token\":");
                    crate::json::write::write_str(&mut out, &renewed);
                    out.push(b'}');
                    Verdict::Respond(RawJson::from_compact(out))
                }
                Err(error) => Verdict::Fail(error),
            }
        }
        Builtin::Metrics => {
            let depths = shared.mailboxes().iter().map(|m| m.jobs.len()).collect();
            let snapshot = shared.metrics.snapshot(depths);
            Verdict::Respond(RawJson::from_compact(snapshot.to_json().into_bytes()))
        }
    }
}

fn event(context: &Context<'_>, admitted: &Admitted<'_>, lap: &mut dyn FnMut(Stage)) -> Verdict {
    let Some(name) = admitted.name() else {
        return Verdict::Fail(Error::new(
            Code::ValidationFailed,
            "payload needs a string `event`",
        ));
    };
    if let Err(error) = admitted.authorize(Target::of_name(name), context.peer) {
        return Verdict::Fail(error);
    }
    lap(Stage::Route);
    let event = Event {
        id: context.id,
        name,
        data: admitted.payload().get("data"),
        caller: caller(context, admitted),
    };
    let mut count = 0u32;
    for subscriber in context.shared.registry.subscribers(name) {
        match catch_unwind(AssertUnwindSafe(|| subscriber.handle(&event))) {
            Ok(Ok(())) => count += 1,
            Ok(Err(_)) => {}
            Err(_) => context.counters.panic(),
        }
    }
    Verdict::Delivered {
        count,
        ack: context.ack,
    }
}
