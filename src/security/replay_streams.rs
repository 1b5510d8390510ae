//! [`StreamGuard`]: replay protection by stream (docs/protocol.md section
//! 7a). A sender that names a stream and numbers its messages costs the
//! receiver one sliding window per `(principal, stream)` (`replay_window.rs`),
//! whatever its rate: memory grows with the number of streams, not of
//! messages.
//!
//! ## What is remembered, and for how long
//!
//! Each stream keeps the highest number accepted, a window of the
//! `replay_stream_window` numbers below it, and the latest expiry of the
//! messages it accepted (`max(timestamp, arrival) + window`, as for ids).
//! Past that expiry every message the stream accepted fails the timestamp
//! check, so the stream may be forgotten: a replay of any of its messages
//! is refused by validation before it gets here. A stream is forgotten only
//! then, never to make room: a full table refuses a new stream with
//! `resource_exhausted` (retryable), and each principal may hold only its
//! share of the table (`replay_shares.rs`).
//!
//! ## Memory
//!
//! Per stream: the window's bits (`W + 64`, 136 bytes at the default
//! `W = 1024`), 24 bytes of state, and the index entry (16 bytes and
//! hashbrown's slack): about 190 bytes at the default. Tables grow as
//! streams come, up to `replay_streams` (1,048,576 by default: about
//! 200 MiB when every stream is taken), and keep their room afterwards.
//!
//! ## Concurrency
//!
//! Streams are spread over up to 64 shards (of at least 1024 streams each)
//! by a keyed hash of principal and stream; each shard holds its part of
//! the capacity, so a new stream can find its shard full a little before
//! the whole table is (about 1% at a million). Each shard is behind its
//! own lock, held for the window update alone: two
//! workers contend only on one shard at one moment, and two copies of one
//! number racing on two workers meet under one lock, which admits exactly
//! one (the loom model `loom-tests/tests/replay_streams.rs`).

// Public for the tests, benches and loom models (`security::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use crossbeam_utils::CachePadded;

use super::replay_clock::ReplayClock;
use super::replay_shares::{PrincipalUsage, Shares, Table};
use super::replay_window::{Seen, accept, words_for};
use crate::error::{Code, Error};
use crate::message::ReplayMark;
use crate::sync::{Arc, Mutex};

#[cfg(not(loom))]
const SHARDS: usize = 64;
#[cfg(loom)]
const SHARDS: usize = 2;

/// The fewest streams a shard holds, unless the whole table holds fewer.
const STREAMS_PER_SHARD: usize = 1024;

/// The smallest window section 7a allows.
pub const MIN_WINDOW: u64 = 1024;

/// The index's keys are already keyed hashes: used as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One stream's state (its window's words live in the shard's slab).
struct Stream {
    highest: u64,
    /// Seconds since the guard's epoch after which every message the
    /// stream accepted is expired.
    expiry: u32,
    /// Its principal's usage, where the stream is counted.
    usage: Arc<PrincipalUsage>,
}

struct Shard {
    index: HashMap<u64, u32, BuildHasherDefault<Identity>>,
    streams: Vec<Option<Stream>>,
    /// Each slot's window, `words` per slot.
    words: Vec<u64>,
    free: Vec<u32>,
    /// Streams this shard may hold.
    capacity: usize,
    /// When full: no stream expires before this, so a purge would free
    /// nothing.
    purge_at: u32,
}

impl Shard {
    /// Forgets every stream whose messages have all expired at `now`;
    /// returns the earliest expiry left.
    fn purge(&mut self, now: u32, shares: &Shares) -> u32 {
        let mut earliest = u32::MAX;
        let Shard {
            index,
            streams,
            free,
            ..
        } = self;
        index.retain(|_, slot| match streams.get_mut(*slot as usize) {
            Some(entry) => match entry {
                Some(stream) if stream.expiry <= now => {
                    let bucket = shares.bucket(stream.expiry);
                    stream.usage.give_back(Table::Streams, bucket, 1);
                    *entry = None;
                    free.push(*slot);
                    false
                }
                Some(stream) => {
                    earliest = earliest.min(stream.expiry);
                    true
                }
                None => false,
            },
            None => false,
        });
        earliest
    }
}

/// A principal's stream, and what counting it needs.
#[derive(Clone, Copy)]
pub(crate) struct StreamCheck<'a> {
    /// Who sent it ("" for an unauthenticated sender).
    pub(crate) principal: &'a str,
    /// Its stream and number.
    pub(crate) mark: ReplayMark<'a>,
    /// The message's timestamp and the receiver's clock (Unix nanoseconds).
    pub(crate) timestamp: i128,
    pub(crate) now: i128,
    /// Streams this principal may hold (asked only for a new stream).
    pub(crate) share: &'a dyn Fn() -> u64,
}

