//! An engine embedded in a program: two handlers that answer at once, one
//! that answers later from another thread, an event subscriber, and
//! messages submitted without waiting, every reply counted at a sink.
//!
//! ```text
//! cargo run --release --example embedded
//! ```
//!
//! The messages are `Low`: they come from this program itself, so there is
//! nothing to authenticate (docs/embedding.md says when to use a higher
//! level, and shows one).

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use mcp_engine::codec::{self, Codec, Decoder, Limits};
use mcp_engine::engine::{
    Answer, EngineBuilder, Event, OwnedReply, Reply, Request, Submission, TIMED_EVERY,
};
use mcp_engine::message::unix_nanos_now;
use mcp_engine::{Code, Config, Error, Field, Message, MessageType, RawJson, SecurityLevel};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `math.add`: the sum of `args.a` and `args.b`, or `validation_failed`.
fn add(request: &Request<'_>) -> Result<Answer, Error> {
    let number = |name: &str| {
        request
            .args()
            .and_then(|args| args.get(name))
            .and_then(|value| value.as_i64())
    };
    let (Some(a), Some(b)) = (number("a"), number("b")) else {
        return Err(Error::new(
            Code::ValidationFailed,
            "math.add needs integer args a and b",
        ));
    };
    let sum = a
        .checked_add(b)
        .ok_or_else(|| Error::new(Code::ValidationFailed, "math.add: the sum overflows"))?;
    Ok(Answer::Result(RawJson::parse(&sum.to_string())?))
}

/// `text.upper`: `args.text` in capitals.
fn upper(request: &Request<'_>) -> Result<Answer, Error> {
    let text = request
        .args()
        .and_then(|args| args.get("text"))
        .and_then(|text| text.as_str())
        .ok_or_else(|| Error::new(Code::ValidationFailed, "text.upper needs args.text"))?;
    Ok(Answer::Result(RawJson::string(&text.to_uppercase())))
}

/// `report.build`: answered later, from a thread of its own, as a handler
/// that waits on something (a database, another service) should be: an
/// engine worker never waits.
fn build_report(request: &Request<'_>) -> Result<Answer, Error> {
    let who = request.principal().unwrap_or("anonymous").to_owned();
    request.answer_later(|responder| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            #[derive(serde::Serialize)]
            struct Report {
                rows: u32,
                r#for: String,
            }
            let report = RawJson::from_serialize(&Report {
                rows: 3,
                r#for: who,
            });
            // `false` would mean the deadline (timeout_ms) passed first and
            // the engine answered `timeout` already.
            let _ = responder.complete(report);
        });
    })
}

fn command(id: &str, name: &str, args: &str) -> Result<Vec<u8>, Error> {
    let payload = RawJson::parse(&format!(r#"{{"command":"{name}","args":{args}}}"#))?;
    let message = Message::new(id, MessageType::Command, SecurityLevel::Low, payload);
    let mut body = Vec::new();
    codec::json::encode(&message, &mut body);
    Ok(body)
}

fn event(id: &str, name: &str) -> Result<Vec<u8>, Error> {
    let payload = RawJson::parse(&format!(
        r#"{{"event":"{name}","data":{{"level":"info"}}}}"#
    ))?;
    let mut message = Message::new(id, MessageType::Event, SecurityLevel::Low, payload);
    message.metadata = Field::Absent;
    let mut body = Vec::new();
    codec::json::encode(&message, &mut body);
    Ok(body)
}

fn run() -> Result<(), Error> {
    let mut config = Config::default();
    // Trusted in-process callers: Low messages, and an `anonymous` role
    // (the principal of a message without a token) allowed these commands.
    config.allow_anonymous(["math:*", "text:*", "report:*", "audit:*"]);
    let engine = EngineBuilder::new(config)
        .command("math.add", add)
        .command("text.upper", upper)
        .command("report.build", build_report)
        .subscribe("audit.notice", |event: &Event<'_>| {
            println!(
                "event {} from {:?}",
                event.name(),
                event.caller().principal()
            );
            Ok(())
        })
        .start()?;

    // Every reply of `submit` goes to a sink; here, a channel.
    let (tx, replies) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let sink = engine.register_sink(move |reply: Reply<'_>| {
        if let Ok(tx) = tx.lock() {
            let _ = tx.send((reply.tag, OwnedReply::from_reply(&reply)));
        }
    });
    let messages = [
        command("m-1", "math.add", r#"{"a":2,"b":40}"#)?,
        command("m-2", "text.upper", r#"{"text":"hello"}"#)?,
        command("m-3", "report.build", "{}")?,
        command("m-4", "math.add", r#"{"a":"two"}"#)?,
        command("m-5", "no.such", "{}")?,
        event("m-6", "audit.notice")?,
    ];
    let count = messages.len();
    for (tag, body) in messages.into_iter().enumerate() {
        let tag = tag as u64;
        // `key`: messages with one key stay in order on one worker. A
        // refusal (a full queue) is answered through the sink as well.
        let submission = Submission {
            sink,
            tag,
            peer: LOCAL,
            key: tag,
            codec: Codec::Json,
            body,
        };
        if let Err(code) = engine.submit(submission) {
            println!("message {tag} refused at the intake: {code}");
        }
    }

    let mut decoder = Decoder::new(Limits::default());
    let mut received = Vec::new();
    for _ in 0..count {
        let (tag, reply) = replies
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| Error::new(Code::Timeout, "a reply is missing"))?;
        // An event without `ack` gets no envelope: only its outcome.
        let payload = if reply.body.is_empty() {
            String::new()
        } else {
            let view = decoder.decode(reply.codec, &reply.body, unix_nanos_now())?;
            view.to_message().payload.as_str().to_owned()
        };
        println!("{tag}: {:?} {payload}", reply.outcome);
        received.push((tag, reply.outcome));
    }
    received.sort_by_key(|(tag, _)| *tag);
    use mcp_engine::engine::Outcome;
    let expected = [
        Outcome::Response,
        Outcome::Response,
        Outcome::Response,
        Outcome::Error(Code::ValidationFailed),
        Outcome::Error(Code::HandlerNotFound),
        Outcome::Delivered(1),
    ];
    let outcomes: Vec<Outcome> = received.iter().map(|(_, outcome)| *outcome).collect();
    if outcomes != expected {
        return Err(Error::new(
            Code::InternalError,
            format!("outcomes {outcomes:?}, expected {expected:?}"),
        ));
    }

    let metrics = engine.metrics();
    println!(
        "accepted {}, responses {}, errors {}, events {} (latency sampled: 1 message in {TIMED_EVERY})",
        metrics.accepted,
        metrics.responses,
        metrics.total_errors(),
        metrics.events
    );
    engine.shutdown();
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embedded: {e}");
            ExitCode::FAILURE
        }
    }
}
