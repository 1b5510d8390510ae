//! Thin handles on the engine's private concurrent pieces, for the loom
//! models in `loom-tests/` (and for stress tests without loom). Not part of
//! the API.

// The engine's own concurrency primitives, for the loom models and the
// queue bench; the crate's own otherwise.
pub use super::concurrency::Parker;
pub use super::concurrency::Ring;
pub use super::concurrency::Seat;

use std::net::{IpAddr, Ipv4Addr};

use crate::codec::Codec;
use crate::error::Error;
use crate::json::RawJson;
use crate::message::SecurityLevel;
use crate::security::ReplyProtection;
use crate::sync::{Arc, CellCache, SwapCell, thread};

use super::concurrency::{Address, CallWatch, IdBytes, Ticket};
use super::lifecycle::{Lifecycle, Phase};
use super::metrics::{Metrics, Sample};
use super::pending::{AnswerInbox, PendingCall, Responder};
use super::pipeline::Stage;
use super::reply::ReplyTo;
use super::sink::{Destination, Outcome, SinkId};
use super::stage_gate::StageGate;
use super::state::RecentIds;
use super::worker_shared::{Job, Submission, WorkerShared};

/// A worker's call watch (see `concurrency/call_watch.rs`).
#[derive(Debug, Default)]
pub struct WatchModel {
    watch: CallWatch,
}

/// The worker's proof of which message it started.
#[derive(Debug, Clone, Copy)]
pub struct WatchTicket(Ticket);

impl WatchModel {
    /// Worker: message `sequence` with id `id` starts, deadline `deadline`.
    pub fn begin(&self, sequence: u64, id: &str, deadline: u64) -> WatchTicket {
        let address = Address {
            to: Destination {
                sink: SinkId(7),
                tag: sequence,
                codec: Codec::Json,
            },
            id: None,
        };
        // As a sharded worker does: the id is known only after decoding.
        let ticket = self.watch.begin(sequence, 0, &address);
        if let Some(id) = IdBytes::new(id) {
            self.watch.set_id(&id);
        }
        self.watch.set_deadline(deadline);
        WatchTicket(ticket)
    }

    /// Worker: done; false if the timer took the message first.
    pub fn finish(&self, ticket: WatchTicket) -> bool {
        self.watch.finish(ticket.0)
    }

    /// Timer: takes the running message if past its deadline at `now`;
    /// returns its tag and id.
    pub fn take_overdue(&self, now: u64) -> Option<(u64, String)> {
        self.watch.take_overdue(now, false).map(|a| {
            (
                a.to.tag,
                a.id.map(|id| id.as_str().to_owned()).unwrap_or_default(),
            )
        })
    }
}

/// A deferred command with its worker's shared half (see `pending.rs`).
#[derive(Debug)]
pub struct PendingModel {
    worker_shared: Arc<WorkerShared>,
    call: Arc<PendingCall>,
}

impl PendingModel {
    /// A deferred command owned by a worker that is the calling thread.
    pub fn new() -> (PendingModel, Responder) {
        let worker_shared = Arc::new(WorkerShared::new(4, 2, 1, thread::current()));
        let reply_to = ReplyTo {
            to: Destination {
                sink: SinkId(0),
                tag: 1,
                codec: Codec::Json,
            },
            id: Box::from("c-1"),
            level: SecurityLevel::Standard,
            protection: ReplyProtection::default(),
            handler: None,
            accepted_at: 0,
        };
        let _ = worker_shared.reserve_deferred();
        let call = Arc::new(PendingCall::new(
            reply_to,
            10,
            Arc::clone(&worker_shared) as _,
        ));
        let responder = Responder::for_call(Arc::clone(&call));
        (
            PendingModel {
                worker_shared,
                call,
            },
            responder,
        )
    }

    /// Timer: closes the call at its deadline; true if that answered it.
    pub fn time_out(&self) -> bool {
        let closed = self.call.close();
        if closed {
            self.worker_shared.release_deferred();
        }
        closed
    }

    /// Worker: takes a completion handed back, if any (and frees its room).
    pub fn take_completion(&self) -> Option<Result<RawJson, Error>> {
        let completion = self.worker_shared.completions.pop()?;
        self.worker_shared.release_deferred();
        Some(completion.result)
    }

    /// Deferred commands still counted against the worker.
    pub fn outstanding(&self) -> usize {
        self.worker_shared
            .deferred
            .load(crate::sync::Ordering::Acquire)
    }
}

/// The submit and shutdown protocol around one worker's queue.
#[derive(Debug)]
pub struct IntakeModel {
    lifecycle: Lifecycle,
    workers_shared: [Arc<WorkerShared>; 1],
}

impl IntakeModel {
    /// Intake for one worker, the calling thread.
    pub fn new(capacity: usize) -> IntakeModel {
        IntakeModel {
            lifecycle: Lifecycle::default(),
            workers_shared: [Arc::new(WorkerShared::new(
                capacity,
                2,
                1,
                thread::current(),
            ))],
        }
    }

