//! A worker's running message, readable by the timer thread without a lock,
//! so that a handler that overruns its deadline (or a worker that dies) still
//! leaves its message with exactly one answer.
//!
//! The worker writes the reply address (sink, tag, codec, id) into atomics,
//! then publishes `RUNNING` for the message's sequence number with Release.
//! When it is done it swaps `RUNNING` to `DONE` for that sequence. The timer
//! reads `RUNNING` (Acquire), reads the address, and swaps `RUNNING` to
//! `TAKEN`. One of the two swaps wins. If the timer's wins, the address it
//! read is that message's: the worker writes the next address only after its
//! own swap, which then fails and synchronizes with the timer's. Checked by
//! `loom-tests/tests/watch.rs`.

use crate::codec::Codec;
use crate::message::MAX_ID_LEN;
use crate::sync::{AtomicU64, Ordering};

use super::super::sink::{Destination, SinkId};

const IDLE: u64 = 0;
const RUNNING: u64 = 1;
const DONE: u64 = 2;
const TAKEN: u64 = 3;
const WORDS: usize = MAX_ID_LEN / 8;

/// Where a running message's reply goes, as plain numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) to: Destination,
    /// The message id, when the message got far enough to have one.
    pub(crate) id: Option<IdBytes>,
}

/// A message id copied inline (ids are at most 128 ASCII bytes).
///
/// Only [`new`](Self::new) makes one, from a `&str`: so its bytes are
/// always UTF-8, and [`as_str`](Self::as_str) need not check them again
/// for every message (it cost 2% of a Standard message's instructions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdBytes {
    bytes: [u8; MAX_ID_LEN],
    len: u8,
}

impl IdBytes {
    pub(crate) fn new(id: &str) -> Option<IdBytes> {
        let len = u8::try_from(id.len())
            .ok()
            .filter(|&n| n as usize <= MAX_ID_LEN)?;
        let mut bytes = [0; MAX_ID_LEN];
        bytes.get_mut(..id.len())?.copy_from_slice(id.as_bytes());
        Some(IdBytes { bytes, len })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len as usize).unwrap_or_default()
    }

    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: `new`, the only constructor, copies exactly `len` bytes of
        // a `&str` and nothing writes them afterwards (the fields are
        // private and never lent mutably), so they are valid UTF-8; and
        // `as_bytes` cuts at `len`, the end of that string.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(self.as_bytes())
        }
    }
}

/// One worker's running message (see the module docs).
#[derive(Debug)]
pub(crate) struct CallWatch {
    /// `sequence << 2 | phase`.
    state: AtomicU64,
    /// When the message started, on the engine's monotonic clock.
    started: AtomicU64,
    /// The deadline, on the same clock (`u64::MAX`: none).
    deadline: AtomicU64,
    /// `sink << 32 | codec << 8 | id length (255: no id)`.
    route: AtomicU64,
    tag: AtomicU64,
    id: [AtomicU64; WORDS],
}

