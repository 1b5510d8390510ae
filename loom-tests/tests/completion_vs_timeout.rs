//! A deferred command's responder answering on one thread while its
//! deadline passes on the timer's: exactly one answer goes out, and the
//! worker's count of deferred commands returns to zero either way.

use loom_tests::thread;
use mcp_engine::RawJson;
use mcp_engine::engine::test_support::PendingModel;

#[test]
fn a_completion_racing_its_timeout_yields_one_answer() {
    loom_tests::model(|| {
        let (pending, responder) = PendingModel::new();
        let answering = thread::spawn(move || responder.complete(Ok(RawJson::null())));
        let timed_out = pending.time_out();
        let completed = answering.join().unwrap();
        assert!(
            completed ^ timed_out,
            "completed {completed}, timed out {timed_out}"
        );
        // The worker side: a completion is queued exactly when the
        // responder won.
        let completion = pending.take_completion();
        assert_eq!(completion.is_some(), completed);
        assert_eq!(pending.outstanding(), 0);
    });
}

#[test]
fn a_dropped_responder_racing_its_timeout_yields_one_answer() {
    loom_tests::model(|| {
        let (pending, responder) = PendingModel::new();
        let dropping = thread::spawn(move || drop(responder));
        let timed_out = pending.time_out();
        dropping.join().unwrap();
        let completion = pending.take_completion();
        assert!(completion.is_some() ^ timed_out);
        if let Some(result) = completion {
            assert_eq!(result.unwrap_err().code(), mcp_engine::Code::InternalError);
        }
        assert_eq!(pending.outstanding(), 0);
    });
}
