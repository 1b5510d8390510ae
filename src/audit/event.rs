//! One audit event, and its JSON line.

use std::io::Write as _;
use std::net::IpAddr;

use crate::error::Code;
use crate::json::write::write_str;
use crate::message::Timestamp;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// A message refused by a security check (its code says which), or
    /// over its principal's rate limit.
    Refused,
    /// A command only the admin role may run, run.
    AdminCommand,
    /// The configuration and keys reloaded (SIGHUP), or a reload refused.
    Reload,
}

impl AuditKind {
    /// The name in the line's `event` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditKind::Refused => "refused",
            AuditKind::AdminCommand => "admin_command",
            AuditKind::Reload => "reload",
        }
    }
}

/// One decision, as the engine saw it. Holds no payload, token, key or
/// signature: only what the line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// When, in unix nanoseconds.
    pub at: i128,
    /// What happened.
    pub kind: AuditKind,
    /// The protocol's code of a refusal.
    pub code: Option<Code>,
    /// The principal, when a token verified.
    pub principal: Option<Box<str>>,
    /// The peer's address.
    pub peer: Option<IpAddr>,
    /// The message's id.
    pub message_id: Option<Box<str>>,
    /// The command (or event) named, when it could be read.
    pub command: Option<Box<str>>,
    /// Why, in the engine's words (an error's message; a reload's keys).
    pub detail: Box<str>,
}

impl AuditEvent {
    /// A refusal of `code`, with `detail`, at `at`.
    pub fn refused(at: i128, code: Code, detail: &str) -> AuditEvent {
        AuditEvent {
            at,
            kind: AuditKind::Refused,
            code: Some(code),
            principal: None,
            peer: None,
            message_id: None,
            command: None,
            detail: Box::from(detail),
        }
    }

    /// An event of `kind` with `detail`, at `at`.
    pub fn note(at: i128, kind: AuditKind, detail: &str) -> AuditEvent {
        AuditEvent {
            code: None,
            kind,
            ..AuditEvent::refused(at, Code::InternalError, detail)
        }
    }

    /// Appends the JSON line: `count` events alike, the first at
    /// `self.at` and (when more than one) the last at `last_at`.
    pub(crate) fn write_line(&self, out: &mut Vec<u8>, count: u64, last_at: Option<i128>) {
        out.extend_from_slice(b"{\"time\":");
        write_str(out, Timestamp::from_unix_nanos(self.at).as_str());
        if let Some(last_at) = last_at {
            out.extend_from_slice(b",\"until\":");
            write_str(out, Timestamp::from_unix_nanos(last_at).as_str());
        }
        out.extend_from_slice(b",\"event\":");
        write_str(out, self.kind.as_str());
        if let Some(code) = self.code {
            out.extend_from_slice(b",\"code\":");
            write_str(out, code.as_str());
        }
        let optional = [
            ("principal", self.principal.as_deref()),
            ("message_id", self.message_id.as_deref()),
            ("command", self.command.as_deref()),
        ];
        if let Some(peer) = self.peer {
            out.extend_from_slice(b",\"peer\":");
            write_str(out, &peer.to_string());
        }
        for (name, value) in optional {
            let _ = write!(out, ",\"{name}\":");
            match value {
                Some(value) => write_str(out, value),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b",\"detail\":");
        write_str(out, &self.detail);
        let _ = writeln!(out, ",\"count\":{count}}}");
    }
}
