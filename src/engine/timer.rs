//! The timer thread: answers `timeout` for deferred commands whose deadline
//! passed and for handlers that overrun theirs on a worker, and at shutdown
//! answers `unavailable` for what is left.
//!
//! It wakes every tick (a twentieth of the shortest timeout, 1 to 10 ms),
//! so a deadline is answered within one tick of passing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::error::{Code, Error};
use crate::message::unix_nanos_now;
use crate::sync::Arc;

use super::concurrency::Address;
use super::lifecycle::Phase;
use super::pending::PendingCall;
use super::reply::{ReplyWriter, shutting_down};
use super::shared::Shared;
use super::sink::Outcome;

struct Due {
    deadline: u64,
    sequence: u64,
    call: Arc<PendingCall>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        (self.deadline, self.sequence) == (other.deadline, other.sequence)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Due) -> std::cmp::Ordering {
        (self.deadline, self.sequence).cmp(&(other.deadline, other.sequence))
    }
}

/// The tick for the engine's timeouts.
pub(crate) fn tick_for(timeout_ms: u64) -> Duration {
    Duration::from_micros((timeout_ms * 50).clamp(1_000, 10_000))
}

pub(crate) fn run(shared: &Shared) {
    let mut due: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut sequence = 0u64;
    let mut writer = ReplyWriter::new(shared.boot);
    let slot = shared.timer_slot();
    loop {
        while let Some(call) = shared.timer.calls.pop() {
            sequence += 1;
            due.push(Reverse(Due {
                deadline: call.deadline,
                sequence,
                call,
            }));
        }
        let phase = shared.phase();
        let now = shared.clock.now();
        let abandoning = phase >= Phase::Abandoning;

        // Deferred commands.
        while let Some(Reverse(first)) = due.peek() {
            if first.deadline > now && !abandoning && first.call.is_open() {
                break;
            }
            let Some(Reverse(Due { call, .. })) = due.pop() else {
                break;
            };
            if call.close() {
                let error = if first_is_timeout(abandoning, call.deadline, now) {
                    Error::new(Code::Timeout, "the command did not answer in time")
                } else {
                    shutting_down()
                };
                let reply_to = &call.reply_to;
                writer.error(&shared.sinks, reply_to.to, Some(&reply_to.id), &error);
                shared.sent_error(slot, &error, Some(&reply_to.id));
                shared.timer_recent.push(
                    Some(&reply_to.id),
                    Outcome::Error(error.code()),
                    unix_nanos_now(),
                );
                shared.report(reply_to.handler, true);
                call.worker_shared.release_deferred();
            }
        }

        // Commands the engine sent.
        shared.outbound.expire(now, abandoning);

        // Handlers running past their deadline on a worker.
        for worker_shared in shared.workers_shared() {
            if let Some(address) = worker_shared.watch.take_overdue(now, abandoning) {
                let error = if abandoning {
                    shutting_down()
                } else {
                    Error::new(Code::Timeout, "the command did not answer in time")
                };
                answer(shared, &mut writer, &address, &error);
                let id = address.id.as_ref().map(|id| id.as_str());
                shared.sent_error(slot, &error, id);
                shared
                    .timer_recent
                    .push(id, Outcome::Error(error.code()), unix_nanos_now());
            }
        }

        if phase == Phase::Stopped && due.is_empty() && shared.timer.calls.is_empty() {
            return;
        }
        let timeout_ms = shared.config.load().timeout_ms;
        std::thread::park_timeout(tick_for(timeout_ms));
    }
}

fn first_is_timeout(abandoning: bool, deadline: u64, now: u64) -> bool {
    !abandoning || deadline <= now
}

/// Answers `error` to the message at `address`.
pub(crate) fn answer(shared: &Shared, writer: &mut ReplyWriter, address: &Address, error: &Error) {
    let id = address.id.as_ref().map(|id| id.as_str());
    writer.error(&shared.sinks, address.to, id, error);
}
