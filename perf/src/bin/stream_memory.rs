//! What replay streams cost in memory: an engine's resident memory before
//! and after it holds N live streams (docs/protocol.md section 7a), each
//! opened by one message.
//!
//! Usage: `cargo run --release -p mcp-perf --bin stream-memory [N ...]`
//! (default: 10000 1000000). Each N is a fresh engine with the default
//! config (but a share large enough for one principal to hold N streams,
//! and `replay_streams` at least N); prints its resident memory when
//! started, after N streams, and the difference per stream. The messages
//! are `Low` (no token), so only the stream table grows.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_engine::codec::{self, Codec};
use mcp_engine::config::RoleConfig;
use mcp_engine::engine::{EngineBuilder, Outcome, Reply, Submission};
use mcp_engine::{Config, Field, Message, MessageType, RawJson, SecurityLevel};
use mcp_perf::process::rss_bytes;

// The allocator `mcp-engine serve` runs with.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn measure(streams: u64) -> Result<(), String> {
    let mut config = Config::default();
    config.security.min_security_level = SecurityLevel::Low;
    config.engine.overflow = mcp_engine::config::Overflow::Block;
    config.security.replay_streams = config.security.replay_streams.max(streams + streams / 8);
    let mut anyone = RoleConfig::allowing(["demo:*"]);
    anyone.replay_streams = Some(streams);
    config
        .authorization
        .roles
        .insert("anonymous".into(), anyone);
    let engine = EngineBuilder::new(config)
        .command("demo.ping", |_: &mcp_engine::engine::Request<'_>| {
            Ok(mcp_engine::engine::Answer::Result(RawJson::null()))
        })
        .start()
        .map_err(|e| e.to_string())?;
    let answered = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let sink = {
        let (answered, refused) = (Arc::clone(&answered), Arc::clone(&refused));
        engine.register_sink(move |reply: Reply<'_>| {
            if reply.outcome != Outcome::Response {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            answered.fetch_add(1, Ordering::Release);
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes("self");
    let payload = RawJson::parse(r#"{"command":"demo.ping"}"#).map_err(|e| e.to_string())?;
    for n in 0..streams {
        let mut message = Message::new(
            format!("m-{n}"),
            MessageType::Command,
            SecurityLevel::Low,
            payload.clone(),
        );
        let replay = format!(r#"{{"replay":{{"stream":"s{n}","seq":1}}}}"#);
        message.metadata = Field::Present(RawJson::parse(&replay).map_err(|e| e.to_string())?);
        let mut body = Vec::new();
        codec::json::encode(&message, &mut body);
        let submission = Submission {
            sink,
            tag: n,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            key: n,
            codec: Codec::Json,
            body,
        };
        // `block`: a full queue makes this wait, it refuses nothing.
        let _ = engine.submit(submission);
    }
    while answered.load(Ordering::Acquire) < streams {
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = rss_bytes("self");
    let live = engine.security().streams.len();
    println!(
        "{streams} streams: RSS {:.1} MiB at start, {:.1} MiB with {live} live streams ({} refused): {:.0} bytes a stream",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        refused.load(Ordering::Relaxed),
        after.saturating_sub(before) as f64 / streams.max(1) as f64
    );
    engine.shutdown();
    Ok(())
}

fn main() -> std::process::ExitCode {
    let counts: Result<Vec<u64>, String> = std::env::args()
        .skip(1)
        .map(|a| a.parse().map_err(|_| a))
        .collect();
    let counts = match counts {
        Ok(counts) => counts,
        Err(arg) => {
            eprintln!("stream-memory: {arg:?} is not a number of streams");
            eprintln!("usage: stream-memory [N ...] (default: 10000 1000000)");
            return std::process::ExitCode::from(2);
        }
    };
    let counts = if counts.is_empty() {
        vec![10_000, 1_000_000]
    } else {
        counts
    };
    for streams in counts {
        if let Err(e) = measure(streams) {
            eprintln!("stream-memory: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}
