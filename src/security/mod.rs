//! Security above the transport (docs/protocol.md sections 3 to 7 and 10): keys,
//! tokens, signatures, payload encryption, replay protection, levels and
//! authorization.
//!
//! Each concern is its own module and a plain function or small type over
//! borrowed data; [`Admission`] runs the checks in the protocol's order
//! for one worker, and a `ReplyProtector` protects that worker's replies,
//! both over the [`SecurityState`] all workers share. Nothing here does
//! I/O except loading key files, and no refusal says more on the wire than
//! its code (see [`Error::wire_message`](crate::Error::wire_message)).

mod admission;
pub mod b64u;
pub(crate) mod cipher;
mod fingerprint_table;
mod key_id;
mod keyring;
mod level;
mod policy;
mod principal_table;
mod protected_response;
mod rate_limiter;
mod replay;
mod replay_clock;
pub(crate) mod replay_shares;
pub(crate) mod replay_streams;
mod replay_window;
mod reply_opening;
mod reply_protector;
mod revocation;
mod sealer;
mod sending_stream;
pub(crate) mod signature;
mod token;
mod token_cache;

#[cfg(feature = "test-support")]
pub mod test_support;

pub(crate) use admission::AdmittedOwned;
pub use admission::{Admission, Admitted, SecurityState};
pub use cipher::{NonceSequence, NonceSource};
pub use keyring::{
    JwtAlgorithm, Key, KeyUse, Keyring, KeyringSnapshot, MIN_SECRET_LEN, SharedKeyring,
};
pub use level::{Requirements, requirements};
pub use policy::Rule;
pub use policy::{ANONYMOUS_ROLE, Target};
pub(crate) use protected_response::ReplyProtection;
pub use rate_limiter::{DEFAULT_RATE_LABEL, MAX_LIMITED_PRINCIPALS, RateLimiter};
pub use replay_streams::MIN_WINDOW as MIN_STREAM_WINDOW;
pub(crate) use reply_opening::open_reply;
pub(crate) use reply_protector::ReplyProtector;
pub use revocation::{RevocationList, RevocationSnapshot, SharedRevocations};
pub use sealer::{STREAM_PROTOCOL_VERSION, Sealer};
pub use sending_stream::ReplayStream;
pub use token::{MAX_TOKEN_LEN, TokenClaims, VerifiedToken, issue_token, renew_token};
