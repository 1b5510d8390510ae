//! The in-process run: the engine embedded in this process, messages
//! handed to [`Engine::submit`], replies timed in the sink.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_engine::engine::{Engine, EngineBuilder, Outcome, Reply, Stage, Submission};
use mcp_engine::{Config, Error};

use super::report::{Figures, measure};
use super::workload::{Messages, Prepared};
use super::{Pace, Plan, Recorder};
use crate::process;

/// Threads of the engine (and of the server, in the network modes): what
/// the CPU share counts.
pub(super) const ENGINE_THREADS: &[&str] =
    &["mcp-worker", "mcp-front", "mcp-back", "mcp-timer", "mcp-io"];

/// Threads of the load generator (the sending thread is the process's
/// main one, named after the binary): what the sender's CPU share counts.
pub const LOAD_THREADS: &[&str] = &["mcp-bench", "bench-gen", "bench-io", "bench-nats"];

/// The sending thread among [`LOAD_THREADS`].
const SENDING_THREAD: &str = "mcp-bench";

/// CPU seconds of an in-process run's load generator so far, in parts: the
/// threads that only make load, the sending thread, and the engine's work
/// that ran on the sending thread (wall-clock time: see [`engine_cpu`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LoadCpu {
    makers: f64,
    sending: f64,
    on_sending: f64,
}

impl LoadCpu {
    pub(super) fn now(engine: &Engine) -> LoadCpu {
        let sending = process::cpu_of_threads(&[SENDING_THREAD]);
        LoadCpu {
            makers: process::cpu_of_threads(LOAD_THREADS) - sending,
            sending,
            on_sending: engine.metrics().submitter_busy_ns as f64 / 1e9,
        }
    }

    /// The load generator's seconds since `earlier`: the sending thread's
    /// less the engine's work on it (which counts as the engine's; its
    /// wall-clock time may exceed the thread's CPU time, so the difference
    /// is floored at zero).
    pub(super) fn since(self, earlier: LoadCpu) -> f64 {
        let sending = (self.sending - earlier.sending) - (self.on_sending - earlier.on_sending);
        (self.makers - earlier.makers) + sending.max(0.0)
    }
}

/// Starts an engine on `config` with the demo handlers.
pub(super) fn start_engine(config: Config) -> Result<Engine, Error> {
    let (builder, _notices) = mcp_engine::demo::register(EngineBuilder::new(config));
    builder.start()
}

/// The engines' CPU seconds so far: their threads' (named by `threads`),
/// and the time the messages they ran on this process's submitting threads
/// (their workers being parked) took there (wall-clock time, which is at
/// least their CPU time).
pub(super) fn engine_cpu<'e>(
    engines: impl IntoIterator<Item = &'e Engine>,
    threads: &[&str],
) -> f64 {
    let on_submitters: u64 = engines
        .into_iter()
        .map(|engine| engine.metrics().submitter_busy_ns)
        .sum();
    process::cpu_of_threads(threads) + on_submitters as f64 / 1e9
}

/// The p99 of the engine's own processing time (the `Total` stage), in
/// nanoseconds.
pub(super) fn processing_p99(engine: &Engine) -> Option<u64> {
    engine
        .metrics()
        .latencies
        .iter()
        .find(|l| l.stage == Stage::Total)
        .map(|l| l.p99_ns)
}

/// Waits until `due` (from `start`): sleeps until shortly before, then
/// spins. Sleeping alone overshoots by tens of microseconds here (counted
/// as latency, since latency runs from the intended time); spinning alone
/// would take a whole core from the engine it measures.
pub fn wait_until(start: Instant, due: Duration) {
    const SPIN: Duration = Duration::from_micros(50);
    let Some(left) = due.checked_sub(start.elapsed()) else {
        return;
    };
    if left > SPIN {
        std::thread::sleep(left - SPIN);
    }
    spin_until(start, due);
}

/// Spins until `due` after `start`.
pub fn spin_until(start: Instant, due: Duration) {
    while start.elapsed() < due {
        std::hint::spin_loop();
    }
}

