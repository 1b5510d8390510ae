//! Workers record latency samples while a reader takes a snapshot: the
//! reader sees a sample whole or not at all, never one twice, and a
//! sample recorded before a reply left (here: before the worker's thread
//! ends) is in every reading taken after the reply arrived.

use loom_tests::{Arc, thread};
use mcp_engine::engine::test_support::LatencyModel;

#[test]
fn a_reading_after_the_reply_holds_the_sample_recorded_before_it() {
    loom_tests::model(|| {
        let latencies = Arc::new(LatencyModel::new(2));
        let workers: Vec<_> = (0..2)
            .map(|index| {
                let latencies = Arc::clone(&latencies);
                thread::spawn(move || {
                    latencies.record(index, 1_000);
                    latencies.record(index, 2_000);
                })
            })
            .collect();
        // A reading in the middle sees some of the four, each once.
        let during = latencies.read();
        assert!(during <= 4, "{during} samples of 4");
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(latencies.read(), 4);
    });
}
