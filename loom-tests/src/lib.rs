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
//! | file | handover |
//! | --- | --- |
//! | `keyring_rotation.rs` | a reader loading the keyring while it is rotated; two concurrent rotations |
//! | `revocations.rs` | concurrent revocations, and a reader during them |
//! | `replay_guard.rs` | one id submitted on two threads at once |
//! | `nonce_sequence.rs` | two threads drawing nonces from one sequence |
