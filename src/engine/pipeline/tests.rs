//! The stages after admission, one message at a time, on this thread:
//! no workers, no queues.
use std::net::IpAddr;

use super::execute::jitter;
use super::*;
use crate::codec::{self, Codec, Decoder, Limits};
use crate::config::{Config, RoleConfig};
use crate::engine::error_log::ErrorLog;
use crate::engine::handler::{Answer, Request};
use crate::engine::registry::{CommandSpec, Registry};
use crate::engine::shared::Shared;
use crate::engine::sink::Destination;
use crate::engine::sink::SinkId;
use crate::engine::staged::StagedView;
use crate::engine::thread_plan::ThreadPlan;
use crate::engine::worker_shared::WorkerShared;
use crate::error::Code;
use crate::json::RawJson;
use crate::message::Message;
use crate::message::{MessageType, SecurityLevel, unix_nanos_now};
use crate::security::{Admission, SecurityState};
use crate::sync::Arc;
use std::net::Ipv4Addr;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn shared() -> Arc<Shared> {
    let mut config = Config::default();
    config.security.min_security_level = SecurityLevel::Low;
    let anyone = RoleConfig {
        allow: vec!["demo:*".into()],
        deny: vec!["demo:secret".into()],
        ..RoleConfig::default()
    };
    config
        .authorization
        .roles
        .insert("anonymous".into(), anyone);
    let mut registry = Registry::with_builtins();
    for name in ["demo.echo", "demo.secret"] {
        registry
            .command(
                CommandSpec::new(name),
                Arc::new(|request: &Request<'_>| {
                    Ok(Answer::Result(
                        request
                            .args()
                            .map_or_else(RawJson::null, RawJson::from_json),
                    ))
                }),
            )
            .unwrap();
    }
    let security = Arc::new(SecurityState::from_config(&config, unix_nanos_now()).unwrap());
    let plan = ThreadPlan::of(&config);
    let errors = ErrorLog::new(2, 8, Default::default());
    Arc::new(Shared::new(
        registry,
        config,
        security,
        &plan,
        errors,
        crate::engine::clock::Clock::new(),
    ))
}

/// Decodes and admits a Low command, then runs route, authorize and
/// execute on it as a back-stage worker would.
fn run(shared: &Arc<Shared>, id: &str, payload: &str) -> Verdict {
    let message = Message::new(
        id,
        MessageType::Command,
        SecurityLevel::Low,
        RawJson::parse(payload).unwrap(),
    );
    let mut body = Vec::new();
    codec::json::encode(&message, &mut body);
    let mut decoder = Decoder::new(Limits::default());
    let now = unix_nanos_now();
    let view = decoder.decode_json(&body, now).unwrap();
    let mut admission = Admission::new(Arc::clone(&shared.security));
    let owned = admission.admit(&view, PEER, now).unwrap().to_owned_parts();
    let mut text = owned.payload.as_bytes().to_vec();
    let mut parser = crate::json::Parser::new(crate::json::MAX_VALUE_DEPTH);
    let mut tape = Vec::new();
    let mut lease = crate::json::TapeLease::take(&mut tape);
    parser.parse(&mut text, &mut lease.tape).unwrap();
    let staged = StagedView {
        admitted: &owned,
        payload: lease.value(0).unwrap(),
    };
    let worker_shared = Arc::new(WorkerShared::new(4, 4, 4, crate::sync::thread::current()));
    let context = Context {
        shared,
        worker_shared: &worker_shared,
        counters: shared.metrics.counters(0),
        to: Destination {
            sink: SinkId(0),
            tag: 0,
            codec: Codec::Json,
        },
        peer: PEER,
        id,
        correlation: None,
        ack: false,
        accepted_at: shared.clock.now(),
        started: shared.clock.now(),
        timeout_ms: shared.config.load().timeout_ms,
    };
    let mut handler = None;
    route(&context, &staged, &mut handler, &mut |_| {})
}

fn code(verdict: Verdict) -> Option<Code> {
    match verdict {
        Verdict::Fail(error) => Some(error.code()),
        _ => None,
    }
}

#[test]
fn route_authorize_and_execute_one_by_one() {
    let shared = shared();
    match run(&shared, "s-1", r#"{"command":"demo.echo","args":[1,2]}"#) {
        Verdict::Respond(result) => assert_eq!(result.as_str(), "[1,2]"),
        _ => panic!("echo should answer"),
    }
    // Route: no handler.
    assert_eq!(
        code(run(&shared, "s-2", r#"{"command":"demo.none"}"#)),
        Some(Code::HandlerNotFound)
    );
    // Authorize: a deny rule, and a resource outside the handler's.
    assert_eq!(
        code(run(&shared, "s-3", r#"{"command":"demo.secret"}"#)),
        Some(Code::AccessDenied)
    );
    assert_eq!(
        code(run(
            &shared,
            "s-4",
            r#"{"command":"demo.echo","resource":"other/x"}"#
        )),
        Some(Code::AccessDenied)
    );
    // Built-ins want a principal: an anonymous ping is refused.
    assert_eq!(
        code(run(&shared, "s-5", r#"{"command":"sys.ping"}"#)),
        Some(Code::AccessDenied)
    );
}

#[test]
fn jitter_spreads_and_repeats() {
    assert_eq!(jitter(5, 1), jitter(5, 1));
    assert_ne!(jitter(5, 1), jitter(5, 2));
    assert_ne!(jitter(5, 1), jitter(6, 1));
}
