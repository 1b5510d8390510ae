//! One message through the whole in-process pipeline (submit, decode,
//! admit, route, authorize, execute, reply) at the Standard, High and
//! Critical levels, per topology. Messages are sealed before the clock
//! starts; the time is per message with the engine kept busy (many in
//! flight), i.e. the inverse of throughput. Both topologies get two worker
//! threads (this machine has two cores).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_engine::codec::{self, Codec};
use mcp_engine::config::{Overflow, Topology};
use mcp_engine::dev_setup::{DEV_ADDR, DevSetup};
use mcp_engine::engine::{Answer, EngineBuilder, Reply, Request, Submission};
use mcp_engine::message::{Timestamp, unix_nanos_now};
use mcp_engine::security::{Keyring, Sealer};
use mcp_engine::{Config, Error, Message, MessageType, RawJson, SecurityLevel};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn echo(request: &Request<'_>) -> Result<Answer, Error> {
    Ok(Answer::Result(
        request
            .args()
            .map_or_else(RawJson::null, RawJson::from_json),
    ))
}

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevSetup::write(dir.path(), DEV_ADDR).unwrap();
    let base = Config::load(&dev.config_path).unwrap();
    let credentials: serde_json::Value = serde_json::from_str(&dev.credentials).unwrap();
    let token = credentials["tokens"]["admin"].as_str().unwrap().to_owned();
    let keyring = Keyring::load(&base.security).unwrap();

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    // Two worker threads either way: two whole-message workers, or one
    // front (validate, admit) and one back (route, execute, respond).
    for (topology, workers) in [(Topology::Sharded, 2), (Topology::Staged, 1)] {
        for level in [
            SecurityLevel::Standard,
            SecurityLevel::High,
            SecurityLevel::Critical,
        ] {
            let mut config = base.clone();
            config.engine.topology = topology;
            config.engine.workers = workers;
            config.engine.overflow = Overflow::Block;
            config.timeout_ms = 60_000;
            config.security.replay_capacity = 1 << 24;
            let engine = EngineBuilder::new(config)
                .command("demo.echo", echo)
                .start()
                .unwrap();
            let replies = Arc::new(AtomicU64::new(0));
            let sink = {
                let replies = Arc::clone(&replies);
                engine.register_sink(move |_: Reply<'_>| {
                    replies.fetch_add(1, Ordering::Release);
                })
            };
            let mut sealer = Sealer::new(
                keyring.clone(),
                Some(token.clone()),
                "dev-sign-1",
                "dev-enc-1",
            )
            .unwrap();
            let mut next_id = 0u64;
            let label = format!("{topology:?}/{level:?}").to_lowercase();
            group.bench_function(BenchmarkId::new("message", label), |b| {
                b.iter_custom(|iters| {
                    let bodies: Vec<Vec<u8>> = (0..iters)
                        .map(|_| {
                            next_id += 1;
                            sealed(&mut sealer, next_id, level)
                        })
                        .collect();
                    let before = replies.load(Ordering::Acquire);
                    let start = Instant::now();
                    for (n, body) in bodies.into_iter().enumerate() {
                        let _ = engine.submit(Submission {
                            sink,
                            tag: n as u64,
                            peer: LOCAL,
                            key: n as u64,
                            codec: Codec::Json,
                            body,
                        });
                    }
                    while replies.load(Ordering::Acquire) < before + iters {
                        std::thread::yield_now();
                    }
                    start.elapsed()
                })
            });
            engine.shutdown();
        }
    }
    group.finish();
}

fn sealed(sealer: &mut Sealer, n: u64, level: SecurityLevel) -> Vec<u8> {
    let payload = RawJson::parse(
        r#"{"command":"demo.echo","args":{"text":"hello world","n":42,"tags":["a","b"]}}"#,
    )
    .unwrap();
    let mut message = Message::new(format!("b-{n}"), MessageType::Command, level, payload);
    let now = unix_nanos_now();
    message.timestamp = Timestamp::from_unix_nanos(now);
    sealer.seal(&mut message, now).unwrap();
    let mut body = Vec::with_capacity(1024);
    codec::json::encode(&message, &mut body);
    body
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
