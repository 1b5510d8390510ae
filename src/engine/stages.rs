//! The stages after admission, as plain functions over one message: route,
//! authorize, execute (`dispatch` picks by the message's type). The worker
//! calls them on the message it decoded and admitted itself (sharded), or
//! on one admitted by a front-stage thread (staged); [`Vetted`] is what
//! both give them.

use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Code, Error};
use crate::json::{JsonRef, RawJson};
use crate::message::{MessageType, SecurityLevel, unix_nanos_now};
use crate::security::{
    Admitted, AdmittedOwned, ReplyProtection, Target, VerifiedToken, renew_token,
};
use crate::sync::Arc;

use super::handler::{Answer, Caller, Event, Request};
use super::mailbox::Mailbox;
use super::metrics::{Counters, Stage};
use super::outbound::PeerReply;
use super::pending::{AnswerInbox, Deferral, PendingCall};
use super::recovery::Admission as BreakerAdmission;
use super::registry::{Action, Builtin};
use super::reply::ReplyTo;
use super::shared::Shared;
use super::sink::Destination;

/// A message that passed every check up to routing: what the later stages
/// read of it.
pub(crate) trait Vetted {
    fn kind(&self) -> MessageType;
    fn level(&self) -> SecurityLevel;
    fn token(&self) -> Option<&VerifiedToken>;
    fn protection(&self) -> &ReplyProtection;
    fn name(&self) -> Option<&str>;
    fn resource(&self) -> Option<&str>;
    fn payload(&self) -> JsonRef<'_>;
    fn authorize(&self, declared: Target<'_>, peer: IpAddr) -> Result<(), Error>;
}

impl Vetted for Admitted<'_> {
    fn kind(&self) -> MessageType {
        self.kind
    }
    fn level(&self) -> SecurityLevel {
        self.level
    }
    fn token(&self) -> Option<&VerifiedToken> {
        self.token
    }
    fn protection(&self) -> &ReplyProtection {
        &self.protection
    }
    fn name(&self) -> Option<&str> {
        Admitted::name(self)
    }
    fn resource(&self) -> Option<&str> {
        Admitted::resource(self)
    }
    fn payload(&self) -> JsonRef<'_> {
        Admitted::payload(self)
    }
    fn authorize(&self, declared: Target<'_>, peer: IpAddr) -> Result<(), Error> {
        Admitted::authorize(self, declared, peer)
    }
}

/// A message admitted on a front-stage thread, with its payload parsed
/// again on this one.
pub(crate) struct StagedView<'a> {
    pub(crate) admitted: &'a AdmittedOwned,
    pub(crate) payload: JsonRef<'a>,
}

impl Vetted for StagedView<'_> {
    fn kind(&self) -> MessageType {
        self.admitted.kind
    }
    fn level(&self) -> SecurityLevel {
        self.admitted.level
    }
    fn token(&self) -> Option<&VerifiedToken> {
        self.admitted.token.as_ref()
    }
    fn protection(&self) -> &ReplyProtection {
        &self.admitted.protection
    }
    fn name(&self) -> Option<&str> {
        let key = match self.admitted.kind {
            MessageType::Command => "command",
            MessageType::Event => "event",
            MessageType::Response | MessageType::Error => return None,
        };
        self.payload.get(key).and_then(JsonRef::as_str)
    }
    fn resource(&self) -> Option<&str> {
        match self.admitted.kind {
            MessageType::Command => self.payload.get("resource").and_then(JsonRef::as_str),
            _ => None,
        }
    }
    fn payload(&self) -> JsonRef<'_> {
        self.payload
    }
    fn authorize(&self, declared: Target<'_>, peer: IpAddr) -> Result<(), Error> {
        self.admitted.authorize(declared, self.resource(), peer)
    }
}

/// What a message comes to, before the reply is written.
pub(crate) enum Verdict {
    /// Answer with a Response carrying `result`.
    Respond(RawJson),
    /// Answer with an Error.
    Fail(Error),
    /// A responder will answer (the pending call, if this message made
    /// it: the timer watches it once the worker is done with the message).
    Deferred(Option<Arc<PendingCall>>),
    /// An Event went to this many handlers; `ack`: answer with a Response.
    Delivered { count: u32, ack: bool },
    /// A Response or Error the engine received.
    Absorbed,
    /// Admitted on a front-stage worker: on to the back stage (staged).
    Forward(Box<super::mailbox::Staged>),
}

/// What the route and execute stages need to know about the message.
pub(crate) struct Context<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) mailbox: &'a Arc<Mailbox>,
    pub(crate) counters: &'a Counters,
    pub(crate) to: Destination,
    pub(crate) peer: IpAddr,
    pub(crate) id: &'a str,
    /// The id a Response or Error answers.
    pub(crate) correlation: Option<&'a str>,
    pub(crate) ack: bool,
    pub(crate) accepted_at: u64,
    pub(crate) started: u64,
    /// `timeout_ms` of the config the message runs under (one snapshot a
    /// message: a config load is a hundred instructions).
    pub(crate) timeout_ms: u64,
}

