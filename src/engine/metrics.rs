//! Counters and latency histograms, recorded per thread, merged on read.
//!
//! Counters are relaxed atomics per thread (each on its own cache lines);
//! a reader sums them. Latencies go into HdrHistograms, one set per
//! thread, each behind its own lock: a worker takes its lock once per
//! timed message, to record every stage of it at once, and nobody else
//! does except a reader, which merges every thread's histograms into a
//! fresh set. So the lock is the worker's alone (a few nanoseconds,
//! uncontended) but while a reading copies its histograms, some
//! microseconds once per reading.
//!
//! A message's sample is recorded before its reply leaves the engine, so
//! a reader who holds a reply reads that message's sample: a reading taken
//! once every reply is in holds every sample. (An earlier design handed
//! histograms over through a ring now and then; a reading of an idle
//! engine missed what was not handed over yet.) Checked by
//! `loom-tests/tests/latency_samples.rs`.
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
use crate::message::SecurityLevel;
use crate::sync::{AtomicU64, Mutex, Ordering};

use super::pipeline::Stage;

/// Latencies are sampled: one message in this many that a worker handles
/// is timed, stage by stage (see the module). Counters count every
/// message; a stage's `count` in [`StageLatency`] is the number of timed
/// messages that crossed it.
pub const TIMED_EVERY: u64 = 16;

/// One timed message's time in each stage it crossed, in nanoseconds (0:
/// not crossed), recorded at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    nanos: [u64; Stage::ALL.len()],
}

impl Sample {
    /// `stage` took `nanos`.
    pub(crate) fn set(&mut self, stage: Stage, nanos: u64) {
        if let Some(slot) = self.nanos.get_mut(stage as usize) {
            // 0 means "not crossed": a stage that took no measurable time
            // took 1 ns.
            *slot = nanos.max(1);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nanos.iter().all(|&nanos| nanos == 0)
    }
}

/// One thread's latency histograms (nanoseconds).
#[derive(Debug, Clone)]
struct StageHistograms {
    stages: [Histogram<u64>; Stage::ALL.len()],
}

impl StageHistograms {
    fn new() -> StageHistograms {
        StageHistograms {
            stages: std::array::from_fn(|_| new_histogram()),
        }
    }

    fn record(&mut self, sample: &Sample) {
        for (histogram, &nanos) in self.stages.iter_mut().zip(&sample.nanos) {
            if nanos > 0 {
                histogram.saturating_record(nanos);
            }
        }
    }

    fn add(&mut self, other: &StageHistograms) {
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            // Same bounds on both sides: `add` cannot fail.
            let _ = mine.add(theirs);
        }
    }

