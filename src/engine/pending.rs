//! Deferred commands: a handler hands back a [`Responder`] that completes
//! later from any thread, racing the command's deadline.
//!
//! Exactly one answer: the [`PendingCall`]'s state leaves `OPEN` once, by
//! one compare-and-swap, to `ANSWERED` (the responder, or the handler's own
//! return value) or to `CLOSED` (the timer at the deadline, or shutdown).
//! Whoever loses the swap drops what it had. Checked by
//! `loom-tests/tests/completion_vs_timeout.rs`.

use std::cell::RefCell;

use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::sync::{Arc, AtomicBool, AtomicU32, Ordering};

use super::reply::ReplyTo;

const OPEN: u32 = 0;
const ANSWERED: u32 = 1;
const CLOSED: u32 = 2;

/// A deferred command waiting for its answer.
#[derive(Debug)]
pub(crate) struct PendingCall {
    state: AtomicU32,
    /// Where and how to answer.
    pub(crate) reply_to: ReplyTo,
    /// The deadline on the engine's monotonic clock, in nanoseconds.
    pub(crate) deadline: u64,
    /// The owning worker's shared half: completions go back through it, so the
    /// worker (which holds the keys' working state) protects the reply.
    pub(crate) worker_shared: Arc<dyn AnswerInbox>,
    /// Set by the worker when the message was answered `timeout` while its
    /// handler still ran: a completion that arrives later is dropped.
    pub(crate) superseded: AtomicBool,
}

impl PendingCall {
    pub(crate) fn new(
        reply_to: ReplyTo,
        deadline: u64,
        worker_shared: Arc<dyn AnswerInbox>,
    ) -> PendingCall {
        PendingCall {
            state: AtomicU32::new(OPEN),
            reply_to,
            deadline,
            worker_shared,
            superseded: AtomicBool::new(false),
        }
    }

    /// Claims the right to answer with a result. True once at most, and
    /// never after [`PendingCall::close`] won.
    pub(crate) fn claim_answer(&self) -> bool {
        self.state
            .compare_exchange(OPEN, ANSWERED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Claims the right to answer with `timeout` (or, at shutdown,
    /// `unavailable`). True once at most, and never after an answer won.
    pub(crate) fn close(&self) -> bool {
        self.state
            .compare_exchange(OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether nobody has claimed it yet.
    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }
}

/// Where a deferred command's answer goes back to: its worker's shared half
/// (which implements this), so that the worker, which holds the keys'
/// working state, protects the reply.
pub(crate) trait AnswerInbox: Send + Sync + std::fmt::Debug {
    /// Hands the answer back to the worker and wakes it.
    fn complete(&self, completion: Completion);
    /// The command is finished; its room among the deferred is free again.
    fn release_deferred(&self);
}

/// A deferred command's answer on its way back to its worker.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) call: Arc<PendingCall>,
    pub(crate) result: Result<RawJson, Error>,
}

/// Answers a deferred command, once, from any thread.
///
/// Dropping a responder without answering answers `internal_error`, so a
/// forgotten responder still leaves the command with exactly one reply.
#[derive(Debug)]
pub struct Responder {
    call: Option<Arc<PendingCall>>,
}

impl Responder {
    pub(crate) fn for_call(call: Arc<PendingCall>) -> Responder {
        Responder { call: Some(call) }
    }

    /// Answers with `result` (`Ok` becomes the Response's `result`, `Err`
    /// the Error). Returns false if the command was already answered: its
    /// deadline passed, or the engine shut down.
    pub fn complete(mut self, result: Result<RawJson, Error>) -> bool {
        match self.call.take() {
            Some(call) => send(call, result),
            None => false,
        }
    }

    /// Whether the command still waits for this responder (its deadline has
    /// not passed). A handler doing long work may poll it to give up early.
    pub fn is_waiting(&self) -> bool {
        self.call.as_ref().is_some_and(|call| call.is_open())
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            send(
                call,
                Err(Error::new(
                    Code::InternalError,
                    "the handler dropped its responder without answering",
                )),
            );
        }
    }
}

fn send(call: Arc<PendingCall>, result: Result<RawJson, Error>) -> bool {
    if !call.claim_answer() {
        return false;
    }
    let worker_shared = Arc::clone(&call.worker_shared);
    worker_shared.complete(Completion { call, result });
    true
}

/// The right to defer one request, lent to its handler through
/// [`Request::answer_later`](super::Request::answer_later).
pub(crate) struct Deferral<'a> {
    taken: RefCell<Option<Arc<PendingCall>>>,
    open: &'a dyn Fn() -> Result<Arc<PendingCall>, Error>,
}

impl std::fmt::Debug for Deferral<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferral")
            .field("taken", &self.taken.borrow().is_some())
            .finish()
    }
}

impl<'a> Deferral<'a> {
    /// `open` makes the pending call when the handler asks for it.
    pub(crate) fn new(open: &'a dyn Fn() -> Result<Arc<PendingCall>, Error>) -> Deferral<'a> {
        Deferral {
            taken: RefCell::new(None),
            open,
        }
    }

    pub(crate) fn take(&self) -> Result<Responder, Error> {
        let mut taken = self.taken.borrow_mut();
        if taken.is_some() {
            return Err(Error::new(
                Code::StateError,
                "the responder was already taken",
            ));
        }
        let call = (self.open)()?;
        *taken = Some(Arc::clone(&call));
        Ok(Responder::for_call(call))
    }

    /// The pending call, if the handler took a responder.
    pub(crate) fn into_taken(self) -> Option<Arc<PendingCall>> {
        self.taken.into_inner()
    }
}
