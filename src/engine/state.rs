//! `ProtocolState` of docs/seed-specification.md: what the engine is doing, and a bounded
//! history of recent message ids with their outcomes (never payloads).
//!
//! Each worker writes its own history ring; a slot is a small seqlock made
//! of atomics (version odd while written, even when done), so the worker
//! never waits and a reader retries a slot it caught mid-write.

use crate::error::Code;
use crate::message::MAX_ID_LEN;
use crate::sync::{AtomicU64, Ordering, fence};

use super::sink::Outcome;

/// The engine's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolState {
    /// Whether it takes messages.
    pub status: Status,
    /// The id of the message finished last (any worker).
    pub last_message_id: Option<String>,
    /// Deferred commands waiting for their responders.
    pub pending_commands: usize,
    /// Messages taken in so far.
    pub message_count: u64,
    /// When a message last finished, in unix nanoseconds (0: none yet).
    pub last_activity: i128,
}

/// Whether the engine takes messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Taking messages.
    Running,
    /// Shutting down: finishing what it took.
    Draining,
    /// Stopped.
    Stopped,
}

/// A message the engine finished, as the history keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentMessage {
    /// Its id (empty when it had none readable).
    pub id: String,
    /// What became of it.
    pub outcome: Outcome,
    /// When it finished, in unix nanoseconds.
    pub at: i128,
}

const WORDS: usize = MAX_ID_LEN / 8;

#[derive(Debug)]
struct Slot {
    version: AtomicU64,
    id: [AtomicU64; WORDS],
    /// id length | outcome << 8.
    meta: AtomicU64,
    at: AtomicU64,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            version: AtomicU64::new(0),
            id: std::array::from_fn(|_| AtomicU64::new(0)),
            meta: AtomicU64::new(0),
            at: AtomicU64::new(0),
        }
    }
}

/// One worker's history (see the module docs).
#[derive(Debug)]
pub(crate) struct RecentIds {
    slots: Box<[Slot]>,
    /// How many of the newest entries are kept (at most the slots).
    capacity: u64,
    written: AtomicU64,
}

fn encode(outcome: Outcome) -> u64 {
    match outcome {
        Outcome::Response => 0,
        Outcome::Error(code) => 1 | (code as u64) << 8,
        Outcome::Delivered(n) => 2 | u64::from(n) << 8,
        Outcome::Absorbed => 3,
        Outcome::Sent => 4,
    }
}

fn decode(bits: u64) -> Outcome {
    let detail = bits >> 8;
    match bits & 0xff {
        0 => Outcome::Response,
        1 => Outcome::Error(
            Code::ALL
                .get(detail as usize)
                .copied()
                .unwrap_or(Code::InternalError),
        ),
        2 => Outcome::Delivered(u32::try_from(detail).unwrap_or(u32::MAX)),
        4 => Outcome::Sent,
        _ => Outcome::Absorbed,
    }
}

impl RecentIds {
    /// A history of the newest `capacity` entries, in slots rounded up to
    /// a power of two (so that an entry's slot is a mask of its number, not
    /// a division).
    pub(crate) fn new(capacity: usize) -> RecentIds {
        let capacity = capacity.max(1);
        RecentIds {
            slots: (0..capacity.next_power_of_two())
                .map(|_| Slot::default())
                .collect(),
            capacity: capacity as u64,
            written: AtomicU64::new(0),
        }
    }

    /// The slot of entry `n`.
    fn slot(&self, n: u64) -> Option<&Slot> {
        self.slots
            .get((n & (self.slots.len() as u64).wrapping_sub(1)) as usize)
    }

