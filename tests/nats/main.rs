//! The NATS ingress (feature `nats`) against a real broker: framings,
//! scale-out over a queue group, a broker restart. (`serve` with `[nats]`
//! is the command's, in `cli/tests/cli/nats_serve.rs`.)
#![cfg(feature = "nats")]

#[path = "../common/mod.rs"]
mod common;

mod broker_restart;
mod ingress;
mod scale_out;
