//! The replay guard under concurrent load: the memory bound holds under a
//! flood of unique ids, nothing is forgotten while live, and a duplicate
//! racing on two threads is accepted once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_engine::Code;
use mcp_engine::security::ReplayGuard;

const NOW: i128 = 1_795_435_200 * 1_000_000_000;

#[test]
fn the_bound_holds_under_a_flood_of_unique_ids() {
    let guard = Arc::new(ReplayGuard::new(4096, 300, NOW));
    let accepted = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (guard, accepted, exhausted) = (
                Arc::clone(&guard),
                Arc::clone(&accepted),
                Arc::clone(&exhausted),
            );
            std::thread::spawn(move || {
                for n in 0..20_000 {
                    match guard.check("flood", &format!("t{t}-{n}"), NOW, NOW) {
                        Ok(()) => accepted.fetch_add(1, Ordering::Relaxed),
                        Err(e) if e.code() == Code::ResourceExhausted => {
                            exhausted.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => panic!("unexpected {:?}", e.code()),
                    };
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let accepted = accepted.load(Ordering::Relaxed);
    assert_eq!(accepted + exhausted.load(Ordering::Relaxed), 80_000);
    assert!(guard.len() <= guard.capacity());
    assert_eq!(accepted, guard.len());
    assert!(
        accepted >= guard.capacity() * 9 / 10,
        "{accepted} of {}",
        guard.capacity()
    );
    // Nothing accepted was forgotten: each is a replay now.
    let mut replays = 0;
    for t in 0..4 {
        for n in 0..20_000 {
            if guard
                .check("flood", &format!("t{t}-{n}"), NOW, NOW + 1)
                .is_err()
            {
                replays += 1;
            }
        }
    }
    assert_eq!(
        replays, 80_000,
        "accepted ids are refused, the rest find no room"
    );
}

#[test]
fn a_duplicate_racing_on_two_threads_is_accepted_once() {
    for round in 0..200 {
        let guard = Arc::new(ReplayGuard::new(1024, 300, NOW));
        let id = format!("race-{round}");
        let outcomes: Vec<_> = (0..2)
            .map(|_| {
                let (guard, id) = (Arc::clone(&guard), id.clone());
                std::thread::spawn(move || guard.check("alice", &id, NOW, NOW).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(
            outcomes.iter().filter(|&&ok| ok).count(),
            1,
            "round {round}"
        );
    }
}
