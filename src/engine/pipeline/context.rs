//! The [`Context`] a message runs in after admission, and the [`Verdict`]
//! it comes to.

use std::net::IpAddr;

use crate::audit::{AuditEvent, AuditKind};
use crate::error::Error;
use crate::json::RawJson;
use crate::message::unix_nanos_now;
use crate::sync::Arc;

use super::super::metrics::Counters;
use super::super::pending::PendingCall;
use super::super::shared::Shared;
use super::super::sink::Destination;
use super::super::staged::Staged;
use super::super::worker_shared::WorkerShared;
use super::vetted::Vetted;

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
    Forward(Box<Staged>),
}

/// What the route and execute stages need to know about the message.
pub(crate) struct Context<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) worker_shared: &'a Arc<WorkerShared>,
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

impl Context<'_> {
    /// Tells the audit log (if there is one) of `kind` for the message of
    /// `admitted` naming `name`: a refusal with its `error`, or an admin
    /// command.
    pub(crate) fn audit<V: Vetted>(
        &self,
        kind: AuditKind,
        error: Option<&Error>,
        admitted: &V,
        name: &str,
    ) {
        self.shared.audit(|| {
            let mut event = match error {
                Some(error) => AuditEvent::refused(unix_nanos_now(), error.code(), error.message()),
                None => AuditEvent::note(unix_nanos_now(), kind, "run"),
            };
            event.kind = kind;
            event.principal = admitted.token().map(|token| token.subject.clone());
            event.peer = Some(self.peer);
            event.message_id = Some(Box::from(self.id));
            event.command = Some(Box::from(name));
            event
        });
    }
}
