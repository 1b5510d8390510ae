//! The server's reply handover (`src/server/outbox.rs`): engine threads
//! push reply frames into a connection's outbox and wake the I/O thread;
//! no reply waits without a wake-up on its way, and a reply racing the
//! connection's close is either taken or counted, never both, never
//! neither.

use loom_tests::{Arc, thread};
use mcp_engine::server::test_support::MailroomModel;

#[test]
fn replies_from_two_threads_always_reach_the_io_thread() {
    loom_tests::model(|| {
        let model = Arc::new(MailroomModel::new(4));
        let producers: Vec<_> = [1u8, 2]
            .into_iter()
            .map(|byte| {
                let model = Arc::clone(&model);
                thread::spawn(move || model.deliver(byte))
            })
            .collect();
        // The I/O thread: a pass per poll; poll returns once a wake-up it
        // has not seen arrives. A lost wake-up leaves this loop spinning,
        // which loom reports.
        let mut taken = Vec::new();
        let mut seen_wakes = 0;
        loop {
            taken.extend(model.collect());
            if taken.len() == 2 {
                break;
            }
            while model.wakes() == seen_wakes {
                thread::yield_now();
            }
            seen_wakes = model.wakes();
        }
        taken.sort_unstable();
        assert_eq!(taken, [1, 2]);
        for producer in producers {
            producer.join().unwrap();
        }
        // Nothing left behind.
        assert!(model.collect().is_empty());
    });
}

#[test]
fn a_reply_racing_the_close_is_taken_or_counted_once() {
    loom_tests::model(|| {
        let model = Arc::new(MailroomModel::new(2));
        let orphans = model.orphans();
        let producer = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.deliver(9))
        };
        let taken = model.close();
        producer.join().unwrap();
        drop(model);
        assert_eq!(taken.len() as u64 + orphans.get(), 1, "taken {taken:?}");
    });
}
