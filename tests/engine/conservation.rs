//! Nothing is lost: every message handed to the engine gets exactly one
//! outcome through its sink, counted by id: under a mixed load, with
//! panicking handlers, with handlers that overrun their deadline, with a
//! tiny queue under overload, with key rotation, with reloads, and with a
//! shutdown in mid-stream.
//!
//! Debug builds run 50,000 messages per stream; release builds (CI runs
//! `cargo test --release --test engine conservation::`) one million for the mixed
//! load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{LOCAL, Setup, encode, setup};
use mcp_engine::codec::Codec;
use mcp_engine::config::{Overflow, Topology};
use mcp_engine::engine::{
    Answer, CommandSpec, Engine, EngineBuilder, Event, Outcome, Reply, Request, Submission,
};
use mcp_engine::message::{Timestamp, unix_nanos_now};
use mcp_engine::security::Sealer;
use mcp_engine::{Code, Config, Error, Field, Message, MessageType, RawJson, SecurityLevel};

/// Every test runs on both topologies.
const TOPOLOGIES: [Topology; 2] = [Topology::Sharded, Topology::Staged];

const MILLION: usize = if cfg!(debug_assertions) {
    50_000
} else {
    1_000_000
};
const STREAM: usize = if cfg!(debug_assertions) {
    20_000
} else {
    200_000
};

/// Replies counted by tag (the message's index).
struct Tally {
    per_message: Vec<AtomicU32>,
    responses: AtomicU64,
    errors: [AtomicU64; 18],
    delivered: AtomicU64,
    absorbed: AtomicU64,
    wrong_correlation: AtomicU64,
}

impl Tally {
    fn new(n: usize) -> Arc<Tally> {
        Arc::new(Tally {
            per_message: (0..n).map(|_| AtomicU32::new(0)).collect(),
            responses: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            delivered: AtomicU64::new(0),
            absorbed: AtomicU64::new(0),
            wrong_correlation: AtomicU64::new(0),
        })
    }