    /// Submitter: queues job `n` unless intake is closed (the engine's
    /// submit protocol). True if queued.
    pub fn submit(&self, n: u64) -> bool {
        let [worker_shared] = &self.workers_shared;
        if !worker_shared.enter() {
            return false;
        }
        let queued =
            self.lifecycle.phase() == Phase::Running && worker_shared.push(job_of(n)).is_ok();
        worker_shared.leave();
        queued
    }

    /// Shutdown: closes intake, then tells the worker to stop and wakes it.
    pub fn shut_down(&self) {
        let [worker_shared] = &self.workers_shared;
        self.lifecycle.close_intake(&self.workers_shared);
        self.lifecycle.advance(Phase::Stopped);
        worker_shared.parker.wake();
    }

    /// Shutdown's first step alone: closes intake, waiting for the
    /// submitters inside to leave.
    pub fn close_only(&self) {
        self.lifecycle.close_intake(&self.workers_shared);
    }

    /// Jobs in the queue.
    pub fn queued(&self) -> usize {
        let [worker_shared] = &self.workers_shared;
        worker_shared.jobs.len()
    }

    /// Worker: one turn of its loop: takes a job (`Some(n)`), or parks
    /// until there is work or a stop (`Some(None)`), or finds the engine
    /// stopped with nothing queued (`None`: the loop exits).
    pub fn worker_turn(&self) -> Option<Option<u64>> {
        let [worker_shared] = &self.workers_shared;
        if let Some(job) = worker_shared.jobs.pop() {
            return Some(Some(job.submission.tag));
        }
        if self.lifecycle.phase() == Phase::Stopped && worker_shared.jobs.is_empty() {
            return None;
        }
        worker_shared
            .parker
            .park_unless(|| worker_shared.has_work() || self.lifecycle.phase() == Phase::Stopped);
        Some(None)
    }
}

/// The staged hand-over at shutdown: a front-stage worker moving one job
/// to the back stage while the engine stops.
#[derive(Debug)]
pub struct StagedModel {
    lifecycle: Lifecycle,
    front: Arc<WorkerShared>,
    backs: [Arc<WorkerShared>; 1],
    gate: StageGate,
}

impl StagedModel {
    /// A front queue holding job `job`, and a back stage whose worker is
    /// the calling thread.
    pub fn with_job(job: u64) -> StagedModel {
        let model = StagedModel {
            lifecycle: Lifecycle::default(),
            front: Arc::new(WorkerShared::new(2, 2, 1, thread::current())),
            backs: [Arc::new(WorkerShared::new(2, 2, 1, thread::current()))],
            gate: StageGate::new(1),
        };
        let _ = model.front.push(job_of(job));
        model
    }

    /// Front worker: takes its job, hands it to the back stage the way the
    /// engine's front workers do, then exits.
    pub fn front_runs_and_exits(&self) {
        let [back] = &self.backs;
        if let Some(job) = self.front.jobs.pop() {
            self.gate.transit_begins();
            let mut job = job;
            while let Err(returned) = back.push(job) {
                job = returned;
                thread::yield_now();
            }
            self.gate.transit_ends();
        }
        self.gate.front_exited(&self.backs);
    }

    /// Shutdown: the engine stops; back workers are woken to notice.
    pub fn stop(&self) {
        self.lifecycle.advance(Phase::Stopped);
        let [back] = &self.backs;
        back.parker.wake();
    }

    /// Back worker: one turn, as the engine's loop: `Some(Some(n))` took
    /// job `n`, `Some(None)` waited, `None` exits.
    pub fn back_turn(&self) -> Option<Option<u64>> {
        let [back] = &self.backs;
        if let Some(job) = back.jobs.pop() {
            return Some(Some(job.submission.tag));
        }
        if self.lifecycle.phase() == Phase::Stopped
            && self.gate.back_may_exit()
            && back.jobs.is_empty()
        {
            return None;
        }
        back.parker.park_unless(|| {
            back.has_work()
                || (self.lifecycle.phase() == Phase::Stopped && self.gate.back_may_exit())
        });
        Some(None)
    }
}

fn job_of(n: u64) -> Job {
    Job {
        submission: Submission {
            sink: SinkId(0),
            tag: n,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            key: 0,
            codec: Codec::Json,
            body: Vec::new(),
        },
        accepted_at: 0,
        staged: None,
    }
}

/// The config cell: a value swapped whole while readers hold snapshots.
#[derive(Debug)]
pub struct SwapModel {
    cell: SwapCell<(u64, u64)>,
}

impl SwapModel {
    /// A cell holding `(0, 0)`.
    pub fn new() -> SwapModel {
        SwapModel {
            cell: SwapCell::new(Arc::new((0, 0))),
        }
    }

