//! The pipeline: the stages every message crosses, in order, each a
//! function over one message.
//!
//! 1. [`validate`] (`validate.rs`): the frame body decoded, every envelope
//!    rule checked; `validation_failed`, `invalid_format` and the like.
//! 2. [`admit`] (`admit.rs`): token, security level, signature, replay,
//!    decryption; the security category's codes.
//! 3. [`route`] (`route.rs`): what runs the message, by its type: a
//!    command's registry entry, an event's subscribers, or, for a Response
//!    or an Error, the command this engine sent that it answers.
//! 4. authorize (`authorize.rs`): the policy over what the message asks.
//! 5. execute (`execute.rs`): the handler (deadline, breaker, retries,
//!    deferral), a built-in, or the event's subscribers; the message comes
//!    to a [`Verdict`].
//! 6. respond (`respond.rs`): the one reply for the verdict, protected as
//!    the request was, unless the timer answered first; a deferred
//!    command's answer when it comes back. Each worker has a
//!    [`Replier`]: its reply writer and reply protection.
//!
//! A worker runs them in this order on each message (the sharded
//! topology); staged, a front-stage worker runs validate and admit and a
//! back-stage worker the rest (`staged.rs`). [`Stage`] names them as
//! latencies are kept, and [`Laps`] times them on one message.

mod admit;
mod authorize;
mod context;
mod execute;
mod laps;
mod respond;
mod route;
mod stage;
mod validate;
mod vetted;

#[cfg(all(test, not(loom)))]
mod tests;

pub(crate) use admit::admit;
pub(crate) use context::{Context, Verdict};
pub(crate) use laps::Laps;
pub(crate) use respond::{Replier, Replying, Running, replying_to};
pub(crate) use route::route;
pub use stage::Stage;
pub(crate) use validate::{id_of_refused, validate};
pub(crate) use vetted::Vetted;
