//! Each principal's share of the replay memory: how many live entries it
//! holds in the id table and in the stream table, so that one principal
//! that floods either table exhausts only its own share
//! (`principal_replay_ids`, `principal_replay_streams`, and per role
//! `replay_ids`, `replay_streams`).
//!
//! ## Counting what is live
//!
//! An entry is live until its expiry (`max(timestamp, arrival) + window`).
//! A principal's entries are counted by expiry, in buckets of an eighth of
//! the window: once a bucket's time has passed, all of its entries have
//! expired, and its count drops out whole. The bucket that holds "now" is
//! still counted whole, so a principal may be held to slightly less than
//! its share for up to an eighth of the window, never to more.
//!
//! ## Cost
//!
//! Ids come one per message. A worker does not count each one in the
//! principal's shared record (one cache line that every worker would
//! write): it reserves [`ID_BLOCK`] at a time and spends them alone, so the
//! shared record is written once per block. A principal may therefore hold
//! up to one block per worker more than its share counts, and unspent ids
//! of a block stay counted until their bucket passes. Streams are counted
//! when one is made, and moved when its expiry crosses into a later bucket:
//! rarely.

use std::collections::HashMap;

use super::policy::ANONYMOUS_ROLE;
use super::principal_table::PrincipalTable;
use crate::config::Config;
use crate::error::{Code, Error};
use crate::sync::{Arc, Mutex};

/// Ids a worker reserves from a principal's share at a time.
pub(crate) const ID_BLOCK: u64 = 64;

/// Buckets a principal's count keeps: more than the `2 x window` (and a
/// few seconds) an expiry can lie ahead, in eighths of the window.
const RING: usize = 24;

/// Principals with live entries the registry holds at most; past it, a new
/// principal is refused `resource_exhausted` until others' entries expire.
pub(crate) const MAX_PRINCIPALS: usize = 1 << 16;

/// One table's live entries of one principal, by expiry bucket.
#[derive(Debug, Default)]
struct Buckets {
    /// Slot `i` counts bucket `number[i]` (`number[i] % RING == i`).
    number: [u32; RING],
    count: [u64; RING],
}

impl Buckets {
    /// Entries whose bucket has not passed at bucket `now`.
    fn live(&self, now: u32) -> u64 {
        self.number
            .iter()
            .zip(&self.count)
            .filter(|&(&number, _)| number >= now)
            .map(|(_, &count)| count)
            .sum()
    }

    fn slot(&mut self, bucket: u32) -> (&mut u32, &mut u64) {
        let i = bucket as usize % RING;
        // RING is not zero: both indexings are in range.
        #[allow(clippy::indexing_slicing)]
        (&mut self.number[i], &mut self.count[i])
    }

    /// Adds `n` entries expiring in `bucket` (at or after `now`).
    fn add(&mut self, bucket: u32, n: u64, now: u32) {
        let (number, count) = self.slot(bucket);
        if *number != bucket {
            if *number >= now && *number > bucket {
                // A later live bucket holds the slot (the ring is sized so
                // that this cannot happen): count these with it, late.
                *count += n;
                return;
            }
            *number = bucket;
            *count = 0;
        }
        *count += n;
    }

    /// Takes back `n` entries counted in `bucket`.
    fn remove(&mut self, bucket: u32, n: u64) {
        let (number, count) = self.slot(bucket);
        if *number == bucket {
            *count = count.saturating_sub(n);
        }
    }
}

/// What one principal holds in both tables.
#[derive(Debug, Default)]
pub(crate) struct PrincipalUsage {
    ids: Mutex<Buckets>,
    streams: Mutex<Buckets>,
}

/// The two tables a share is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    /// Message ids (section 7).
    Ids,
    /// Replay streams (section 7a).
    Streams,
}

impl PrincipalUsage {
    fn buckets(&self, table: Table) -> &Mutex<Buckets> {
        match table {
            Table::Ids => &self.ids,
            Table::Streams => &self.streams,
        }
    }

    /// Counts up to `want` entries expiring in `bucket` against `share`, and
    /// returns how many it counted (0: the share is full).
    pub(crate) fn take(&self, table: Table, bucket: u32, want: u64, share: u64, now: u32) -> u64 {
        let mut buckets = self.buckets(table).lock();
        let room = share.saturating_sub(buckets.live(now)).min(want);
        if room > 0 {
            buckets.add(bucket, room, now);
        }
        room
    }

    /// Gives back `n` entries counted in `bucket`.
    pub(crate) fn give_back(&self, table: Table, bucket: u32, n: u64) {
        if n > 0 {
            self.buckets(table).lock().remove(bucket, n);
        }
    }

