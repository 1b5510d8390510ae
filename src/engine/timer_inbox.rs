//! Deferred commands on their way from the workers to the timer thread.

use crate::sync::Arc;

use super::concurrency::Ring;
use super::pending::PendingCall;

/// Deferred commands on their way to the timer.
#[derive(Debug)]
pub(crate) struct TimerInbox {
    pub(super) calls: Ring<Arc<PendingCall>>,
}

impl TimerInbox {
    pub(crate) fn new(capacity: usize) -> TimerInbox {
        TimerInbox {
            calls: Ring::new(capacity),
        }
    }

    /// Hands a deferred command to the timer; waits (yielding) in the rare
    /// case its inbox is full, which the timer empties every tick.
    pub(crate) fn watch(&self, call: Arc<PendingCall>) {
        let mut call = call;
        while let Err(back) = self.calls.push(call) {
            call = back;
            std::thread::yield_now();
        }
    }
}
