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