    /// Reader: a snapshot, read twice with a yield between (it must not
    /// change under the reader).
    pub fn read_twice(&self) -> ((u64, u64), (u64, u64)) {
        let snapshot = self.cell.load();
        let value: &(u64, u64) = &snapshot;
        let first = *value;
        thread::yield_now();
        let value: &(u64, u64) = &snapshot;
        (first, *value)
    }

    /// Writer: replaces `(n, n)` with `(n + 1, n + 1)`.
    pub fn bump(&self) {
        self.cell
            .update(|value| Arc::new((value.0 + 1, value.1 + 1)));
    }

    /// The current value.
    pub fn get(&self) -> (u64, u64) {
        let snapshot = self.cell.load();
        let value: &(u64, u64) = &snapshot;
        *value
    }

    /// A reader that reads through its own cache, as a worker does.
    pub fn cached_reader(&self) -> CachedReader {
        CachedReader {
            cache: self.cell.cache(),
        }
    }
}

/// A reader of [`SwapModel`] through a cache (see `sync.rs`).
pub struct CachedReader {
    cache: CellCache<(u64, u64)>,
}

impl CachedReader {
    /// The value, through the cache.
    pub fn load(&mut self) -> (u64, u64) {
        let value: &(u64, u64) = self.cache.load();
        *value
    }
}

impl std::fmt::Debug for CachedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedReader").finish_non_exhaustive()
    }
}

impl Default for SwapModel {
    fn default() -> SwapModel {
        SwapModel::new()
    }
}

/// A worker's history of recent ids (see `state.rs`).
#[derive(Debug)]
pub struct HistoryModel {
    recent: RecentIds,
}

impl HistoryModel {
    /// A history of the newest `capacity` entries.
    pub fn new(capacity: usize) -> HistoryModel {
        HistoryModel {
            recent: RecentIds::new(capacity),
        }
    }

    /// Worker: message `id` finished (a Response) at `at`.
    pub fn push(&self, id: &str, at: i128) {
        self.recent.push(Some(id), Outcome::Response, at);
    }

    /// Reader: the newest `limit` entries as `(id, at)`, newest first.
    pub fn recent(&self, limit: usize) -> Vec<(String, i128)> {
        self.recent
            .recent(limit)
            .into_iter()
            .map(|m| (m.id, m.at))
            .collect()
    }
}

/// The latency metrics (see `metrics.rs`): a worker recording samples
/// while a reader takes a snapshot.
#[derive(Debug)]
pub struct LatencyModel {
    metrics: Metrics,
}

impl LatencyModel {
    /// Metrics for `threads` threads.
    pub fn new(threads: usize) -> LatencyModel {
        LatencyModel {
            metrics: Metrics::new(threads),
        }
    }

    /// Thread `index`: one timed message, its total time `nanos`.
    pub fn record(&self, index: usize, nanos: u64) {
        let mut sample = Sample::default();
        sample.set(Stage::Total, nanos);
        self.metrics.record(index, &sample);
    }

    /// Reader: the number of `total` samples a snapshot holds.
    pub fn read(&self) -> u64 {
        self.metrics
            .snapshot(Vec::new())
            .latencies
            .iter()
            .find(|l| l.stage == Stage::Total)
            .map_or(0, |l| l.count)
    }
}

/// The replay streams (docs/protocol.md section 7a): numbers checked on
/// streams by several workers at once.
#[derive(Debug)]
pub struct StreamsModel {
    guard: crate::security::test_support::StreamGuard,
    shares: crate::security::replay_shares::Shares,
    window_secs: u64,
}

impl StreamsModel {
    /// A table of `capacity` streams, windows of 1024 numbers, messages
    /// valid `window_secs` around their timestamp; time starts at 0.
    pub fn new(capacity: usize, window_secs: u64) -> StreamsModel {
        StreamsModel {
            guard: crate::security::test_support::StreamGuard::new(capacity, 1024, window_secs, 0),
            shares: crate::security::replay_shares::Shares::new(window_secs),
            window_secs,
        }
    }

    /// What the engine does with `seq` on `stream` of principal `p`, stamped
    /// `timestamp` and seen at `now` (seconds): the timestamp window first
    /// (validation), then the stream. `Ok` means admitted.
    pub fn admit(
        &self,
        p: &str,
        stream: &str,
        seq: u64,
        timestamp: u64,
        now: u64,
    ) -> Result<(), crate::error::Code> {
        const NANOS: i128 = 1_000_000_000;
        let (timestamp, now) = (i128::from(timestamp) * NANOS, i128::from(now) * NANOS);
        if (timestamp - now).abs() > i128::from(self.window_secs) * NANOS {
            return Err(crate::error::Code::ValidationFailed);
        }
        let check = crate::security::replay_streams::StreamCheck {
            principal: p,
            mark: crate::message::ReplayMark { stream, seq },
            timestamp,
            now,
            share: &|| u64::MAX,
        };
        self.guard.check(&self.shares, &check).map_err(|e| e.code())
    }
}
