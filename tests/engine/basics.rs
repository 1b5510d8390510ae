//! The engine end to end, one message at a time: built-ins, handlers,
//! levels, refusals, events, deferred answers, timeouts, panics, reload.

use std::time::Duration;

use crate::common::{LOCAL, command, decode_reply, encode, message, setup};
use mcp_engine::codec::Codec;
use mcp_engine::engine::{Answer, CommandSpec, EngineBuilder, Outcome};
use mcp_engine::{Code, MessageType, RawJson, SecurityLevel};

fn echo(request: &mcp_engine::engine::Request<'_>) -> Result<Answer, mcp_engine::Error> {
    let args = request
        .args()
        .map_or_else(RawJson::null, RawJson::from_json);
    Ok(Answer::Result(args))
}

#[test]
fn echo_at_every_level_and_both_codecs() {
    let s = setup(|_| {});
    let engine = EngineBuilder::new(s.config.clone())
        .command("demo.echo", echo)
        .start()
        .unwrap();
    let mut sealer = s.sealer(&s.admin);
    for codec in [Codec::Json, Codec::Binary] {
        for (n, level) in [
            SecurityLevel::Standard,
            SecurityLevel::High,
            SecurityLevel::Critical,
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("e-{}-{n}", codec.byte());
            let request = message(
                &mut sealer,
                &id,
                MessageType::Command,
                level,
                r#"{"command":"demo.echo","args":{"text":"hi"}}"#,
            );
            let reply = engine.call(codec, encode(&request, codec), LOCAL);
            assert_eq!(reply.outcome, Outcome::Response, "{level:?} {codec:?}");
            assert_eq!(reply.correlation_id.as_deref(), Some(id.as_str()));
            let response = decode_reply(codec, &reply.body);
            assert_eq!(response.kind, MessageType::Response);
            assert_eq!(response.security.security_level, level);
            // Protected as the request was.
            assert_eq!(
                response.security.signature.present().is_some(),
                level >= SecurityLevel::High
            );
            assert_eq!(
                response.security.encryption_info.present().is_some(),
                level == SecurityLevel::Critical
            );
            if level < SecurityLevel::Critical {
                assert_eq!(response.payload.as_str(), r#"{"result":{"text":"hi"}}"#);
            }
            let metadata = response.metadata.present().unwrap().as_str().to_owned();
            assert_eq!(metadata, format!(r#"{{"correlation_id":"{id}"}}"#));
        }
    }
    engine.shutdown();
}

#[test]
fn builtins_answer_by_protocol_section_9() {
    let s = setup(|_| {});
    let engine = EngineBuilder::new(s.config.clone()).start().unwrap();
    let mut admin = s.sealer(&s.admin);
    let mut reader = s.sealer(&s.reader);
    let call = |sealer: &mut mcp_engine::security::Sealer, id: &str, name: &str| {
        let reply = engine.call(Codec::Json, command(sealer, id, name), LOCAL);
        (reply.outcome, decode_reply(Codec::Json, &reply.body))
    };
    let (outcome, ping) = call(&mut reader, "b-1", "sys.ping");
    assert_eq!(outcome, Outcome::Response);
    assert_eq!(ping.payload.as_str(), r#"{"result":{"pong":true}}"#);

    let (outcome, renewed) = call(&mut reader, "b-2", "auth.renew");
    assert_eq!(outcome, Outcome::Response);
    let token = serde_json::from_str::<serde_json::Value>(renewed.payload.as_str()).unwrap()
        ["result"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The renewed token works.
    reader.set_token(Some(token));
    assert_eq!(call(&mut reader, "b-3", "sys.ping").0, Outcome::Response);

    // Metrics: admin only.
    assert_eq!(
        call(&mut reader, "b-4", "sys.metrics").0,
        Outcome::Error(Code::AccessDenied)
    );
    let (outcome, metrics) = call(&mut admin, "b-5", "sys.metrics");
    assert_eq!(outcome, Outcome::Response);
    assert!(
        metrics.payload.as_str().contains(r#""responses":"#),
        "{}",
        metrics.payload.as_str()
    );

    assert_eq!(
        call(&mut admin, "b-6", "no.such").0,
        Outcome::Error(Code::HandlerNotFound)
    );
    drop(engine);
}

#[test]
fn refusals_carry_the_code_and_the_correlation() {
    let s = setup(|_| {});
    let engine = EngineBuilder::new(s.config.clone())
        .command("demo.echo", echo)
        .command("secret.read", echo)
        .start()
        .unwrap();
    let mut reader = s.sealer(&s.reader);
    // Not valid JSON: no id to correlate.
    let reply = engine.call(Codec::Json, b"{nope".to_vec(), LOCAL);
    assert_eq!(reply.outcome, Outcome::Error(Code::InvalidFormat));
    assert_eq!(reply.correlation_id, None);
    let error = decode_reply(Codec::Json, &reply.body);
    assert_eq!(
        error.metadata.present().unwrap().as_str(),
        r#"{"correlation_id":null}"#
    );

    // The reader role may not touch `secret`.
    let m = message(
        &mut reader,
        "r-1",
        MessageType::Command,
        SecurityLevel::Standard,
        r#"{"command":"secret.read"}"#,
    );
    let reply = engine.call(Codec::Json, encode(&m, Codec::Json), LOCAL);
    assert_eq!(reply.outcome, Outcome::Error(Code::AccessDenied));
    assert_eq!(reply.correlation_id.as_deref(), Some("r-1"));

    // Replay of the same id from the same principal.
    let m = message(
        &mut reader,
        "r-2",
        MessageType::Command,
        SecurityLevel::Standard,
        r#"{"command":"demo.echo"}"#,
    );
    let first = engine.call(Codec::Json, encode(&m, Codec::Json), LOCAL);
    let second = engine.call(Codec::Json, encode(&m, Codec::Json), LOCAL);
    assert_eq!(first.outcome, Outcome::Response);
    assert_eq!(second.outcome, Outcome::Error(Code::ReplayDetected));
}

#[test]
fn events_reach_every_subscriber_and_ack_on_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let s = setup(|c| {
        c.authorization
            .roles
            .get_mut("reader")
            .unwrap()
            .allow
            .push("demo:*".to_owned());
    });
    let seen = Arc::new(AtomicU32::new(0));
    let (a, b) = (Arc::clone(&seen), Arc::clone(&seen));
    let engine = EngineBuilder::new(s.config.clone())
        .subscribe("demo.tick", move |_: &mcp_engine::engine::Event<'_>| {
            a.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .subscribe("demo.tick", move |_: &mcp_engine::engine::Event<'_>| {
            b.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .start()
        .unwrap();
    let mut reader = s.sealer(&s.reader);
    let m = message(
        &mut reader,
        "v-1",
        MessageType::Event,
        SecurityLevel::Standard,
        r#"{"event":"demo.tick","data":1}"#,
    );
    let reply = engine.call(Codec::Json, encode(&m, Codec::Json), LOCAL);
    assert_eq!(reply.outcome, Outcome::Delivered(2));
    assert!(reply.body.is_empty());

    let mut m = message(
        &mut reader,
        "v-2",
        MessageType::Event,
        SecurityLevel::Standard,
        r#"{"event":"demo.tick"}"#,
    );
    m.metadata = mcp_engine::Field::Present(RawJson::parse(r#"{"ack":true}"#).unwrap());
    let reply = engine.call(Codec::Json, encode(&m, Codec::Json), LOCAL);
    assert_eq!(reply.outcome, Outcome::Delivered(2));
    let ack = decode_reply(Codec::Json, &reply.body);
    assert_eq!(ack.payload.as_str(), r#"{"result":{"delivered":2}}"#);
    assert_eq!(seen.load(Ordering::Relaxed), 4);
}

#[test]
fn deferred_answers_panics_and_timeouts() {
    // Short deadlines only where a timeout is the point: a panic's
    // backtrace alone can take longer than 50 ms in a debug build.
    let s = setup(|c| c.timeout_ms = 10_000);
    let short = |name: &str| CommandSpec::new(name).timeout_ms(50);
    let engine = EngineBuilder::new(s.config.clone())
        .command("demo.later", |request: &mcp_engine::engine::Request<'_>| {
            request.answer_later(|responder| {
                std::thread::spawn(move || {
                    responder.complete(Ok(RawJson::parse(r#""done""#).unwrap()));
                });
            })
        })
        .command_with(
            short("demo.never"),
            |request: &mcp_engine::engine::Request<'_>| request.answer_later(std::mem::forget),
        )
        .command(
            "demo.dropped",
            |request: &mcp_engine::engine::Request<'_>| request.answer_later(drop),
        )
        .command(
            "demo.panic",
            |_: &mcp_engine::engine::Request<'_>| -> Result<Answer, mcp_engine::Error> {
                panic!("handler bug")
            },
        )
        .command_with(short("demo.slow"), |_: &mcp_engine::engine::Request<'_>| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(Answer::Result(RawJson::null()))
        })
        .start()
        .unwrap();
    let mut admin = s.sealer(&s.admin);
    let mut call = |id: &str, command: &str| {
        let payload = format!(r#"{{"command":"{command}"}}"#);
        let m = message(
            &mut admin,
            id,
            MessageType::Command,
            SecurityLevel::Standard,
            &payload,
        );
        engine.call(Codec::Json, encode(&m, Codec::Json), LOCAL)
    };
    assert_eq!(call("d-1", "demo.later").outcome, Outcome::Response);
    assert_eq!(
        call("d-2", "demo.never").outcome,
        Outcome::Error(Code::Timeout)
    );
    assert_eq!(
        call("d-3", "demo.dropped").outcome,
        Outcome::Error(Code::InternalError)
    );
    assert_eq!(
        call("d-4", "demo.panic").outcome,
        Outcome::Error(Code::InternalError)
    );
    // The worker lived on.
    assert_eq!(call("d-5", "demo.later").outcome, Outcome::Response);
    // A handler overrunning its deadline: `timeout` is sent while it runs,
    // and its late result is dropped.
    let overrun = call("d-6", "demo.slow");
    assert_eq!(overrun.outcome, Outcome::Error(Code::Timeout));
    // The timer's answer names the message it answers.
    assert_eq!(overrun.correlation_id.as_deref(), Some("d-6"));
    engine.shutdown();
    let metrics = engine.metrics();
    assert_eq!(metrics.handler_panics, 1);
    assert_eq!(metrics.errors_of(Code::Timeout), 2);
    assert_eq!(metrics.late_answers, 1);
}

#[test]
fn reload_swaps_rules_and_refuses_bad_changes() {
    let s = setup(|_| {});
    let engine = EngineBuilder::new(s.config.clone())
        .command("demo.echo", echo)
        .start()
        .unwrap();
    let mut reader = s.sealer(&s.reader);
    let mut call = |id: &str| {
        let m = message(
            &mut reader,
            id,
            MessageType::Command,
            SecurityLevel::Standard,
            r#"{"command":"demo.echo"}"#,
        );
        engine
            .call(Codec::Json, encode(&m, Codec::Json), LOCAL)
            .outcome
    };
    assert_eq!(call("l-1"), Outcome::Response);
    let mut stricter = s.config.clone();
    stricter
        .authorization
        .roles
        .get_mut("reader")
        .unwrap()
        .deny
        .push("demo:*".to_owned());
    engine.reload(stricter).unwrap();
    assert_eq!(call("l-2"), Outcome::Error(Code::AccessDenied));

    let mut bad = s.config.clone();
    bad.engine.workers += 1;
    assert_eq!(
        engine.reload(bad).unwrap_err().code(),
        Code::ConfigurationError
    );
    let mut missing_key = s.config.clone();
    missing_key.security.keys[0].file = s.dir.path().join("nope.key");
    assert_eq!(
        engine.reload(missing_key).unwrap_err().code(),
        Code::ConfigurationError
    );
    // The stricter config stayed.
    assert_eq!(call("l-3"), Outcome::Error(Code::AccessDenied));
}

#[test]
fn commands_sent_to_a_peer_complete_with_its_correlated_answer() {
    use mcp_engine::engine::{Reply, Submission};
    use std::sync::{Arc, Mutex};
    let s = setup(|_| {});
    let engine = EngineBuilder::new(s.config.clone()).start().unwrap();
    // The peer's connection: what the engine sends it lands here.
    // (tag, outcome, body) of everything the engine sent the peer.
    type Sent = Vec<(u64, Outcome, Vec<u8>)>;
    let outbox: Arc<Mutex<Sent>> = Arc::default();
    let peer = {
        let outbox = Arc::clone(&outbox);
        engine.register_sink(move |reply: Reply<'_>| {
            outbox
                .lock()
                .unwrap()
                .push((reply.tag, reply.outcome, reply.body.to_vec()));
        })
    };
    let mut peer_sealer = s.sealer(&s.admin);
    let mut engine_side = s.sealer(&s.admin);
    let command = message(
        &mut engine_side,
        "out-1",
        MessageType::Command,
        SecurityLevel::Standard,
        r#"{"command":"peer.work"}"#,
    );
    let pending = engine
        .send_command(
            peer,
            5,
            Codec::Json,
            &command,
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    {
        let sent = outbox.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].0, sent[0].1), (5, Outcome::Sent));
        assert_eq!(decode_reply(Codec::Json, &sent[0].2).id, "out-1");
    }
    let answer = |id: &str, sealer: &mut mcp_engine::security::Sealer| {
        let mut m = message(
            sealer,
            id,
            MessageType::Response,
            SecurityLevel::Standard,
            r#"{"result":7}"#,
        );
        m.metadata =
            mcp_engine::Field::Present(RawJson::parse(r#"{"correlation_id":"out-1"}"#).unwrap());
        sealer
            .seal(&mut m, mcp_engine::message::unix_nanos_now())
            .unwrap();
        encode(&m, Codec::Json)
    };
    // An answer from another connection (tag) does not complete it.
    engine
        .submit(Submission {
            sink: peer,
            tag: 6,
            peer: LOCAL,
            key: 0,
            codec: Codec::Json,
            body: answer("in-1", &mut peer_sealer),
        })
        .unwrap();
    // The right one does.
    engine
        .submit(Submission {
            sink: peer,
            tag: 5,
            peer: LOCAL,
            key: 0,
            codec: Codec::Json,
            body: answer("in-2", &mut peer_sealer),
        })
        .unwrap();
    let reply = pending.wait().unwrap();
    assert_eq!(reply.kind, MessageType::Response);
    assert_eq!(reply.payload.as_str(), r#"{"result":7}"#);
    // Nothing is answered back to an answer: the peer gets only the command
    // and two silent outcomes (the second may land just after `wait`).
    for _ in 0..5000 {
        if outbox.lock().unwrap().len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let outcomes: Vec<Outcome> = outbox.lock().unwrap().iter().map(|e| e.1).collect();
    assert_eq!(
        outcomes,
        vec![Outcome::Sent, Outcome::Absorbed, Outcome::Absorbed]
    );
    assert_eq!(engine.metrics().unmatched_replies, 1);

    // No answer: `timeout` at the deadline.
    let quiet = message(
        &mut engine_side,
        "out-2",
        MessageType::Command,
        SecurityLevel::Standard,
        r#"{"command":"peer.work"}"#,
    );
    let pending = engine
        .send_command(
            peer,
            5,
            Codec::Json,
            &quiet,
            Some(Duration::from_millis(20)),
        )
        .unwrap();
    assert_eq!(pending.wait().unwrap_err().code(), Code::Timeout);
}

#[test]
fn a_metrics_reading_of_an_idle_engine_holds_every_latency_sample() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Condvar, Mutex};

    use mcp_engine::config::Overflow;
    use mcp_engine::engine::{Reply, Stage, Submission, TIMED_EVERY};

    // The embedding a newcomer writes from the docs: Low messages, a flood
    // from two threads, nobody reading the metrics until the end. One
    // worker, so that every message counts towards one sequence: exactly
    // one in TIMED_EVERY is timed.
    const PER_THREAD: u64 = 100_000;
    let mut config = mcp_engine::Config::default();
    config.engine.workers = 1;
    config.engine.overflow = Overflow::Block;
    // Timing-independent: a message queued behind the flood on a busy
    // machine (CI runs other tests beside this one) must not time out.
    config.timeout_ms = 600_000;
    config.allow_anonymous(["demo:*"]);
    let engine = Arc::new(
        EngineBuilder::new(config)
            .command("demo.echo", echo)
            .start()
            .unwrap(),
    );
    let answered = Arc::new((Mutex::new(0u64), Condvar::new()));
    let responses = Arc::new(AtomicU64::new(0));
    let sink = {
        let (answered, responses) = (Arc::clone(&answered), Arc::clone(&responses));
        engine.register_sink(move |reply: Reply<'_>| {
            if reply.outcome == Outcome::Response {
                responses.fetch_add(1, Ordering::Relaxed);
            }
            let (count, wake) = &*answered;
            *count.lock().unwrap() += 1;
            wake.notify_all();
        })
    };
    let senders: Vec<_> = (0..2u64)
        .map(|thread| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for n in 0..PER_THREAD {
                    let payload = RawJson::parse(r#"{"command":"demo.echo"}"#).unwrap();
                    let id = format!("t{thread}-{n}");
                    let message = mcp_engine::Message::new(
                        id,
                        MessageType::Command,
                        SecurityLevel::Low,
                        payload,
                    );
                    let body = encode(&message, Codec::Json);
                    let tag = thread * PER_THREAD + n;
                    let submission = Submission {
                        sink,
                        tag,
                        peer: LOCAL,
                        key: tag,
                        codec: Codec::Json,
                        body,
                    };
                    engine.submit(submission).unwrap();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let (count, wake) = &*answered;
    let mut count = count.lock().unwrap();
    while *count < 2 * PER_THREAD {
        count = wake.wait(count).unwrap();
    }
    drop(count);
    assert_eq!(responses.load(Ordering::Relaxed), 2 * PER_THREAD);

    // Every reply is in and nothing else is sent: the first reading holds
    // every sample, stage by stage.
    let metrics = engine.metrics();
    assert_eq!(metrics.responses, 2 * PER_THREAD);
    let count_of = |stage: Stage| {
        metrics
            .latencies
            .iter()
            .find(|l| l.stage == stage)
            .map_or(0, |l| l.count)
    };
    // A Command crosses every stage.
    for stage in Stage::ALL {
        assert_eq!(count_of(stage), 2 * PER_THREAD / TIMED_EVERY, "{stage:?}");
    }
    // And a second reading finds nothing more.
    assert_eq!(engine.metrics().latencies, metrics.latencies);
    engine.shutdown();
}
