//! Commands the engine sends to a peer (`pending_commands` of docs/seed-specification.md):
//! each waits for the Response or Error that correlates with it, from the
//! same connection (sink and tag) it went out on, until its deadline.
//!
//! Exactly one completion per command: whoever removes the entry from the
//! table (the worker that received the reply, or the timer at the
//! deadline, or shutdown) completes it. Sending commands is not the hot
//! path; the table is a few mutex-guarded shards.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::mpsc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::message::MessageType;
use crate::sync::Mutex;

use super::sink::Destination;

const SHARDS: usize = 16;

/// The answer to a command the engine sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerReply {
    /// `Response` or `Error`.
    pub kind: MessageType,
    /// The reply's payload (decrypted if it was encrypted).
    pub payload: RawJson,
}

/// Waits for the answer to a command the engine sent.
#[derive(Debug)]
pub struct PendingReply {
    receiver: mpsc::Receiver<Result<PeerReply, Error>>,
}

impl PendingReply {
    /// Blocks until the peer answers, the deadline passes (`timeout`), or
    /// the engine shuts down (`unavailable`).
    pub fn wait(self) -> Result<PeerReply, Error> {
        self.receiver
            .recv()
            .unwrap_or_else(|_| Err(Error::new(Code::Unavailable, "the engine shut down")))
    }

    /// Like [`wait`](Self::wait), but gives up after `limit` (then the
    /// command still completes in the engine; its answer is dropped).
    pub fn wait_for(self, limit: Duration) -> Result<PeerReply, Error> {
        match self.receiver.recv_timeout(limit) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(Error::new(Code::Timeout, "no answer within the wait"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::new(Code::Unavailable, "the engine shut down"))
            }
        }
    }
}

struct Entry {
    to: Destination,
    deadline: u64,
    sender: mpsc::SyncSender<Result<PeerReply, Error>>,
}

#[derive(Default)]
struct Shard {
    waiting: HashMap<Box<str>, Entry>,
    deadlines: BinaryHeap<Reverse<(u64, Box<str>)>>,
}

/// The table of commands waiting for their answers.
pub(crate) struct Outbound {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("pending", &self.len())
            .finish()
    }
}

impl Default for Outbound {
    fn default() -> Outbound {
        Outbound {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Mutex::new(Shard::default())))
                .collect(),
        }
    }
}

fn shard_of(id: &str) -> usize {
    // FNV-1a: ids are ours, so no adversary picks them.
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % SHARDS as u64) as usize
}

impl Outbound {
    fn shard(&self, id: &str) -> Option<&Mutex<Shard>> {
        self.shards.get(shard_of(id)).map(|s| &**s)
    }

    /// Registers command `id`, sent to `to`, answered by `deadline`.
    pub(crate) fn register(
        &self,
        id: &str,
        to: Destination,
        deadline: u64,
    ) -> Result<PendingReply, Error> {
        let (sender, receiver) = mpsc::sync_channel(1);
        let Some(shard) = self.shard(id) else {
            return Err(Error::new(Code::InternalError, "no shard"));
        };
        let mut shard = shard.lock();
        if shard.waiting.contains_key(id) {
            return Err(Error::new(
                Code::StateError,
                "a command with this id is already pending",
            ));
        }
        shard.waiting.insert(
            Box::from(id),
            Entry {
                to,
                deadline,
                sender,
            },
        );
        shard.deadlines.push(Reverse((deadline, Box::from(id))));
        Ok(PendingReply { receiver })
    }

    /// A Response or Error came from `from`, correlating with `id`:
    /// completes the command if one waits for it from there. False if
    /// nothing matched (the reply is counted and dropped).
    pub(crate) fn complete(&self, id: &str, from: Destination, reply: PeerReply) -> bool {
        let Some(shard) = self.shard(id) else {
            return false;
        };
        let entry = {
            let mut shard = shard.lock();
            match shard.waiting.get(id) {
                // Only the connection it went out on may answer it.
                Some(entry) if entry.to.sink == from.sink && entry.to.tag == from.tag => {
                    shard.waiting.remove(id)
                }
                _ => None,
            }
        };
        match entry {
            Some(entry) => {
                let _ = entry.sender.try_send(Ok(reply));
                true
            }
            None => false,
        }
    }

    /// Timer: answers `timeout` for commands past their deadline at `now`
    /// (or `unavailable` for all, at shutdown). Returns how many.
    pub(crate) fn expire(&self, now: u64, all: bool) -> usize {
        let mut expired = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            while let Some(Reverse((deadline, _))) = shard.deadlines.peek() {
                if *deadline > now && !all {
                    break;
                }
                let Some(Reverse((deadline, id))) = shard.deadlines.pop() else {
                    break;
                };
                // An entry completed earlier, or re-registered with a later
                // deadline, is not this heap entry's to expire.
                let due = shard
                    .waiting
                    .get(&id)
                    .is_some_and(|entry| entry.deadline == deadline);
                if due && let Some(entry) = shard.waiting.remove(&id) {
                    let error = if all && deadline > now {
                        Error::new(Code::Unavailable, "the engine shut down")
                    } else {
                        Error::new(Code::Timeout, "the peer did not answer in time")
                    };
                    let _ = entry.sender.try_send(Err(error));
                    expired += 1;
                }
            }
        }
        expired
    }

    /// Commands waiting.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().waiting.len()).sum()
    }
}