    fn take(&self, reply: Reply<'_>) {
        let index = reply.tag as usize;
        self.per_message[index].fetch_add(1, Ordering::Relaxed);
        if let Some(id) = reply.correlation_id
            && id != message_id(index)
        {
            self.wrong_correlation.fetch_add(1, Ordering::Relaxed);
        }
        match reply.outcome {
            Outcome::Response => self.responses.fetch_add(1, Ordering::Relaxed),
            Outcome::Error(code) => self.errors[code as usize].fetch_add(1, Ordering::Relaxed),
            Outcome::Delivered(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Outcome::Absorbed => self.absorbed.fetch_add(1, Ordering::Relaxed),
            // The engine sends no commands in these tests.
            Outcome::Sent => unreachable!("no command was sent"),
            other => panic!("an outcome this test does not count: {other:?}"),
        };
    }

    fn errors(&self) -> Vec<(Code, u64)> {
        Code::ALL
            .iter()
            .map(|&code| (code, self.errors_of(code)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    fn errors_of(&self, code: Code) -> u64 {
        self.errors[code as usize].load(Ordering::Relaxed)
    }

    /// Waits until `n` messages have replies (bounded: a lost reply fails
    /// the test instead of hanging it).
    fn wait_for(&self, n: usize) {
        for _ in 0..60_000 {
            if self.answered() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn answered(&self) -> usize {
        self.per_message
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) > 0)
            .count()
    }

    /// Every message has exactly one reply; correlations are right.
    fn assert_exactly_once(&self, submitted: usize) {
        let mut missing = 0;
        let mut repeated = 0;
        for count in &self.per_message[..submitted] {
            match count.load(Ordering::Relaxed) {
                0 => missing += 1,
                1 => {}
                _ => repeated += 1,
            }
        }
        assert_eq!(
            (missing, repeated),
            (0, 0),
            "messages without a reply, with several"
        );
        assert_eq!(self.wrong_correlation.load(Ordering::Relaxed), 0);
    }
}

fn message_id(index: usize) -> String {
    format!("m-{index}")
}

fn echo(request: &Request<'_>) -> Result<Answer, Error> {
    Ok(Answer::Result(
        request
            .args()
            .map_or_else(RawJson::null, RawJson::from_json),
    ))
}

/// A test config: Low allowed (to mix anonymous messages in), readers may
/// use `demo:*`, workers block on a full queue unless told otherwise.
fn config(s: &mut Config) {
    // Deadlines count from acceptance, queueing included; a debug build
    // under this load can queue for longer than the default 200 ms.
    s.timeout_ms = 60_000;
    s.security.min_security_level = SecurityLevel::Low;
    s.engine.overflow = Overflow::Block;
    s.engine.workers = 2;
    s.authorization
        .roles
        .get_mut("reader")
        .unwrap()
        .allow
        .push("demo:*".to_owned());
}

/// Message `index` of the mixed load: every kind and level, both codecs.
fn mixed(sealer: &mut Sealer, index: usize, command: &str) -> (Codec, Vec<u8>) {
    let id = message_id(index);
    let (kind, level, payload, codec) = match index % 10 {
        0 => (
            MessageType::Command,
            SecurityLevel::Low,
            r#"{"command":"sys.ping"}"#.to_owned(),
            Codec::Json,
        ),
        1 | 2 => (
            MessageType::Command,
            SecurityLevel::Standard,
            format!(r#"{{"command":"{command}","args":{{"n":{index}}}}}"#),
            Codec::Json,
        ),
        3 => (
            MessageType::Command,
            SecurityLevel::High,
            format!(r#"{{"command":"{command}","args":[{index}]}}"#),
            Codec::Binary,
        ),
        4 => (
            MessageType::Command,
            SecurityLevel::Critical,
            format!(r#"{{"command":"{command}","args":"x"}}"#),
            Codec::Json,
        ),
        5 => (
            MessageType::Event,
            SecurityLevel::Standard,
            r#"{"event":"demo.tick","data":1}"#.to_owned(),
            Codec::Json,
        ),
        6 => (
            MessageType::Event,
            SecurityLevel::High,
            r#"{"event":"demo.tick"}"#.to_owned(),
            Codec::Binary,
        ),
        7 => (
            MessageType::Response,
            SecurityLevel::Standard,
            r#"{"result":1}"#.to_owned(),
            Codec::Json,
        ),
        8 => (
            MessageType::Command,
            SecurityLevel::Standard,
            r#"{"command":"no.such"}"#.to_owned(),
            Codec::Json,
        ),
        _ => (
            MessageType::Command,
            SecurityLevel::Standard,
            r#"{"command":"sys.ping"}"#.to_owned(),
            Codec::Binary,
        ),
    };
    let mut message = Message::new(id, kind, level, RawJson::parse(&payload).unwrap());
    if index % 20 == 6 {
        message.metadata = Field::Present(RawJson::parse(r#"{"ack":true}"#).unwrap());
    }
    if kind == MessageType::Response {
        message.metadata =
            Field::Present(RawJson::parse(r#"{"correlation_id":"nobody"}"#).unwrap());
    }
    let now = unix_nanos_now();
    message.timestamp = Timestamp::from_unix_nanos(now);
    sealer.seal(&mut message, now).unwrap();
    (codec, encode(&message, codec))
}

/// Streams messages `0..n` from two threads; `during(i)` runs on the first
/// thread before message `i` (for reloads, rotations, shutdown). The first
/// thread submits one message at a time; the second in batches of 1, 5 and
/// 33 in turn (more than a queue of 16), whose keys change within a batch.
fn stream(
    engine: &Engine,
    s: &Setup,
    tally: &Arc<Tally>,
    n: usize,
    command: &str,
    during: &(dyn Fn(usize) + Sync),
) -> usize {
    let sink = {
        let tally = Arc::clone(tally);
        engine.register_sink(move |reply: Reply<'_>| tally.take(reply))
    };
    let submitted = AtomicU64::new(0);
    let accepted = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for producer in 0..2 {
            let (submitted, accepted) = (&submitted, &accepted);
            let mut sealer = s.sealer(&s.reader);
            scope.spawn(move || {
                let mut batch = Vec::new();
                let mut batches = [1, 5, 33].into_iter().cycle();
                let mut size = 1;
                for index in (producer..n).step_by(2) {
                    if producer == 0 {
                        during(index);
                    }
                    let (codec, body) = mixed(&mut sealer, index, command);
                    let submission = Submission {
                        sink,
                        tag: index as u64,
                        peer: LOCAL,
                        key: index as u64 / 64,
                        codec,
                        body,
                    };
                    if producer == 0 {
                        let taken = engine.submit(submission).is_ok();
                        accepted.fetch_add(u64::from(taken), Ordering::Relaxed);
                        submitted.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    batch.push(submission);
                    if batch.len() >= size || index + 2 >= n {
                        let count = batch.len() as u64;
                        let taken = engine.submit_batch(batch.drain(..));
                        accepted.fetch_add(taken as u64, Ordering::Relaxed);
                        submitted.fetch_add(count, Ordering::Relaxed);
                        size = batches.next().unwrap_or(1);
                    }
                }
            });
        }
    });
    let submitted = submitted.load(Ordering::Relaxed) as usize;
    tally.wait_for(submitted);
    // What the submitters were told matches what the engine counted.
    assert_eq!(accepted.load(Ordering::Relaxed), engine.metrics().accepted);
    submitted
}

fn tick(_: &Event<'_>) -> Result<(), Error> {
    Ok(())
}

/// The test config (see [`config`]) on `topology`, then `edit`.
fn setup_for(topology: Topology, edit: impl FnOnce(&mut Config)) -> Setup {
    setup(|c| {
        config(c);
        c.engine.topology = topology;
        edit(c);
    })
}

/// An engine with `demo.echo` and one `demo.tick` subscriber.
fn echo_engine(s: &Setup) -> Engine {
    EngineBuilder::new(s.config.clone())
        .command("demo.echo", echo)
        .subscribe("demo.tick", tick)
        .start()
        .unwrap()
}

#[test]
fn conservation_mixed_million() {
    for topology in TOPOLOGIES {
        run_mixed_million(topology);
    }
}

fn run_mixed_million(topology: Topology) {
    let s = setup_for(topology, |_| {});
    let engine = EngineBuilder::new(s.config.clone())
        .command("demo.echo", echo)
        .subscribe("demo.tick", tick)
        .subscribe("demo.tick", tick)
        .start()
        .unwrap();
    let tally = Tally::new(MILLION);
    let submitted = stream(&engine, &s, &tally, MILLION, "demo.echo", &|_| {});
    assert_eq!(submitted, MILLION);
    tally.assert_exactly_once(MILLION);
    // By kind: 10% anonymous pings refused, 10% unknown commands, 10%
    // absorbed Responses, 20% events, the rest answered.
    let tenth = (MILLION / 10) as u64;
    assert_eq!(tally.errors_of(Code::AccessDenied), tenth);
    assert_eq!(tally.errors_of(Code::HandlerNotFound), tenth);
    assert_eq!(tally.absorbed.load(Ordering::Relaxed), tenth);
    assert_eq!(
        tally.responses.load(Ordering::Relaxed),
        5 * tenth,
        "{:?}",
        tally.errors()
    );
    assert_eq!(tally.delivered.load(Ordering::Relaxed), 2 * tenth);
    let metrics = engine.metrics();
    assert_eq!(metrics.accepted, MILLION as u64);
    assert_eq!(metrics.deliveries, 4 * tenth);
    assert_eq!(metrics.unmatched_replies, tenth);
}

#[test]
fn conservation_with_panicking_handlers() {
    for topology in TOPOLOGIES {
        run_with_panicking_handlers(topology);
    }
}

fn run_with_panicking_handlers(topology: Topology) {
    // Panics are expected here: keep their messages off the output.
    std::panic::set_hook(Box::new(|_| {}));
    let s = setup_for(topology, |_| {});
    let engine = EngineBuilder::new(s.config.clone())
        .command("demo.flaky", |request: &Request<'_>| {
            let n = request
                .args()
                .and_then(|a| a.get("n"))
                .and_then(|n| n.as_u64());
            if n.is_some_and(|n| n % 10 == 1) {
                panic!("flaky handler");
            }
            echo(request)
        })
        .subscribe("demo.tick", |_: &Event<'_>| -> Result<(), Error> {
            panic!("flaky subscriber")
        })
        .start()
        .unwrap();
    let tally = Tally::new(STREAM);
    let submitted = stream(&engine, &s, &tally, STREAM, "demo.flaky", &|_| {});
    tally.assert_exactly_once(submitted);
    // Indexes 1 and 2 mod 10 carry `n`; those with n % 10 == 1 panic.
    let panics = (0..STREAM).filter(|i| i % 10 == 1).count() as u64;
    assert_eq!(tally.errors_of(Code::InternalError), panics);
    let metrics = engine.metrics();
    let event_panics = (0..STREAM).filter(|i| i % 10 == 5 || i % 10 == 6).count() as u64;
    assert_eq!(metrics.handler_panics, panics + event_panics);
    assert_eq!(metrics.worker_restarts, 0);
}

#[test]
fn conservation_with_handlers_overrunning_their_deadline() {
    for topology in TOPOLOGIES {
        run_with_handlers_overrunning_their_deadline(topology);
    }
}

fn run_with_handlers_overrunning_their_deadline(topology: Topology) {
    let s = setup_for(topology, |c| c.timeout_ms = 20);
    let n = STREAM / 10;
    let engine = EngineBuilder::new(s.config.clone())
        .command_with(
            CommandSpec::new("demo.slow").timeout_ms(5),
            |request: &Request<'_>| {
                let n = request
                    .args()
                    .and_then(|a| a.get("n"))
                    .and_then(|n| n.as_u64());
                match n {
                    // Blocks well past its deadline (on the worker, or on
                    // the submitter running it): the timer ticks every
                    // millisecond, but with seven engines on two cores it
                    // may be scheduled late.
                    Some(n) if n % 100 == 1 => std::thread::sleep(Duration::from_millis(30)),
                    // Defers and never answers.
                    Some(n) if n % 100 == 11 => {
                        return request.answer_later(std::mem::forget);
                    }
                    // Defers and answers late, from another thread.
                    Some(n) if n % 100 == 21 => {
                        return request.answer_later(|responder| {
                            std::thread::spawn(move || {
                                std::thread::sleep(Duration::from_millis(10));
                                responder.complete(Ok(RawJson::null()));
                            });
                        });
                    }
                    _ => {}
                }
                echo(request)
            },
        )
        .subscribe("demo.tick", tick)
        .start()
        .unwrap();
    let tally = Tally::new(n);
    let submitted = stream(&engine, &s, &tally, n, "demo.slow", &|_| {});
    tally.assert_exactly_once(submitted);
    let slow = (0..n)
        .filter(|i| i % 10 == 1 && [1, 11, 21].contains(&(i % 100)))
        .count() as u64;
    // At least the overrunning ones time out; on a loaded machine others
    // may too, and each still has one reply.
    assert!(
        tally.errors_of(Code::Timeout) >= slow,
        "{} < {slow}",
        tally.errors_of(Code::Timeout)
    );
}

#[test]
fn conservation_with_queue_of_16_under_overload() {
    for topology in TOPOLOGIES {
        run_with_queue_of_16_under_overload(topology);
    }
}

fn run_with_queue_of_16_under_overload(topology: Topology) {
    let s = setup_for(topology, |c| {
        c.engine.queue_capacity = 16;
        c.engine.overflow = Overflow::Refuse;
    });
    let engine = echo_engine(&s);
    let tally = Tally::new(STREAM);
    let submitted = stream(&engine, &s, &tally, STREAM, "demo.echo", &|_| {});
    tally.assert_exactly_once(submitted);
    let metrics = engine.metrics();
    assert_eq!(metrics.accepted + metrics.refused_at_intake, STREAM as u64);
    assert_eq!(
        tally.errors_of(Code::ResourceExhausted),
        metrics.refused_at_intake
    );
}

#[test]
fn conservation_with_key_rotation() {
    for topology in TOPOLOGIES {
        run_with_key_rotation(topology);
    }
}

fn run_with_key_rotation(topology: Topology) {
    let s = setup_for(topology, |_| {});
    let engine = echo_engine(&s);
    let base = s.config.clone();
    let keys = s.dir.path().to_owned();
    let rotations = AtomicU32::new(0);
    let tally = Tally::new(STREAM);
    let submitted = stream(&engine, &s, &tally, STREAM, "demo.echo", &|index| {
        if index % (STREAM / 20) == 0 {
            // Add a fresh signing key as the active one; the clients keep
            // signing with the old one, which stays valid (retired keys
            // verify for the grace period).
            let mut next = base.clone();
            let round = rotations.fetch_add(1, Ordering::Relaxed);
            let file = keys.join(format!("rotated-{round}.key"));
            let key = mcp_engine::dev_setup::random_key().unwrap();
            std::fs::write(&file, mcp_engine::security::b64u::encode(&key[..])).unwrap();
            for key in &mut next.security.keys {
                if key.id == "dev-sign-1" {
                    key.active = false;
                }
            }
            let mut fresh = base
                .security
                .keys
                .iter()
                .find(|k| k.id == "dev-sign-1")
                .unwrap()
                .clone();
            fresh.id = format!("sign-{round}");
            fresh.file = file;
            fresh.active = true;
            next.security.keys.push(fresh);
            engine.reload(next).unwrap();
        }
    });
    tally.assert_exactly_once(submitted);
    assert_eq!(rotations.load(Ordering::Relaxed), 20);
    // Nothing valid was refused.
    let refused: u64 = Code::ALL
        .iter()
        .filter(|&&c| c != Code::AccessDenied && c != Code::HandlerNotFound)
        .map(|&c| tally.errors_of(c))
        .sum();
    assert_eq!(refused, 0, "{:?}", tally.errors());
}

#[test]
fn conservation_with_reload() {
    for topology in TOPOLOGIES {
        run_with_reload(topology);
    }
}

fn run_with_reload(topology: Topology) {
    let s = setup(|c| {
        config(c);
        c.engine.topology = topology;
    });
    let engine = echo_engine(&s);
    let open = s.config.clone();
    let mut closed = s.config.clone();
    closed
        .authorization
        .roles
        .get_mut("reader")
        .unwrap()
        .deny
        .push("demo:echo".to_owned());
    let tally = Tally::new(STREAM);
    let submitted = stream(&engine, &s, &tally, STREAM, "demo.echo", &|index| {
        if index % 1000 == 0 {
            let next = if (index / 1000) % 2 == 0 {
                &closed
            } else {
                &open
            };
            engine.reload(next.clone()).unwrap();
        }
    });
    tally.assert_exactly_once(submitted);
    // Both configs were in force for some messages.
    let denied = tally.errors_of(Code::AccessDenied) - (STREAM / 10) as u64;
    assert!(denied > 0);
    assert!(tally.responses.load(Ordering::Relaxed) > 0);
}

#[test]
fn conservation_with_shutdown_in_mid_stream() {
    for topology in TOPOLOGIES {
        run_with_shutdown_in_mid_stream(topology);
    }
}

fn run_with_shutdown_in_mid_stream(topology: Topology) {
    let s = setup_for(topology, |c| c.engine.drain_ms = 0);
    let engine = echo_engine(&s);
    let stopped = AtomicBool::new(false);
    let tally = Tally::new(STREAM);
    let submitted = stream(&engine, &s, &tally, STREAM, "demo.echo", &|index| {
        if index == STREAM / 2 {
            engine.shutdown();
            stopped.store(true, Ordering::Relaxed);
        }
    });
    assert!(stopped.load(Ordering::Relaxed));
    assert_eq!(submitted, STREAM);
    tally.assert_exactly_once(submitted);
    // The thread that shut the engine down submitted its second half (the
    // even indexes from STREAM / 2 on) to a closed engine. The other
    // thread's messages may have gone in before or after the close.
    let after_close = (STREAM / 2..STREAM).filter(|i| i % 2 == 0).count() as u64;
    assert!(tally.errors_of(Code::Unavailable) >= after_close);
}
