//! The `[engine]` section: threads, queues, and what happens when they are
//! full.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::bounded::bounded;
use crate::error::Error;

/// How messages cross threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Run to completion: each worker runs every stage of a message; one
    /// queue per worker; a connection's messages stay on one worker. The
    /// default: on two cores it measured faster than staging (README).
    Sharded,
    /// Stage groups on their own threads joined by queues: `workers`
    /// front threads (validate, admit: decoding and the cryptography) and
    /// as many back threads (route, authorize, execute, respond); a
    /// connection's messages take one front and one back thread, so their
    /// order holds.
    Staged,
}

/// What a submitter gets when a worker's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Refuse the message with `resource_exhausted` (the default).
    Refuse,
    /// Make the submitter wait for room.
    Block,
}

/// Threads, queues and bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineConfig {
    /// How messages cross threads (default `sharded`).
    pub topology: Topology,
    /// Worker threads (default: one per core).
    pub workers: u64,
    /// Each worker's queue, in messages (default 4096; rounded up to a power
    /// of two).
    pub queue_capacity: u64,
    /// What a full queue does (default `refuse`).
    pub overflow: Overflow,
    /// Pin workers to cores, where there are cores enough (default true).
    pub pin_threads: bool,
    /// Let a submitting thread run a message itself when its worker is
    /// parked and has nothing queued, instead of waking the worker
    /// (default true; `sharded` only). A wake-up costs far more than a
    /// message at low rates; but the submitter (the server's I/O thread,
    /// or the caller of `Engine::submit`) is busy for as long as the
    /// handler runs, so turn it off if handlers block for long.
    pub run_on_submitter: bool,
    /// Deferred commands one worker may hold open (default 1024).
    pub max_deferred: u64,
    /// Worker stack size in KiB (default 256).
    pub stack_kib: u64,
    /// How long `shutdown` lets accepted messages finish before answering
    /// the rest `unavailable`, in milliseconds (default 5000).
    pub drain_ms: u64,
    /// Errors kept in the error history, over all threads (default 1024).
    pub max_error_history: u64,
    /// Recent message ids (with outcomes) kept per worker (default 1024).
    pub message_history: u64,
    /// Empty polls an idle worker spins before it yields (default 6; see
    /// [`IdleStrategy`](crate::engine::IdleStrategy)).
    pub idle_spins: u32,
    /// Empty polls an idle worker yields the core before it parks, at most
    /// (default 8).
    pub idle_yields: u32,
    /// The high-water mark of a worker's queue, in percent of its capacity
    /// (default 100: never shed). Past it, the worker answers new `Low`
    /// messages `resource_exhausted` instead of running them; past a third
    /// of the rest also `Standard`, past two thirds also `High`. `Critical`
    /// is never shed (only refused when the queue is full). Off by
    /// default: a queue that fills in a burst is back-pressure the engine
    /// absorbs (and with `overflow = "wait"`, what the submitter asked
    /// for); set it (75 is a good start) where more load may come than
    /// the engine can serve, and the higher levels must be served first.
    pub shed_at_percent: u64,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            topology: Topology::Sharded,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            queue_capacity: 4096,
            overflow: Overflow::Refuse,
            pin_threads: true,
            run_on_submitter: true,
            max_deferred: 1024,
            stack_kib: 256,
            drain_ms: 5000,
            max_error_history: 1024,
            message_history: 1024,
            idle_spins: 6,
            idle_yields: 8,
            shed_at_percent: 100,
        }
    }
}

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EngineFile {
    topology: Option<Topology>,
    workers: Option<Spanned<u64>>,
    queue_capacity: Option<Spanned<u64>>,
    overflow: Option<Overflow>,
    pin_threads: Option<bool>,
    run_on_submitter: Option<bool>,
    max_deferred: Option<Spanned<u64>>,
    stack_kib: Option<Spanned<u64>>,
    drain_ms: Option<Spanned<u64>>,
    max_error_history: Option<Spanned<u64>>,
    message_history: Option<Spanned<u64>>,
    idle_spins: Option<Spanned<u64>>,
    idle_yields: Option<Spanned<u64>>,
    shed_at_percent: Option<Spanned<u64>>,
}

pub(super) fn engine_config(
    file: Option<EngineFile>,
    at: &impl Fn(Option<Range<usize>>, &str) -> Error,
) -> Result<EngineConfig, Error> {
    let defaults = EngineConfig::default();
    let Some(file) = file else {
        return Ok(defaults);
    };
    Ok(EngineConfig {
        topology: file.topology.unwrap_or(defaults.topology),
        workers: bounded(
            at,
            file.workers,
            "engine.workers",
            1..=256,
            "threads",
            defaults.workers,
        )?,
        queue_capacity: bounded(
            at,
            file.queue_capacity,
            "engine.queue_capacity",
            2..=1 << 24,
            "messages",
            defaults.queue_capacity,
        )?,
        overflow: file.overflow.unwrap_or(defaults.overflow),
        pin_threads: file.pin_threads.unwrap_or(defaults.pin_threads),
        run_on_submitter: file.run_on_submitter.unwrap_or(defaults.run_on_submitter),
        max_deferred: bounded(
            at,
            file.max_deferred,
            "engine.max_deferred",
            2..=1 << 20,
            "commands",
            defaults.max_deferred,
        )?,
        stack_kib: bounded(
            at,
            file.stack_kib,
            "engine.stack_kib",
            64..=16_384,
            "KiB",
            defaults.stack_kib,
        )?,
        drain_ms: bounded(
            at,
            file.drain_ms,
            "engine.drain_ms",
            0..=600_000,
            "milliseconds",
            defaults.drain_ms,
        )?,
        max_error_history: bounded(
            at,
            file.max_error_history,
            "engine.max_error_history",
            0..=1 << 20,
            "errors",
            defaults.max_error_history,
        )?,
        message_history: bounded(
            at,
            file.message_history,
            "engine.message_history",
            1..=1 << 20,
            "messages",
            defaults.message_history,
        )?,
        idle_spins: bounded(
            at,
            file.idle_spins,
            "engine.idle_spins",
            0..=1 << 20,
            "polls",
            u64::from(defaults.idle_spins),
        )? as u32,
        idle_yields: bounded(
            at,
            file.idle_yields,
            "engine.idle_yields",
            0..=1 << 20,
            "polls",
            u64::from(defaults.idle_yields),
        )? as u32,
        shed_at_percent: bounded(
            at,
            file.shed_at_percent,
            "engine.shed_at_percent",
            1..=100,
            "percent",
            defaults.shed_at_percent,
        )?,
    })
}
