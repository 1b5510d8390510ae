//! The engine as a library embeds it: submitting, replies at a sink,
//! calls with values,
//! deferred answers, recovery, batches, running on the submitter, key
//! rotation, replay shares, and conservation (every accepted message gets
//! exactly one outcome) under every kind of trouble.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod basics;
mod batch_submission;
mod calls_with_values;
mod conservation;
mod key_rotation;
mod load_shedding;
mod recovery;
mod replay_flood;
mod run_on_submitter;
mod send_sync;
