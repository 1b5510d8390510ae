//! Stage respond: the one reply for a message's [`Verdict`], protected as
//! the request was, unless the timer answered first; and the answer to a
//! deferred command when its responder gives it. A [`Replier`] is one
//! worker's: its reply writer and its reply protection.

use crate::error::Code;
use crate::json::RawJson;
use crate::message::{MessageType, SecurityLevel, unix_nanos_now};
use crate::security::{ReplyProtection, ReplyProtector};
use crate::sync::{Arc, Ordering};

use super::super::concurrency::{IdBytes, Ticket};
use super::super::lifecycle::Phase;
use super::super::metrics::Sample;
use super::super::pending::{AnswerInbox, Completion};
use super::super::recovery::{BreakerPermit, is_failure};
use super::super::reply::{ReplyHeader, ReplyWriter};
use super::super::shared::Shared;
use super::super::sink::{Destination, Outcome};
use super::super::worker_shared::WorkerShared;
use super::laps::Laps;
use super::{Stage, Verdict};

/// The message a worker runs, from its start to its reply.
pub(crate) struct Running {
    pub(crate) ticket: Ticket,
    pub(crate) to: Destination,
    /// The wall clock when it started (for the timestamp window and the
    /// history).
    pub(crate) wall_now: i128,
    /// When it was accepted, on the engine's clock.
    pub(crate) accepted_at: u64,
    pub(crate) laps: Laps,
}

/// What the reply needs from the message, once its buffers are gone.
pub(crate) struct Replying {
    pub(crate) id: Option<IdBytes>,
    pub(crate) level: SecurityLevel,
    pub(crate) protection: ReplyProtection,
    pub(crate) kind: MessageType,
    /// The command's handler and its breaker admission, once routed.
    pub(crate) handler: Option<(usize, BreakerPermit)>,
}

/// What a reply to a message of `kind` needs before admission has said
/// how it is protected: plain, at the lowest level.
pub(crate) fn replying_to(id: Option<IdBytes>, kind: MessageType) -> Replying {
    Replying {
        id,
        level: SecurityLevel::Low,
        protection: Default::default(),
        kind,
        handler: None,
    }
}

/// What goes to a message's sink once the worker's books are done.
#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// Nothing now: a deferred command is answered later.
    Nothing,
    /// The outcome without an envelope: an Event without `ack`, an answer
    /// absorbed.
    Silent(Outcome),
    /// The reply the writer wrote last.
    Written(Outcome),
}

/// One worker's respond stage: what writes and protects its replies.
pub(crate) struct Replier {
    index: usize,
    worker_shared: Arc<WorkerShared>,
    writer: ReplyWriter,
    protector: ReplyProtector,
}

impl Replier {
    /// Worker `index`'s, over the engine's `shared` state.
    pub(crate) fn new(index: usize, shared: &Shared, worker_shared: Arc<WorkerShared>) -> Replier {
        Replier {
            index,
            worker_shared,
            writer: ReplyWriter::new(shared.boot),
            protector: ReplyProtector::new(&shared.security),
        }
    }

