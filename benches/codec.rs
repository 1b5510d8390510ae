//! Decoding and validating envelopes: the JSON codec on simd-json (with
//! serde_json beside it for comparison), the binary codec on rkyv, and
//! encoding. Each iteration is one message.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_engine::codec::{self, AlignedBytes, Decoder, Limits};
use mcp_engine::{Message, Timestamp, message::is_valid_id};
use serde::Deserialize;
use std::hint::black_box;

mod support;

/// The envelope as a serde user would declare it, borrowing where it can.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SerdeEnvelope<'a> {
    version: Option<&'a str>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    payload: serde_json::Value,
    metadata: Option<serde_json::Value>,
    #[serde(borrow)]
    security: SerdeSecurity<'a>,
    timestamp: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SerdeSecurity<'a> {
    security_level: &'a str,
    encryption_info: Option<serde_json::Value>,
    signature: Option<&'a str>,
    auth_token: Option<&'a str>,
}

/// serde_json plus the same field rules (id, timestamp window); it cannot
/// see repeated keys inside `payload`, so it does a little less than ours.
fn serde_validate(body: &[u8], now: i128) -> bool {
    let Ok(e) = serde_json::from_slice::<SerdeEnvelope<'_>>(body) else {
        return false;
    };
    is_valid_id(e.id)
        && matches!(e.kind, "Command" | "Response" | "Event" | "Error")
        && Timestamp::parse(e.timestamp)
            .is_some_and(|t| (t.unix_nanos() - now).abs() <= 300_000_000_000)
}

fn samples(now: &Timestamp) -> [(&'static str, Message); 2] {
    [("400B", support::small(now)), ("4KiB", support::large(now))]
}

fn decode(c: &mut Criterion) {
    let now = Timestamp::now();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for (label, message) in samples(&now) {
        let json = support::json(&message);
        let label = format!("{label} ({} B JSON)", json.len());
        let mut decoder = Decoder::new(Limits::default());
        let mut work = json.clone();
        group.bench_function(BenchmarkId::new("simd_json", &label), |b| {
            b.iter(|| {
                // The copy stands for the frame buffer a message arrives in
                // (parsing is in place); about 10-40 ns of the figure.
                work.copy_from_slice(&json);
                let view = decoder
                    .decode_json(black_box(&work), now.unix_nanos())
                    .unwrap();
                black_box(view.id());
            })
        });
        group.bench_function(BenchmarkId::new("serde_json_typed", &label), |b| {
            b.iter(|| assert!(serde_validate(black_box(&json), now.unix_nanos())))
        });
        group.bench_function(BenchmarkId::new("serde_json_value", &label), |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&json)).unwrap())
            })
        });
        let binary = support::binary(&message);
        group.bench_function(BenchmarkId::new("rkyv_decode", &label), |b| {
            b.iter(|| {
                let view = decoder
                    .decode_binary(black_box(&binary), now.unix_nanos())
                    .unwrap();
                black_box(view.id());
            })
        });
        group.bench_function(BenchmarkId::new("rkyv_access", &label), |b| {
            b.iter(|| codec::binary::check_archive(black_box(&binary)).unwrap())
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let now = Timestamp::now();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for (label, message) in samples(&now) {
        let mut out = Vec::with_capacity(8192);
        group.bench_function(BenchmarkId::new("json", label), |b| {
            b.iter(|| {
                out.clear();
                codec::json::encode(black_box(&message), &mut out);
                black_box(out.len());
            })
        });
        let mut aligned = AlignedBytes::with_capacity(8192);
        group.bench_function(BenchmarkId::new("rkyv", label), |b| {
            b.iter(|| {
                codec::binary::encode(black_box(&message), &mut aligned).unwrap();
                black_box(aligned.len());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
