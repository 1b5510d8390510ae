//! A submitter running messages in a parked worker's seat (`engine/concurrency/seat.rs`)
//! while the worker wakes up for queued ones: every message runs exactly
//! once, one submitter's messages run in the order it sent them, and the
//! worker is never left asleep with work queued.

use loom_tests::atomic::{AtomicUsize, Ordering};
use loom_tests::{Arc, thread};
use mcp_engine::engine::test_support::{Parker, Ring, Seat};

/// The worker, the queue it takes from and its parker.
struct Setup {
    seat: Seat<Vec<u32>>,
    jobs: Ring<u32>,
    parker: Parker,
    /// Submitters not done yet (at 0 the worker may stop).
    submitters_left: AtomicUsize,
}

/// `Engine::submit`'s choice: run it in the seat if the worker let it go
/// and nothing is queued, else queue it and wake the worker.
fn submit(setup: &Setup, job: u32) {
    if let Some(mut ran) = setup.seat.take_if_idle(|| !setup.jobs.is_empty()) {
        ran.push(job);
        return;
    }
    setup.jobs.push(job).unwrap();
    setup.parker.wake();
}

/// A submitter is done; the last one wakes the worker to stop.
fn done(setup: &Setup) {
    if setup.submitters_left.fetch_sub(1, Ordering::AcqRel) == 1 {
        setup.parker.wake();
    }
}

/// `Worker::run`'s loop: hold the seat while working, let it go while
/// parked. Returns every job run, by whichever thread ran it.
fn work(setup: &Setup) -> Vec<u32> {
    let mut ran = setup.seat.take();
    loop {
        if let Some(job) = setup.jobs.pop() {
            ran.push(job);
            continue;
        }
        if setup.submitters_left.load(Ordering::Acquire) == 0 && setup.jobs.is_empty() {
            return ran.to_vec();
        }
        drop(ran);
        setup.parker.park_unless(|| {
            !setup.jobs.is_empty() || setup.submitters_left.load(Ordering::Acquire) == 0
        });
        // A push may be half done (claimed, not yet published).
        thread::yield_now();
        ran = setup.seat.take();
    }
}

/// The calling thread is the worker.
fn setup(submitters: usize) -> Arc<Setup> {
    Arc::new(Setup {
        seat: Seat::new(Vec::new()),
        jobs: Ring::new(4),
        parker: Parker::for_current_thread(),
        submitters_left: AtomicUsize::new(submitters),
    })
}

#[test]
fn one_submitters_messages_run_once_each_and_in_order() {
    loom_tests::model(|| {
        let setup = setup(1);
        let submitter = {
            let setup = Arc::clone(&setup);
            thread::spawn(move || {
                submit(&setup, 1);
                submit(&setup, 2);
                done(&setup);
            })
        };
        // Whether 1 ran in the seat or was queued, 2 never overtakes it.
        assert_eq!(work(&setup), [1, 2]);
        submitter.join().unwrap();
    });
}

#[test]
fn two_submitters_racing_for_the_seat_lose_no_message() {
    loom_tests::model(|| {
        let setup = setup(2);
        let submitters: Vec<_> = [1, 2]
            .into_iter()
            .map(|job| {
                let setup = Arc::clone(&setup);
                thread::spawn(move || {
                    submit(&setup, job);
                    done(&setup);
                })
            })
            .collect();
        let mut ran = work(&setup);
        for submitter in submitters {
            submitter.join().unwrap();
        }
        ran.sort_unstable();
        assert_eq!(ran, [1, 2]);
    });
}
