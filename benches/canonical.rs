//! Canonical JSON (RFC 8785) of a decoded envelope: the signed input of
//! docs/protocol.md section 5. Each iteration is one message.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_engine::Timestamp;
use mcp_engine::codec::{Canonicalizer, Decoder, Limits};
use std::hint::black_box;

mod support;

fn signing_input(c: &mut Criterion) {
    let now = Timestamp::now();
    let mut group = c.benchmark_group("jcs_signing_input");
    group.throughput(Throughput::Elements(1));
    for (label, message) in [
        ("400B", support::small(&now)),
        ("4KiB", support::large(&now)),
    ] {
        let json = support::json(&message);
        let mut decoder = Decoder::new(Limits::default());
        let view = decoder.decode_json(&json, now.unix_nanos()).unwrap();
        let mut canonicalizer = Canonicalizer::new();
        let mut out = Vec::with_capacity(8192);
        group.bench_function(BenchmarkId::new("view", label), |b| {
            b.iter(|| {
                out.clear();
                canonicalizer.write_signing_input(black_box(&view), &mut out);
                black_box(out.len());
            })
        });
        group.bench_function(BenchmarkId::new("owned_message", label), |b| {
            b.iter(|| {
                out.clear();
                canonicalizer
                    .write_message_signing_input(black_box(&message), &mut out)
                    .unwrap();
                black_box(out.len());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, signing_input);
criterion_main!(benches);
