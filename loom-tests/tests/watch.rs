//! A handler finishing on its worker races the timer taking it as overdue:
//! exactly one of them answers, and when the timer wins it answers the
//! message that overran, never the worker's next one.

use loom_tests::{Arc, thread};
use mcp_engine::engine::test_support::WatchModel;

#[test]
fn finish_and_take_overdue_answer_once() {
    loom_tests::model(|| {
        let watch = Arc::new(WatchModel::default());
        let ticket = watch.begin(1, "first", 10);
        let timer = {
            let watch = Arc::clone(&watch);
            thread::spawn(move || watch.take_overdue(11))
        };
        let worker_answers = watch.finish(ticket);
        // The worker moves on to its next message at once.
        let next = watch.begin(2, "second-message", 1000);
        let taken = timer.join().unwrap();
        match taken {
            Some((tag, id)) => {
                assert!(!worker_answers, "both answered");
                assert_eq!((tag, id.as_str()), (1, "first"));
            }
            None => assert!(worker_answers, "nobody answered"),
        }
        // The next message is not overdue and is the worker's to finish.
        assert!(watch.finish(next));
    });
}
