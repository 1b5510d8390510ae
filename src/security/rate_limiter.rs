//! Per-principal rate limits (`rate` and `burst` in `[authorization]` and
//! its roles), checked right after authentication.
//!
//! ## One atomic per check
//!
//! Each principal's bucket is one `AtomicU64`: the theoretical arrival
//! time of the generic cell rate algorithm (GCRA), which is a token bucket
//! kept as a single time. A message at `now` is allowed while the time is
//! no more than `(burst - 1) x interval` ahead of `now`, and moves it
//! `interval` (one second / rate) further. The limit itself (interval and
//! burst) is read from the settings of the moment, so a reload (SIGHUP)
//! changes it for every principal at once, and a bucket never holds more
//! than its limit allows.
//!
//! A worker keeps the buckets of the principals it saw last in a map of
//! its own ([`RateCache`]): for them a check is a lookup in that map and
//! the one compare-and-swap. Only a principal new to the worker takes the
//! shared table's lock. Workers sharing one principal's bucket would pass
//! its cache line between cores at every message, so a worker takes up
//! to a block of messages at once (a 32nd of the burst, at most 64; one
//! for bursts under 64) and spends them alone: a principal may get up to
//! one block per worker beyond its burst, never more than its rate over
//! time.
//!
//! ## Bounded memory
//!
//! The shared table holds at most [`MAX_LIMITED_PRINCIPALS`] buckets. A
//! bucket whose time has passed is full again: forgetting it changes
//! nothing, so when the table is full those no worker holds are
//! forgotten. If none can be, a new principal is refused
//! `resource_exhausted` until some bucket fills again (at most `burst /
//! rate` seconds).

use std::collections::HashMap;

use crate::config::{AuthorizationConfig, RateLimit};
use crate::error::{Code, Error};
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};

use super::policy::ANONYMOUS_ROLE;
use super::principal_table::PrincipalTable;

/// Principals the shared table holds buckets for at most.
pub const MAX_LIMITED_PRINCIPALS: usize = 1 << 16;

/// Principals a worker keeps buckets of before it starts its map afresh.
const CACHED_PRINCIPALS: usize = 256;

/// The most messages a worker takes from a bucket at once.
const MAX_BLOCK: u64 = 64;

/// A block is at most this fraction of the burst: what workers hold
/// unspent stays a small part of it.
const BLOCK_SHARE_OF_BURST: u64 = 32;

/// The label of refusals counted under the `[authorization]` limit.
pub const DEFAULT_RATE_LABEL: &str = "default";

/// One principal's bucket: the time (nanoseconds) at which it is full.
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    full_at: AtomicU64,
}

impl Bucket {
    /// Takes one message at `now` under `limit`; `false`: over the limit.
    #[cfg(test)]
    fn take(&self, now: u64, limit: &Limit) -> bool {
        self.take_up_to(now, limit, 1) == 1
    }

    /// Takes up to `wanted` messages at once at `now` under `limit`, as
    /// many as the burst leaves room for: how many (0: over the limit).
    fn take_up_to(&self, now: u64, limit: &Limit, wanted: u64) -> u64 {
        let mut full_at = self.full_at.load(Ordering::Relaxed);
        loop {
            let from = full_at.max(now);
            let ahead = from - now;
            if ahead > limit.tolerance_ns {
                return 0;
            }
            let room = (limit.tolerance_ns - ahead) / limit.interval_ns + 1;
            let taken = wanted.min(room).max(1);
            match self.full_at.compare_exchange_weak(
                full_at,
                from.saturating_add(limit.interval_ns.saturating_mul(taken)),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return taken,
                Err(seen) => full_at = seen,
            }
        }
    }

    fn is_full(&self, now: u64) -> bool {
        self.full_at.load(Ordering::Relaxed) <= now
    }
}

/// A limit as the check uses it, and the label it is counted under.
#[derive(Debug)]
pub(crate) struct Limit {
    interval_ns: u64,
    tolerance_ns: u64,
    /// Messages a worker takes from the bucket at once (see the module's
    /// notes on cost).
    block: u64,
    per_second: u64,
    label: Box<str>,
}

impl Limit {
    pub(crate) fn new(limit: RateLimit, label: &str) -> Limit {
        let interval_ns = (1_000_000_000 / limit.per_second.max(1)).max(1);
        Limit {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(limit.burst.saturating_sub(1)),
            block: (limit.burst / BLOCK_SHARE_OF_BURST).clamp(1, MAX_BLOCK),
            per_second: limit.per_second,
            label: Box::from(label),
        }
    }
}

/// Which limit applies to whom: part of the settings a reload replaces.
#[derive(Debug, Default)]
pub(crate) struct RateRules {
    default: Option<Limit>,
    roles: HashMap<Box<str>, Limit>,
}

