//! The park/wake-up handshake: a worker that finds its queue empty and
//! parks is always woken by a producer that pushes meanwhile; no wake-up
//! is lost, whatever the interleaving.

use loom_tests::{Arc, thread};
use mcp_engine::engine::test_support::{Parker, Ring};

/// Runs `produce` on a producer thread against a ring of two and a worker
/// that takes `count` values, parking whenever the ring is empty; returns
/// what the worker took. If a wake-up were lost, loom would report the
/// worker parked forever (deadlock).
fn taken_by_worker(count: usize, produce: fn(&Ring<u32>, &Parker)) -> Vec<u32> {
    let ring = Arc::new(Ring::new(2));
    let parker = Arc::new(Parker::for_current_thread());
    let producer = {
        let (ring, parker) = (Arc::clone(&ring), Arc::clone(&parker));
        thread::spawn(move || produce(&ring, &parker))
    };
    let mut taken = Vec::new();
    while taken.len() < count {
        if let Some(value) = ring.pop() {
            taken.push(value);
            continue;
        }
        parker.park_unless(|| !ring.is_empty());
        // The push may be half done (claimed, not yet published): give
        // the producer the core, as the worker's idle loop does.
        thread::yield_now();
    }
    producer.join().unwrap();
    taken
}

#[test]
fn a_push_racing_the_park_always_wakes_the_worker() {
    loom_tests::model(|| {
        let taken = taken_by_worker(1, |ring, parker| {
            ring.push(7).unwrap();
            parker.wake();
        });
        assert_eq!(taken, [7]);
    });
}

/// A batch's protocol (`engine/intake.rs`): the producer wakes the worker
/// after its first push only, then once more after its last; when the
/// queue is full it wakes the worker before waiting for room. Every value
/// is taken, none twice, and the worker is never left parked with values
/// queued.
#[test]
fn a_batch_woken_at_its_first_and_last_push_is_taken_whole() {
    loom_tests::model(|| {
        let taken = taken_by_worker(3, |ring, parker| {
            let mut unwoken = false;
            for (pushed, value) in (1u32..=3).enumerate() {
                let mut value = value;
                loop {
                    match ring.push(value) {
                        Ok(()) => break,
                        Err(back) => value = back,
                    }
                    // Full (three values, room for two): wake first.
                    if unwoken {
                        parker.wake();
                        unwoken = false;
                    }
                    thread::yield_now();
                }
                if pushed == 0 {
                    parker.wake();
                } else {
                    unwoken = true;
                }
            }
            if unwoken {
                parker.wake();
            }
        });
        assert_eq!(taken, [1, 2, 3]);
    });
}
