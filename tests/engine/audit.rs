//! The audit log of an embedded engine: refusals reach the file, repeats
//! are counted, and what is pending when the engine is dropped (the last
//! interval's count) is written, not lost.

use std::sync::{Arc, Mutex};

use crate::common::{LOCAL, command, eventually, setup, submission};
use mcp_engine::config::{AuditConfig, AuditOutput};
use mcp_engine::engine::{EngineBuilder, Reply};

#[test]
fn refusals_are_written_and_the_last_intervals_count_is_flushed_at_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let s = setup(|config| {
        let mut audit = AuditConfig::to(AuditOutput::File(path.clone()));
        // Longer than the test: only the drop ends the interval.
        audit.collapse_secs = 3600;
        config.audit = Some(audit);
    });
    let engine = EngineBuilder::new(s.config.clone()).start().unwrap();
    let replies = Arc::new(Mutex::new(0u64));
    let sink = {
        let replies = Arc::clone(&replies);
        engine.register_sink(move |_: Reply<'_>| *replies.lock().unwrap() += 1)
    };
    // A token the engine's key did not sign: authentication_failed.
    let mut forged = s.sealer("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLW5vLWtleQ");
    for n in 0..5 {
        let body = command(&mut forged, &format!("f-{n}"), "sys.ping");
        engine.submit(submission(sink, n, body)).unwrap();
    }
    assert!(eventually(|| *replies.lock().unwrap() == 5));
    assert!(eventually(
        || std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() == 1)
    ));
    assert_eq!(engine.audit_stats().unwrap().collapsed, 4);
    engine.shutdown();
    drop(engine);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["code"], "authentication_failed");
    assert_eq!(lines[0]["message_id"], "f-0");
    assert_eq!(lines[0]["peer"], LOCAL.to_string());
    assert_eq!(lines[0]["principal"], serde_json::Value::Null);
    assert_eq!(lines[1]["count"], 4);
    assert_eq!(lines[1]["message_id"], "f-4");
}
