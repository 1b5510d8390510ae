//! [`Figures`] of a run, the [`Report`] `mcp-bench` prints and writes as
//! JSON, and the [`Budgets`] of docs/seed-specification.md.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::record::Tally;
use super::{Pace, Plan, Recorder};
use crate::process;

/// Latency percentiles, microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// What one run measured (the measured window only, warm-up excluded).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    /// Answers per second of messages sent in the window.
    pub throughput_msgs_per_s: f64,
    /// From the intended send time (open loop) or the send (closed loop)
    /// to the reply.
    pub latency_us: Latency,
    /// Error replies by code.
    pub errors: BTreeMap<String, u64>,
    /// Share of one core the engine's threads used (user + system).
    pub cpu_share: Option<f64>,
    /// Engine CPU time per answered message, microseconds.
    pub cpu_us_per_msg: Option<f64>,
    /// Share of one core the load generator took: the sending thread, the
    /// threads that make messages while the run goes (`--sustained`) and
    /// the network I/O thread, less the engine's work run on the sending
    /// thread (counted in `cpu_share`).
    pub sender_cpu_share: Option<f64>,
    /// Peak resident memory of the process (workload included).
    pub peak_rss_bytes: u64,
    /// Threads of the process during the run.
    pub threads: u64,
    /// Seconds measured (shorter than asked when a closed-loop run used
    /// up its messages).
    pub measured_secs: f64,
    /// Messages sent in the window.
    pub sent: u64,
    /// Of those, answered.
    pub answered: u64,
    /// Of those, not answered within the run's patience.
    pub unanswered: u64,
    /// The engine's own acceptance-to-reply p99, microseconds (in-process).
    pub processing_p99_us: Option<f64>,
    /// Open loop: how late the harness's sending thread got to each send
    /// (the OS ran it late). Latency counts from the intended time, so this
    /// is a part of every latency above, and not the engine's doing.
    pub send_lag_us: Option<Latency>,
    /// Every latency recorded, for the plot: `(percentile, microseconds)`.
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

/// Turns a run's records into figures.
pub fn measure(
    recorder: &Recorder,
    plan: &Plan,
    engine_cpu_seconds: f64,
    threads: u64,
    processing_p99_ns: Option<u64>,
) -> Figures {
    let from = plan.warmup.as_nanos() as u64;
    let to = (plan.warmup + plan.duration).as_nanos() as u64;
    let Tally {
        latencies: histogram,
        errors,
        answered,
        unanswered,
    } = recorder.tally(from, to);
    let sent = answered + unanswered;
    let seconds = plan.duration.as_secs_f64().max(1e-9);
    let latency = percentiles(&histogram);
    let curve = histogram
        .iter_quantiles(1)
        .map(|step| {
            (
                step.quantile_iterated_to() * 100.0,
                step.value_iterated_to() as f64 / 1000.0,
            )
        })
        .collect();
    Figures {
        throughput_msgs_per_s: answered as f64 / seconds,
        latency_us: latency,
        errors,
        cpu_share: Some(engine_cpu_seconds / seconds),
        cpu_us_per_msg: (answered > 0).then(|| engine_cpu_seconds * 1e6 / answered as f64),
        sender_cpu_share: None,
        peak_rss_bytes: process::peak_rss_bytes("self"),
        threads,
        measured_secs: plan.duration.as_secs_f64(),
        sent,
        answered,
        unanswered,
        processing_p99_us: processing_p99_ns.map(|ns| ns as f64 / 1000.0),
        send_lag_us: recorder.send_lags().map(|lags| percentiles(&lags)),
        curve,
    }
}

/// The percentiles of a histogram of nanoseconds, in microseconds.
fn percentiles(histogram: &Histogram<u64>) -> Latency {
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Latency {
        p50: us(0.5),
        p90: us(0.9),
        p95: us(0.95),
        p99: us(0.99),
        p999: us(0.999),
        max: histogram.max() as f64 / 1000.0,
    }
}

