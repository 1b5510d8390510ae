//! Soak: many connections against the real server for a while (`SOAK_SECS`,
//! default 60), mixed levels and codecs, random abrupt disconnects and
//! malformed frames. Every request on a connection that stays open is
//! answered exactly once, and the server's resident memory stays flat.
//!
//! Ignored by default; `.ci/run` runs it in release:
//! `SOAK_SECS=60 cargo test --release -p mcp-engine-cli --test soak -- --ignored`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::serve::{WAIT, serve_dev};
use mcp_engine::client::Envelopes;
use mcp_engine::codec::Codec;
use mcp_engine::{RawJson, SecurityLevel};

/// xorshift64*: enough randomness for a load mix, no dependency.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    abandoned: AtomicU64,
    malformed: AtomicU64,
    connections: AtomicU64,
}

#[test]
#[ignore = "long: .ci/run runs it in release"]
fn soak_many_connections_mixed_load_flat_memory() {
    let seconds: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let served = Arc::new(serve_dev());
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..16u64)
        .map(|n| {
            let (served, tally) = (Arc::clone(&served), Arc::clone(&tally));
            std::thread::spawn(move || {
                let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (n + 1));
                let mut envelopes = served.envelopes("admin");
                while Instant::now() < end {
                    one_connection(&served, &mut envelopes, &mut dice, &tally);
                }
            })
        })
        .collect();

    // RSS once a second; compare the second quarter with the last.
    let mut samples = Vec::new();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1));
        samples.push(served.rss_kib());
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let quarter = samples.len() / 4;
    let median = |part: &[u64]| {
        let mut part = part.to_vec();
        part.sort_unstable();
        part[part.len() / 2]
    };
    let early = median(&samples[quarter..2 * quarter.max(1)]);
    let late = median(&samples[samples.len() - quarter.max(1)..]);
    let sent = tally.sent.load(Ordering::Relaxed);
    let answered = tally.answered.load(Ordering::Relaxed);
    eprintln!(
        "soak {seconds}s: {} connections, {sent} requests, {answered} answered, {} abandoned with their connection, {} malformed frames; RSS {early} KiB -> {late} KiB",
        tally.connections.load(Ordering::Relaxed),
        tally.abandoned.load(Ordering::Relaxed),
        tally.malformed.load(Ordering::Relaxed),
    );
    assert!(sent > 0);
    assert_eq!(
        sent,
        answered + tally.abandoned.load(Ordering::Relaxed),
        "requests on open connections went unanswered"
    );
    assert!(
        late <= early + early / 4 + 16 * 1024,
        "RSS grew: {early} KiB -> {late} KiB ({samples:?})"
    );
}

/// One connection: a few batches of mixed requests, a malformed frame now
/// and then, and sometimes an abrupt close with requests in flight.
fn one_connection(
    served: &common::serve::Served,
    envelopes: &mut Envelopes,
    dice: &mut Dice,
    tally: &Tally,
) {
    let client = served.connect();
    tally.connections.fetch_add(1, Ordering::Relaxed);
    let levels = [
        SecurityLevel::Standard,
        SecurityLevel::High,
        SecurityLevel::Critical,
    ];
    for _ in 0..1 + dice.below(5) {
        let batch = 1 + dice.below(64);
        let mut waiters = Vec::new();
        for _ in 0..batch {
            let level = levels[dice.below(3) as usize];
            let codec = if dice.below(2) == 0 {
                Codec::Json
            } else {
                Codec::Binary
            };
            let request = match dice.below(10) {
                0 => {
                    let args = RawJson::parse(r#"{"ms":2}"#).unwrap();
                    envelopes.command(codec, level, "demo.sleep", Some(&args))
                }
                1 => envelopes.event(codec, level, "demo.notice", None, true),
                _ => {
                    let size = dice.below(2048) as usize;
                    let args = RawJson::string(&"s".repeat(size));
                    envelopes.command(codec, level, "demo.echo", Some(&args))
                }
            }
            .unwrap();
            waiters.push(client.request(&request).unwrap());
            tally.sent.fetch_add(1, Ordering::Relaxed);
        }
        if dice.below(10) == 0 {
            let mut frame = Vec::new();
            mcp_engine::frame::write_frame(&mut frame, Codec::Json, b"{\"half\":").unwrap();
            client.send_raw(&frame).unwrap();
            tally.malformed.fetch_add(1, Ordering::Relaxed);
            let error = client.next_unmatched(WAIT).expect("invalid_format");
            assert_eq!(error.correlation_id, None);
        }
        if dice.below(10) == 0 {
            // Hang up with everything in flight.
            tally
                .abandoned
                .fetch_add(waiters.len() as u64, Ordering::Relaxed);
            return;
        }
        for waiter in waiters {
            let reply = waiter.wait(WAIT).expect("a reply");
            let opened = envelopes.open(reply.codec, &reply.body).unwrap();
            assert!(!opened.is_error(), "{}", opened.to_json());
            tally.answered.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Exactly one reply each: nothing else came.
    assert!(client.next_unmatched(Duration::ZERO).is_none());
}