    /// Stage respond: the one reply, unless the timer answered first.
    pub(crate) fn respond(
        &mut self,
        shared: &Shared,
        running: Running,
        verdict: Verdict,
        replying: Replying,
    ) {
        let Running {
            ticket,
            to,
            wall_now,
            accepted_at,
            mut laps,
        } = running;
        if !self.worker_shared.watch.finish(ticket) {
            // The timer answered `timeout` (or `unavailable`) already.
            shared.metrics.counters(self.index).late_answer();
            shared.report(replying.handler, true);
            let id = replying.id.as_ref().map(IdBytes::as_str);
            let code = if shared.phase() >= Phase::Abandoning {
                Code::Unavailable
            } else {
                Code::Timeout
            };
            self.worker_shared
                .recent
                .push(id, Outcome::Error(code), wall_now);
            if let Verdict::Deferred(Some(call)) = verdict {
                // Answered `timeout` already: whatever the responder says
                // is late.
                call.superseded.store(true, Ordering::Release);
                if call.close() {
                    self.worker_shared.release_deferred();
                }
            }
            laps.record(&shared.metrics, self.index);
            return;
        }
        let id = replying.id.as_ref().map(IdBytes::as_str);
        let counters = shared.metrics.counters(self.index);
        let delivery = match verdict {
            Verdict::Respond(result) => {
                shared.report(replying.handler, false);
                let header = ReplyHeader {
                    to,
                    id: id.unwrap_or_default(),
                    level: replying.level,
                    protection: &replying.protection,
                };
                self.write_response(shared, header, &result, Outcome::Response, wall_now)
            }
            Verdict::Fail(error) => {
                shared.report(replying.handler, is_failure(&error));
                if matches!(replying.kind, MessageType::Response | MessageType::Error) {
                    // Never answer an answer: two engines would loop.
                    counters.unmatched_reply();
                    self.worker_shared
                        .recent
                        .push(id, Outcome::Absorbed, wall_now);
                    Delivery::Silent(Outcome::Absorbed)
                } else {
                    shared.sent_error(self.index, &error, id);
                    let outcome = Outcome::Error(error.code());
                    self.worker_shared.recent.push(id, outcome, wall_now);
                    Delivery::Written(self.writer.encode_error(to.codec, id, &error))
                }
            }
            Verdict::Deferred(call) => {
                if let Some(call) = call {
                    shared.timer.watch(call);
                }
                Delivery::Nothing
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
                    self.write_response(
                        shared,
                        header,
                        &result,
                        Outcome::Delivered(count),
                        wall_now,
                    )
                } else {
                    let outcome = Outcome::Delivered(count);
                    self.worker_shared.recent.push(id, outcome, wall_now);
                    Delivery::Silent(outcome)
                }
            }
            Verdict::Absorbed => {
                self.worker_shared
                    .recent
                    .push(id, Outcome::Absorbed, wall_now);
                Delivery::Silent(Outcome::Absorbed)
            }
            // Handled before `respond`.
            Verdict::Forward(_) => Delivery::Nothing,
        };
        laps.finish(&shared.clock, accepted_at);
        laps.record(&shared.metrics, self.index);
        self.deliver(shared, to, id, delivery);
    }

    /// Hands a message's outcome to its sink: the reply written last, an
    /// outcome without an envelope, or nothing (a deferred command).
    fn deliver(&self, shared: &Shared, to: Destination, id: Option<&str>, delivery: Delivery) {
        match delivery {
            Delivery::Nothing => {}
            Delivery::Silent(outcome) => self.writer.silent(&shared.sinks, to, id, outcome),
            Delivery::Written(outcome) => self.writer.send_written(&shared.sinks, to, id, outcome),
        }
    }

    /// Writes a Response stamped `at` (its history entry first, so that
    /// whoever gets the reply finds it recorded); the Error instead if it
    /// cannot be protected. [`deliver`](Self::deliver) sends it.
    fn write_response(
        &mut self,
        shared: &Shared,
        header: ReplyHeader<'_>,
        result: &RawJson,
        outcome: Outcome,
        at: i128,
    ) -> Delivery {
        let id = Some(header.id);
        let sealed = if ReplyWriter::writes_directly(header.to.codec) {
            self.writer
                .write_response(&mut self.protector, header, result, at)
                .map(|()| None)
        } else {
            // Boxed: the JSON path's result stays small.
            self.writer
                .seal_response(&mut self.protector, header, result, at)
                .map(|message| Some(Box::new(message)))
        };
        match sealed {
            Ok(message) => {
                shared.metrics.counters(self.index).response();
                self.worker_shared.recent.push(id, outcome, at);
                if let Some(message) = message {
                    self.writer.encode(header.to.codec, &message);
                }
                Delivery::Written(outcome)
            }
            Err(error) => {
                shared.sent_error(self.index, &error, id);
                self.worker_shared
                    .recent
                    .push(id, Outcome::Error(error.code()), at);
                Delivery::Written(self.writer.encode_error(header.to.codec, id, &error))
            }
        }
    }

    /// A deferred command's answer came back: protect and send it.
    pub(crate) fn finish_deferred(&mut self, shared: &Shared, completion: Completion, timed: bool) {
        let Completion { call, result } = completion;
        self.worker_shared.release_deferred();
        let counters = shared.metrics.counters(self.index);
        if call.superseded.load(Ordering::Acquire) {
            counters.late_answer();
            return;
        }
        let to = &call.reply_to;
        let now = unix_nanos_now();
        let delivery = match result {
            Ok(result) => {
                shared.report(to.handler, false);
                self.write_response(shared, to.header(), &result, Outcome::Response, now)
            }
            Err(error) => {
                shared.report(to.handler, is_failure(&error));
                shared.sent_error(self.index, &error, Some(&to.id));
                let outcome = Outcome::Error(error.code());
                self.worker_shared.recent.push(Some(&to.id), outcome, now);
                Delivery::Written(self.writer.encode_error(to.to.codec, Some(&to.id), &error))
            }
        };
        if timed {
            let mut sample = Sample::default();
            let now = shared.clock.now();
            sample.set(Stage::Total, now.saturating_sub(to.accepted_at));
            shared.metrics.record(self.index, &sample);
        }
        self.deliver(shared, to.to, Some(&to.id), delivery);
    }
}
