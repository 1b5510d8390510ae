//! Model checks of mcp-engine's concurrent parts, run under loom.
//!
//! Each file in `tests/` checks one handover between threads, against the
//! engine's own code compiled with `--cfg loom` (the crate's `sync` shim then
//! names loom's primitives instead of std's). Run them with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p loom-tests --release
//! ```
//!
//! The foundation (framing, codecs, configuration) has no shared state
//! between threads, so there is nothing here to check yet; the first
//! concurrent structures (key rotation, queues, pending commands) bring their
//! models with them.
