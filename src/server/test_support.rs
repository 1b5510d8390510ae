//! Thin handles on the server's handover between engine threads and the
//! I/O thread, for the loom models in `loom-tests/`. Not part of the API.

use super::memory_budget::{Charge, Tag};
use super::outbox::{Mailroom, Outbox, ReplyFrame, Wake};
use crate::sync::{Arc, AtomicU64, Ordering};

/// Counts wake-ups, standing in for the I/O thread's `mio::Waker`.
#[derive(Debug, Default)]
pub struct WakeCount(AtomicU64);

impl Wake for Arc<WakeCount> {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// A mailroom with one connection slot open (see `outbox.rs`).
#[derive(Debug)]
pub struct MailroomModel {
    mailroom: Mailroom<Arc<WakeCount>>,
    wakes: Arc<WakeCount>,
    outbox: Arc<Outbox>,
    generation: u32,
}

impl MailroomModel {
    /// Slot 0 open at generation 1, its outbox holding `capacity` replies.
    pub fn new(capacity: usize) -> MailroomModel {
        let wakes = Arc::new(WakeCount::default());
        let mailroom = Mailroom::new(1, Arc::clone(&wakes));
        let outbox = mailroom.outbox(capacity);
        mailroom.open(0, 1, Arc::clone(&outbox));
        MailroomModel {
            mailroom,
            wakes,
            outbox,
            generation: 1,
        }
    }

    /// Engine thread: delivers a reply frame `byte` to the open connection.
    pub fn deliver(&self, byte: u8) {
        self.mailroom.deliver(
            Tag {
                slot: 0,
                generation: self.generation,
                charge: Charge::covering(1),
            },
            ReplyFrame {
                bytes: vec![byte],
                concludes_request: true,
                charge: 1,
            },
        );
    }

    /// Wake-ups so far.
    pub fn wakes(&self) -> u64 {
        self.wakes.0.load(Ordering::Acquire)
    }

    /// I/O thread: one pass as after a poll returns; the reply bytes taken.
    pub fn collect(&self) -> Vec<u8> {
        let mut taken = Vec::new();
        let everyone = self.mailroom.collect(|slot| {
            if slot == 0 {
                self.take_into(&mut taken);
            }
        });
        if everyone {
            self.take_into(&mut taken);
        }
        taken
    }

    fn take_into(&self, taken: &mut Vec<u8>) {
        self.outbox.mark_seen();
        while let Some(frame) = self.outbox.pop() {
            taken.extend_from_slice(&frame.bytes);
        }
    }

    /// I/O thread: closes the connection, taking what is in its outbox;
    /// the outbox itself goes when the model is dropped.
    pub fn close(&self) -> Vec<u8> {
        self.mailroom.close(0);
        let mut taken = Vec::new();
        self.take_into(&mut taken);
        taken
    }

    /// The count of orphaned replies, to read after the model is dropped.
    pub fn orphans(&self) -> OrphanCount {
        OrphanCount(Arc::clone(&self.mailroom.undelivered))
    }
}

/// The mailroom's count of orphaned replies, readable after the model's
/// threads are done.
#[derive(Debug)]
pub struct OrphanCount(Arc<super::outbox::Undelivered>);

impl OrphanCount {
    /// Replies that found their connection closed.
    pub fn get(&self) -> u64 {
        self.0.orphaned.load(Ordering::Acquire)
    }
}
