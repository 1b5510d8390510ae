//! Stage execute: a command's handler or a built-in, an event's
//! subscribers.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::message::unix_nanos_now;
use crate::security::renew_token;
use crate::sync::Arc;

use super::super::handler::{Answer, Caller, Event, Request};
use super::super::pending::{AnswerInbox, Deferral, PendingCall};
use super::super::recovery::BreakerPermit;
use super::super::registry::{Action, Builtin, CommandEntry};
use super::super::reply::ReplyTo;
use super::super::shared::Shared;
use super::context::{Context, Verdict};
use super::vetted::Vetted;

/// A command: its handler (with the command's deadline, breaker, retries
/// and deferral), or a built-in's result.
pub(crate) fn execute_command<V: Vetted>(
    context: &Context<'_>,
    admitted: &V,
    name: &str,
    (index, entry): (usize, &CommandEntry),
    handler_out: &mut Option<(usize, BreakerPermit)>,
) -> Verdict {
    let shared = context.shared;
    let timeout_ms = entry.spec.timeout().unwrap_or(context.timeout_ms);
    let deadline = context
        .accepted_at
        .saturating_add(timeout_ms.saturating_mul(1_000_000));
    context.worker_shared.watch.set_deadline(deadline);
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
        context.worker_shared.reserve_deferred()?;
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
            Arc::clone(context.worker_shared) as Arc<dyn AnswerInbox>,
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
        (Ok(Answer::Deferred(_)), Some(call)) => {
            // The completion (or the timer) reports to the breaker.
            *handler_out = None;
            Verdict::Deferred(Some(call))
        }
        (Ok(Answer::Deferred(_)), None) => Verdict::Fail(Error::new(
            Code::InternalError,
            "the handler deferred with an answer not its own",
        )),
        (answer, None) => match answer {
            Ok(Answer::Result(result)) => Verdict::Respond(result),
            Ok(Answer::Deferred(_)) => Verdict::Deferred(None),
            Err(error) => Verdict::Fail(error),
        },
        (answer, Some(call)) => {
            // The handler took a responder and returned an answer too: the
            // first to claim the call answers.
            if call.claim_answer() {
                context.worker_shared.release_deferred();
                match answer {
                    Ok(Answer::Result(result)) => Verdict::Respond(result),
                    Ok(Answer::Deferred(_)) => Verdict::Deferred(None),
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
pub(super) fn jitter(started: u64, attempt: u32) -> u64 {
    let mut z = started.wrapping_add(u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
            let depths = shared
                .workers_shared()
                .iter()
                .map(|m| m.jobs.len())
                .collect();
            let snapshot = shared.metrics.snapshot(depths);
            Verdict::Respond(RawJson::from_compact(snapshot.to_json().into_bytes()))
        }
    }
}

/// An event: handed to each of its subscribers.
pub(crate) fn deliver_event<V: Vetted>(context: &Context<'_>, admitted: &V, name: &str) -> Verdict {
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

fn caller<'a, V: Vetted>(context: &Context<'_>, admitted: &'a V) -> Caller<'a> {
    Caller {
        token: admitted.token(),
        peer: context.peer,
        level: admitted.level(),
    }
}