/// Sends `messages` per `plan` through `send`, recording send times;
/// returns how many were sent. `send` gets the messages in batches (one
/// message each in an open loop, `batch` at a time in a closed one) and
/// drains them; `on_warm` runs at the end of the warm-up.
pub fn drive(
    messages: impl IntoIterator<Item = Prepared>,
    plan: &Plan,
    recorder: &Recorder,
    mut send: impl FnMut(&mut Vec<(usize, Prepared)>),
    mut on_warm: impl FnMut(),
) -> usize {
    // Linux lets a sleep overshoot by the timer slack (50 us by default):
    // half a message's interval at 10k msg/s. One nanosecond instead.
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    let start = recorder.start();
    let end = plan.warmup + plan.duration;
    let mut warm = plan.warmup.is_zero();
    if warm {
        on_warm();
    }
    let batch_size = plan.batch_size();
    let mut batch = Vec::with_capacity(batch_size);
    let mut sent = 0;
    // Answers known to have come: read again only when the window looks
    // full, not on every send (the count is the answering threads').
    let mut known_done = 0;
    let mut messages = messages.into_iter().enumerate().peekable();
    while messages.peek().is_some() {
        let at = match plan.pace {
            Pace::Open { spin, .. } => {
                let due = plan.due(sent).unwrap_or_default();
                if due >= end {
                    break;
                }
                if spin {
                    spin_until(start, due);
                } else {
                    wait_until(start, due);
                }
                let due = due.as_nanos() as u64;
                if warm {
                    recorder.lagged(recorder.now().saturating_sub(due));
                }
                due
            }
            Pace::Closed { window, .. } => {
                let window = window.max(batch_size) as u64;
                let batch_size = batch_size as u64;
                let sent = sent as u64;
                if sent + batch_size - known_done > window {
                    known_done = recorder.done();
                }
                if sent + batch_size - known_done > window {
                    // Refill an eighth of the window at least, so that the
                    // sender wakes once per refill, not per answer.
                    let refill = (window / 8).max(batch_size);
                    let target = (sent + refill).saturating_sub(window);
                    recorder.wait_until_done(target);
                    known_done = target;
                }
                let now = start.elapsed();
                if now >= end {
                    break;
                }
                // The batch goes out now: one reading for all of it.
                now.as_nanos() as u64
            }
        };
        if !warm && at >= plan.warmup.as_nanos() as u64 {
            warm = true;
            on_warm();
        }
        batch.extend(messages.by_ref().take(batch_size));
        for (index, _) in &batch {
            recorder.sent(*index, at);
        }
        sent += batch.len();
        send(&mut batch);
        batch.clear();
    }
    sent
}

/// Waits up to `patience` for every sent message to be answered.
pub fn settle(recorder: &Recorder, sent: usize, patience: Duration) {
    let until = Instant::now() + patience;
    while recorder.done() < sent as u64 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `messages` through an engine on `config`, in this process.
pub fn run_inproc(
    config: Config,
    messages: impl Into<Messages>,
    plan: &Plan,
) -> Result<Figures, Error> {
    let mut messages = messages.into();
    let engine = start_engine(config)?;
    let recorder = Arc::new(messages.recorder(plan));
    let sink = {
        let recorder = Arc::clone(&recorder);
        engine.register_sink(move |reply: Reply<'_>| {
            let code = match reply.outcome {
                Outcome::Error(code) => Some(code),
                _ => None,
            };
            recorder.answered(reply.tag as usize, code);
        })
    };
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut warm_cpu = 0.0;
    let mut warm_load = LoadCpu::default();
    let sent = drive(
        messages.take(),
        plan,
        &recorder,
        |batch| {
            // Each batch to one worker: its lane's order key (a batch is
            // one lane's run, and a lane keeps its stream in order).
            let key = batch.first().map_or(0, |(_, message)| message.lane as u64);
            engine.submit_batch(batch.drain(..).map(|(index, message)| Submission {
                sink,
                tag: index as u64,
                peer,
                key,
                codec: message.codec,
                body: message.body,
            }));
        },
        || {
            engine.reset_latencies();
            warm_cpu = engine_cpu([&engine], ENGINE_THREADS);
            warm_load = LoadCpu::now(&engine);
        },
    );
    let plan = &plan.measured(recorder.start().elapsed());
    let cpu = engine_cpu([&engine], ENGINE_THREADS) - warm_cpu;
    let load = LoadCpu::now(&engine).since(warm_load);
    // Messages still being made stop now, once their threads are counted.
    drop(messages);
    let threads = process::threads("self");
    settle(&recorder, sent, Duration::from_secs(10));
    let processing = processing_p99(&engine);
    engine.shutdown();
    let mut figures = measure(&recorder, plan, cpu, threads, processing);
    figures.sender_cpu_share = Some(load / plan.duration.as_secs_f64().max(1e-9));
    Ok(figures)
}
