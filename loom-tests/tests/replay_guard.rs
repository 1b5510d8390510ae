//! The replay guard: one id submitted on two threads at once is accepted
//! exactly once; distinct ids are both accepted.

use loom_tests::Arc;
use loom_tests::thread;
use mcp_engine::Code;
use mcp_engine::security::test_support::ReplayGuard;

fn race(first: &'static str, second: &'static str) -> Vec<Result<(), Code>> {
    let guard = Arc::new(ReplayGuard::new(1024, 300, 0));
    let other = {
        let guard = Arc::clone(&guard);
        thread::spawn(move || guard.check("alice", second, 0, 0).map_err(|e| e.code()))
    };
    let mine = guard.check("alice", first, 0, 0).map_err(|e| e.code());
    vec![mine, other.join().unwrap()]
}

#[test]
fn one_id_on_two_threads_is_accepted_once() {
    loom_tests::model(|| {
        let outcomes = race("m-1", "m-1");
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
        assert!(outcomes.contains(&Err(Code::ReplayDetected)));
    });
}

#[test]
fn two_ids_on_two_threads_are_both_accepted() {
    loom_tests::model(|| {
        assert_eq!(race("m-1", "m-2"), vec![Ok(()), Ok(())]);
    });
}
