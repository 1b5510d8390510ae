//! Revocation: two revocations racing are both kept; a reader sees each one
//! either not yet or for good.

use loom_tests::Arc;
use loom_tests::thread;
use mcp_engine::security::{RevocationList, SharedRevocations};

#[test]
fn racing_revocations_are_all_kept() {
    loom_tests::model(|| {
        let shared = Arc::new(SharedRevocations::new(RevocationList::default()));
        let threads: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|jti| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || shared.revoke(jti))
            })
            .collect();
        let seen_a = shared.load().contains("a");
        for t in threads {
            t.join().unwrap();
        }
        let after = shared.load();
        assert!(after.contains("a") && after.contains("b"));
        // Once seen, a revocation never disappears.
        assert!(!seen_a || after.contains("a"));
    });
}
