//! [`WorkerShared`]: the half of a worker that other threads reach. Its
//! queues (submitters push messages, responders push completions) and the
//! parker that wakes it when either arrives; the watch over the message it
//! runs (the timer answers an overrun); its recent outcomes; and its
//! intake gate, which shutdown closes. The worker's own state is
//! [`Worker`](super::worker::Worker).

use std::net::IpAddr;

use crate::codec::Codec;
use crate::error::{Code, Error};
use crate::message::Message;
use crate::sync::thread::Thread;
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering};

use super::concurrency::CallWatch;
use super::concurrency::Parker;
use super::concurrency::Ring;
use super::pending::{AnswerInbox, Completion};
use super::sink::SinkId;
use super::staged::Staged;
use super::state::RecentIds;

/// The intake word's closed bit.
const CLOSED: u64 = 1 << 63;

/// A message handed to the engine: one frame body and where its reply goes.
#[derive(Debug)]
pub struct Submission {
    /// The sink that gets the reply.
    pub sink: SinkId,
    /// A number of the caller's choosing, handed back with the reply.
    pub tag: u64,
    /// The client's address (for IP rules).
    pub peer: IpAddr,
    /// Messages with the same key go to the same worker, in order (a
    /// connection's number, say).
    pub key: u64,
    /// The body's encoding.
    pub codec: Codec,
    /// The frame body (decoded in place: the engine owns it now).
    pub body: Vec<u8>,
}

impl Submission {
    /// A submission of `message`, encoded as JSON: to `sink`, tagged `tag`,
    /// from `peer`, in order with the other messages of `key`.
    pub fn message(
        sink: SinkId,
        tag: u64,
        peer: IpAddr,
        key: u64,
        message: &Message,
    ) -> Submission {
        let mut body = Vec::new();
        crate::codec::json::encode(message, &mut body);
        Submission {
            sink,
            tag,
            peer,
            key,
            codec: Codec::Json,
            body,
        }
    }
}

/// A submission as it waits in a worker's queue.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) submission: Submission,
    /// When it was accepted, on the engine's clock.
    pub(crate) accepted_at: u64,
    /// For a back-stage worker: the message as the front stage admitted it
    /// (the submission's body is then empty).
    pub(crate) staged: Option<Box<Staged>>,
}

/// What other threads reach of one worker (see the module docs).
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) jobs: Ring<Job>,
    pub(crate) completions: Ring<Completion>,
    pub(crate) parker: Parker,
    /// Deferred commands not yet finished; bounded by `completions`'
    /// capacity, so a completion always finds room.
    pub(crate) deferred: AtomicUsize,
    pub(crate) watch: CallWatch,
    /// Recent message ids and outcomes.
    pub(crate) recent: RecentIds,
    /// `CLOSED` once shutdown closed intake, plus the number of submitters
    /// inside `enter`..`leave`. One atomic for both, so a submitter's entry
    /// and the closing are ordered by the variable's own modification order:
    /// a submitter either counts itself before the close (and shutdown
    /// waits for it) or sees the close and refuses.
    intake: AtomicU64,
    /// The thread closing intake, parked until the last submitter inside
    /// leaves and wakes it.
    closer: Mutex<Option<Thread>>,
}

impl WorkerShared {
    pub(crate) fn new(
        queue_capacity: usize,
        max_deferred: usize,
        history: usize,
        worker: Thread,
    ) -> WorkerShared {
        WorkerShared {
            jobs: Ring::new(queue_capacity),
            completions: Ring::new(max_deferred),
            parker: Parker::new(worker),
            deferred: AtomicUsize::new(0),
            watch: CallWatch::default(),
            recent: RecentIds::new(history),
            intake: AtomicU64::new(0),
            closer: Mutex::new(None),
        }
    }

    /// Whether the worker has anything to do.
    pub(crate) fn has_work(&self) -> bool {
        !self.jobs.is_empty() || !self.completions.is_empty()
    }

    /// A submitter wants to push: false (and nothing to undo) if intake is
    /// closed; otherwise it must call [`leave`](Self::leave) after pushing.
    pub(crate) fn enter(&self) -> bool {
        let before = self.intake.fetch_add(1, Ordering::AcqRel);
        if before & CLOSED != 0 {
            // Counted for a moment all the same: the closer may be waiting
            // for this count to go.
            self.leave();
            return false;
        }
        true
    }

    /// The submitter is done pushing (or gave up).
    pub(crate) fn leave(&self) {
        let before = self.intake.fetch_sub(1, Ordering::AcqRel);
        // The last one out after the close wakes the closer. It read the
        // closing RMW's value or a later one, so it also sees the closer's
        // handle, stored before that RMW.
        if before == CLOSED | 1
            && let Some(closer) = self.closer.lock().as_ref()
        {
            closer.unpark();
        }
    }

    /// Closes intake and waits, parked, for the submitters inside to
    /// leave; after this returns nothing is pushed here again.
    pub(crate) fn close_intake(&self) {
        *self.closer.lock() = Some(crate::sync::thread::current());
        // Each turn is a read-modify-write: it reads the latest count,
        // where a plain load could keep returning an older one. A park
        // may return early (an unpark meant for an earlier wait): the
        // count is read again.
        while self.intake.fetch_or(CLOSED, Ordering::AcqRel) & !CLOSED != 0 {
            crate::sync::thread::park();
        }
        *self.closer.lock() = None;
    }

    /// Whether nothing accepted here is still unanswered.
    pub(crate) fn is_drained(&self) -> bool {
        self.jobs.is_empty()
            && self.completions.is_empty()
            && self.deferred.load(Ordering::Acquire) == 0
            && self.watch.running_since().is_none()
    }

    /// Queues a job and wakes the worker; gives it back when full.
    pub(crate) fn push(&self, job: Job) -> Result<(), Job> {
        self.jobs.push(job)?;
        self.parker.wake();
        Ok(())
    }

    /// Reserves room for one more deferred command.
    pub(crate) fn reserve_deferred(&self) -> Result<(), Error> {
        let limit = self.completions.capacity();
        let mut current = self.deferred.load(Ordering::Relaxed);
        loop {
            if current >= limit {
                return Err(Error::new(
                    Code::ResourceExhausted,
                    "too many deferred commands on this worker",
                ));
            }
            match self.deferred.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => current = now,
            }
        }
    }
}

impl AnswerInbox for WorkerShared {
    fn release_deferred(&self) {
        self.deferred.fetch_sub(1, Ordering::AcqRel);
    }

    /// Room was reserved when the command was deferred, so this does not
    /// fail; the loop only covers a consumer that has not yet freed the
    /// slot it read.
    fn complete(&self, completion: Completion) {
        let mut completion = completion;
        loop {
            match self.completions.push(completion) {
                Ok(()) => break,
                Err(back) => {
                    completion = back;
                    crate::sync::thread::yield_now();
                }
            }
        }
        self.parker.wake();
    }
}