impl Default for CallWatch {
    fn default() -> CallWatch {
        CallWatch {
            state: AtomicU64::new(IDLE),
            started: AtomicU64::new(0),
            deadline: AtomicU64::new(u64::MAX),
            route: AtomicU64::new(0),
            tag: AtomicU64::new(0),
            id: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The worker's proof of which message it started, to finish it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) struct Ticket(u64);

impl CallWatch {
    /// Worker: message number `sequence` starts now, with no deadline yet.
    pub(crate) fn begin(&self, sequence: u64, now: u64, address: &Address) -> Ticket {
        let id_len = self.store_id(address.id.as_ref());
        let to = address.to;
        let route = u64::from(to.sink.0) << 32 | u64::from(to.codec.byte()) << 8 | id_len;
        self.route.store(route, Ordering::Relaxed);
        self.tag.store(to.tag, Ordering::Relaxed);
        self.started.store(now, Ordering::Relaxed);
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        let running = sequence << 2 | RUNNING;
        self.state.store(running, Ordering::Release);
        Ticket(running)
    }

    /// Writes the id's words; returns the length to put in `route` (255
    /// for none).
    fn store_id(&self, id: Option<&IdBytes>) -> u64 {
        let Some(id) = id else {
            return 255;
        };
        for (word, chunk) in self.id.iter().zip(id.as_bytes().chunks(8)) {
            let mut padded = [0u8; 8];
            for (to, from) in padded.iter_mut().zip(chunk) {
                *to = *from;
            }
            word.store(u64::from_le_bytes(padded), Ordering::Relaxed);
        }
        u64::from(id.len)
    }

    /// Worker: the running message's id is known now (it was decoded
    /// after `begin`). The route's Release store publishes the words: a
    /// timer that reads the new length reads the whole id.
    pub(crate) fn set_id(&self, id: &IdBytes) {
        let id_len = self.store_id(Some(id));
        // Only this worker writes `route`.
        let route = self.route.load(Ordering::Relaxed);
        self.route.store(route & !0xff | id_len, Ordering::Release);
    }

    /// Worker: the running message now has a deadline (it reached its
    /// handler).
    pub(crate) fn set_deadline(&self, deadline: u64) {
        self.deadline.store(deadline, Ordering::Release);
    }

    /// Worker: the message is finished. False if the timer took it first:
    /// its answer was already sent, and the worker's must be dropped.
    pub(crate) fn finish(&self, ticket: Ticket) -> bool {
        self.state
            .compare_exchange(
                ticket.0,
                ticket.0 & !3 | DONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Timer: if the running message is past `now`'s deadline (or `always`,
    /// for a dead worker), takes it and returns its address; at most once
    /// per message.
    pub(crate) fn take_overdue(&self, now: u64, always: bool) -> Option<Address> {
        let state = self.state.load(Ordering::Acquire);
        if state & 3 != RUNNING {
            return None;
        }
        if !always && now < self.deadline.load(Ordering::Acquire) {
            return None;
        }
        let route = self.route.load(Ordering::Acquire);
        let tag = self.tag.load(Ordering::Relaxed);
        let id_len = (route & 0xff) as usize;
        let id = if id_len <= MAX_ID_LEN {
            let mut bytes = [0u8; MAX_ID_LEN];
            for (word, chunk) in self.id.iter().zip(bytes.chunks_mut(8)) {
                chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
            }
            // Checked here, on the timer's rare path, so that every
            // `IdBytes` holds a whole string.
            std::str::from_utf8(bytes.get(..id_len).unwrap_or_default())
                .ok()
                .and_then(IdBytes::new)
        } else {
            None
        };
        let codec = Codec::from_byte((route >> 8 & 0xff) as u8)?;
        let address = Address {
            to: Destination {
                sink: SinkId((route >> 32) as u32),
                tag,
                codec,
            },
            id,
        };
        self.state
            .compare_exchange(
                state,
                state & !3 | TAKEN,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .ok()
            .map(|_| address)
    }

    /// When the running message started, if one is running.
    pub(crate) fn running_since(&self) -> Option<u64> {
        (self.state.load(Ordering::Acquire) & 3 == RUNNING)
            .then(|| self.started.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_back_whole_whatever_its_length_and_characters() {
        let longest = "x".repeat(MAX_ID_LEN);
        for id in ["", "m-1", "é-ü-😀", longest.as_str()] {
            let copy = IdBytes::new(id).unwrap();
            assert_eq!(copy.as_str(), id);
            assert_eq!(copy.as_bytes(), id.as_bytes());
        }
        assert!(IdBytes::new(&"x".repeat(MAX_ID_LEN + 1)).is_none());
    }

    #[test]
    fn the_timer_takes_the_running_id() {
        let watch = CallWatch::default();
        let address = Address {
            to: Destination {
                sink: SinkId(1),
                tag: 9,
                codec: Codec::Json,
            },
            id: None,
        };
        let _running = watch.begin(1, 0, &address);
        watch.set_id(&IdBytes::new("c-é-1").unwrap());
        let taken = watch.take_overdue(0, true).unwrap();
        assert_eq!(
            taken.id.map(|id| id.as_str().to_owned()).as_deref(),
            Some("c-é-1")
        );
    }
}
