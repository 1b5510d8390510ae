//! Counters and latency histograms, recorded without a lock.
//!
//! Counters are relaxed atomics per worker (each on its own cache lines);
//! a reader sums them. Latencies go into HdrHistograms that each worker
//! owns alone; now and then (every 4096 messages, and before it parks) the
//! worker hands its histograms to the reader side through a lock-free ring
//! and goes on with emptied ones the reader handed back through another
//! (nothing is allocated in steady state). A reader merges what was handed
//! over. The hot path never waits; a reading lags by at most one hand-over.
//!
//! Latencies are sampled: one message in [`TIMED_EVERY`] that a worker
//! handles is timed stage by stage (a clock read costs 25 to 45 ns here,
//! and five of them on every message would add several percent to a 2 µs
//! message; one in 16 still times some 40,000 messages a second at full
//! load, and 300 a second per worker at 10,000 msg/s). Counters count
//! every message.

use std::fmt::Write as _;

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

use crate::error::Code;
use crate::sync::{AtomicU64, Mutex, Ordering};

use super::ring::Ring;

/// One message in this many is timed (see the module).
pub(crate) const TIMED_EVERY: u64 = 16;

/// The stages a message crosses, as latencies are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Decoding and envelope rules.
    Validate,
    /// Token, signature, replay and decryption.
    Admit,
    /// Routing and authorization.
    Route,
    /// The handler.
    Execute,
    /// Building, protecting and handing over the reply.
    Respond,
    /// Acceptance to reply, queueing included.
    Total,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 6] = [
        Stage::Validate,
        Stage::Admit,
        Stage::Route,
        Stage::Execute,
        Stage::Respond,
        Stage::Total,
    ];

    /// The stage's name in metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Admit => "admit",
            Stage::Route => "route",
            Stage::Execute => "execute",
            Stage::Respond => "respond",
            Stage::Total => "total",
        }
    }
}

/// One worker's latency histograms (nanoseconds).
#[derive(Debug, Clone)]
pub(crate) struct StageHistograms {
    stages: [Histogram<u64>; 6],
    recorded: u64,
    /// The metrics' reset count when these began to record: histograms
    /// begun before a reset hold samples from before it, and are dropped.
    epoch: u64,
}

impl StageHistograms {
    pub(crate) fn new() -> StageHistograms {
        StageHistograms {
            stages: std::array::from_fn(|_| new_histogram()),
            recorded: 0,
            epoch: 0,
        }
    }

    pub(crate) fn record(&mut self, stage: Stage, nanos: u64) {
        if let Some(histogram) = self.stages.get_mut(stage as usize) {
            histogram.saturating_record(nanos.max(1));
        }
        self.recorded += 1;
    }

    pub(crate) fn recorded(&self) -> u64 {
        self.recorded
    }

    fn add(&mut self, other: &StageHistograms) {
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            // Same bounds on both sides: `add` cannot fail.
            let _ = mine.add(theirs);
        }
        self.recorded += other.recorded;
    }

    fn reset(&mut self) {
        for histogram in &mut self.stages {
            histogram.reset();
        }
        self.recorded = 0;
    }
}

/// 1 ns to 60 s at 2 significant digits (1%: enough for percentiles, and
/// about 30 KB each instead of 200 KB at 3 digits).
fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 60_000_000_000, 2) {
        Ok(histogram) => histogram,
        // Constant, valid bounds: hdrhistogram accepts them.
        #[allow(clippy::panic)]
        Err(error) => panic!("hdrhistogram refused constant bounds: {error}"),
    }
}

/// Counter slots: one per error code, then the others.
const RESPONSES: usize = Code::ALL.len();
const DELIVERED: usize = RESPONSES + 1;
const EVENTS: usize = RESPONSES + 2;
const ACCEPTED: usize = RESPONSES + 3;
const REFUSED_AT_INTAKE: usize = RESPONSES + 4;
const UNMATCHED_REPLIES: usize = RESPONSES + 5;
const PANICS: usize = RESPONSES + 6;
const LATE_ANSWERS: usize = RESPONSES + 7;
const RESTARTS: usize = RESPONSES + 8;
const RUN_ON_SUBMITTER: usize = RESPONSES + 9;
const SUBMITTER_BUSY_NS: usize = RESPONSES + 10;
const SLOTS: usize = RESPONSES + 11;