    fn reset(&mut self) {
        for histogram in &mut self.stages {
            histogram.reset();
        }
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
/// Shed messages, one slot per level below Critical (never shed).
const SHED: usize = RESPONSES + 11;
const SLOTS: usize = SHED + 3;

/// The levels load shedding may shed, in their slots' order.
const SHEDDABLE: [SecurityLevel; 3] = [
    SecurityLevel::Low,
    SecurityLevel::Standard,
    SecurityLevel::High,
];

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
    pub(crate) fn shed(&self, level: SecurityLevel) {
        if let Some(n) = SHEDDABLE.iter().position(|&l| l == level) {
            self.add(SHED + n, 1);
        }
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

/// The engine's metrics: counters and latency histograms per thread.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) counters: Box<[Counters]>,
    latencies: Box<[CachePadded<Mutex<StageHistograms>>]>,
}

impl Metrics {
    /// Counters and histograms for `threads` threads (workers, then the
    /// timer, then submitters sharing the last slot).
    pub(crate) fn new(threads: usize) -> Metrics {
        let threads = threads.max(1);
        Metrics {
            counters: (0..threads).map(|_| Counters::default()).collect(),
            latencies: (0..threads)
                .map(|_| CachePadded::new(Mutex::new(StageHistograms::new())))
                .collect(),
        }
    }

    /// Thread `index`'s counters (the last slot for any other index).
    pub(crate) fn counters(&self, index: usize) -> &Counters {
        let last = self.counters.len().saturating_sub(1);
        // `counters` is never empty (`new` makes at least one).
        #[allow(clippy::indexing_slicing)]
        &self.counters[index.min(last)]
    }

    /// Thread `index` records one timed message (the last slot for any
    /// other index). Call it before the message's reply leaves.
    pub(crate) fn record(&self, index: usize, sample: &Sample) {
        if sample.is_empty() {
            return;
        }
        let last = self.latencies.len().saturating_sub(1);
        if let Some(histograms) = self.latencies.get(index.min(last)) {
            histograms.lock().record(sample);
        }
    }

    /// A reading: counters summed, latencies merged.
    pub(crate) fn snapshot(&self, queue_depths: Vec<usize>) -> MetricsSnapshot {
        let mut merged = StageHistograms::new();
        for histograms in &*self.latencies {
            merged.add(&histograms.lock());
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
                    sum_ns: histogram
                        .iter_recorded()
                        .map(|at| {
                            histogram
                                .median_equivalent(at.value_iterated_to())
                                .saturating_mul(at.count_at_value())
                        })
                        .fold(0, u64::saturating_add),
                    at_most: LATENCY_BOUNDS_NS.map(|bound| histogram.count_between(0, bound)),
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
            shed: SHEDDABLE
                .iter()
                .enumerate()
                .map(|(n, &level)| (level, sum(SHED + n)))
                .collect(),
            latencies,
            queue_depths,
        }
    }

    /// A worker's loop was restarted after a panic escaped it.
    pub(crate) fn restarted(&self) {
        self.counters(usize::MAX).add(RESTARTS, 1);
    }

    /// Forgets the latencies recorded so far (counters keep counting).
    pub(crate) fn reset_latencies(&self) {
        for histograms in &*self.latencies {
            histograms.lock().reset();
        }
    }
}

/// The bounds [`StageLatency::at_most`] counts up to, in nanoseconds:
/// 1 us to 10 s (the buckets of a Prometheus histogram).
pub const LATENCY_BOUNDS_NS: [u64; 14] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
];

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
    /// All recorded, added up (each at its bucket's middle: within the
    /// histograms' 1%).
    pub sum_ns: u64,
    /// How many took at most each of [`LATENCY_BOUNDS_NS`] (within 1%).
    pub at_most: [u64; LATENCY_BOUNDS_NS.len()],
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
    /// Messages shed by load shedding (answered `resource_exhausted`
    /// while their worker's queue was past its high-water mark), by level;
    /// `Critical` is never shed.
    pub shed: Vec<(SecurityLevel, u64)>,
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
        out.push_str("},\"shed\":{");
        for (i, (level, n)) in self.shed.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}\"{}\":{n}", level.as_str());
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
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn count(metrics: &Metrics, stage: Stage) -> u64 {
        metrics
            .snapshot(Vec::new())
            .latencies
            .iter()
            .find(|l| l.stage == stage)
            .map_or(0, |l| l.count)
    }

    fn sample(stages: &[(Stage, u64)]) -> Sample {
        let mut sample = Sample::default();
        for &(stage, nanos) in stages {
            sample.set(stage, nanos);
        }
        sample
    }

    #[test]
    fn a_reading_holds_every_sample_recorded_before_it_on_every_thread() {
        let metrics = Metrics::new(3);
        for n in 0..100 {
            let whole = sample(&[(Stage::Validate, 0), (Stage::Total, 1_000 + n)]);
            metrics.record((n % 4) as usize, &whole);
        }
        // A stage that took no time counts; one not crossed does not.
        assert_eq!(count(&metrics, Stage::Validate), 100);
        assert_eq!(count(&metrics, Stage::Total), 100);
        assert_eq!(count(&metrics, Stage::Execute), 0);
        // Reading takes nothing away.
        assert_eq!(count(&metrics, Stage::Total), 100);
        metrics.record(0, &Sample::default());
        assert_eq!(count(&metrics, Stage::Total), 100);
    }

    #[test]
    fn a_reset_forgets_latencies_and_keeps_counters() {
        let metrics = Metrics::new(2);
        metrics.record(0, &sample(&[(Stage::Total, 150_000_000)]));
        metrics.record(1, &sample(&[(Stage::Total, 10)]));
        metrics.counters(0).response();
        metrics.reset_latencies();
        assert_eq!(count(&metrics, Stage::Total), 0);
        metrics.record(1, &sample(&[(Stage::Total, 2_000)]));
        let reading = metrics.snapshot(Vec::new());
        assert_eq!(reading.responses, 1);
        let total = reading
            .latencies
            .iter()
            .find(|l| l.stage == Stage::Total)
            .unwrap();
        assert_eq!((total.count, total.max_ns / 100), (1, 20));
    }
}
