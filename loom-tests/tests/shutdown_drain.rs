//! Shutdown racing a submitter: a job is either refused at intake or taken
//! by the worker before it exits; none is left in the queue unanswered.

use loom_tests::{Arc, thread};
use mcp_engine::engine::models::IntakeModel;

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
