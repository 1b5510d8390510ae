//! Shutdown racing a submitter: a job is either refused at intake or taken
//! by the worker before it exits; none is left in the queue unanswered.

use loom_tests::{Arc, thread};
use mcp_engine::engine::test_support::IntakeModel;

#[test]
fn every_queued_job_is_taken_before_the_worker_exits() {
    loom_tests::model(|| {
        let intake = Arc::new(IntakeModel::new(4));
        let submitter = {
            let intake = Arc::clone(&intake);
            thread::spawn(move || intake.submit(1))
        };
        let stopper = {
            let intake = Arc::clone(&intake);
            thread::spawn(move || intake.shut_down())
        };
        // The worker's loop on this thread.
        let mut taken = Vec::new();
        loop {
            match intake.worker_turn() {
                Some(Some(job)) => taken.push(job),
                Some(None) => thread::yield_now(),
                None => break,
            }
        }
        let queued = submitter.join().unwrap();
        stopper.join().unwrap();
        let queued: Vec<u64> = if queued { vec![1] } else { vec![] };
        assert_eq!(taken, queued, "a queued job was left behind");
    });
}

/// Two submitters racing the close: the closer, parked while either is
/// inside, is woken by whichever leaves last (also one that entered only
/// to find intake closed), so shutdown never waits for ever.
#[test]
fn the_closer_is_woken_by_the_last_submitter_out() {
    loom_tests::model(|| {
        let intake = Arc::new(IntakeModel::new(4));
        let submitters: Vec<_> = [1, 2]
            .map(|n| {
                let intake = Arc::clone(&intake);
                thread::spawn(move || intake.submit(n))
            })
            .into_iter()
            .collect();
        intake.close_only();
        let at_close = intake.queued();
        let queued = submitters
            .into_iter()
            .map(|submitter| submitter.join().unwrap())
            .filter(|&queued| queued)
            .count();
        assert_eq!(intake.queued(), at_close, "a job queued after the close");
        assert_eq!(at_close, queued, "a submitter told queued was not");
    });
}
