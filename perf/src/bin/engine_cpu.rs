//! CPU an engine uses while idle and at a steady light load: the process's
//! user + system time (from `/proc/self/stat`) over a wall-clock window.
//!
//! Usage: `cargo run --release -p mcp-perf --bin engine-cpu [SECONDS] [RATE]`
//! (defaults: 5 seconds, 10000 messages per second). Prints one line per
//! phase: idle, then paced Low `demo.ping` commands at RATE (after a
//! second's warm-up at that rate, not measured).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcp_engine::codec::{self, Codec};
use mcp_engine::engine::{EngineBuilder, Reply, Submission};
use mcp_engine::{Config, Message, MessageType, RawJson, SecurityLevel};
use mcp_perf::process::{cpu_by_thread, cpu_seconds};

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let rate: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);

    // Low level, anonymous, so the load is the engine and not the crypto
    // (the level's cost is in the pipeline bench).
    let mut config = Config::default();
    config.allow_anonymous(["demo:*"]);
    config.security.replay_capacity = 1 << 22;
    let engine = EngineBuilder::new(config)
        .command("demo.ping", |_: &mcp_engine::engine::Request<'_>| {
            Ok(mcp_engine::engine::Answer::Result(RawJson::null()))
        })
        .start()
        .expect("the engine starts");
    let replies = Arc::new(AtomicU64::new(0));
    let sink = {
        let replies = Arc::clone(&replies);
        engine.register_sink(move |_: Reply<'_>| {
            replies.fetch_add(1, Ordering::Relaxed);
        })
    };

    let window = Duration::from_secs(seconds);
    std::thread::sleep(Duration::from_millis(200));
    let cpu = cpu_seconds();
    std::thread::sleep(window);
    let idle = (cpu_seconds() - cpu) / window.as_secs_f64();
    println!("idle: {:.2}% of one core over {seconds} s", idle * 100.0);

    // A sleep may overshoot by the timer slack (50 us by default), which
    // would send the messages in bunches; one nanosecond instead.
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut numbered = 0u64;
    let mut pace = |window: Duration| {
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < window {
            let due = interval * u32::try_from(sent).unwrap_or(u32::MAX);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            let payload = RawJson::parse(r#"{"command":"demo.ping"}"#).expect("json");
            let message = Message::new(
                format!("p-{numbered}"),
                MessageType::Command,
                SecurityLevel::Low,
                payload,
            );
            let mut body = Vec::with_capacity(256);
            codec::json::encode(&message, &mut body);
            let _ = engine.submit(Submission {
                sink,
                tag: numbered,
                peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
                key: numbered,
                codec: Codec::Json,
                body,
            });
            sent += 1;
            numbered += 1;
        }
        (sent, start.elapsed().as_secs_f64())
    };
    // A second's warm-up, not measured: first touches of the engine's
    // tables and buffers are a start-up cost, not a per-message one.
    pace(Duration::from_secs(1));
    let cpu = cpu_seconds();
    let threads_before = cpu_by_thread();
    let metrics_before = engine.metrics();
    let answered_before = replies.load(Ordering::Relaxed);
    let (sent, elapsed) = pace(window);
    let used = (cpu_seconds() - cpu) / elapsed;
    println!(
        "at {rate} msg/s: {:.2}% of one core over {elapsed:.1} s ({sent} sent, {} answered; includes the sending thread)",
        used * 100.0,
        replies.load(Ordering::Relaxed) - answered_before
    );
    for (name, seconds) in cpu_by_thread() {
        let before = threads_before
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, s)| *s);
        println!(
            "  {name}: {:.2}% of one core",
            (seconds - before) / elapsed * 100.0
        );
    }
    let metrics = engine.metrics();
    let on_sender = metrics.submitter_busy_ns - metrics_before.submitter_busy_ns;
    println!(
        "  of which the engine's work on the sending thread ({} messages run there, `engine.run_on_submitter`; wall-clock time, at least the CPU time): {:.2}% of one core",
        metrics.run_on_submitter - metrics_before.run_on_submitter,
        on_sender as f64 / 1e9 / elapsed * 100.0
    );
    engine.shutdown();
}
