//! The baseline `--compare baseline` measures the engine against: the same
//! pipeline as a Rust user would first write it. A tokio multi-thread
//! runtime (one worker per core), one task per stage (validate,
//! authenticate, execute and reply) joined by bounded tokio mpsc channels,
//! serde_json throughout, the same token, signature, replay, decryption
//! and authorization checks as the engine, and the same replies
//! (encrypted and signed as the request was). See `checks.rs` for how each
//! check is written.

mod checks;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use mcp_engine::client::Credentials;
use mcp_engine::{Code, Config, Error};

use crate::harness::{Figures, LOAD_THREADS, Messages, Plan, drive, measure, settle};
use crate::process;
use checks::{Checks, Refusal};

/// Threads of the baseline's runtime: what its CPU share counts.
const BASELINE_THREADS: &[&str] = &["baseline-"];

/// Channel capacity between stages (the engine's queue size).
const CHANNEL: usize = 4096;

/// Runs `messages` (JSON only) through the baseline built on `config`'s
/// rules and `credentials`' keys.
pub fn run_baseline(
    config: &Config,
    credentials: &Credentials,
    messages: impl Into<Messages>,
    plan: &Plan,
) -> Result<Figures, Error> {
    let mut messages = messages.into();
    let checks = Arc::new(Checks::new(config, credentials)?);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("baseline-worker")
        .enable_all()
        .build()
        .map_err(|e| Error::new(Code::InternalError, format!("tokio: {e}")))?;
    let recorder = Arc::new(messages.recorder(plan));
    let (input, validate_rx) = mpsc::channel::<(usize, Vec<u8>)>(CHANNEL);
    let (validated, authenticate_rx) = mpsc::channel(CHANNEL);
    let (authenticated, execute_rx) = mpsc::channel(CHANNEL);
    let reply = {
        let recorder = Arc::clone(&recorder);
        move |index: usize, code: Option<Code>, _reply: Vec<u8>| recorder.answered(index, code)
    };
    runtime.spawn(validate_stage(
        Arc::clone(&checks),
        validate_rx,
        validated,
        reply.clone(),
    ));
    runtime.spawn(authenticate_stage(
        Arc::clone(&checks),
        authenticate_rx,
        authenticated,
        reply.clone(),
    ));
    runtime.spawn(execute_stage(Arc::clone(&checks), execute_rx, reply));

    let mut warm_cpu = 0.0;
    let mut warm_load = 0.0;
    let sent = drive(
        messages.take(),
        plan,
        &recorder,
        |batch| {
            // One at a time, as tokio's channel takes them; back-pressure:
            // the sender waits for room, as a caller of
            // `Sender::blocking_send` does.
            for (index, message) in batch.drain(..) {
                let _ = input.blocking_send((index, message.body));
            }
        },
        || {
            warm_cpu = process::cpu_of_threads(BASELINE_THREADS);
            warm_load = process::cpu_of_threads(LOAD_THREADS);
        },
    );
    let plan = &plan.measured(recorder.start().elapsed());
    let cpu = process::cpu_of_threads(BASELINE_THREADS) - warm_cpu;
    let load = process::cpu_of_threads(LOAD_THREADS) - warm_load;
    // Messages still being made stop now, once their threads are counted.
    drop(messages);
    let threads = process::threads("self");
    settle(&recorder, sent, Duration::from_secs(10));
    drop(input);
    runtime.shutdown_timeout(Duration::from_secs(1));
    let mut figures = measure(&recorder, plan, cpu, threads, None);
    figures.sender_cpu_share = Some(load / plan.duration.as_secs_f64().max(1e-9));
    Ok(figures)
}

/// Where a reply goes: the message's index, its error code if any, the
/// reply's bytes.
trait Deliver: Fn(usize, Option<Code>, Vec<u8>) + Clone + Send + 'static {}
impl<T: Fn(usize, Option<Code>, Vec<u8>) + Clone + Send + 'static> Deliver for T {}

fn refuse(
    checks: &Checks,
    deliver: &impl Deliver,
    index: usize,
    id: Option<&str>,
    refusal: Refusal,
) {
    deliver(index, Some(refusal.0), checks.error_reply(id, refusal));
}

async fn validate_stage(
    checks: Arc<Checks>,
    mut input: mpsc::Receiver<(usize, Vec<u8>)>,
    output: mpsc::Sender<(usize, checks::Parsed)>,
    deliver: impl Deliver,
) {
    while let Some((index, body)) = input.recv().await {
        match checks.validate(&body) {
            Ok(parsed) => {
                if output.send((index, parsed)).await.is_err() {
                    return;
                }
            }
            Err(refusal) => refuse(&checks, &deliver, index, None, refusal),
        }
    }
}

async fn authenticate_stage(
    checks: Arc<Checks>,
    mut input: mpsc::Receiver<(usize, checks::Parsed)>,
    output: mpsc::Sender<(usize, checks::Authenticated)>,
    deliver: impl Deliver,
) {
    while let Some((index, parsed)) = input.recv().await {
        let id = parsed.envelope.id.clone();
        match checks.authenticate(parsed) {
            Ok(message) => {
                if output.send((index, message)).await.is_err() {
                    return;
                }
            }
            Err(refusal) => refuse(&checks, &deliver, index, Some(&id), refusal),
        }
    }
}

async fn execute_stage(
    checks: Arc<Checks>,
    mut input: mpsc::Receiver<(usize, checks::Authenticated)>,
    deliver: impl Deliver,
) {
    while let Some((index, message)) = input.recv().await {
        let id = message.parsed.envelope.id.clone();
        match checks.execute(message) {
            Ok(Some(reply)) => deliver(index, None, reply),
            Ok(None) => deliver(index, None, Vec::new()),
            Err(refusal) => refuse(&checks, &deliver, index, Some(&id), refusal),
        }
    }
}
