//! Stage route: from an admitted message to what runs it.

use crate::audit::AuditKind;
use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::message::MessageType;

use super::super::outbound::PeerReply;
use super::super::recovery::BreakerPermit;
use super::super::registry::{Action, Builtin};
use super::authorize::{authorize_command, authorize_event};
use super::context::{Context, Verdict};
use super::execute::{deliver_event, execute_command};
use super::stage::Stage;
use super::vetted::Vetted;

/// Stage route: what runs the message, by its type: a command's entry in
/// the registry, an event's subscribers, or, for a Response or an Error,
/// the command this engine sent that it answers. A command or an event is
/// then authorized and executed.
pub(crate) fn route<V: Vetted>(
    context: &Context<'_>,
    admitted: &V,
    handler: &mut Option<(usize, BreakerPermit)>,
    lap: &mut dyn FnMut(Stage),
) -> Verdict {
    match admitted.kind() {
        MessageType::Command => {
            let verdict = route_command(context, admitted, handler, lap);
            lap(Stage::Execute);
            verdict
        }
        MessageType::Event => {
            let verdict = route_event(context, admitted, lap);
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

/// A command: its entry in the registry, then authorize and execute.
fn route_command<V: Vetted>(
    context: &Context<'_>,
    admitted: &V,
    handler: &mut Option<(usize, BreakerPermit)>,
    lap: &mut dyn FnMut(Stage),
) -> Verdict {
    let Some(name) = admitted.name() else {
        return Verdict::Fail(Error::new(
            Code::ValidationFailed,
            "payload needs a string `command`",
        ));
    };
    let (index, entry) = match context.shared.registry.command_named(name) {
        Ok(found) => found,
        Err(error) => return Verdict::Fail(error),
    };
    if let Err(error) = authorize_command(entry, admitted, context.peer) {
        context.audit(AuditKind::Refused, Some(&error), admitted, name);
        return Verdict::Fail(error);
    }
    if matches!(entry.action, Action::Builtin(Builtin::Metrics)) {
        context.audit(AuditKind::AdminCommand, None, admitted, name);
    }
    lap(Stage::Route);
    execute_command(context, admitted, name, (index, entry), handler)
}

/// An event: its name, then authorize and deliver to its subscribers.
fn route_event<V: Vetted>(
    context: &Context<'_>,
    admitted: &V,
    lap: &mut dyn FnMut(Stage),
) -> Verdict {
    let Some(name) = admitted.name() else {
        return Verdict::Fail(Error::new(
            Code::ValidationFailed,
            "payload needs a string `event`",
        ));
    };
    if let Err(error) = authorize_event(admitted, name, context.peer) {
        context.audit(AuditKind::Refused, Some(&error), admitted, name);
        return Verdict::Fail(error);
    }
    lap(Stage::Route);
    deliver_event(context, admitted, name)
}
