//! `engine.run_on_submitter`: a submitter that finds its worker parked runs
//! the message on its own thread. Each message still gets exactly one
//! reply, also when a sink panics there or shutdown comes while a handler
//! blocks the submitter; and the switch turns it off.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::common::{LOCAL, Setup, command, eventually, setup, submission, submit_pings};
use mcp_engine::codec::Codec;
use mcp_engine::engine::{Answer, Engine, EngineBuilder, IdleStrategy, Outcome, Reply, Request};
use mcp_engine::security::Sealer;
use mcp_engine::{Code, RawJson};

/// Workers that park as soon as their queue is empty.
const PARK_AT_ONCE: IdleStrategy = IdleStrategy {
    spins: 0,
    yields: 0,
};

/// A setup with one worker (so every message meets the same seat), then
/// `edit`. Deadlines are a minute away, not the dev config's 200 ms from
/// acceptance: a backlog of thousands of messages on one debug-built
/// worker, or a slow moment on a loaded machine, must not turn a reply
/// these tests count into a `timeout`.
fn one_worker(edit: impl FnOnce(&mut mcp_engine::Config)) -> Setup {
    setup(|c| {
        c.engine.workers = 1;
        c.timeout_ms = 60_000;
        edit(c);
    })
}

/// An engine builder whose workers park as soon as they are idle.
fn parking(s: &Setup) -> EngineBuilder {
    EngineBuilder::new(s.config.clone()).idle_strategy(PARK_AT_ONCE)
}

/// Calls `sys.ping` until a call ran on this thread (a worker that just
/// answered parks within microseconds; the loop only waits for that).
fn until_one_runs_here(engine: &Engine, sealer: &mut Sealer, tag: &str) {
    for n in 0..2000 {
        let before = engine.metrics().run_on_submitter;
        let reply = engine.call(
            Codec::Json,
            command(sealer, &format!("{tag}-{n}"), "sys.ping"),
            LOCAL,
        );
        assert_eq!(reply.outcome, Outcome::Response);
        if engine.metrics().run_on_submitter > before {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no call ran on the submitting thread");
}

#[test]
fn a_parked_workers_messages_run_on_the_submitter_and_are_answered_once() {
    let s = one_worker(|_| {});
    let engine = parking(&s).start().unwrap();
    let mut admin = s.sealer(&s.admin);
    until_one_runs_here(&engine, &mut admin, "warm");
    let replies = Arc::new(AtomicU32::new(0));
    let sink = {
        let replies = Arc::clone(&replies);
        engine.register_sink(move |reply: Reply<'_>| {
            assert_eq!(reply.outcome, Outcome::Response);
            replies.fetch_add(1, Ordering::SeqCst);
        })
    };
    let before = engine.metrics();
    submit_pings(&engine, &mut admin, sink, 1000);
    eventually(|| replies.load(Ordering::SeqCst) >= 1000);
    engine.shutdown();
    assert_eq!(replies.load(Ordering::SeqCst), 1000);
    let after = engine.metrics();
    assert_eq!(after.accepted - before.accepted, 1000);
    assert_eq!(after.responses - before.responses, 1000);
    assert!(after.submitter_busy_ns > 0);
}

#[test]
fn with_the_switch_off_every_message_runs_on_a_worker() {
    let s = one_worker(|c| {
        c.engine.run_on_submitter = false;
    });
    let engine = parking(&s).start().unwrap();
    let mut admin = s.sealer(&s.admin);
    for n in 0..200 {
        let body = command(&mut admin, &format!("p-{n}"), "sys.ping");
        let reply = engine.call(Codec::Json, body, LOCAL);
        assert_eq!(reply.outcome, Outcome::Response);
        std::thread::sleep(Duration::from_micros(200));
    }
    let metrics = engine.metrics();
    assert_eq!(metrics.run_on_submitter, 0);
    assert_eq!(metrics.submitter_busy_ns, 0);
    assert_eq!(metrics.responses, 200);
}

#[test]
fn a_sink_panicking_on_the_submitter_is_contained_and_the_worker_renewed() {
    let s = one_worker(|_| {});
    let engine = parking(&s).start().unwrap();
    let mut admin = s.sealer(&s.admin);
    for attempt in 0..200 {
        until_one_runs_here(&engine, &mut admin, &format!("warm-{attempt}"));
        let delivered = Arc::new(AtomicU32::new(0));
        let sink = {
            let delivered = Arc::clone(&delivered);
            engine.register_sink(move |_: Reply<'_>| {
                delivered.fetch_add(1, Ordering::SeqCst);
                panic!("sink bug");
            })
        };
        let before = engine.metrics();
        // The panic does not reach the caller of `submit`.
        let body = command(&mut admin, &format!("p-{attempt}"), "sys.ping");
        let accepted = engine.submit(submission(sink, 0, body));
        assert_eq!(accepted, Ok(()));
        let after = engine.metrics();
        if after.run_on_submitter == before.run_on_submitter {
            // It went to the worker (which had not parked yet): wait for
            // that restart, and try again.
            eventually(|| engine.metrics().worker_restarts > before.worker_restarts);
            continue;
        }
        // Ran here: the sink was called once (the reply was concluded
        // before it panicked, so it is not answered again), the worker
        // state was renewed, and the engine goes on.
        assert_eq!(delivered.load(Ordering::SeqCst), 1);
        assert_eq!(after.worker_restarts, before.worker_restarts + 1);
        assert_eq!(after.handler_panics, before.handler_panics + 1);
        let reply = engine.call(Codec::Json, command(&mut admin, "after", "sys.ping"), LOCAL);
        assert_eq!(reply.outcome, Outcome::Response);
        return;
    }
    panic!("no submission ran on the submitting thread");
}

