//! The audit log's lines (`[audit]`): one JSON line per security decision
//! worth keeping: authentication and authorization refusals, replays,
//! signature and decryption failures, rate-limit refusals, admin commands,
//! reloads and key rotation. Each line has the time, the principal (when a
//! token verified), the peer address, the message id, the command and the
//! code; never a payload, a token, a key or a signature.
//!
//! A flood of bad messages must not fill the disk: [`Collapser`] writes the
//! first of identical refusals from one peer (same code, principal and
//! command) at once and the rest of the interval as one line with their
//! count. Engine threads hand events to the log's writer thread without
//! waiting (`engine::AuditLog`); [`Output`] is where the lines go, reopened
//! for logrotate.

mod collapse;
mod event;
mod output;

pub use collapse::{Collapser, MAX_DISTINCT_PER_INTERVAL, Taken};
pub use event::{AuditEvent, AuditKind};
pub use output::Output;

#[cfg(all(test, not(loom)))]
mod tests;
