//! [`ReplayGuard`]: refuses a message id that one principal already used
//! within the replay window, in bounded memory.
//!
//! ## What is remembered, and for how long
//!
//! Each accepted `(principal, id)` is remembered as a 64-bit keyed hash
//! (SipHash with a per-process random key, so no one can aim collisions)
//! until `max(timestamp, arrival) + window`. After that the id is useless
//! to a replayer: the same bytes carry a timestamp outside the window and
//! fail validation, and a fresh timestamp makes a message the sender could
//! have made anyway. So forgetting an expired entry is safe, and only
//! expired entries are ever forgotten.
//!
//! ## The bound, and what happens at it
//!
//! At most `capacity` ids are remembered (config `replay_capacity`, default
//! 4,194,304, 16 bytes each with the table's slack: 64 MiB, mapped at
//! start). The table (`fingerprint_table.rs`) reads one cache line per
//! check, a miss in so large a table; admission asks for that line before
//! the token check (`ReplayGuard::locate`), so that it arrives meanwhile.
//! When a shard is full, its expired entries are purged; if none has
//! expired, the message is refused with `resource_exhausted` (retryable)
//! rather than forgetting a live id. The capacity a deployment needs is its
//! sustained rate of authenticated messages times the window: the default
//! covers 13,981 msg/s over 300 s. A false `replay_detected` needs a 64-bit
//! hash collision among live ids: below 2^-42 per message at full capacity.
//!
//! ## Concurrency
//!
//! The table is split into up to 64 shards, each behind its own lock, chosen
//! by the hash; each holds at least a 2 MiB huge page of table (32 shards
//! at the default capacity), since a lookup's TLB miss costs more than the
//! rare contention of fewer locks. The check-and-insert is one short critical section (one probe of
//! preallocated space; a purge only when a shard is full), so two workers
//! contend only when they land on the same shard at the same moment. Two copies of one id racing on two workers meet in the
//! same shard and the lock orders them: exactly one is accepted (proved by
//! the loom model in `loom-tests/tests/replay_guard.rs`).

// Public for the tests, benches and loom models (`security::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use std::hash::{BuildHasher, RandomState};

use crossbeam_utils::CachePadded;

use super::fingerprint_table::{BucketLines, FingerprintTable, Recorded};
use super::replay_clock::ReplayClock;
use crate::error::{Code, Error};
use crate::prefetch::prefetch_line;
use crate::sync::Mutex;

#[cfg(not(loom))]
const SHARDS: usize = 64;
#[cfg(loom)]
const SHARDS: usize = 2;

/// Ids whose table (16 bytes each, see `fingerprint_table.rs`) fills a 2
/// MiB huge page: a shard holds at least this many, or the whole capacity
/// if that is less, so that its table can sit on huge pages.
const IDS_PER_HUGE_PAGE: usize = (2 << 20) / 16;

struct Shard {
    /// Fingerprint to expiry, in whole seconds since the guard's epoch.
    seen: FingerprintTable,
    /// When full: the earliest expiry among the entries, before which a
    /// purge would free nothing.
    purge_at: u32,
}

/// A `(principal, id)` located in a [`ReplayGuard`], its bucket asked
/// for: [`ReplayGuard::check_located`] checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplayProbe {
    fingerprint: u64,
}

