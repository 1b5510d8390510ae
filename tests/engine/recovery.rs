//! Recovery: retries with backoff, the circuit breaker, the error history
//! and its hooks, the state and message history, and a worker restarted
//! after a panic escaped its loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::common::{LOCAL, command, eventually, setup, submit_pings};
use mcp_engine::codec::Codec;
use mcp_engine::engine::{
    Answer, BreakerPolicy, CommandSpec, EngineBuilder, ManualClock, Outcome, Reply, Request,
    RetryPolicy, Status,
};
use mcp_engine::{Code, Error, RawJson};

#[test]
fn retryable_failures_are_retried_until_they_pass() {
    let s = setup(|c| c.timeout_ms = 10_000);
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_micros(100),
        max_delay: Duration::from_millis(1),
    };
    let engine = EngineBuilder::new(s.config.clone())
        .command_with(
            CommandSpec::new("demo.flaky").retry(retry),
            move |_: &Request<'_>| {
                // Fails twice with a retryable error, then answers.
                if counted.fetch_add(1, Ordering::SeqCst) % 3 < 2 {
                    return Err(Error::new(Code::Unavailable, "not yet"));
                }
                Ok(Answer::Result(RawJson::null()))
            },
        )
        .command_with(
            CommandSpec::new("demo.refuses").retry(retry),
            |_: &Request<'_>| Err(Error::new(Code::ValidationFailed, "never retried")),
        )
        .start()
        .unwrap();
    let mut admin = s.sealer(&s.admin);
    let reply = engine.call(Codec::Json, command(&mut admin, "t-1", "demo.flaky"), LOCAL);
    assert_eq!(reply.outcome, Outcome::Response);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // A refusal is not retried.
    let reply = engine.call(
        Codec::Json,
        command(&mut admin, "t-2", "demo.refuses"),
        LOCAL,
    );
    assert_eq!(reply.outcome, Outcome::Error(Code::ValidationFailed));
}

#[test]
fn the_breaker_opens_fails_fast_and_probes() {
    let s = setup(|c| c.timeout_ms = 10_000);
    let healthy = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicU32::new(0));
    let (h, c) = (Arc::clone(&healthy), Arc::clone(&calls));
    let breaker = BreakerPolicy {
        failure_threshold: 3,
        open_for: Duration::from_millis(100),
    };
    // The engine's time moves only when the test moves it: the open
    // period is over when the test says so, not after a sleep.
    let clock = ManualClock::new();
    let engine = EngineBuilder::new(s.config.clone())
        .clock(clock.clone())
        .command_with(
            CommandSpec::new("demo.down").breaker(breaker),
            move |_: &Request<'_>| {
                c.fetch_add(1, Ordering::SeqCst);
                if h.load(Ordering::SeqCst) == 0 {
                    Err(Error::new(Code::NetworkError, "backend down"))
                } else {
                    Ok(Answer::Result(RawJson::null()))
                }
            },
        )
        .start()
        .unwrap();
    let mut admin = s.sealer(&s.admin);
    let mut n = 0;
    let mut call = |engine: &mcp_engine::engine::Engine| {
        n += 1;
        engine
            .call(
                Codec::Json,
                command(&mut admin, &format!("k-{n}"), "demo.down"),
                LOCAL,
            )
            .outcome
    };
    for _ in 0..3 {
        assert_eq!(call(&engine), Outcome::Error(Code::NetworkError));
    }
    // Open: answered `unavailable` without calling the handler.
    assert_eq!(call(&engine), Outcome::Error(Code::Unavailable));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Just before the open period ends, still open.
    clock.advance(Duration::from_millis(99));
    assert_eq!(call(&engine), Outcome::Error(Code::Unavailable));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // After the open period one probe goes through; it succeeds and closes.
    clock.advance(Duration::from_millis(1));
    healthy.store(1, Ordering::SeqCst);
    assert_eq!(call(&engine), Outcome::Response);
    assert_eq!(call(&engine), Outcome::Response);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[test]
fn errors_are_kept_and_hooks_run_per_code() {
    let s = setup(|c| c.engine.max_error_history = 4);
    let denied = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&denied);
    let engine = EngineBuilder::new(s.config.clone())
        .on_error(Code::HandlerNotFound, move |record| {
            assert_eq!(record.error.code(), Code::HandlerNotFound);
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .on_error(Code::HandlerNotFound, |_| {
            panic!("a broken hook is contained")
        })
        .start()
        .unwrap();
    let mut admin = s.sealer(&s.admin);
    for n in 0..10 {
        let reply = engine.call(
            Codec::Json,
            command(&mut admin, &format!("h-{n}"), "no.such"),
            LOCAL,
        );
        assert_eq!(reply.outcome, Outcome::Error(Code::HandlerNotFound));
    }
    assert_eq!(denied.load(Ordering::SeqCst), 10);
    let history = engine.recent_errors();
    // Bounded: 4 over all threads (rounded up per shard), newest kept.
    assert!(
        !history.is_empty() && history.len() <= 4,
        "{}",
        history.len()
    );
    let last = history.last().unwrap();
    assert_eq!(last.error.code(), Code::HandlerNotFound);
    assert_eq!(last.correlation_id.as_deref(), Some("h-9"));
}

#[test]
fn state_and_recent_messages() {
    let s = setup(|_| {});
    let engine = EngineBuilder::new(s.config.clone()).start().unwrap();
    assert_eq!(engine.state().status, Status::Running);
    assert_eq!(engine.state().last_message_id, None);
    let mut admin = s.sealer(&s.admin);
    for (id, name) in [("s-1", "sys.ping"), ("s-2", "no.such"), ("s-3", "sys.ping")] {
        engine.call(Codec::Json, command(&mut admin, id, name), LOCAL);
    }
    let state = engine.state();
    assert_eq!(state.message_count, 3);
    assert_eq!(state.pending_commands, 0);
    assert!(state.last_activity > 0);
    let recent = engine.recent_messages(10);
    let mut seen: Vec<(String, Outcome)> = recent.into_iter().map(|m| (m.id, m.outcome)).collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("s-1".to_owned(), Outcome::Response),
            ("s-2".to_owned(), Outcome::Error(Code::HandlerNotFound)),
            ("s-3".to_owned(), Outcome::Response),
        ]
    );
    engine.shutdown();
    assert_eq!(engine.state().status, Status::Stopped);
}

#[test]
fn a_worker_whose_loop_panics_is_restarted_and_goes_on() {
    std::panic::set_hook(Box::new(|_| {}));
    let s = setup(|c| c.engine.workers = 1);
    let engine = EngineBuilder::new(s.config.clone()).start().unwrap();
    // A sink that panics on its first reply: the panic escapes the worker's
    // loop (it is not a handler's).
    let delivered = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&delivered);
    let sink = engine.register_sink(move |_: Reply<'_>| {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("sink bug");
        }
    });
    let mut admin = s.sealer(&s.admin);
    submit_pings(&engine, &mut admin, sink, 3);
    eventually(|| delivered.load(Ordering::SeqCst) >= 3);
    assert_eq!(delivered.load(Ordering::SeqCst), 3);
    assert_eq!(engine.metrics().worker_restarts, 1);
    // And it still answers.
    let reply = engine.call(Codec::Json, command(&mut admin, "p-9", "sys.ping"), LOCAL);
    assert_eq!(reply.outcome, Outcome::Response);
}
