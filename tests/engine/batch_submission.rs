//! `Engine::submit_batch`: each message of a batch gets exactly one reply,
//! in order per key, counted as accepted or answered as refused, also when
//! the queue is tiny or the engine is shut down.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::common::{LOCAL, encode, message, setup};
use mcp_engine::codec::Codec;
use mcp_engine::config::Overflow;
use mcp_engine::engine::{Answer, Engine, EngineBuilder, Outcome, Reply, Submission};
use mcp_engine::{Code, MessageType, RawJson, SecurityLevel};

/// Replies as they came: (tag, outcome).
type Replies = Arc<Mutex<Vec<(u64, Outcome)>>>;

/// Holds `demo.echo` until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// An engine whose `demo.echo` answers null once `gate` is open.
fn engine(
    gate: &Arc<Gate>,
    edit: impl FnOnce(&mut mcp_engine::Config),
) -> (Engine, crate::common::Setup) {
    let s = setup(edit);
    let gate = Arc::clone(gate);
    let engine = EngineBuilder::new(s.config.clone())
        .command("demo.echo", move |_: &mcp_engine::engine::Request<'_>| {
            gate.pass();
            Ok(Answer::Result(RawJson::null()))
        })
        .start()
        .unwrap();
    (engine, s)
}

fn open_engine(edit: impl FnOnce(&mut mcp_engine::Config)) -> (Engine, crate::common::Setup) {
    let gate = Arc::new(Gate::default());
    gate.open();
    engine(&gate, edit)
}

/// `count` Standard commands, tagged 0.., with `key(tag)`.
fn batch(
    engine: &Engine,
    s: &crate::common::Setup,
    replies: &Replies,
    count: u64,
    key: impl Fn(u64) -> u64,
) -> Vec<Submission> {
    let sink = {
        let replies = Arc::clone(replies);
        engine.register_sink(move |reply: Reply<'_>| {
            replies.lock().unwrap().push((reply.tag, reply.outcome));
        })
    };
    let mut sealer = s.sealer(&s.admin);
    (0..count)
        .map(|tag| {
            let request = message(
                &mut sealer,
                &format!("b-{tag}"),
                MessageType::Command,
                SecurityLevel::Standard,
                r#"{"command":"demo.echo"}"#,
            );
            Submission {
                sink,
                tag,
                peer: LOCAL,
                key: key(tag),
                codec: Codec::Json,
                body: encode(&request, Codec::Json),
            }
        })
        .collect()
}

/// Waits (bounded) for `count` replies, then shuts the engine down and
/// returns every reply it gave: once shutdown returns, every message it
/// accepted has had its one outcome, so a reply beyond the count (there
/// must be none) is in the list, without waiting for it.
fn replies_of(engine: &Engine, replies: &Replies, count: usize) -> Vec<(u64, Outcome)> {
    for _ in 0..10_000 {
        if replies.lock().unwrap().len() >= count {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    engine.shutdown();
    replies.lock().unwrap().clone()
}

fn assert_every(replies: &[(u64, Outcome)], expected: Outcome) {
    assert!(
        replies.iter().all(|(_, outcome)| *outcome == expected),
        "{replies:?}"
    );
}

fn assert_once_each(replies: &[(u64, Outcome)], count: u64) {
    let mut tags: Vec<u64> = replies.iter().map(|(tag, _)| *tag).collect();
    tags.sort_unstable();
    assert_eq!(
        tags,
        (0..count).collect::<Vec<u64>>(),
        "one reply per message"
    );
}

#[test]
fn a_batch_over_many_keys_is_answered_once_each_and_one_keys_in_order() {
    let (engine, s) = open_engine(|_| {});
    let replies = Replies::default();
    // Runs of one key, then keys changing at every message.
    let submissions = batch(
        &engine,
        &s,
        &replies,
        120,
        |tag| {
            if tag < 60 { 7 } else { tag }
        },
    );
    assert_eq!(engine.submit_batch(submissions), 120);
    let replies = replies_of(&engine, &replies, 120);
    assert_once_each(&replies, 120);
    assert_every(&replies, Outcome::Response);
    // Key 7's messages went to one worker, which answered them in order.
    let key_seven: Vec<u64> = replies
        .iter()
        .map(|(tag, _)| *tag)
        .filter(|tag| *tag < 60)
        .collect();
    assert_eq!(key_seven, (0..60).collect::<Vec<u64>>());
    assert_eq!(engine.metrics().accepted, 120);
    engine.shutdown();
}

#[test]
fn a_batch_into_a_tiny_queue_is_accepted_or_refused_message_by_message() {
    // The worker holds its first message until the batch is in: whatever
    // the timing, at most three are accepted (one running, two queued).
    let gate = Arc::new(Gate::default());
    let (engine, s) = engine(&gate, |c| {
        c.engine.queue_capacity = 2;
        c.engine.overflow = Overflow::Refuse;
        c.engine.run_on_submitter = false;
    });
    let replies = Replies::default();
    let submissions = batch(&engine, &s, &replies, 500, |_| 1);
    let accepted = engine.submit_batch(submissions) as u64;
    gate.open();
    let replies = replies_of(&engine, &replies, 500);
    assert_once_each(&replies, 500);
    let refused = replies
        .iter()
        .filter(|(_, outcome)| *outcome == Outcome::Error(Code::ResourceExhausted))
        .count() as u64;
    let answered = replies
        .iter()
        .filter(|(_, outcome)| *outcome == Outcome::Response)
        .count() as u64;
    assert!((1..=3).contains(&accepted), "{accepted} accepted");
    assert_eq!((answered, refused), (accepted, 500 - accepted));
    let metrics = engine.metrics();
    assert_eq!(
        (metrics.accepted, metrics.refused_at_intake),
        (accepted, refused)
    );
    engine.shutdown();
}

#[test]
fn a_batch_after_shutdown_is_refused_whole_with_one_reply_each() {
    let (engine, s) = open_engine(|_| {});
    let replies = Replies::default();
    let submissions = batch(&engine, &s, &replies, 30, |tag| tag % 3);
    engine.shutdown();
    assert_eq!(engine.submit_batch(submissions), 0);
    let replies = replies_of(&engine, &replies, 30);
    assert_once_each(&replies, 30);
    assert_every(&replies, Outcome::Error(Code::Unavailable));
}

#[test]
fn a_refusal_at_the_intake_names_the_message_even_one_that_breaks_a_rule() {
    let (engine, _setup) = open_engine(|_| {});
    engine.shutdown();
    // Refused before any check runs, and named all the same: the id is
    // readable and valid (docs/protocol.md section 7).
    let body = br#"{"version":"2.0","id":"late-1","type":"Command"}"#.to_vec();
    let reply = engine.call(Codec::Json, body, LOCAL);
    assert_eq!(reply.outcome, Outcome::Error(Code::Unavailable));
    assert_eq!(reply.correlation_id.as_deref(), Some("late-1"));
    // Not JSON: nothing to name.
    let reply = engine.call(Codec::Json, b"{late".to_vec(), LOCAL);
    assert_eq!(reply.outcome, Outcome::Error(Code::Unavailable));
    assert_eq!(reply.correlation_id, None);
}
