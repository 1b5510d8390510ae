//! Calling the engine with values: a command built by name (or a Message)
//! in, its result or its Error out, at every level; results written from
//! `Serialize` values; deferral through `Request::answer_later`.

use std::collections::BTreeMap;

use crate::common::{LOCAL, Setup, message, setup};
use mcp_engine::engine::{Answer, EngineBuilder, Request};
use mcp_engine::{Code, Config, Error, MessageType, RawJson, SecurityLevel};

#[derive(serde::Serialize)]
struct Summary<'a> {
    command: &'a str,
    principal: Option<&'a str>,
    args: BTreeMap<String, f64>,
}

/// The dev setup's config, letting tokenless messages in at `Low` as the
/// role `anonymous`, which may run `demo.*`.
fn open_to_anonymous(s: &Setup) -> Config {
    let mut config = s.config.clone();
    config.allow_anonymous(["demo:*"]);
    config
}

/// Answers a summary of the request, built as a value.
fn summarize(request: &Request<'_>) -> Result<Answer, Error> {
    let args = request
        .args()
        .map(|args| {
            args.entries()
                .filter_map(|(key, value)| Some((key.to_owned(), value.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    Answer::value(&Summary {
        command: request.command(),
        principal: request.principal(),
        args,
    })
}

#[test]
fn a_command_by_name_is_answered_with_its_result_at_every_level() {
    let s = setup(|_| {});
    let engine = EngineBuilder::new(open_to_anonymous(&s))
        .command("demo.summary", summarize)
        .start()
        .unwrap();
    let args = BTreeMap::from([("x", 1.5), ("y", 1e21)]);

    let low = engine
        .command("demo.summary")
        .args(&args)
        .unwrap()
        .call()
        .unwrap();
    assert_eq!(
        low,
        RawJson::parse(r#"{"command":"demo.summary","principal":null,"args":{"x":1.5,"y":1e21}}"#)
            .unwrap()
    );

    let mut sealer = s.sealer(&s.admin);
    for level in [
        SecurityLevel::Standard,
        SecurityLevel::High,
        SecurityLevel::Critical,
    ] {
        let result = engine
            .command("demo.summary")
            .args(&args)
            .unwrap()
            .sealed(level, &mut sealer)
            .call()
            .unwrap_or_else(|error| panic!("{level:?}: {error}"));
        assert_eq!(
            result,
            RawJson::parse(
                r#"{"command":"demo.summary","principal":"admin","args":{"x":1.5,"y":1e21}}"#
            )
            .unwrap(),
            "{level:?}"
        );
    }
    engine.shutdown();
}

#[test]
fn an_error_reply_is_the_error_with_its_code_and_message() {
    let s = setup(|_| {});
    let engine = EngineBuilder::new(s.config.clone())
        .command("demo.refuse", |_: &Request<'_>| -> Result<Answer, Error> {
            Err(Error::new(Code::ValidationFailed, "n must be even"))
        })
        .start()
        .unwrap();
    let mut sealer = s.sealer(&s.admin);
    let refused = engine
        .command("demo.refuse")
        .sealed(SecurityLevel::Critical, &mut sealer)
        .call()
        .unwrap_err();
    assert_eq!(refused.code(), Code::ValidationFailed);
    assert_eq!(refused.message(), "n must be even");

    let missing = engine
        .command("no.such")
        .sealed(SecurityLevel::Standard, &mut sealer)
        .call()
        .unwrap_err();
    assert_eq!(missing.code(), Code::HandlerNotFound);

    // Unsealed below the configured minimum: a security refusal, whose
    // message on the wire is the code's summary.
    let low = engine.command("demo.refuse").call().unwrap_err();
    assert_eq!(low.category(), mcp_engine::Category::Security, "{low}");
    assert_eq!(low.message(), low.code().summary());
    engine.shutdown();
}

#[test]
fn a_message_is_answered_as_its_kind_is() {
    let s = setup(|_| {});
    let engine = EngineBuilder::new(s.config.clone())
        .subscribe("demo.tick", |_: &mcp_engine::engine::Event<'_>| Ok(()))
        .start()
        .unwrap();
    let mut sealer = s.sealer(&s.admin);
    let silent = message(
        &mut sealer,
        "ev-1",
        MessageType::Event,
        SecurityLevel::High,
        r#"{"event":"demo.tick"}"#,
    );
    assert_eq!(
        engine.call_message(&silent, LOCAL).unwrap(),
        RawJson::parse(r#"{"delivered":1}"#).unwrap()
    );
    let mut acknowledged = mcp_engine::Message::new(
        "ev-2",
        MessageType::Event,
        SecurityLevel::Critical,
        RawJson::parse(r#"{"event":"demo.tick"}"#).unwrap(),
    );
    acknowledged.metadata = mcp_engine::Field::Present(RawJson::parse(r#"{"ack":true}"#).unwrap());
    let stamped = acknowledged.timestamp.unix_nanos();
    sealer.seal(&mut acknowledged, stamped).unwrap();
    assert_eq!(
        engine.call_message(&acknowledged, LOCAL).unwrap(),
        RawJson::parse(r#"{"delivered":1}"#).unwrap()
    );
    // The same id again is a replay.
    assert_eq!(
        engine
            .call_message(&acknowledged, LOCAL)
            .unwrap_err()
            .code(),
        Code::ReplayDetected
    );
    engine.shutdown();
}

#[test]
fn a_result_json_cannot_hold_is_the_handlers_internal_error() {
    let engine = EngineBuilder::new(open_to_anonymous(&setup(|_| {})))
        .command("demo.pairs", |_: &Request<'_>| {
            Answer::value(&BTreeMap::from([((1, 2), "pair keys")]))
        })
        .start()
        .unwrap();
    let failed = engine.command("demo.pairs").call().unwrap_err();
    assert_eq!(failed.code(), Code::InternalError);
    engine.shutdown();
}

#[test]
fn a_deferred_answer_comes_back_as_the_result() {
    let engine = EngineBuilder::new(open_to_anonymous(&setup(|_| {})))
        .command("demo.later", |request: &Request<'_>| {
            let n = request
                .args()
                .and_then(|a| a.get("n"))
                .and_then(|n| n.as_u64());
            request.answer_later(move |responder| {
                std::thread::spawn(move || responder.complete(RawJson::from_serialize(&n)));
            })
        })
        .start()
        .unwrap();
    for n in 0..20u64 {
        let result = engine
            .command("demo.later")
            .args(&serde_json::json!({ "n": n }))
            .unwrap()
            .call()
            .unwrap();
        assert_eq!(result, RawJson::from_serialize(&n).unwrap());
    }
    engine.shutdown();
}

#[test]
fn replies_at_a_sink_are_read_as_values() {
    let s = setup(|_| {});
    let engine = EngineBuilder::new(s.config.clone())
        .command("demo.summary", summarize)
        .start()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let sink = engine.register_sink(move |reply: mcp_engine::engine::Reply<'_>| {
        let owned = mcp_engine::engine::OwnedReply::from_reply(&reply);
        let _ = tx.lock().unwrap().send((reply.tag, owned));
    });
    let mut sealer = s.sealer(&s.admin);
    for tag in 0..50u64 {
        let name = if tag % 10 == 9 {
            "no.such"
        } else {
            "demo.summary"
        };
        let request = message(
            &mut sealer,
            &format!("sink-{tag}"),
            MessageType::Command,
            SecurityLevel::Critical,
            &format!(r#"{{"command":"{name}","args":{{"tag":{tag}}}}}"#),
        );
        let submission = mcp_engine::engine::Submission::message(sink, tag, LOCAL, tag, &request);
        assert!(engine.submit(submission).is_ok());
    }
    let mut answered = 0;
    for _ in 0..50 {
        let (tag, reply) = rx.recv().unwrap();
        let value = engine.reply_value(reply.outcome, reply.codec, &reply.body);
        if tag % 10 == 9 {
            assert_eq!(value.unwrap_err().code(), Code::HandlerNotFound);
        } else {
            let expected = format!(
                r#"{{"command":"demo.summary","principal":"admin","args":{{"tag":{tag}}}}}"#
            );
            assert_eq!(value.unwrap(), RawJson::parse(&expected).unwrap());
        }
        answered += 1;
    }
    assert_eq!(answered, 50);
    engine.shutdown();
}
