//! Frame decoding: a stream of back-to-back frames, fed whole and in
//! TCP-segment-sized pieces. Each element is one frame.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_engine::Timestamp;
use mcp_engine::codec::Codec;
use mcp_engine::frame::{FrameDecoder, write_frame};
use std::hint::black_box;

mod support;

const FRAMES: usize = 1000;

fn decode_stream(c: &mut Criterion) {
    let now = Timestamp::now();
    let body = support::json(&support::small(&now));
    let mut stream = Vec::new();
    for _ in 0..FRAMES {
        write_frame(&mut stream, Codec::Json, &body).unwrap();
    }
    let mut group = c.benchmark_group("frame_decode");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for chunk in [stream.len(), 1460, 64] {
        let label = if chunk == stream.len() {
            "whole".to_owned()
        } else {
            format!("{chunk}B_chunks")
        };
        let mut decoder = FrameDecoder::new(1 << 20);
        group.bench_function(
            BenchmarkId::new(format!("{} B frames", body.len() + 5), label),
            |b| {
                b.iter(|| {
                    let mut frames = 0;
                    for piece in stream.chunks(chunk) {
                        decoder.push(piece);
                        while let Some(frame) = decoder.next_frame() {
                            black_box(frame.unwrap().body.len());
                            frames += 1;
                        }
                    }
                    assert_eq!(frames, FRAMES);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decode_stream);
criterion_main!(benches);