    /// One entry's expiry moved from bucket `from` to the later `to`.
    pub(crate) fn moved(&self, table: Table, from: u32, to: u32, now: u32) {
        if from != to {
            let mut buckets = self.buckets(table).lock();
            buckets.remove(from, 1);
            buckets.add(to, 1, now);
        }
    }

    /// Live entries in `table` at bucket `now`.
    pub(crate) fn live(&self, table: Table, now: u32) -> u64 {
        self.buckets(table).lock().live(now)
    }
}

/// Every principal's usage, found by principal name.
#[derive(Debug)]
pub(crate) struct Shares {
    principals: PrincipalTable<PrincipalUsage>,
    /// Seconds per bucket: an eighth of the window, at least one.
    bucket_secs: u32,
}

impl Shares {
    /// Shares of tables whose entries live `window_secs` past their
    /// timestamp.
    pub(crate) fn new(window_secs: u64) -> Shares {
        Shares {
            principals: PrincipalTable::new(
                MAX_PRINCIPALS,
                "replay memory: too many principals with live entries",
            ),
            bucket_secs: u32::try_from(window_secs.div_ceil(8).max(1)).unwrap_or(u32::MAX),
        }
    }

    /// The bucket of an expiry (seconds since the tables' epoch).
    pub(crate) fn bucket(&self, secs: u32) -> u32 {
        secs / self.bucket_secs
    }

    /// The usage record of `principal`, made if new. Refused with
    /// `resource_exhausted` when [`MAX_PRINCIPALS`] hold live entries.
    pub(crate) fn usage(&self, principal: &str, now: u32) -> Result<Arc<PrincipalUsage>, Error> {
        let now = self.bucket(now);
        self.principals.record(principal, |usage| {
            usage.live(Table::Ids, now) == 0 && usage.live(Table::Streams, now) == 0
        })
    }
}

/// How much of each table a principal may hold: by its roles, or the
/// default (from the config, see [`SecurityConfig`]).
///
/// [`SecurityConfig`]: crate::config::SecurityConfig
#[derive(Debug)]
pub(crate) struct ShareRules {
    ids: u64,
    streams: u64,
    roles: HashMap<Box<str>, (Option<u64>, Option<u64>)>,
}

impl ShareRules {
    pub(crate) fn from_config(config: &Config) -> ShareRules {
        let security = &config.security;
        ShareRules {
            ids: security
                .principal_replay_ids
                .unwrap_or(security.replay_capacity / 4 * 3),
            streams: security
                .principal_replay_streams
                .unwrap_or(security.replay_streams / 4),
            roles: config
                .authorization
                .roles
                .iter()
                .filter(|(_, role)| role.replay_ids.is_some() || role.replay_streams.is_some())
                .map(|(name, role)| {
                    (
                        Box::from(name.as_str()),
                        (role.replay_ids, role.replay_streams),
                    )
                })
                .collect(),
        }
    }

    /// The share of `table` of a principal with `roles` (a message without
    /// a token speaks as the role `anonymous`): the largest its roles set,
    /// or the default.
    pub(crate) fn of(&self, table: Table, roles: &[Box<str>]) -> u64 {
        let pick = |&(ids, streams): &(Option<u64>, Option<u64>)| match table {
            Table::Ids => ids,
            Table::Streams => streams,
        };
        let default = match table {
            Table::Ids => self.ids,
            Table::Streams => self.streams,
        };
        let by_role = if roles.is_empty() {
            self.roles.get(ANONYMOUS_ROLE).and_then(pick)
        } else {
            roles
                .iter()
                .filter_map(|role| self.roles.get(role).and_then(pick))
                .max()
        };
        by_role.unwrap_or(default)
    }
}

/// A worker's reservation of ids from one principal's share.
#[derive(Debug, Default)]
pub(crate) struct IdReservation {
    principal: Option<(Box<str>, Arc<PrincipalUsage>)>,
    bucket: u32,
    left: u64,
}

impl IdReservation {
    /// Takes one id expiring at `expiry` (seconds) for `principal`, whose
    /// share is `share`: from the block in hand, or a fresh block. Refused
    /// with `resource_exhausted` at the share.
    pub(crate) fn take(
        &mut self,
        shares: &Shares,
        principal: &str,
        share: impl FnOnce() -> u64,
        expiry: u32,
        now: u32,
    ) -> Result<(), Error> {
        let bucket = shares.bucket(expiry);
        let same = self
            .principal
            .as_ref()
            .is_some_and(|(name, _)| **name == *principal);
        if same && bucket == self.bucket && self.left > 0 {
            self.left -= 1;
            return Ok(());
        }
        self.release();
        let usage = match &self.principal {
            Some((_, usage)) if same => Arc::clone(usage),
            _ => {
                let usage = shares.usage(principal, now)?;
                self.principal = Some((Box::from(principal), Arc::clone(&usage)));
                usage
            }
        };
        let taken = usage.take(Table::Ids, bucket, ID_BLOCK, share(), shares.bucket(now));
        if taken == 0 {
            return Err(Error::new(
                Code::ResourceExhausted,
                "this principal's share of the replay memory is full",
            ));
        }
        self.bucket = bucket;
        self.left = taken - 1;
        Ok(())
    }