    /// Worker (the only writer): message `id` finished with `outcome`.
    ///
    /// Entry `n`'s slot version is `2n + 1` while it is written and `2n + 2`
    /// once done: known without reading the slot, so the worker only
    /// writes it (a read of a slot last touched a lap ago missed the
    /// cache), and a reader can tell entry `n` from a later lap's.
    pub(crate) fn push(&self, id: Option<&str>, outcome: Outcome, at: i128) {
        let n = self.written.load(Ordering::Relaxed);
        let Some(slot) = self.slot(n) else {
            return;
        };
        slot.version
            .store(n.wrapping_mul(2).wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let id = id.unwrap_or_default();
        for (word, chunk) in slot.id.iter().zip(id.as_bytes().chunks(8)) {
            let mut padded = [0u8; 8];
            for (to, from) in padded.iter_mut().zip(chunk) {
                *to = *from;
            }
            word.store(u64::from_le_bytes(padded), Ordering::Relaxed);
        }
        let len = id.len().min(MAX_ID_LEN) as u64;
        slot.meta
            .store(len | encode(outcome) << 8, Ordering::Relaxed);
        slot.at
            .store(at.clamp(0, i128::from(u64::MAX)) as u64, Ordering::Relaxed);
        slot.version
            .store(n.wrapping_mul(2).wrapping_add(2), Ordering::Release);
        self.written.store(n + 1, Ordering::Release);
    }

    /// The newest `limit` entries, newest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<RecentMessage> {
        let written = self.written.load(Ordering::Acquire);
        let available = written.min(self.capacity);
        let mut out = Vec::new();
        for back in 1..=available.min(limit as u64) {
            let n = written - back;
            let Some(slot) = self.slot(n) else {
                continue;
            };
            // Entry `n` is read only whole and only if still there: a slot
            // being written, or already rewritten for a later entry, is
            // skipped (after a few tries for one being written).
            let done = n.wrapping_mul(2).wrapping_add(2);
            for _ in 0..4 {
                let before = slot.version.load(Ordering::Acquire);
                if before != done {
                    continue;
                }
                let meta = slot.meta.load(Ordering::Relaxed);
                let at = slot.at.load(Ordering::Relaxed);
                let mut bytes = [0u8; MAX_ID_LEN];
                for (word, chunk) in slot.id.iter().zip(bytes.chunks_mut(8)) {
                    chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
                }
                fence(Ordering::Acquire);
                if slot.version.load(Ordering::Relaxed) != before {
                    continue;
                }
                let len = ((meta & 0xff) as usize).min(MAX_ID_LEN);
                let id = std::str::from_utf8(bytes.get(..len).unwrap_or_default())
                    .unwrap_or_default()
                    .to_owned();
                out.push(RecentMessage {
                    id,
                    outcome: decode(meta >> 8),
                    at: i128::from(at),
                });
                break;
            }
        }
        out
    }

    /// The newest entry's time and id.
    pub(crate) fn newest(&self) -> Option<RecentMessage> {
        self.recent(1).into_iter().next()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_their_outcomes() {
        let recent = RecentIds::new(3);
        assert!(recent.recent(10).is_empty());
        let outcomes = [
            Outcome::Response,
            Outcome::Error(Code::Timeout),
            Outcome::Delivered(2),
            Outcome::Absorbed,
            Outcome::Error(Code::AccessDenied),
        ];
        for (n, outcome) in outcomes.iter().enumerate() {
            recent.push(Some(&format!("m-{n}")), *outcome, n as i128 + 1);
        }
        let got = recent.recent(10);
        assert_eq!(
            got.iter()
                .map(|m| (m.id.as_str(), m.outcome, m.at))
                .collect::<Vec<_>>(),
            vec![
                ("m-4", Outcome::Error(Code::AccessDenied), 5),
                ("m-3", Outcome::Absorbed, 4),
                ("m-2", Outcome::Delivered(2), 3),
            ]
        );
        assert_eq!(recent.newest().unwrap().id, "m-4");
        let long = "x".repeat(MAX_ID_LEN);
        recent.push(Some(&long), Outcome::Response, 9);
        assert_eq!(recent.newest().unwrap().id, long);
    }
}
