//! Replies on their way from engine threads back to the I/O thread that
//! owns the connection, without a lock.
//!
//! Each connection has an [`Outbox`]: a bounded ring of reply frames.
//! Engine threads push into it through the [`Mailroom`] (the engine's reply
//! sink for this server); the I/O thread pops. A reply frame is only ever
//! one of a connection's in-flight requests answered, and the I/O thread
//! stops reading from a connection at `max_in_flight`, so the ring (sized
//! above that) does not fill.
//!
//! The I/O thread learns which outboxes have news from the ready ring: the
//! first reply into an idle outbox (its `queued` flag going false to true)
//! puts the connection's slot there, and the first slot after the I/O
//! thread last looked (the mailroom's `notified` flag going false to true)
//! wakes it. Both flags are cleared by a swap on the I/O side before it
//! looks, so a reply that lands after the look raises them again: no reply
//! waits without a wake-up on its way (loom-tests/tests/outbox.rs).

use super::memory_budget::Tag;
use crate::engine::Ring;
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering, SwapCell, snapshot_arc};

/// Wakes the I/O thread (a `mio::Waker` in the server).
pub(crate) trait Wake: Send + Sync + 'static {
    fn wake(&self);
}

/// A reply on its way to a connection.
#[derive(Debug)]
pub(crate) struct ReplyFrame {
    /// The whole frame (header and body); empty when nothing goes back (an
    /// Event without `ack`).
    pub(crate) bytes: Vec<u8>,
    /// Whether it concludes one of the connection's requests (all do but a
    /// Command the engine itself sends to the peer).
    pub(crate) concludes_request: bool,
    /// The bytes its request was charged (see `memory_budget.rs`), given
    /// back when it is taken.
    pub(crate) charge: usize,
}

/// One connection's reply frames.
#[derive(Debug)]
pub(crate) struct Outbox {
    replies: Ring<ReplyFrame>,
    queued: AtomicBool,
    undelivered: Arc<Undelivered>,
}

impl Drop for Outbox {
    /// Replies still here when the last holder lets go (the I/O thread
    /// closed the connection; an engine thread may have pushed after) are
    /// counted, whichever side lets go last.
    fn drop(&mut self) {
        while self.replies.pop().is_some() {
            self.undelivered.orphaned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Outbox {
    /// I/O thread: marks the outbox as looked at; call before popping, so
    /// that a reply pushed after the pops queues the connection again.
    pub(crate) fn mark_seen(&self) {
        self.queued.swap(false, Ordering::AcqRel);
    }

    /// Whether it holds no reply (exact on the I/O thread, the only one
    /// that pops).
    pub(crate) fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    /// I/O thread: the next reply frame.
    pub(crate) fn pop(&self) -> Option<ReplyFrame> {
        self.replies.pop()
    }
}

/// What a connection slot holds: the generation of the connection in it,
/// and its outbox while it is open.
#[derive(Debug)]
pub(crate) struct OutboxSlot {
    pub(crate) generation: u32,
    pub(crate) outbox: Option<Arc<Outbox>>,
}

/// Counters of replies that found no open connection.
#[derive(Debug, Default)]
pub(crate) struct Undelivered {
    /// Replies for connections already closed.
    pub(crate) orphaned: AtomicU64,
    /// Replies refused by a full outbox (only replies the connection did not
    /// ask for, e.g. a Command the engine sends to the peer, can do this).
    pub(crate) overflowed: AtomicU64,
}

/// The handover point between engine threads and one I/O thread.
pub(crate) struct Mailroom<W: Wake> {
    slots: Vec<SwapCell<OutboxSlot>>,
    ready: Ring<u32>,
    /// A slot could not be put on `ready`: the I/O thread looks at every
    /// connection instead.
    ready_overflowed: AtomicBool,
    notified: AtomicBool,
    waker: W,
    pub(crate) undelivered: Arc<Undelivered>,
}

impl<W: Wake> std::fmt::Debug for Mailroom<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailroom")
            .field("slots", &self.slots.len())
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl<W: Wake> Mailroom<W> {
    /// A mailroom for `slots` connections.
    pub(crate) fn new(slots: usize, waker: W) -> Mailroom<W> {
        Mailroom {
            slots: (0..slots)
                .map(|_| {
                    SwapCell::new(Arc::new(OutboxSlot {
                        generation: 0,
                        outbox: None,
                    }))
                })
                .collect(),
            // Twice the slots: a closed connection's stale entry and its
            // successor's may both be waiting.
            ready: Ring::new(slots.saturating_mul(2).max(2)),
            ready_overflowed: AtomicBool::new(false),
            notified: AtomicBool::new(false),
            waker,
            undelivered: Arc::new(Undelivered::default()),
        }
    }

    /// A new, empty outbox for `capacity` replies.
    pub(crate) fn outbox(&self, capacity: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            replies: Ring::new(capacity),
            queued: AtomicBool::new(false),
            undelivered: Arc::clone(&self.undelivered),
        })
    }

    /// The number of slots.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// I/O thread: opens slot `slot` for a connection of `generation`.
    pub(crate) fn open(&self, slot: u32, generation: u32, outbox: Arc<Outbox>) {
        if let Some(cell) = self.slots.get(slot as usize) {
            cell.update(|_| {
                Arc::new(OutboxSlot {
                    generation,
                    outbox: Some(Arc::clone(&outbox)),
                })
            });
        }
    }

    /// I/O thread: closes slot `slot`; replies still on their way are
    /// counted as orphaned (here, or when the outbox is dropped).
    pub(crate) fn close(&self, slot: u32) {
        if let Some(cell) = self.slots.get(slot as usize) {
            cell.update(|open| {
                Arc::new(OutboxSlot {
                    generation: open.generation,
                    outbox: None,
                })
            });
        }
    }

    /// Engine thread: hands the reply frame for submission `tag` to its
    /// connection and wakes the I/O thread if it may be asleep.
    pub(crate) fn deliver(&self, tag: Tag, frame: ReplyFrame) {
        let Tag {
            slot, generation, ..
        } = tag;
        let Some(cell) = self.slots.get(slot as usize) else {
            self.undelivered.orphaned.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let open = snapshot_arc(&cell.load());
        let outbox = match &open.outbox {
            Some(outbox) if open.generation == generation => outbox,
            _ => {
                self.undelivered.orphaned.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if outbox.replies.push(frame).is_err() {
            self.undelivered.overflowed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !outbox.queued.swap(true, Ordering::AcqRel) {
            if self.ready.push(slot).is_err() {
                self.ready_overflowed.store(true, Ordering::Release);
            }
            if !self.notified.swap(true, Ordering::AcqRel) {
                self.waker.wake();
            }
        }
    }

    /// Wakes the I/O thread whatever the flags say (to stop it).
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }

    /// I/O thread: calls `visit` with each slot that has had replies since
    /// the last call. A slot may come more than once or with nothing left;
    /// `visit` must clear the outbox's flag with [`Outbox::mark_seen`]
    /// before popping. Returns true if the ready ring overflowed: then the
    /// caller visits every open connection.
    pub(crate) fn collect(&self, mut visit: impl FnMut(u32)) -> bool {
        if !self.notified.swap(false, Ordering::AcqRel) {
            return false;
        }
        let overflowed = self.ready_overflowed.swap(false, Ordering::AcqRel);
        while let Some(slot) = self.ready.pop() {
            visit(slot);
        }
        overflowed
    }
}