/// The run as `mcp-bench` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `inproc`, `tcp` or `tls`.
    pub mode: String,
    /// The level of every message.
    pub level: String,
    /// `json` or `binary`.
    pub codec: String,
    /// `open` or `closed`.
    pub pace: String,
    /// Target rate (open loop).
    pub rate: Option<u64>,
    /// Messages handed over at once (closed loop).
    pub batch: Option<usize>,
    /// Connections (network modes).
    pub connections: Option<usize>,
    /// Seconds measured.
    pub duration_secs: f64,
    /// The engine's figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// The baseline's figures, with `--compare baseline`.
    pub baseline: Option<Figures>,
    /// Engine throughput over the baseline's.
    pub throughput_ratio: Option<f64>,
    /// The engine's throughput in each run, in the order they ran
    /// (`figures` are the median run's); shown only for several runs
    /// (`--repeat`).
    #[serde(skip_serializing_if = "one_run")]
    pub throughput_runs: Vec<f64>,
    /// With `--compare`: the baseline's, likewise.
    #[serde(skip_serializing_if = "one_run")]
    pub baseline_throughput_runs: Vec<f64>,
}

/// Whether `runs` lists at most one run: then its figures say it all, and
/// the list is not shown.
pub(crate) fn one_run(runs: &[f64]) -> bool {
    runs.len() <= 1
}

impl Report {
    /// The pace as words.
    pub fn pace_of(pace: Pace) -> (String, Option<u64>) {
        match pace {
            Pace::Open { rate, spin: false } => ("open".into(), Some(rate)),
            Pace::Open { rate, spin: true } => ("open, spinning".into(), Some(rate)),
            Pace::Closed { .. } => ("closed".into(), None),
        }
    }

