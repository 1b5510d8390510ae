//! A worker writes its history of recent ids while a reader (a state
//! query) reads it: the reader never sees an entry torn between two
//! writes, nor a later lap's entry in place of the one it asked for.

use loom_tests::{Arc, thread};
use mcp_engine::engine::test_support::HistoryModel;

/// Ids whose length and bytes differ from write to write, each paired
/// with its time: a torn read would pair them wrongly.
const ENTRIES: [(&str, i128); 3] = [("a", 1), ("bbbbbbbbbbbb", 2), ("cc", 3)];

#[test]
fn readers_see_whole_entries_while_the_worker_laps_the_ring() {
    loom_tests::model(|| {
        // Two slots, both written: the worker's next entry reuses the
        // oldest one's slot while the reader may be reading it.
        let history = Arc::new(HistoryModel::new(2));
        for (id, at) in &ENTRIES[..2] {
            history.push(id, *at);
        }
        let worker = {
            let history = Arc::clone(&history);
            thread::spawn(move || history.push(ENTRIES[2].0, ENTRIES[2].1))
        };
        let seen = history.recent(2);
        worker.join().unwrap();
        assert!(seen.len() <= 2);
        let mut last_at = i128::MAX;
        for (id, at) in &seen {
            assert!(
                ENTRIES.contains(&(id.as_str(), *at)),
                "torn entry {id:?} at {at}"
            );
            assert!(*at < last_at, "entries out of order: {seen:?}");
            last_at = *at;
        }
        // Once the worker is done, the two newest are there, whole.
        assert_eq!(
            history.recent(2),
            vec![("cc".to_owned(), 3), ("bbbbbbbbbbbb".to_owned(), 2)]
        );
    });
}
