//! The engine's queue: empty and full are reported, not blocked on; values
//! come out in order across wrap-around; two producers racing a consumer
//! lose nothing and repeat nothing; the sole consumer's peek sees only
//! whole, published values, and never one a producer is writing.

use loom_tests::{Arc, thread};
use mcp_engine::engine::test_support::Ring;

#[test]
fn empty_full_and_wrap_around_on_one_thread() {
    loom_tests::model(|| {
        let ring = Ring::new(2);
        assert_eq!(ring.pop(), None);
        ring.push(1).unwrap();
        ring.push(2).unwrap();
        assert_eq!(ring.push(3), Err(3));
        assert_eq!(ring.pop(), Some(1));
        // Wraps: position 2 reuses slot 0.
        ring.push(3).unwrap();
        assert_eq!(ring.pop(), Some(2));
        assert_eq!(ring.pop(), Some(3));
        assert_eq!(ring.pop(), None);
    });
}

#[test]
fn a_value_pushed_on_one_thread_is_popped_whole_on_another() {
    loom_tests::model(|| {
        let ring = Arc::new(Ring::new(2));
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                ring.push(vec![1u8, 2, 3]).unwrap();
                ring.push(vec![4u8]).unwrap();
            })
        };
        let mut got = Vec::new();
        while got.len() < 2 {
            match ring.pop() {
                Some(value) => got.push(value),
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, vec![vec![1, 2, 3], vec![4]]);
    });
}

#[test]
fn two_producers_race_a_consumer_for_the_last_slot_across_the_wrap() {
    loom_tests::model(|| {
        let ring = Arc::new(Ring::new(2));
        // Move the positions so that the race wraps around the slots.
        ring.push(0u32).unwrap();
        assert_eq!(ring.pop(), Some(0));
        // One slot holds a value: one free slot for two producers, and a
        // consumer freeing the other meanwhile.
        ring.push(1).unwrap();
        let producers: Vec<_> = [2u32, 3]
            .into_iter()
            .map(|value| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || ring.push(value).err())
            })
            .collect();
        let first = ring.pop();
        let refused: Vec<u32> = producers
            .into_iter()
            .filter_map(|p| p.join().unwrap())
            .collect();
        let mut rest = Vec::new();
        while let Some(value) = ring.pop() {
            rest.push(value);
        }
        // The value queued first comes out first.
        assert_eq!(first, Some(1));
        // Every value came out once or was handed back as refused.
        let mut all: Vec<u32> = rest.iter().chain(&refused).copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![2, 3]);
        // A refusal only when the ring was really full: at most one.
        assert!(refused.len() <= 1);
    });
}

#[test]
fn the_sole_consumer_peeks_whole_values_while_a_producer_refills_the_wrapped_slots() {
    loom_tests::model(|| {
        let ring = Arc::new(Ring::new(2));
        // Move the positions so that the producer's writes wrap around.
        ring.push(vec![0u8]).unwrap();
        assert_eq!(ring.pop(), Some(vec![0]));
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                for value in [1u8, 2, 3] {
                    let mut value = vec![value; usize::from(value)];
                    while let Err(back) = ring.push(value) {
                        value = back;
                        thread::yield_now();
                    }
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 3 {
            // SAFETY: this thread is the ring's only consumer.
            #[allow(unsafe_code)]
            let peeked = unsafe { ring.peek_with(Vec::clone) };
            match ring.pop() {
                Some(value) => {
                    // A peeked value is the one the next pop takes, whole
                    // (the producer pushes nothing into an occupied slot).
                    if let Some(peeked) = peeked {
                        assert_eq!(peeked, value);
                    }
                    got.push(value);
                }
                None => {
                    assert_eq!(peeked, None);
                    thread::yield_now();
                }
            }
        }
        producer.join().unwrap();
        assert_eq!(got, vec![vec![1], vec![2, 2], vec![3, 3, 3]]);
    });
}
