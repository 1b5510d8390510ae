//! Load shedding: with a worker's queue past its high-water mark, new work
//! of the lowest levels is answered `resource_exhausted` first, `Critical`
//! never; every message still gets exactly one outcome, and the shed ones
//! are counted by level.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::common::{LOCAL, encode, eventually, message, setup};
use mcp_engine::codec::Codec;
use mcp_engine::engine::{Answer, EngineBuilder, Outcome, Reply, Submission};
use mcp_engine::{Code, MessageType, RawJson, SecurityLevel};

const LEVELS: [SecurityLevel; 4] = [
    SecurityLevel::Low,
    SecurityLevel::Standard,
    SecurityLevel::High,
    SecurityLevel::Critical,
];

/// The outcome of each tag, and the engine's count of shed messages by
/// level.
type Shedding = (Vec<(u64, Outcome)>, Vec<(SecurityLevel, u64)>);

/// One worker with a queue of 64, blocked in its first message while 63
/// more of every level (`LEVELS[tag % 4]`) are queued behind it, then let
/// go.
fn shed_at(percent: u64) -> Shedding {
    let s = setup(|config| {
        config.engine.workers = 1;
        config.engine.queue_capacity = 64;
        config.engine.shed_at_percent = percent;
        config.engine.run_on_submitter = false;
        config.timeout_ms = 60_000;
        config.allow_anonymous(["demo:*"]);
    });
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let entered = Arc::new(AtomicBool::new(false));
    let engine = {
        let (gate, entered) = (Arc::clone(&gate), Arc::clone(&entered));
        EngineBuilder::new(s.config.clone())
            .command("demo.echo", move |_: &mcp_engine::engine::Request<'_>| {
                entered.store(true, Ordering::Release);
                let (open, opened) = &*gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = opened.wait(open).unwrap();
                }
                Ok(Answer::Result(RawJson::null()))
            })
            .start()
            .unwrap()
    };
    let replies = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let replies = Arc::clone(&replies);
        engine.register_sink(move |reply: Reply<'_>| {
            replies.lock().unwrap().push((reply.tag, reply.outcome));
        })
    };
    let mut sealer = s.sealer(&s.admin);
    let submit = |tag: u64, sealer: &mut mcp_engine::security::Sealer| {
        let level = LEVELS[tag as usize % 4];
        let request = message(
            sealer,
            &format!("s-{tag}"),
            MessageType::Command,
            level,
            r#"{"command":"demo.echo"}"#,
        );
        engine
            .submit(Submission {
                sink,
                tag,
                peer: LOCAL,
                key: 0,
                codec: Codec::Json,
                body: encode(&request, Codec::Json),
            })
            .unwrap();
    };
    // Tag 3 is Critical: never shed, it holds the worker.
    submit(3, &mut sealer);
    assert!(eventually(|| entered.load(Ordering::Acquire)));
    for tag in 4..67 {
        submit(tag, &mut sealer);
    }
    {
        let (open, opened) = &*gate;
        *open.lock().unwrap() = true;
        opened.notify_all();
    }
    assert!(eventually(|| replies.lock().unwrap().len() >= 64));
    let shed = engine.metrics().shed;
    engine.shutdown();
    let mut replies = replies.lock().unwrap().clone();
    replies.sort_by_key(|(tag, _)| *tag);
    (replies, shed)
}

#[test]
fn past_the_mark_the_lowest_levels_are_shed_first_and_critical_never() {
    let (replies, shed) = shed_at(50);
    let tags: Vec<u64> = replies.iter().map(|(tag, _)| *tag).collect();
    assert_eq!(tags, (3..67).collect::<Vec<u64>>(), "one outcome each");
    // Message `tag` (4..67) is taken with 66 - tag queued behind it. A
    // queue of 64 shedding from 50%: Low from 32 behind, Standard from
    // 32 + 32/3 = 42, High from 32 + 2 x 32/3 = 53.
    let mut expected_shed = [0u64; 3];
    for (tag, outcome) in &replies {
        let level = LEVELS[*tag as usize % 4];
        let behind = 66u64.saturating_sub(*tag);
        let mark = match level {
            SecurityLevel::Low => Some(32),
            SecurityLevel::Standard => Some(42),
            SecurityLevel::High => Some(53),
            SecurityLevel::Critical => None,
        };
        let is_shed = *tag > 3 && mark.is_some_and(|mark| behind >= mark);
        if is_shed {
            expected_shed[*tag as usize % 4] += 1;
            assert_eq!(
                *outcome,
                Outcome::Error(Code::ResourceExhausted),
                "tag {tag}"
            );
        } else {
            assert_eq!(*outcome, Outcome::Response, "tag {tag} ({level:?})");
        }
    }
    assert!(expected_shed[0] > expected_shed[1] && expected_shed[1] > expected_shed[2]);
    assert!(expected_shed[2] > 0);
    assert_eq!(
        shed,
        [
            (SecurityLevel::Low, expected_shed[0]),
            (SecurityLevel::Standard, expected_shed[1]),
            (SecurityLevel::High, expected_shed[2]),
        ]
    );
}

#[test]
fn at_100_percent_nothing_is_shed() {
    let (replies, shed) = shed_at(100);
    assert_eq!(replies.len(), 64);
    assert!(
        replies
            .iter()
            .all(|(_, outcome)| *outcome == Outcome::Response)
    );
    assert!(shed.iter().all(|(_, n)| *n == 0), "{shed:?}");
}
