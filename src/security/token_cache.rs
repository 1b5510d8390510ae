//! [`TokenCache`]: verified tokens, per worker, so that a client that sends
//! the same token with every message pays for its signature once.
//!
//! Each worker owns its cache (`&mut self`): no lock, nothing shared. The
//! cache is direct-mapped by a keyed hash of the whole token, so its memory
//! is fixed; a colliding token simply replaces the older one. A hit compares
//! the whole token (a hash match alone proves nothing), and then re-checks
//! what can change after verification: the key still usable and still the
//! same material, the `jti` not revoked since, `exp` not passed. Rule
//! changes (issuer, audience, leeway) empty the cache.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use super::keyring::Keyring;
use super::revocation::RevocationList;
use super::token::{TokenRules, TokenScratch, VerifiedToken, recheck, verify_token};
use crate::error::Error;

/// A bounded cache of verified tokens, owned by one worker.
pub struct TokenCache {
    slots: Box<[Option<Entry>]>,
    /// Capacity 0: verify every time; the one slot only holds the answer.
    enabled: bool,
    hasher: RandomState,
    rules_fingerprint: Option<u64>,
    scratch: TokenScratch,
    hits: u64,
    misses: u64,
}

struct Entry {
    token: Box<str>,
    verified: VerifiedToken,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.slots.len())
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache of `capacity` tokens (rounded up to a power of two; 0 turns
    /// caching off).
    pub fn new(capacity: usize) -> TokenCache {
        let slots = capacity.max(1).next_power_of_two();
        TokenCache {
            slots: (0..slots).map(|_| None).collect(),
            enabled: capacity > 0,
            hasher: RandomState::default(),
            rules_fingerprint: None,
            scratch: TokenScratch::default(),
            hits: 0,
            misses: 0,
        }
    }

    /// Verifies `token`, from the cache when it holds it.
    pub fn verify(
        &mut self,
        token: &str,
        rules: &TokenRules,
        keyring: &Keyring,
        revoked: &RevocationList,
        now: i128,
    ) -> Result<&VerifiedToken, Error> {
        if self.rules_fingerprint != Some(rules.fingerprint()) {
            self.slots.iter_mut().for_each(|slot| *slot = None);
            self.rules_fingerprint = Some(rules.fingerprint());
        }
        let index = (self.hasher.hash_one(token) as usize) & (self.slots.len() - 1);
        let hit = self.enabled
            && self
                .slots
                .get(index)
                .and_then(Option::as_ref)
                .is_some_and(|entry| &*entry.token == token);
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
            let verified = verify_token(token, rules, keyring, revoked, now, &mut self.scratch)?;
            if let Some(slot) = self.slots.get_mut(index) {
                *slot = Some(Entry {
                    token: Box::from(token),
                    verified,
                });
            }
        }
        let entry = self
            .slots
            .get(index)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::new(crate::Code::InternalError, "token cache slot empty"))?;
        if hit {
            recheck(&entry.verified, rules, keyring, revoked, now)?;
        }
        Ok(&entry.verified)
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}
