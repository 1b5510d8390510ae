//! The hot paths allocate nothing per message once warm: decoding (both
//! codecs), the signed input (of a view or an owned message), and framing.
//! Counted with a global allocator that tallies this thread's allocations,
//! so the check does not depend on timing.

// A counting allocator must implement the unsafe `GlobalAlloc` trait; each
// block below only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mcp_engine::codec::{self, AlignedBytes, Canonicalizer, Codec, Decoder, Limits};
use mcp_engine::frame::{FrameDecoder, write_frame};
use mcp_engine::{Field, Message, MessageType, RawJson, SecurityLevel, Timestamp};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the only
// addition is a thread-local counter, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(mut f: impl FnMut()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const NOW: i128 = 1_795_435_200 * 1_000_000_000;

fn sample() -> Message {
    let mut m = Message::new(
        "c-1",
        MessageType::Command,
        SecurityLevel::High,
        RawJson::parse(r#"{"command":"demo.echo","args":{"text":"hi","list":[1,2.5,{"a":null}],"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9}}"#).unwrap(),
    );
    m.metadata = Field::Present(RawJson::parse(r#"{"correlation_id":"x-1","trace":"t"}"#).unwrap());
    m.security.auth_token = Field::Present("a.b.c".into());
    m.security.signature = Field::Present("k:sig".into());
    m.timestamp = Timestamp::from_unix_nanos(NOW);
    m
}

#[test]
fn decoding_json_allocates_nothing_once_warm() {
    let mut json = Vec::new();
    codec::json::encode(&sample(), &mut json);
    let mut work = json.clone();
    let mut decoder = Decoder::new(Limits::default());
    let mut canonicalizer = Canonicalizer::new();
    let mut signed = Vec::with_capacity(4096);
    let mut run = || {
        work.copy_from_slice(&json);
        let view = decoder.decode_json(&work, NOW).unwrap();
        signed.clear();
        canonicalizer.write_signing_input(&view, &mut signed);
        assert!(view.payload().get("args").is_some());
    };
    // Cold, the buffers grow to the message's size (and the counter counts).
    assert!(allocations_in(&mut run) > 0);
    assert_eq!(allocations_in(|| (0..100).for_each(|_| run())), 0);
}

#[test]
fn decoding_binary_allocates_nothing_once_warm() {
    let mut binary = AlignedBytes::new();
    codec::binary::encode(&sample(), &mut binary).unwrap();
    let mut decoder = Decoder::new(Limits::default());
    let mut run = || {
        let view = decoder.decode_binary(&binary, NOW).unwrap();
        assert_eq!(view.correlation_id(), Some("x-1"));
    };
    assert!(allocations_in(&mut run) > 0);
    assert_eq!(allocations_in(|| (0..100).for_each(|_| run())), 0);
}

#[test]
fn framing_allocates_nothing_once_warm() {
    let mut json = Vec::new();
    codec::json::encode(&sample(), &mut json);
    let mut stream = Vec::new();
    for _ in 0..10 {
        write_frame(&mut stream, Codec::Json, &json).unwrap();
    }
    let mut frames = FrameDecoder::new(1 << 20);
    let mut run = || {
        let mut n = 0;
        for piece in stream.chunks(100) {
            frames.push(piece);
            while let Some(frame) = frames.next_frame() {
                assert_eq!(frame.unwrap().body.len(), json.len());
                n += 1;
            }
        }
        assert_eq!(n, 10);
    };
    assert!(allocations_in(&mut run) > 0);
    assert_eq!(allocations_in(|| (0..20).for_each(|_| run())), 0);
}

#[test]
fn the_signed_input_of_an_owned_message_allocates_nothing_once_warm() {
    let message = sample();
    let mut canonicalizer = Canonicalizer::new();
    let mut signed = Vec::with_capacity(4096);
    let mut run = || {
        signed.clear();
        canonicalizer
            .write_message_signing_input(&message, &mut signed)
            .unwrap();
        assert!(!signed.is_empty());
    };
    assert!(allocations_in(&mut run) > 0);
    assert_eq!(allocations_in(|| (0..100).for_each(|_| run())), 0);
}
