//! The staged topology at shutdown: a front-stage worker hands its last
//! job to the back stage while the engine stops. The back-stage worker
//! takes the job before it exits, whatever the interleaving: it exits only
//! once the front has, and the front has pushed before it exits.

use loom_tests::{Arc, thread};
use mcp_engine::engine::test_support::StagedModel;

#[test]
fn the_back_stage_takes_what_the_front_hands_over_before_exiting() {
    loom_tests::model(|| {
        let model = Arc::new(StagedModel::with_job(9));
        let front = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.front_runs_and_exits())
        };
        let stopper = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.stop())
        };
        let mut taken = Vec::new();
        loop {
            match model.back_turn() {
                Some(Some(job)) => taken.push(job),
                Some(None) => thread::yield_now(),
                None => break,
            }
        }
        front.join().unwrap();
        stopper.join().unwrap();
        assert_eq!(taken, vec![9], "the back stage exited without the job");
    });
}