/// Per-principal message-id memory for replay detection (see the module
/// docs for the bound and its proof of safety).
pub struct ReplayGuard {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    /// Each shard's bucket addresses, read without its lock.
    lines: Box<[BucketLines]>,
    hasher: RandomState,
    clock: ReplayClock,
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("shards", &self.shards.len())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl ReplayGuard {
    /// A guard remembering up to `capacity` ids for `window_secs`, with
    /// time counted from `now` (unix nanoseconds).
    pub fn new(capacity: usize, window_secs: u64, now: i128) -> ReplayGuard {
        let count = (capacity / IDS_PER_HUGE_PAGE).clamp(1, SHARDS);
        let per_shard = capacity.div_ceil(count).max(1);
        let shards = (0..count)
            .map(|_| {
                CachePadded::new(Mutex::new(Shard {
                    seen: FingerprintTable::with_capacity(per_shard),
                    purge_at: 0,
                }))
            })
            .collect::<Box<[CachePadded<Mutex<Shard>>]>>();
        let lines = shards
            .iter()
            .map(|shard| shard.lock().seen.lines())
            .collect();
        ReplayGuard {
            shards,
            lines,
            hasher: RandomState::new(),
            clock: ReplayClock::new(window_secs, now),
        }
    }

    /// How many ids the guard can hold.
    pub fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.lock().seen.capacity()).sum()
    }

    /// How many ids it holds now (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().seen.len()).sum()
    }

    /// Whether it holds no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The time the guard counts in: the stream guard and the shares of
    /// both count in it too.
    pub(crate) fn clock(&self) -> ReplayClock {
        self.clock
    }

    /// Records that `principal` sent `id` (stamped `timestamp`, unix
    /// nanoseconds) at `now`. Refuses with `replay_detected` an id this
    /// principal used within the window, and with `resource_exhausted` when
    /// the guard is full of live ids.
    pub fn check(
        &self,
        principal: &str,
        id: &str,
        timestamp: i128,
        now: i128,
    ) -> Result<(), Error> {
        let (expiry, now_secs) = self.clock.expiry_secs(timestamp, now);
        self.check_located(self.locate(principal, id), expiry, now_secs)
    }

    /// Where `(principal, id)` lies in the table, and a request to the CPU
    /// to fetch that bucket: the table is far larger than the cache, so the
    /// check's read is a miss unless asked for ahead, with other work to do
    /// meanwhile.
    pub(crate) fn locate(&self, principal: &str, id: &str) -> ReplayProbe {
        let fingerprint = self.hasher.hash_one((principal, id));
        if let Some(lines) = self.lines.get(self.shard_of(fingerprint)) {
            prefetch_line(lines.of(fingerprint));
        }
        ReplayProbe { fingerprint }
    }

    /// Middle bits pick the shard: the table itself uses the low bits
    /// (bucket) and the top seven (tag), which must stay varied.
    fn shard_of(&self, fingerprint: u64) -> usize {
        (fingerprint >> 32) as usize % self.shards.len()
    }

    /// [`check`](Self::check) for the message `probe` was located for,
    /// with its expiry and the time now from [`clock`](Self::clock).
    pub(crate) fn check_located(
        &self,
        probe: ReplayProbe,
        expiry: u32,
        now_secs: u32,
    ) -> Result<(), Error> {
        let fingerprint = probe.fingerprint;
        let Some(shard) = self.shards.get(self.shard_of(fingerprint)) else {
            return Err(Error::new(Code::InternalError, "replay shard missing"));
        };
        let mut shard = shard.lock();
        let mut recorded = shard.seen.record(fingerprint, expiry, now_secs);
        if recorded == Recorded::Full && now_secs >= shard.purge_at {
            shard.purge_at = shard.seen.purge(now_secs);
            recorded = shard.seen.record(fingerprint, expiry, now_secs);
        }
        match recorded {
            Recorded::Done => Ok(()),
            Recorded::Live => Err(Error::new(Code::ReplayDetected, "id already used")),
            Recorded::Full => Err(Error::new(
                Code::ResourceExhausted,
                "replay memory full of live ids",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i128 = 1_000_000_000;

    #[test]
    fn the_same_id_twice_from_one_principal_is_refused() {
        let guard = ReplayGuard::new(1024, 300, 0);
        guard.check("alice", "m-1", 0, 0).unwrap();
        let error = guard.check("alice", "m-1", 0, SECOND).unwrap_err();
        assert_eq!(error.code(), Code::ReplayDetected);
        guard.check("bob", "m-1", 0, SECOND).unwrap();
        guard.check("alice", "m-2", 0, SECOND).unwrap();
    }

    #[test]
    fn an_id_is_remembered_for_the_window_after_a_future_timestamp() {
        let guard = ReplayGuard::new(1024, 300, 0);
        // Stamped 200 s ahead: a replay could pass validation until 500 s.
        guard.check("alice", "m-1", 200 * SECOND, 0).unwrap();
        assert!(
            guard
                .check("alice", "m-1", 200 * SECOND, 499 * SECOND)
                .is_err()
        );
        guard
            .check("alice", "m-1", 800 * SECOND, 503 * SECOND)
            .unwrap();
    }

    #[test]
    fn a_full_guard_refuses_rather_than_forgets_then_recovers() {
        let guard = ReplayGuard::new(SHARDS * 4, 10, 0);
        let mut accepted = 0;
        let mut exhausted = 0;
        for n in 0..10_000 {
            match guard.check("flood", &format!("id-{n}"), 0, 0) {
                Ok(()) => accepted += 1,
                Err(e) => {
                    assert_eq!(e.code(), Code::ResourceExhausted);
                    exhausted += 1;
                }
            }
        }
        assert_eq!(accepted, guard.capacity());
        assert_eq!(accepted + exhausted, 10_000);
        assert!(guard.len() <= guard.capacity());
        // Every accepted id is still refused as a replay while it is live.
        for n in 0..10_000 {
            let again = guard.check("flood", &format!("id-{n}"), 0, SECOND);
            assert!(again.is_err());
        }
        // Once the window has passed, the space is reused.
        guard
            .check("flood", "later", 20 * SECOND, 20 * SECOND)
            .unwrap();
    }
}