/// Per-`(principal, stream)` sliding windows, in bounded memory (see the
/// module docs).
pub struct StreamGuard {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    hasher: RandomState,
    window: u64,
    words: usize,
    clock: ReplayClock,
}

impl std::fmt::Debug for StreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamGuard")
            .field("shards", &self.shards.len())
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl StreamGuard {
    /// A guard of up to `capacity` streams, each a window of `window`
    /// numbers (a multiple of 64, at least [`MIN_WINDOW`]), for messages
    /// valid `window_secs` past their timestamp, time counted from `now`.
    pub fn new(capacity: usize, window: u64, window_secs: u64, now: i128) -> StreamGuard {
        StreamGuard::with_clock(capacity, window, ReplayClock::new(window_secs, now))
    }

    /// [`new`](Self::new), counting time as `clock` does (the id guard's,
    /// so that both tables and their shares count alike).
    pub(crate) fn with_clock(capacity: usize, window: u64, clock: ReplayClock) -> StreamGuard {
        let window = window.max(MIN_WINDOW).next_multiple_of(64);
        // Shards of at least a thousand streams: a small table is not cut
        // into slivers that fill one by one.
        let count = (capacity / STREAMS_PER_SHARD).clamp(1, SHARDS);
        let per_shard = capacity.div_ceil(count).max(1);
        let shards = (0..count)
            .map(|_| {
                CachePadded::new(Mutex::new(Shard {
                    index: HashMap::default(),
                    streams: Vec::new(),
                    words: Vec::new(),
                    free: Vec::new(),
                    capacity: per_shard,
                    purge_at: 0,
                }))
            })
            .collect();
        StreamGuard {
            shards,
            hasher: RandomState::new(),
            window,
            words: words_for(window),
            clock,
        }
    }

    /// How many streams it can hold.
    pub fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.lock().capacity).sum()
    }

    /// How many it holds now (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().index.len()).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The window each stream keeps, in numbers.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Records `check.mark.seq` on its stream. Refuses with
    /// `replay_detected` a number the stream accepted or one at or below
    /// its highest minus the window; with `resource_exhausted` a new stream
    /// when the table, or the principal's share of it, is full.
    pub(crate) fn check(&self, shares: &Shares, check: &StreamCheck<'_>) -> Result<(), Error> {
        let key = self.hasher.hash_one((check.principal, check.mark.stream));
        let (expiry, now) = self.clock.expiry_secs(check.timestamp, check.now);
        let Some(shard) = self.shards.get((key >> 32) as usize % self.shards.len()) else {
            return Err(Error::new(Code::InternalError, "stream shard missing"));
        };
        let mut shard = shard.lock();
        let slot = match shard.index.get(&key).copied() {
            Some(slot) => {
                let expired = shard
                    .streams
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_none_or(|stream| stream.expiry <= now);
                if expired {
                    // Every message it accepted has expired: forgotten, as a
                    // purge would have, and made again below.
                    forget(&mut shard, shares, key, slot);
                    None
                } else {
                    Some(slot)
                }
            }
            None => None,
        };
        let slot = match slot {
            Some(slot) => slot,
            None => self.make(&mut shard, shares, check, key, expiry, now)?,
        };
        let words = self.words;
        let Shard {
            streams,
            words: slab,
            ..
        } = &mut *shard;
        let (Some(Some(stream)), Some(bits)) = (
            streams.get_mut(slot as usize),
            slab.get_mut(slot as usize * words..(slot as usize + 1) * words),
        ) else {
            return Err(Error::new(Code::InternalError, "stream slot missing"));
        };
        match accept(&mut stream.highest, bits, self.window, check.mark.seq) {
            Seen::Accepted => {
                if expiry > stream.expiry {
                    let (from, to) = (shares.bucket(stream.expiry), shares.bucket(expiry));
                    stream
                        .usage
                        .moved(Table::Streams, from, to, shares.bucket(now));
                    stream.expiry = expiry;
                }
                Ok(())
            }
            Seen::Repeat => Err(Error::new(
                Code::ReplayDetected,
                "number already used on this stream",
            )),
            Seen::TooOld => Err(Error::new(
                Code::ReplayDetected,
                "number below this stream's window",
            )),
        }
    }

    /// A new stream for `check`, counted in its principal's share.
    fn make(
        &self,
        shard: &mut Shard,
        shares: &Shares,
        check: &StreamCheck<'_>,
        key: u64,
        expiry: u32,
        now: u32,
    ) -> Result<u32, Error> {
        if shard.index.len() >= shard.capacity && now >= shard.purge_at {
            shard.purge_at = shard.purge(now, shares);
        }
        if shard.index.len() >= shard.capacity {
            return Err(Error::new(
                Code::ResourceExhausted,
                "replay memory full of live streams",
            ));
        }
        let usage = shares.usage(check.principal, now)?;
        let bucket = shares.bucket(expiry);
        if usage.take(
            Table::Streams,
            bucket,
            1,
            (check.share)(),
            shares.bucket(now),
        ) == 0
        {
            return Err(Error::new(
                Code::ResourceExhausted,
                "this principal's share of the replay streams is full",
            ));
        }
        let stream = Stream {
            highest: 0,
            expiry,
            usage,
        };
        let words = self.words;
        let slot = match shard.free.pop() {
            Some(slot) => {
                if let Some(entry) = shard.streams.get_mut(slot as usize) {
                    *entry = Some(stream);
                }
                if let Some(bits) = shard
                    .words
                    .get_mut(slot as usize * words..(slot as usize + 1) * words)
                {
                    bits.fill(0);
                }
                slot
            }
            None => {
                let slot = u32::try_from(shard.streams.len())
                    .map_err(|_| Error::new(Code::ResourceExhausted, "stream table full"))?;
                shard.streams.push(Some(stream));
                shard.words.resize(shard.words.len() + words, 0);
                slot
            }
        };
        shard.index.insert(key, slot);
        Ok(slot)
    }
}

