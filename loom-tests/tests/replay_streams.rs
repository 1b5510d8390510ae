//! Replay streams (docs/protocol.md section 7a) under concurrency: one
//! number arriving twice on two workers is admitted once; a live stream is
//! never forgotten to make room, so a replay that still passes the
//! timestamp check meets its stream and is refused.

use loom_tests::{Arc, thread};
use mcp_engine::Code;
use mcp_engine::engine::test_support::StreamsModel;

const WINDOW_SECS: u64 = 300;

#[test]
fn one_number_on_two_workers_is_admitted_once() {
    loom_tests::model(|| {
        let streams = Arc::new(StreamsModel::new(16, WINDOW_SECS));
        let other = {
            let streams = Arc::clone(&streams);
            thread::spawn(move || streams.admit("alice", "s", 5, 0, 0))
        };
        let mine = streams.admit("alice", "s", 5, 0, 0);
        let outcomes = [mine, other.join().unwrap()];
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
        assert!(outcomes.contains(&Err(Code::ReplayDetected)));
        // Numbers of one stream on two workers are both admitted.
        let other = {
            let streams = Arc::clone(&streams);
            thread::spawn(move || streams.admit("alice", "s", 7, 1, 1))
        };
        assert_eq!(streams.admit("alice", "s", 6, 1, 1), Ok(()));
        assert_eq!(other.join().unwrap(), Ok(()));
    });
}

#[test]
fn a_live_stream_is_never_forgotten_so_its_replays_stay_refused() {
    loom_tests::model(|| {
        // Room for one stream, taken by "s" at 0.
        let streams = Arc::new(StreamsModel::new(1, WINDOW_SECS));
        assert_eq!(streams.admit("alice", "s", 5, 0, 0), Ok(()));
        // At the window's end its message still passes the timestamp
        // check: a new stream racing a replay must not push it out.
        let newcomer = {
            let streams = Arc::clone(&streams);
            thread::spawn(move || streams.admit("bob", "t", 1, WINDOW_SECS, WINDOW_SECS))
        };
        let replay = streams.admit("alice", "s", 5, 0, WINDOW_SECS);
        assert_eq!(newcomer.join().unwrap(), Err(Code::ResourceExhausted));
        assert_eq!(replay, Err(Code::ReplayDetected));
        // Once every message of "s" is past its window (plus the rounding),
        // "s" may go: its replay fails validation, the newcomer gets room.
        let late = WINDOW_SECS + 3;
        let newcomer = {
            let streams = Arc::clone(&streams);
            thread::spawn(move || streams.admit("bob", "t", 1, late, late))
        };
        let replay = streams.admit("alice", "s", 5, 0, late);
        assert_eq!(newcomer.join().unwrap(), Ok(()));
        assert_eq!(replay, Err(Code::ValidationFailed));
    });
}