/// Stages route, authorize and execute, by the message's type.
pub(crate) fn dispatch<V: Vetted>(
    context: &Context<'_>,
    admitted: &V,
    handler: &mut Option<(usize, BreakerAdmission)>,
    lap: &mut dyn FnMut(Stage),
) -> Verdict {
    match admitted.kind() {
        MessageType::Command => {
            let verdict = command(context, admitted, handler, lap);
            lap(Stage::Execute);
            verdict
        }
        MessageType::Event => {
            let verdict = event(context, admitted, lap);
            lap(Stage::Execute);
            verdict
        }
        MessageType::Response | MessageType::Error => {
            let reply = PeerReply {
                kind: admitted.kind(),
                payload: RawJson::from_json(admitted.payload()),
            };
            let matched = context
                .correlation
                .is_some_and(|id| context.shared.outbound.complete(id, context.to, reply));
            if !matched {
                context.counters.unmatched_reply();
            }
            Verdict::Absorbed
        }
    }
}

fn caller<'a, V: Vetted>(context: &Context<'_>, admitted: &'a V) -> Caller<'a> {
    Caller {
        token: admitted.token(),
        peer: context.peer,
        level: admitted.level(),
    }
}

fn command<V: Vetted>(
    context: &Context<'_>,
    admitted: &V,
    handler_out: &mut Option<(usize, BreakerAdmission)>,
    lap: &mut dyn FnMut(Stage),
) -> Verdict {
    let shared = context.shared;
    let Some(name) = admitted.name() else {
        return Verdict::Fail(Error::new(
            Code::ValidationFailed,
            "payload needs a string `command`",
        ));
    };
    // Stage: route.
    let (index, entry) = match shared.registry.command_named(name) {
        Ok(found) => found,
        Err(error) => return Verdict::Fail(error),
    };
    // Stage: authorize.
    let authorized = match &entry.action {
        Action::Builtin(builtin) => authorize_builtin(*builtin, admitted),
        Action::Handler(_) => admitted.authorize(entry.target(), context.peer),
    };
    if let Err(error) = authorized {
        return Verdict::Fail(error);
    }
    lap(Stage::Route);

    // Stage: execute.
    let timeout_ms = entry.spec.timeout().unwrap_or(context.timeout_ms);
    let deadline = context
        .accepted_at
        .saturating_add(timeout_ms.saturating_mul(1_000_000));
    context.mailbox.watch.set_deadline(deadline);
    let payload = admitted.payload();
    let handler = match &entry.action {
        Action::Builtin(builtin) => return builtin_result(shared, *builtin, admitted),
        Action::Handler(handler) => handler,
    };
    // The message's start stands in for now: a breaker counts in
    // milliseconds, and a clock read is 6% of a Standard message's time.
    let breaker = match entry
        .breaker
        .admit(entry.spec.breaker_policy(), context.started)
    {
        Ok(admission) => admission,
        Err(error) => return Verdict::Fail(error),
    };
    *handler_out = Some((index, breaker));
    let open = || -> Result<Arc<PendingCall>, Error> {
        context.mailbox.reserve_deferred()?;
        let reply_to = ReplyTo {
            to: context.to,
            id: Box::from(context.id),
            level: admitted.level(),
            protection: admitted.protection().clone(),
            handler: Some((index, breaker)),
            accepted_at: context.accepted_at,
        };
        Ok(Arc::new(PendingCall::new(
            reply_to,
            deadline,
            Arc::clone(context.mailbox) as Arc<dyn AnswerInbox>,
        )))
    };
    let retry = entry.spec.retry_policy();
    let mut attempt = 0u32;
    let (answer, taken) = loop {
        let deferral = Deferral::new(&open);
        let request = Request {
            id: context.id,
            command: name,
            args: payload.get("args"),
            resource: admitted.resource(),
            caller: caller(context, admitted),
            deferral: Some(&deferral),
        };
        let returned = catch_unwind(AssertUnwindSafe(|| handler.handle(&request)));
        let answer = match returned {
            Ok(answer) => answer,
            Err(_) => {
                context.counters.panic();
                Err(Error::new(Code::InternalError, "the handler failed"))
            }
        };
        let taken = deferral.into_taken();
        attempt += 1;
        if let Err(error) = &answer
            && taken.is_none()
            && error.is_retryable()
            && attempt < retry.max_attempts
        {
            let delay = retry.delay(attempt - 1, jitter(context.started, attempt));
            let delay_nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
            if shared.clock.now().saturating_add(delay_nanos) < deadline {
                std::thread::sleep(delay);
                continue;
            }
        }
        break (answer, taken);
    };
    match (answer, taken) {
        (Ok(Answer::Deferred), Some(call)) => {
            // The completion (or the timer) reports to the breaker.
            *handler_out = None;
            Verdict::Deferred(Some(call))
        }
        (Ok(Answer::Deferred), None) => Verdict::Fail(Error::new(
            Code::InternalError,
            "the handler deferred without taking its responder",
        )),
        (answer, None) => match answer {
            Ok(Answer::Result(result)) => Verdict::Respond(result),
            Ok(Answer::Deferred) => Verdict::Deferred(None),
            Err(error) => Verdict::Fail(error),
        },
        (answer, Some(call)) => {
            // The handler took a responder and returned an answer too: the
            // first to claim the call answers.
            if call.claim_answer() {
                context.mailbox.release_deferred();
                match answer {
                    Ok(Answer::Result(result)) => Verdict::Respond(result),
                    Ok(Answer::Deferred) => Verdict::Deferred(None),
                    Err(error) => Verdict::Fail(error),
                }
            } else {
                // The responder answered already; its completion is queued
                // and reports to the breaker.
                *handler_out = None;
                Verdict::Deferred(Some(call))
            }
        }
    }
}

