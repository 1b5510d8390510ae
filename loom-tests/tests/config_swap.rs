//! Hot config: a reader's snapshot stays whole and unchanged while reloads
//! swap the value (a message finishes under the config it started with),
//! and racing reloads lose no change.

use loom_tests::{Arc, thread};
use mcp_engine::engine::models::SwapModel;

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
