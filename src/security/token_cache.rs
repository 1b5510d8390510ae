//! [`TokenCache`]: verified tokens, per worker, so that a client that sends
//! the same token with every message pays for its signature once.
//!
//! Each worker owns its cache (`&mut self`): no lock, nothing shared. The
//! cache is direct-mapped by a keyed hash of the token's end, so its memory
//! is fixed; a colliding token simply replaces the older one. A hit compares
//! the whole token (a hash match alone proves nothing), and then re-checks
//! what can change after verification: the key still usable and still the
//! same material, the `jti` not revoked since, `exp` not passed. Rule
//! changes (issuer, audience, leeway) empty the cache.

// Public for the tests, benches and loom models (`security::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

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
        let index = (self.hasher.hash_one(hashed_part(token)) as usize) & (self.slots.len() - 1);
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
    #[cfg(any(test, feature = "test-support"))]
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

/// What picks a token's slot: its last 32 bytes, which in a JWT are its
/// signature, as varied as a whole token and a tenth of its length. Tokens
/// made to share an ending meet in one slot, but only a token that
/// verifies is stored, and a hit still compares the whole token.
fn hashed_part(token: &str) -> &[u8] {
    let bytes = token.as_bytes();
    bytes.get(bytes.len().saturating_sub(32)..).unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::keyring::Key;
    use crate::security::token::{TokenClaims, issue_token};

    const NOW: i128 = 1_795_435_200 * 1_000_000_000;

    /// One token key, nothing revoked, no issuer or audience rules, and an
    /// empty cache of 64 tokens.
    fn setup() -> (Keyring, RevocationList, TokenRules, TokenCache) {
        let keyring = Keyring::new()
            .with("jwt-1", Key::hs256(&[7; 32]).unwrap(), true)
            .unwrap();
        (
            keyring,
            RevocationList::new(&[] as &[String]),
            TokenRules::new(0, None, None),
            TokenCache::new(64),
        )
    }

    fn token(keyring: &Keyring) -> String {
        let claims = TokenClaims {
            subject: "alice",
            roles: &["admin"],
            issuer: None,
            audience: None,
            ttl_secs: 600,
        };
        issue_token(keyring, &claims, NOW).unwrap()
    }

    #[test]
    fn a_token_verifies_once_and_then_hits() {
        let (keyring, revoked, rules, mut cache) = setup();
        let (a, b) = (token(&keyring), token(&keyring));
        for _ in 0..3 {
            assert_eq!(
                &*cache
                    .verify(&a, &rules, &keyring, &revoked, NOW)
                    .unwrap()
                    .subject,
                "alice"
            );
            assert!(cache.verify(&b, &rules, &keyring, &revoked, NOW).is_ok());
        }
        assert_eq!(cache.stats(), (4, 2));
    }

    #[test]
    fn a_token_made_to_end_as_a_cached_one_is_still_checked_whole() {
        let (keyring, revoked, rules, mut cache) = setup();
        let good = token(&keyring);
        cache
            .verify(&good, &rules, &keyring, &revoked, NOW)
            .unwrap();
        // Another header and payload before the cached token's signature:
        // the same slot, not the same token.
        let (_, signature) = good.rsplit_once('.').unwrap();
        let forged = format!(
            "{}.{signature}",
            &token(&keyring)[..good.len() - signature.len() - 1]
        );
        assert_ne!(forged, good);
        assert_eq!(hashed_part(&forged), hashed_part(&good));
        assert!(
            cache
                .verify(&forged, &rules, &keyring, &revoked, NOW)
                .is_err()
        );
        // A short token is hashed whole.
        assert!(
            cache
                .verify("a.b.c", &rules, &keyring, &revoked, NOW)
                .is_err()
        );
        assert_eq!(hashed_part("a.b.c"), b"a.b.c");
        // The good one is still there.
        cache
            .verify(&good, &rules, &keyring, &revoked, NOW)
            .unwrap();
        assert_eq!(cache.stats(), (1, 3));
    }
}