/// A well-mixed number for retry jitter (splitmix64 of the message's start
/// time and the attempt): spreads retries without a shared generator.
fn jitter(started: u64, attempt: u32) -> u64 {
    let mut z = started.wrapping_add(u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn authorize_builtin<V: Vetted>(builtin: Builtin, admitted: &V) -> Result<(), Error> {
    let allowed = match builtin {
        Builtin::Ping | Builtin::Renew => admitted.token().is_some(),
        Builtin::Metrics => admitted
            .token()
            .is_some_and(|token| token.roles.iter().any(|role| &**role == "admin")),
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::new(Code::AccessDenied, "not allowed"))
    }
}

fn builtin_result<V: Vetted>(shared: &Shared, builtin: Builtin, admitted: &V) -> Verdict {
    match builtin {
        Builtin::Ping => Verdict::Respond(RawJson::from_compact(b"{\"pong\":true}".to_vec())),
        Builtin::Renew => {
            let Some(token) = admitted.token() else {
                return Verdict::Fail(Error::new(Code::AuthenticationFailed, "token missing"));
            };
            let keyring = shared.security.keyring.load();
            match renew_token(
                &keyring,
                token,
                shared.security.token_ttl_secs(),
                unix_nanos_now(),
            ) {
                Ok(renewed) => {
                    let mut out = Vec::with_capacity(renewed.len() + 12);
                    out.extend_from_slice(b"{\"token\":");
                    crate::json::write::write_str(&mut out, &renewed);
                    out.push(b'}');
                    Verdict::Respond(RawJson::from_compact(out))
                }
                Err(error) => Verdict::Fail(error),
            }
        }
        Builtin::Metrics => {
            let depths = shared.mailboxes().iter().map(|m| m.jobs.len()).collect();
            let snapshot = shared.metrics.snapshot(depths);
            Verdict::Respond(RawJson::from_compact(snapshot.to_json().into_bytes()))
        }
    }
}

fn event<V: Vetted>(context: &Context<'_>, admitted: &V, lap: &mut dyn FnMut(Stage)) -> Verdict {
    let Some(name) = admitted.name() else {
        return Verdict::Fail(Error::new(
            Code::ValidationFailed,
            "payload needs a string `event`",
        ));
    };
    if let Err(error) = admitted.authorize(Target::of_name(name), context.peer) {
        return Verdict::Fail(error);
    }
    lap(Stage::Route);
    let event = Event {
        id: context.id,
        name,
        data: admitted.payload().get("data"),
        caller: caller(context, admitted),
    };
    let mut count = 0u32;
    for subscriber in context.shared.registry.subscribers(name) {
        match catch_unwind(AssertUnwindSafe(|| subscriber.handle(&event))) {
            Ok(Ok(())) => count += 1,
            Ok(Err(_)) => {}
            Err(_) => context.counters.panic(),
        }
    }
    Verdict::Delivered {
        count,
        ack: context.ack,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The stages after admission, one message at a time, on this thread:
    //! no workers, no queues.
    use super::*;
    use crate::codec::{self, Codec, Decoder, Limits};
    use crate::config::{Config, RoleConfig};
    use crate::engine::errors::ErrorLog;
    use crate::engine::registry::{CommandSpec, Registry};
    use crate::engine::sink::SinkId;
    use crate::engine::thread_plan::ThreadPlan;
    use crate::message::Message;
    use crate::security::{Admission, SecurityState};
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
        Arc::new(Shared::new(registry, config, security, &plan, errors))
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
        let mailbox = Arc::new(Mailbox::new(4, 4, 4, crate::sync::thread::current()));
        let context = Context {
            shared,
            mailbox: &mailbox,
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
        dispatch(&context, &staged, &mut handler, &mut |_| {})
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
}
