//! A worker's state, held by its thread while it works and let go while it
//! sleeps, so that a submitter can run a message on its own thread instead
//! of waking the worker.
//!
//! Waking a parked worker costs a futex wake, two context switches and a
//! cold cache, some 10 to 20 us here, against about 1 us for a Standard
//! message itself: at a low steady rate (10k msg/s, a message every
//! 100 us) nearly all of a worker's time went to waking up. A submitter
//! that finds the seat free runs the message itself, with the worker's own
//! state (decoder, admission, reply writer, sequence), and the worker
//! sleeps on.
//!
//! Order: messages with one key come from one submitter, one after
//! another. A submitter runs a message only if the worker's queue is empty
//! once it holds the seat: an earlier message of its own still queued
//! there is never overtaken. The seat is a mutex, so the worker's thread
//! and a submitter never run messages at once. Checked by
//! `loom-tests/tests/seat.rs`.

// Public for the loom models and the queue bench (`engine::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use crossbeam_utils::CachePadded;

use crate::sync::{Mutex, MutexGuard};

/// The worker's state `W` behind a lock its thread holds except while
/// parked.
#[derive(Debug)]
pub struct Seat<W> {
    /// Padded so that the lock word, which every submitter reads, is not
    /// on a cache line the worker writes as it works.
    worker: Mutex<CachePadded<W>>,
}

impl<W> Seat<W> {
    /// A seat for `worker`, free.
    pub fn new(worker: W) -> Seat<W> {
        Seat {
            worker: Mutex::new(CachePadded::new(worker)),
        }
    }

    /// The worker's thread: takes the seat, waiting for a submitter that
    /// is running a message to finish it.
    pub fn take(&self) -> MutexGuard<'_, CachePadded<W>> {
        self.worker.lock()
    }

    /// A submitter: the seat, if the worker's thread has let it go and
    /// nothing is queued (`queued` is asked once the seat is held, so no
    /// earlier message can be overtaken); `None` means push instead.
    pub fn take_if_idle(
        &self,
        queued: impl FnOnce() -> bool,
    ) -> Option<MutexGuard<'_, CachePadded<W>>> {
        let seat = self.worker.try_lock()?;
        if queued() {
            return None;
        }
        Some(seat)
    }
}