/// One thread's counters.
#[derive(Debug)]
pub(crate) struct Counters {
    slots: CachePadded<[AtomicU64; SLOTS]>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            slots: CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl Counters {
    fn add(&self, slot: usize, n: u64) {
        if let Some(counter) = self.slots.get(slot) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn get(&self, slot: usize) -> u64 {
        self.slots
            .get(slot)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub(crate) fn accepted(&self, n: u64) {
        self.add(ACCEPTED, n);
    }
    pub(crate) fn refused_at_intake(&self) {
        self.add(REFUSED_AT_INTAKE, 1);
    }
    pub(crate) fn response(&self) {
        self.add(RESPONSES, 1);
    }
    pub(crate) fn error(&self, code: Code) {
        self.add(code as usize, 1);
    }
    pub(crate) fn event(&self, delivered: u32) {
        self.add(EVENTS, 1);
        self.add(DELIVERED, u64::from(delivered));
    }
    pub(crate) fn unmatched_reply(&self) {
        self.add(UNMATCHED_REPLIES, 1);
    }
    pub(crate) fn panic(&self) {
        self.add(PANICS, 1);
    }
    pub(crate) fn late_answer(&self) {
        self.add(LATE_ANSWERS, 1);
    }
    /// A submitter ran a message in this worker's seat, for `busy_ns`.
    pub(crate) fn ran_on_submitter(&self, busy_ns: u64) {
        self.add(RUN_ON_SUBMITTER, 1);
        self.add(SUBMITTER_BUSY_NS, busy_ns);
    }
}

/// The engine's metrics: counters per thread, and latencies handed over by
/// the workers.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) counters: Box<[Counters]>,
    handed_over: Ring<Box<StageHistograms>>,
    /// Emptied histograms on their way back to the workers.
    recycled: Ring<Box<StageHistograms>>,
    /// How many times the latencies were reset.
    epoch: AtomicU64,
    /// Reader side only: merged latencies. Never touched by a worker.
    merged: Mutex<StageHistograms>,
}

impl Metrics {
    /// Counters for `threads` threads (workers, then the timer, then
    /// submitters sharing the last slot).
    pub(crate) fn new(threads: usize) -> Metrics {
        Metrics {
            counters: (0..threads).map(|_| Counters::default()).collect(),
            handed_over: Ring::new(threads * 4),
            recycled: Ring::new(threads * 4),
            epoch: AtomicU64::new(0),
            merged: Mutex::new(StageHistograms::new()),
        }
    }

    /// Thread `index`'s counters (the last slot for any other index).
    pub(crate) fn counters(&self, index: usize) -> &Counters {
        let last = self.counters.len().saturating_sub(1);
        // `counters` is never empty (`new` is given at least one thread).
        #[allow(clippy::indexing_slicing)]
        &self.counters[index.min(last)]
    }

    /// A worker hands over `histograms` (when it has recorded anything)
    /// and goes on with emptied ones. On a full ring it keeps its own.
    pub(crate) fn hand_over(&self, histograms: &mut Box<StageHistograms>) {
        if histograms.recorded() == 0 {
            return;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        if histograms.epoch != epoch {
            // Begun before the last reset: they would bring its samples back.
            histograms.reset();
            histograms.epoch = epoch;
            return;
        }
        let mut empty = self
            .recycled
            .pop()
            .unwrap_or_else(|| Box::new(StageHistograms::new()));
        empty.epoch = epoch;
        let full = std::mem::replace(histograms, empty);
        if let Err(full) = self.handed_over.push(full) {
            // The reader has not caught up: keep recording into these.
            let empty = std::mem::replace(histograms, full);
            let _ = self.recycled.push(empty);
        }
    }

    /// A reading: counters summed, latencies merged.
    pub(crate) fn snapshot(&self, queue_depths: Vec<usize>) -> MetricsSnapshot {
        let mut merged = self.merged.lock();
        while let Some(mut histograms) = self.handed_over.pop() {
            merged.add(&histograms);
            histograms.reset();
            let _ = self.recycled.push(histograms);
        }
        let sum = |slot| self.counters.iter().map(|c| c.get(slot)).sum::<u64>();
        let errors = Code::ALL
            .iter()
            .map(|&code| (code, sum(code as usize)))
            .filter(|&(_, n)| n > 0)
            .collect();
        let latencies = Stage::ALL
            .iter()
            .filter_map(|&stage| {
                let histogram = merged.stages.get(stage as usize)?;
                (!histogram.is_empty()).then(|| StageLatency {
                    stage,
                    count: histogram.len(),
                    p50_ns: histogram.value_at_quantile(0.50),
                    p99_ns: histogram.value_at_quantile(0.99),
                    p999_ns: histogram.value_at_quantile(0.999),
                    max_ns: histogram.max(),
                })
            })
            .collect();
        MetricsSnapshot {
            accepted: sum(ACCEPTED),
            refused_at_intake: sum(REFUSED_AT_INTAKE),
            responses: sum(RESPONSES),
            errors,
            events: sum(EVENTS),
            deliveries: sum(DELIVERED),
            unmatched_replies: sum(UNMATCHED_REPLIES),
            handler_panics: sum(PANICS),
            late_answers: sum(LATE_ANSWERS),
            worker_restarts: sum(RESTARTS),
            run_on_submitter: sum(RUN_ON_SUBMITTER),
            submitter_busy_ns: sum(SUBMITTER_BUSY_NS),
            latencies,
            queue_depths,
        }
    }

    /// A worker's loop was restarted after a panic escaped it.
    pub(crate) fn restarted(&self) {
        self.counters(usize::MAX).add(RESTARTS, 1);
    }

    /// Forgets the latencies recorded so far (counters keep counting):
    /// the merged ones, those handed over and not yet merged, and, as
    /// each worker hands them over, those it recorded before now.
    pub(crate) fn reset_latencies(&self) {
        let mut merged = self.merged.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        while let Some(mut histograms) = self.handed_over.pop() {
            histograms.reset();
            let _ = self.recycled.push(histograms);
        }
        merged.reset();
    }
}

/// Latency percentiles of one stage, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageLatency {
    /// The stage.
    pub stage: Stage,
    /// Messages recorded.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
}

/// A reading of the engine's metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Messages taken into a queue.
    pub accepted: u64,
    /// Messages refused before a queue took them (full, or shutting down);
    /// each was answered with an Error.
    pub refused_at_intake: u64,
    /// Responses sent (acknowledged events included).
    pub responses: u64,
    /// Errors sent, by code.
    pub errors: Vec<(Code, u64)>,
    /// Events handled.
    pub events: u64,
    /// Event deliveries to handlers (an event with two subscribers: 2).
    pub deliveries: u64,
    /// Responses and Errors that correlated with no pending command
    /// (dropped, never answered).
    pub unmatched_replies: u64,
    /// Handler panics caught.
    pub handler_panics: u64,
    /// Answers that came after the command was already answered (past its
    /// deadline) and were dropped.
    pub late_answers: u64,
    /// Worker loops restarted after a panic escaped them.
    pub worker_restarts: u64,
    /// Messages run by the submitting thread, its worker being parked
    /// (`engine.run_on_submitter`).
    pub run_on_submitter: u64,
    /// How long the submitting threads spent running those messages, in
    /// nanoseconds of wall-clock time (so at least the CPU time they took):
    /// engine work that the worker threads' own CPU time does not show.
    pub submitter_busy_ns: u64,
    /// Per-stage latency.
    pub latencies: Vec<StageLatency>,
    /// Each worker's queue depth at the reading.
    pub queue_depths: Vec<usize>,
}

impl MetricsSnapshot {
    /// Errors sent with `code`.
    pub fn errors_of(&self, code: Code) -> u64 {
        self.errors
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |&(_, n)| n)
    }

