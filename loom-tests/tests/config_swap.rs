//! Hot config: a reader's snapshot stays whole and unchanged while reloads
//! swap the value (a message finishes under the config it started with),
//! a reader's cache serves whole values and the new one once the swap is
//! done, and racing reloads lose no change.

use loom_tests::{Arc, thread};
use mcp_engine::engine::test_support::SwapModel;

#[test]
fn a_snapshot_is_whole_and_stable_across_a_swap() {
    loom_tests::model(|| {
        let cell = Arc::new(SwapModel::new());
        let writer = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || cell.bump())
        };
        let (first, second) = cell.read_twice();
        assert_eq!(first, second, "a snapshot changed under its reader");
        assert_eq!(first.0, first.1, "torn value");
        writer.join().unwrap();
        assert_eq!(cell.get(), (1, 1));
    });
}

#[test]
fn a_cache_serves_whole_values_and_the_swap_once_done() {
    loom_tests::model(|| {
        let cell = Arc::new(SwapModel::new());
        let mut reader = cell.cached_reader();
        let writer = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || cell.bump())
        };
        let during = reader.load();
        assert_eq!(during.0, during.1, "torn value");
        writer.join().unwrap();
        let after = reader.load();
        assert_eq!(
            after,
            (1, 1),
            "the cache served a value replaced before the load"
        );
    });
}

#[test]
fn racing_reloads_are_both_applied() {
    loom_tests::model(|| {
        let cell = Arc::new(SwapModel::new());
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let cell = Arc::clone(&cell);
                thread::spawn(move || cell.bump())
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(cell.get(), (2, 2));
    });
}