impl RateRules {
    pub(crate) fn from_config(authorization: &AuthorizationConfig) -> RateRules {
        RateRules {
            default: authorization
                .rate_limit
                .map(|limit| Limit::new(limit, DEFAULT_RATE_LABEL)),
            roles: authorization
                .roles
                .iter()
                .filter_map(|(name, role)| {
                    let limit = Limit::new(role.rate_limit?, name);
                    Some((Box::from(name.as_str()), limit))
                })
                .collect(),
        }
    }

    /// The labels of the limits set: `default` and the roles'.
    pub(crate) fn labels(&self) -> impl Iterator<Item = &str> {
        self.default
            .iter()
            .chain(self.roles.values())
            .map(|limit| &*limit.label)
    }

    /// Whether any limit is set: without one, nothing is checked.
    pub(crate) fn any(&self) -> bool {
        self.default.is_some() || !self.roles.is_empty()
    }

    /// The limit of a principal with `roles` (none: the role `anonymous`):
    /// its roles' of the highest rate, else the default.
    pub(crate) fn of(&self, roles: &[Box<str>]) -> Option<&Limit> {
        let by_role = if roles.is_empty() {
            self.roles.get(ANONYMOUS_ROLE)
        } else {
            roles
                .iter()
                .filter_map(|role| self.roles.get(role))
                .max_by_key(|limit| (limit.per_second, limit.tolerance_ns))
        };
        by_role.or(self.default.as_ref())
    }
}

/// Every limited principal's bucket, and the refusals by label.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: PrincipalTable<Bucket>,
    refused: Mutex<Vec<(Box<str>, u64)>>,
}

impl Default for RateLimiter {
    fn default() -> RateLimiter {
        RateLimiter {
            buckets: PrincipalTable::new(
                MAX_LIMITED_PRINCIPALS,
                "rate limit: too many principals are being limited at once",
            ),
            refused: Mutex::new(Vec::new()),
        }
    }
}

impl RateLimiter {
    /// Principals with a bucket now.
    pub fn principals(&self) -> usize {
        self.buckets.len()
    }

    /// Messages refused over a limit, by the role whose limit it was (or
    /// [`DEFAULT_RATE_LABEL`]), in the order first refused.
    pub fn refused(&self) -> Vec<(String, u64)> {
        self.refused
            .lock()
            .iter()
            .map(|(label, count)| (label.to_string(), *count))
            .collect()
    }

    /// The bucket of `principal`, made if new.
    fn bucket(&self, principal: &str, now: u64) -> Result<Arc<Bucket>, Error> {
        self.buckets.record(principal, |bucket| bucket.is_full(now))
    }

    fn count_refusal(&self, label: &str) {
        let mut refused = self.refused.lock();
        match refused.iter_mut().find(|(seen, _)| **seen == *label) {
            Some((_, count)) => *count += 1,
            None => refused.push((Box::from(label), 1)),
        }
    }
}

/// A worker's buckets of the principals it saw last.
#[derive(Debug, Default)]
pub(crate) struct RateCache {
    buckets: HashMap<Box<str>, Held, foldhash::fast::RandomState>,
}

/// A principal's bucket, and the messages this worker took from it and
/// has not spent yet.
#[derive(Debug)]
struct Held {
    bucket: Arc<Bucket>,
    left: u64,
}