/// Drops the expired stream at `slot`, and its count in its principal's
/// share.
fn forget(shard: &mut Shard, shares: &Shares, key: u64, slot: u32) {
    shard.index.remove(&key);
    if let Some(entry) = shard.streams.get_mut(slot as usize)
        && let Some(stream) = entry.take()
    {
        let bucket = shares.bucket(stream.expiry);
        stream.usage.give_back(Table::Streams, bucket, 1);
    }
    shard.free.push(slot);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const SECOND: i128 = 1_000_000_000;

    fn at<'a>(principal: &'a str, stream: &'a str, seq: u64, now: i128) -> StreamCheck<'a> {
        StreamCheck {
            principal,
            mark: ReplayMark { stream, seq },
            timestamp: now,
            now,
            share: &|| u64::MAX,
        }
    }

    fn code(result: Result<(), Error>) -> Option<Code> {
        result.err().map(|e| e.code())
    }

    #[test]
    fn each_principal_and_stream_has_its_own_window() {
        let shares = Shares::new(300);
        let guard = StreamGuard::new(1024, 1024, 300, 0);
        assert_eq!(code(guard.check(&shares, &at("alice", "s", 1, 0))), None);
        assert_eq!(
            code(guard.check(&shares, &at("alice", "s", 1, 0))),
            Some(Code::ReplayDetected)
        );
        assert_eq!(code(guard.check(&shares, &at("bob", "s", 1, 0))), None);
        assert_eq!(code(guard.check(&shares, &at("alice", "t", 1, 0))), None);
        assert_eq!(code(guard.check(&shares, &at("alice", "s", 3000, 0))), None);
        assert_eq!(
            code(guard.check(&shares, &at("alice", "s", 1976, 0))),
            Some(Code::ReplayDetected)
        );
        assert_eq!(code(guard.check(&shares, &at("alice", "s", 1977, 0))), None);
        assert_eq!(guard.len(), 3);
    }

    #[test]
    fn a_stream_is_forgotten_only_once_its_messages_expired() {
        let shares = Shares::new(10);
        let guard = StreamGuard::new(1, 1024, 10, 0);
        // Stamped 5 s ahead: a replay could pass validation until 15 s.
        let mut ahead = at("p", "s", 7, 0);
        ahead.timestamp = 5 * SECOND;
        guard.check(&shares, &ahead).unwrap();
        // The table is full (one stream) and that stream is live: a new
        // stream is refused, the live one is not forgotten.
        for now in [0, 5, 14] {
            let other = at("p", "t", 1, now * SECOND);
            assert_eq!(
                code(guard.check(&shares, &other)),
                Some(Code::ResourceExhausted)
            );
            let again = at("p", "s", 7, now * SECOND);
            assert_eq!(
                code(guard.check(&shares, &again)),
                Some(Code::ReplayDetected)
            );
        }
        // Past 15 s (plus the rounding) it is forgotten and its room reused.
        guard.check(&shares, &at("p", "t", 1, 18 * SECOND)).unwrap();
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn a_principal_at_its_share_is_refused_while_another_is_served() {
        let shares = Shares::new(300);
        let guard = StreamGuard::new(1 << 16, 1024, 300, 0);
        let mut flood = 0;
        for n in 0..100 {
            let stream = format!("s{n}");
            let mut check = at("flooder", &stream, 1, 0);
            check.share = &|| 10;
            match guard.check(&shares, &check) {
                Ok(()) => flood += 1,
                Err(e) => assert_eq!(e.code(), Code::ResourceExhausted),
            }
        }
        assert_eq!(flood, 10);
        // Its own streams still take numbers; another principal makes its own.
        let mut old = at("flooder", "s3", 2, 0);
        old.share = &|| 10;
        guard.check(&shares, &old).unwrap();
        let mut other = at("quiet", "s0", 1, 0);
        other.share = &|| 10;
        guard.check(&shares, &other).unwrap();
    }
}
