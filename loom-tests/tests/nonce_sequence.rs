//! Nonces: two threads drawing from one sequence, with blocks small enough
//! to refill mid-model, never get the same nonce.

use std::collections::HashSet;

use loom_tests::thread;
use mcp_engine::security::{NonceSequence, NonceSource};

#[test]
fn two_threads_never_draw_the_same_nonce() {
    loom_tests::model(|| {
        let sequence = std::sync::Arc::new(NonceSequence::starting_at([1, 2, 3, 4], 100));
        let draw = |sequence: std::sync::Arc<NonceSequence>| {
            let mut source = NonceSource::with_block(sequence, 2);
            (0..3).map(|_| source.next_nonce()).collect::<Vec<_>>()
        };
        let other = {
            let sequence = std::sync::Arc::clone(&sequence);
            thread::spawn(move || draw(sequence))
        };
        let mut all: Vec<_> = draw(sequence);
        all.extend(other.join().unwrap());
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), 6);
    });
}
