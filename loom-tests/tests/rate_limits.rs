//! Rate limits: two workers taking one principal's last token at once,
//! each through its own cache (the first making the principal's bucket):
//! exactly one is allowed, and the other is counted refused.

use loom_tests::Arc;
use loom_tests::thread;
use mcp_engine::security::test_support::RateLimitModel;

const NOW: i128 = 1_000_000_000_000;

#[test]
fn one_token_goes_to_one_of_two_workers() {
    loom_tests::model(|| {
        // One message a second, one at once.
        let model = Arc::new(RateLimitModel::new(1, 1));
        let other = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.take("alice", NOW))
        };
        let here = model.take("alice", NOW);
        let there = other.join().unwrap();
        assert!(here ^ there, "allowed here {here}, there {there}");
        assert_eq!(model.refused(), 1);
        // Another principal has its own bucket.
        assert!(model.take("bob", NOW));
    });
}

#[test]
fn a_burst_of_two_serves_both_workers_and_no_third() {
    loom_tests::model(|| {
        let model = Arc::new(RateLimitModel::new(1, 2));
        let other = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.take("alice", NOW))
        };
        let here = model.take("alice", NOW);
        assert!(other.join().unwrap() && here);
        assert!(!model.take("alice", NOW));
        assert_eq!(model.refused(), 1);
    });
}