    /// The id just taken was not recorded (a replay, a full table): it goes
    /// back to the block.
    pub(crate) fn refund(&mut self) {
        self.left += 1;
    }

    /// Gives the rest of the block back to the principal's share.
    fn release(&mut self) {
        if let Some((_, usage)) = &self.principal {
            usage.give_back(Table::Ids, self.bucket, self.left);
        }
        self.left = 0;
    }
}

impl Drop for IdReservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_share_counts_live_entries_and_frees_a_bucket_once_it_passed() {
        let usage = PrincipalUsage::default();
        // Buckets 10 and 11 at now = 10: a share of 100.
        assert_eq!(usage.take(Table::Ids, 10, 60, 100, 10), 60);
        assert_eq!(usage.take(Table::Ids, 11, 60, 100, 10), 40);
        assert_eq!(usage.take(Table::Ids, 11, 1, 100, 10), 0);
        // The streams table has its own count.
        assert_eq!(usage.take(Table::Streams, 11, 1, 1, 10), 1);
        usage.give_back(Table::Ids, 11, 5);
        assert_eq!(usage.live(Table::Ids, 10), 95);
        // Once bucket 10 has passed, its 60 are free again.
        assert_eq!(usage.live(Table::Ids, 11), 35);
        assert_eq!(usage.take(Table::Ids, 12, 100, 100, 11), 65);
        // A moved entry counts in its new bucket.
        usage.moved(Table::Streams, 11, 13, 11);
        assert_eq!(usage.live(Table::Streams, 12), 1);
        assert_eq!(usage.live(Table::Streams, 14), 0);
    }

    #[test]
    fn a_share_is_the_largest_of_the_roles_or_the_default() {
        let mut config = Config::default();
        config.security.replay_capacity = 4000;
        config.security.principal_replay_streams = Some(7);
        for (name, ids, streams) in [
            ("big", Some(5000), None),
            ("small", Some(10), Some(2)),
            ("anonymous", Some(1), None),
        ] {
            let role = crate::config::RoleConfig {
                replay_ids: ids,
                replay_streams: streams,
                ..Default::default()
            };
            config.authorization.roles.insert(name.into(), role);
        }
        let rules = ShareRules::from_config(&config);
        let roles = |names: &[&str]| {
            names
                .iter()
                .map(|n| Box::from(*n))
                .collect::<Vec<Box<str>>>()
        };
        assert_eq!(rules.of(Table::Ids, &roles(&["small", "big"])), 5000);
        assert_eq!(rules.of(Table::Streams, &roles(&["small", "big"])), 2);
        assert_eq!(rules.of(Table::Ids, &roles(&["other"])), 3000);
        assert_eq!(rules.of(Table::Streams, &roles(&["other"])), 7);
        assert_eq!(rules.of(Table::Ids, &[]), 1);
        assert_eq!(rules.of(Table::Streams, &[]), 7);
    }

    #[test]
    fn a_reservation_spends_blocks_and_stops_at_the_share() {
        let shares = Shares::new(80);
        let mut worker_a = IdReservation::default();
        let mut worker_b = IdReservation::default();
        let share = 3 * ID_BLOCK;
        let mut taken = 0;
        // Two workers take ids of one principal until the share is full.
        loop {
            let a = worker_a.take(&shares, "p", || share, 100, 0);
            let b = worker_b.take(&shares, "p", || share, 100, 0);
            taken += u64::from(a.is_ok()) + u64::from(b.is_ok());
            if let (Err(a), Err(_)) = (&a, &b) {
                assert_eq!(a.code(), Code::ResourceExhausted);
                break;
            }
        }
        assert_eq!(taken, share);
        // Another principal has its own share.
        worker_a.take(&shares, "q", || share, 100, 0).unwrap();
        // Worker a's move to "q" gave its unspent "p" ids back.
        let p = shares.usage("p", 0).unwrap();
        assert_eq!(p.live(Table::Ids, 0), taken);
        drop(worker_b);
        assert_eq!(p.live(Table::Ids, 0), taken);
        // A refunded id is spent again without a new block.
        worker_a.refund();
        worker_a
            .take(&shares, "q", || panic!("no new block"), 100, 0)
            .unwrap();
    }
}
