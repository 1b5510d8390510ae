//! The security layer's working parts, for this crate's tests, benches
//! and loom models (feature test-support). Not part of the API: an
//! embedder reaches them through the engine.

pub use super::admission::AdmittedOwned;
pub use super::cipher::{CipherScratch, open_payload, open_raw, seal_payload};
pub use super::key_id::KeyId;
pub use super::policy::Policy;
pub use super::protected_response::ReplyProtection;
pub use super::replay::ReplayGuard;
pub use super::replay_streams::StreamGuard;
pub use super::reply_protector::ReplyProtector;
pub use super::signature::{SignatureScratch, hmac_sha256_matches, sign_message, verify_signature};
pub use super::token::{TokenRules, TokenScratch, jws_signature_valid, verify_token};
pub use super::token_cache::TokenCache;

/// A rate limiter of one limit, taken by workers each with a cache of its
/// own, as the admission of each worker takes it (the loom model of
/// `rate_limiter.rs`).
#[derive(Debug)]
pub struct RateLimitModel {
    limiter: super::RateLimiter,
    limit: super::rate_limiter::Limit,
}

impl RateLimitModel {
    /// A limiter of `per_second` messages a second, `burst` at once.
    pub fn new(per_second: u64, burst: u64) -> RateLimitModel {
        RateLimitModel {
            limiter: super::RateLimiter::default(),
            limit: super::rate_limiter::Limit::new(
                crate::config::RateLimit::new(per_second, burst),
                "model",
            ),
        }
    }

    /// One message of `principal` at `now` (nanoseconds) through a new
    /// worker cache: whether it was allowed.
    pub fn take(&self, principal: &str, now: i128) -> bool {
        super::rate_limiter::RateCache::default()
            .check(&self.limiter, principal, &self.limit, now)
            .is_ok()
    }

    /// Messages refused so far.
    pub fn refused(&self) -> u64 {
        self.limiter.refused().iter().map(|(_, n)| n).sum()
    }
}
