//! Model checks of mcp-engine's concurrent parts, run under loom.
//!
//! Each file in `tests/` checks one handover between threads, against the
//! engine's own code compiled with `--cfg loom` (the crate's `sync` shim then
//! names loom's primitives instead of std's). Run them with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p loom-tests --release --target-dir target/loom
//! ```
//!
//! Without `--cfg loom` (plain `cargo test`) the same models run as stress
//! tests on real threads, [`STRESS_RUNS`] times each: not exhaustive, but
//! they run, and they keep compiling.
//!
//! | file | handover |
//! | --- | --- |
//! | `keyring_rotation.rs` | a reader loading the keyring while it is rotated; two concurrent rotations |
//! | `revocations.rs` | concurrent revocations, and a reader during them |
//! | `rate_limits.rs` | two workers taking one principal's last token at once, the first making its bucket: one is allowed |
//! | `replay_guard.rs` | one id submitted on two threads at once |
//! | `replay_streams.rs` | one stream number on two workers at once is admitted once; a new stream racing a replay never pushes out the live stream the replay meets |
//! | `nonce_sequence.rs` | two threads drawing nonces from one sequence |
//! | `ring.rs` | the queue: empty, full, wrap-around, two producers and a consumer |
//! | `parker.rs` | a worker parking while a producer pushes, one value or a batch woken at its first and last push: no lost wake-up |
//! | `config_swap.rs` | a reader's config snapshot while a reload swaps it |
//! | `watch.rs` | a handler finishing while the timer takes it as overdue |
//! | `completion_vs_timeout.rs` | a responder answering while the deadline passes |
//! | `shutdown_drain.rs` | submitters racing shutdown: every queued job is taken |
//! | `outbox.rs` | engine threads handing replies to the server's I/O thread: no lost wake-up; a reply racing the close is taken or counted once |
//! | `seat.rs` | a submitter running messages in a parked worker's seat while the worker wakes: each message runs once, a submitter's in order, no lost wake-up |
//! | `staged_handover.rs` | a front-stage worker's last hand-over racing shutdown: the back stage takes it before exiting |
//! | `latency_samples.rs` | two workers recording latency samples while a reader merges them: each sample read once at most, and every one recorded before the reply in the reading after it |

/// Threads: loom's under `--cfg loom`, std's otherwise.
#[cfg(loom)]
pub use loom::thread;
#[cfg(not(loom))]
pub use std::thread;

/// Atomics: loom's under `--cfg loom`, std's otherwise.
#[cfg(loom)]
pub use loom::sync::atomic;
#[cfg(not(loom))]
pub use std::sync::atomic;

/// `Arc`: loom's under `--cfg loom`, std's otherwise.
#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(not(loom))]
pub use std::sync::Arc;

/// How often a model runs as a stress test without loom.
pub const STRESS_RUNS: usize = 2_000;

/// Explores every interleaving of `model` under loom; without loom, runs it
/// [`STRESS_RUNS`] times on real threads.
pub fn model<F>(model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    #[cfg(loom)]
    loom::model(model);
    #[cfg(not(loom))]
    for _ in 0..STRESS_RUNS {
        model();
    }
}