    /// Errors sent, all codes.
    pub fn total_errors(&self) -> u64 {
        self.errors.iter().map(|&(_, n)| n).sum()
    }

    /// The reading as JSON (the `sys.metrics` result).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            "{{\"accepted\":{},\"refused_at_intake\":{},\"responses\":{},\"events\":{},\"deliveries\":{},\"unmatched_replies\":{},\"handler_panics\":{},\"late_answers\":{},\"run_on_submitter\":{},\"submitter_busy_ns\":{},\"errors\":{{",
            self.accepted,
            self.refused_at_intake,
            self.responses,
            self.events,
            self.deliveries,
            self.unmatched_replies,
            self.handler_panics,
            self.late_answers,
            self.run_on_submitter,
            self.submitter_busy_ns
        );
        for (i, (code, n)) in self.errors.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}\"{}\":{n}", code.as_str());
        }
        out.push_str("},\"latency_ns\":{");
        for (i, l) in self.latencies.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(
                out,
                "{comma}\"{}\":{{\"count\":{},\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
                l.stage.as_str(),
                l.count,
                l.p50_ns,
                l.p99_ns,
                l.p999_ns,
                l.max_ns
            );
        }
        out.push_str("},\"queue_depths\":[");
        for (i, depth) in self.queue_depths.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}{depth}");
        }
        out.push_str("]}");
        out
    }

    /// The reading in the Prometheus text format.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP mcp_{name} {help}\n# TYPE mcp_{name} counter\nmcp_{name} {value}"
            );
        };
        counter(
            "accepted_total",
            "Messages taken into a queue.",
            self.accepted,
        );
        counter(
            "refused_at_intake_total",
            "Messages refused before a queue took them.",
            self.refused_at_intake,
        );
        counter("responses_total", "Responses sent.", self.responses);
        counter("events_total", "Events handled.", self.events);
        counter(
            "deliveries_total",
            "Event deliveries to handlers.",
            self.deliveries,
        );
        counter(
            "unmatched_replies_total",
            "Responses and Errors that matched no pending command.",
            self.unmatched_replies,
        );
        counter(
            "handler_panics_total",
            "Handler panics caught.",
            self.handler_panics,
        );
        counter(
            "late_answers_total",
            "Answers dropped after a timeout.",
            self.late_answers,
        );
        counter(
            "run_on_submitter_total",
            "Messages run by the submitting thread while their worker was parked.",
            self.run_on_submitter,
        );
        counter(
            "submitter_busy_nanoseconds_total",
            "Wall-clock time submitting threads spent running messages.",
            self.submitter_busy_ns,
        );
        let _ = writeln!(
            out,
            "# HELP mcp_errors_total Errors sent, by code.\n# TYPE mcp_errors_total counter"
        );
        for (code, n) in &self.errors {
            let _ = writeln!(
                out,
                "mcp_errors_total{{code=\"{}\",category=\"{}\"}} {n}",
                code.as_str(),
                code.category().as_str()
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcp_stage_latency_seconds Per-stage latency.\n# TYPE mcp_stage_latency_seconds summary"
        );
        for l in &self.latencies {
            for (quantile, ns) in [("0.5", l.p50_ns), ("0.99", l.p99_ns), ("0.999", l.p999_ns)] {
                let _ = writeln!(
                    out,
                    "mcp_stage_latency_seconds{{stage=\"{}\",quantile=\"{quantile}\"}} {:.9}",
                    l.stage.as_str(),
                    ns as f64 / 1e9
                );
            }
            let _ = writeln!(
                out,
                "mcp_stage_latency_seconds_count{{stage=\"{}\"}} {}",
                l.stage.as_str(),
                l.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcp_queue_depth Messages waiting per worker.\n# TYPE mcp_queue_depth gauge"
        );
        for (worker, depth) in self.queue_depths.iter().enumerate() {
            let _ = writeln!(out, "mcp_queue_depth{{worker=\"{worker}\"}} {depth}");
        }
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn total_count(metrics: &Metrics) -> u64 {
        metrics
            .snapshot(Vec::new())
            .latencies
            .iter()
            .find(|l| l.stage == Stage::Total)
            .map_or(0, |l| l.count)
    }

    #[test]
    fn a_reset_drops_what_was_recorded_before_it_wherever_it_waits() {
        let metrics = Metrics::new(3);
        // Worker A handed over before the reset, but nothing merged yet;
        // worker B still holds what it recorded before the reset.
        let mut a = Box::new(StageHistograms::new());
        let mut b = Box::new(StageHistograms::new());
        a.record(Stage::Total, 1_000);
        b.record(Stage::Total, 150_000_000);
        metrics.hand_over(&mut a);
        metrics.reset_latencies();
        metrics.hand_over(&mut b);
        assert_eq!(total_count(&metrics), 0);
        // A's histograms got before the reset are dropped at their next
        // hand-over too (when their samples were taken is not known); B's
        // were renewed at the drop. From then on both count.
        a.record(Stage::Total, 2_000);
        b.record(Stage::Total, 3_000);
        metrics.hand_over(&mut a);
        metrics.hand_over(&mut b);
        assert_eq!(total_count(&metrics), 1);
        a.record(Stage::Total, 4_000);
        metrics.hand_over(&mut a);
        assert_eq!(total_count(&metrics), 2);
    }
}