impl RateCache {
    /// Takes one message of `principal` at `now` (unix nanoseconds) under
    /// `limit`, or refuses it `resource_exhausted` (retryable), saying it
    /// was the rate limit.
    pub(crate) fn check(
        &mut self,
        limiter: &RateLimiter,
        principal: &str,
        limit: &Limit,
        now: i128,
    ) -> Result<(), Error> {
        let now = u64::try_from(now).unwrap_or(0);
        let held = match self.buckets.get_mut(principal) {
            Some(held) => held,
            None => {
                if self.buckets.len() >= CACHED_PRINCIPALS {
                    self.buckets.clear();
                }
                let bucket = limiter.bucket(principal, now)?;
                self.buckets
                    .entry(Box::from(principal))
                    .or_insert(Held { bucket, left: 0 })
            }
        };
        if held.left > 0 {
            held.left -= 1;
            return Ok(());
        }
        let taken = held.bucket.take_up_to(now, limit, limit.block);
        if taken > 0 {
            held.left = taken - 1;
            return Ok(());
        }
        limiter.count_refusal(&limit.label);
        Err(Error::new(
            Code::ResourceExhausted,
            format!(
                "rate limit: more than {} messages a second from this principal (role {})",
                limit.per_second, limit.label
            ),
        ))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Bucket, Limit, RateCache, RateLimiter, RateRules};
    use crate::config::{AuthorizationConfig, RateLimit, RoleConfig};
    use crate::error::Code;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limit = Limit::new(RateLimit::new(10, 3), "r");
        let bucket = Bucket::default();
        let start = 1_000 * SECOND;
        let allowed = (0..5).filter(|_| bucket.take(start, &limit)).count();
        assert_eq!(allowed, 3, "the burst, at once");
        // One more each tenth of a second.
        assert!(!bucket.take(start + SECOND / 10 - 1, &limit));
        assert!(bucket.take(start + SECOND / 10, &limit));
        assert!(!bucket.take(start + SECOND / 10, &limit));
        // Over a long run, the rate: 10 a second.
        let mut allowed = 0;
        for step in 0..10_000u64 {
            if bucket.take(start + SECOND + step * SECOND / 1_000, &limit) {
                allowed += 1;
            }
        }
        assert!((100..=103).contains(&allowed), "{allowed} in 10 s");
        // Quiet for a while: the burst again, not more.
        let later = start + 100 * SECOND;
        assert!(bucket.is_full(later));
        assert_eq!((0..5).filter(|_| bucket.take(later, &limit)).count(), 3);
    }

    #[test]
    fn a_principal_gets_its_roles_highest_limit_or_the_default() {
        let mut authorization = AuthorizationConfig {
            rate_limit: Some(RateLimit::new(100, 100)),
            ..AuthorizationConfig::default()
        };
        for (name, rate) in [("slow", 5), ("fast", 1_000), ("anonymous", 1)] {
            let role = RoleConfig {
                rate_limit: Some(RateLimit::new(rate, rate)),
                ..RoleConfig::default()
            };
            authorization.roles.insert(name.into(), role);
        }
        authorization
            .roles
            .insert("plain".into(), RoleConfig::default());
        let rules = RateRules::from_config(&authorization);
        let of = |roles: &[&str]| {
            let roles: Vec<Box<str>> = roles.iter().map(|r| Box::from(*r)).collect();
            rules
                .of(&roles)
                .map(|limit| (&*limit.label, limit.per_second))
        };
        assert_eq!(of(&["slow", "fast"]), Some(("fast", 1_000)));
        assert_eq!(of(&["slow", "plain"]), Some(("slow", 5)));
        assert_eq!(of(&["plain"]), Some(("default", 100)));
        assert_eq!(of(&[]), Some(("anonymous", 1)));
        assert!(!RateRules::from_config(&AuthorizationConfig::default()).any());
    }

    #[test]
    fn over_the_limit_is_resource_exhausted_and_counted_by_label() {
        let limiter = RateLimiter::default();
        let limit = Limit::new(RateLimit::new(1, 2), "reader");
        let mut cache = RateCache::default();
        let now = 5_000 * i128::from(SECOND);
        assert!(cache.check(&limiter, "alice", &limit, now).is_ok());
        assert!(cache.check(&limiter, "alice", &limit, now).is_ok());
        let refused = cache.check(&limiter, "alice", &limit, now).unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert!(refused.is_retryable());
        assert!(refused.message().starts_with("rate limit:"), "{refused:?}");
        // Another principal has a bucket of its own; another worker's
        // cache finds alice's.
        assert!(cache.check(&limiter, "bob", &limit, now).is_ok());
        let mut other_worker = RateCache::default();
        assert!(other_worker.check(&limiter, "alice", &limit, now).is_err());
        assert_eq!(limiter.refused(), [("reader".to_owned(), 2)]);
        assert_eq!(limiter.principals(), 2);
    }

    #[test]
    fn the_table_forgets_full_buckets_and_refuses_when_none_can_go() {
        let limiter = RateLimiter::default();
        let limit = Limit::new(RateLimit::new(1, 1), "r");
        let now = 10 * SECOND;
        let held: Vec<_> = (0..super::MAX_LIMITED_PRINCIPALS)
            .map(|n| {
                let bucket = limiter.bucket(&format!("p{n}"), now).unwrap();
                assert!(bucket.take(now, &limit));
                bucket
            })
            .collect();
        // Every bucket is held and none is full: a new principal waits.
        let refused = limiter.bucket("late", now).unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        drop(held);
        // Still not full a moment later; full again after a second.
        assert!(limiter.bucket("late", now + 1).is_err());
        assert!(limiter.bucket("late", now + SECOND).is_ok());
        assert_eq!(limiter.principals(), 1);
    }

    #[test]
    fn workers_take_blocks_and_the_burst_is_kept_but_for_a_block_each() {
        let limiter = RateLimiter::default();
        let limit = Limit::new(RateLimit::new(1_000, 1_000), "r");
        assert_eq!(limit.block, 31);
        let now = 7_000 * i128::from(SECOND);
        let mut workers = [RateCache::default(), RateCache::default()];
        let mut allowed = 0;
        for n in 0..4_000 {
            if workers[n % 2].check(&limiter, "alice", &limit, now).is_ok() {
                allowed += 1;
            }
        }
        // The burst, and what the last blocks taken leave unspent at most.
        assert!((1_000..=1_000 + 2 * 31).contains(&allowed), "{allowed}");
        // A small burst is taken one at a time: exact.
        let small = Limit::new(RateLimit::new(10, 40), "s");
        assert_eq!(small.block, 1);
    }
}