#[test]
fn shutdown_answers_a_message_blocking_its_submitter_once() {
    let s = one_worker(|c| {
        c.engine.drain_ms = 0;
    });
    // The handler reports the thread it runs on, then waits for a release.
    let (started_tx, started_rx) = mpsc::channel::<String>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let engine = parking(&s)
        .command("demo.block", move |_: &Request<'_>| {
            let here = std::thread::current().name().unwrap_or("").to_owned();
            started_tx.send(here).unwrap();
            release_rx.lock().unwrap().recv().unwrap();
            Ok(Answer::Result(RawJson::null()))
        })
        .start()
        .unwrap();
    let engine = Arc::new(engine);
    let replies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let replies = Arc::clone(&replies);
        engine.register_sink(move |reply: Reply<'_>| {
            replies.lock().unwrap().push((reply.tag, reply.outcome));
        })
    };
    let mut admin = s.sealer(&s.admin);
    for attempt in 0..200u64 {
        until_one_runs_here(&engine, &mut admin, &format!("warm-{attempt}"));
        let body = command(&mut admin, &format!("b-{attempt}"), "demo.block");
        let submitter = {
            let engine = Arc::clone(&engine);
            std::thread::Builder::new()
                .name("test-submitter".into())
                .spawn(move || engine.submit(submission(sink, attempt, body)))
                .unwrap()
        };
        let ran_on = started_rx.recv().unwrap();
        if ran_on != "test-submitter" {
            // A worker took it: let it finish and try again.
            release_tx.send(()).unwrap();
            assert_eq!(submitter.join().unwrap(), Ok(()));
            continue;
        }
        // The handler blocks the submitting thread; shutdown answers its
        // message `unavailable` and returns.
        engine.shutdown();
        let answered: Vec<_> = replies
            .lock()
            .unwrap()
            .iter()
            .filter(|(tag, _)| *tag == attempt)
            .map(|(_, outcome)| *outcome)
            .collect();
        assert_eq!(answered, [Outcome::Error(Code::Unavailable)]);
        // Released, the handler's answer comes too late and is dropped.
        release_tx.send(()).unwrap();
        assert_eq!(submitter.join().unwrap(), Ok(()));
        let late = replies
            .lock()
            .unwrap()
            .iter()
            .filter(|(tag, _)| *tag == attempt)
            .count();
        assert_eq!(late, 1);
        assert_eq!(engine.metrics().late_answers, 1);
        return;
    }
    panic!("no submission ran on the submitting thread");
}

#[test]
fn back_to_back_submissions_go_to_the_worker_not_all_to_the_submitter() {
    // Messages closer together than a short park keep a worker busy: the
    // submitter hands them over rather than becoming the engine's only
    // thread at full load.
    let s = one_worker(|c| {
        c.engine.queue_capacity = 1 << 14;
    });
    let engine = parking(&s).start().unwrap();
    let replies = Arc::new(AtomicU32::new(0));
    let sink = {
        let replies = Arc::clone(&replies);
        engine.register_sink(move |_: Reply<'_>| {
            replies.fetch_add(1, Ordering::SeqCst);
        })
    };
    let mut admin = s.sealer(&s.admin);
    let bodies: Vec<Vec<u8>> = (0..10_000)
        .map(|n| command(&mut admin, &format!("p-{n}"), "sys.ping"))
        .collect();
    for (n, body) in bodies.into_iter().enumerate() {
        engine.submit(submission(sink, n as u64, body)).unwrap();
    }
    engine.shutdown();
    let metrics = engine.metrics();
    assert_eq!(replies.load(Ordering::SeqCst), 10_000);
    assert_eq!(metrics.responses, 10_000);
    assert!(
        metrics.run_on_submitter < 10_000,
        "{}",
        metrics.run_on_submitter
    );
}