    /// Messages handed over at once: `Some` in a closed loop.
    pub fn batch_of(pace: Pace) -> Option<usize> {
        match pace {
            Pace::Open { .. } => None,
            Pace::Closed { batch, .. } => Some(batch),
        }
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String, Option<String>)> = Vec::new();
        let f = &self.figures;
        let b = self.baseline.as_ref();
        let mut row = |name: &str, value: &dyn Fn(&Figures) -> String| {
            rows.push((name.to_owned(), value(f), b.map(value)));
        };
        row("throughput (msg/s)", &|f| {
            format!("{:.0}", f.throughput_msgs_per_s)
        });
        row("latency p50 (us)", &|f| format!("{:.1}", f.latency_us.p50));
        row("latency p90 (us)", &|f| format!("{:.1}", f.latency_us.p90));
        row("latency p99 (us)", &|f| format!("{:.1}", f.latency_us.p99));
        row("latency p99.9 (us)", &|f| {
            format!("{:.1}", f.latency_us.p999)
        });
        row("latency max (us)", &|f| format!("{:.1}", f.latency_us.max));
        if f.send_lag_us.is_some() {
            row("harness send lag p50 / p99 (us)", &|f| {
                f.send_lag_us
                    .map_or("-".into(), |l| format!("{:.1} / {:.1}", l.p50, l.p99))
            });
        }
        row("sent / answered", &|f| {
            format!("{} / {}", f.sent, f.answered)
        });
        row("errors", &|f| {
            if f.errors.is_empty() {
                "none".into()
            } else {
                f.errors
                    .iter()
                    .map(|(code, n)| format!("{code}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        });
        row("engine CPU (share of a core)", &|f| {
            f.cpu_share
                .map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
        });
        row("engine CPU per message (us)", &|f| {
            f.cpu_us_per_msg.map_or("-".into(), |s| format!("{s:.2}"))
        });
        if f.sender_cpu_share.is_some() {
            row("load generator CPU (share of a core)", &|f| {
                f.sender_cpu_share
                    .map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
            });
        }
        row("peak RSS (MiB)", &|f| {
            format!("{:.1}", f.peak_rss_bytes as f64 / 1048576.0)
        });
        row("threads", &|f| f.threads.to_string());
        let mut out = format!(
            "mcp-bench: {} {} {} {}{}{}, {:.1} s measured\n",
            self.mode,
            self.level,
            self.codec,
            self.pace,
            self.rate
                .map_or(String::new(), |r| format!(" at {r} msg/s")),
            self.batch
                .map_or(String::new(), |b| format!(" in batches of {b}")),
            self.duration_secs
        );
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let engine_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(6);
        if b.is_some() {
            out.push_str(&format!(
                "{:width$}  {:>engine_width$}  baseline\n",
                "", "engine"
            ));
        }
        for (name, engine, baseline) in rows {
            out.push_str(&format!("{name:width$}  {engine:>engine_width$}"));
            if let Some(baseline) = baseline {
                out.push_str(&format!("  {baseline}"));
            }
            out.push('\n');
        }
        for (whose, runs) in [
            ("engine", &self.throughput_runs),
            ("baseline", &self.baseline_throughput_runs),
        ] {
            if !one_run(runs) {
                let listed: Vec<String> = runs.iter().map(|t| format!("{t:.0}")).collect();
                out.push_str(&format!(
                    "{whose} throughput of each run (msg/s, the median run shown): {}\n",
                    listed.join(", ")
                ));
            }
        }
        if let Some(ratio) = self.throughput_ratio {
            out.push_str(&format!(
                "throughput ratio (engine / baseline): {ratio:.2}\n"
            ));
        }
        out
    }
}

/// The performance requirements of docs/seed-specification.md.
#[derive(Clone, Copy, Debug)]
pub struct Budgets {
    /// p95 latency, microseconds (seed: < 100 ms).
    pub p95_us: f64,
    /// Processing time, microseconds (seed: < 50 ms).
    pub processing_us: f64,
    /// Share of messages answered with an Error (seed: < 1%).
    pub error_rate: f64,
    /// Resident memory (seed: < 512 MB).
    pub rss_bytes: u64,
    /// Share of one core at 10k msg/s (seed: < 50%).
    pub cpu_share: f64,
}

impl Default for Budgets {
    fn default() -> Budgets {
        Budgets {
            p95_us: 100_000.0,
            processing_us: 50_000.0,
            error_rate: 0.01,
            rss_bytes: 512 * 1024 * 1024,
            cpu_share: 0.5,
        }
    }
}

impl Budgets {
    /// Each budget `figures` miss, named.
    pub fn misses(&self, figures: &Figures) -> Vec<String> {
        let mut misses = Vec::new();
        if figures.latency_us.p95 >= self.p95_us {
            misses.push(format!(
                "p95 latency {:.1} us is not below {:.0} us",
                figures.latency_us.p95, self.p95_us
            ));
        }
        // Processing: the engine's own p99 where known, else the
        // end-to-end p99 (an upper bound of it).
        let processing = figures.processing_p99_us.unwrap_or(figures.latency_us.p99);
        if processing >= self.processing_us {
            misses.push(format!(
                "processing p99 {processing:.1} us is not below {:.0} us",
                self.processing_us
            ));
        }
        let errors: u64 = figures.errors.values().sum();
        let failed = errors + figures.unanswered;
        let rate = if figures.sent == 0 {
            1.0
        } else {
            failed as f64 / figures.sent as f64
        };
        if rate >= self.error_rate {
            misses.push(format!(
                "error rate {:.3}% ({failed} of {}) is not below {:.1}%",
                rate * 100.0,
                figures.sent,
                self.error_rate * 100.0
            ));
        }
        if figures.peak_rss_bytes >= self.rss_bytes {
            misses.push(format!(
                "peak RSS {:.1} MiB is not below {} MiB",
                figures.peak_rss_bytes as f64 / 1048576.0,
                self.rss_bytes / 1048576
            ));
        }
        if let Some(share) = figures.cpu_share
            && share >= self.cpu_share
        {
            misses.push(format!(
                "CPU {:.1}% of a core is not below {:.0}%",
                share * 100.0,
                self.cpu_share * 100.0
            ));
        }
        if figures.sent == 0 {
            misses.push("nothing was sent".into());
        }
        misses
    }
}
