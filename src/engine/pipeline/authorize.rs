//! Stage authorize: whether the message's principal may do what it asks
//! (docs/protocol.md section 10).

use std::net::IpAddr;

use crate::error::{Code, Error};
use crate::security::Target;

use super::super::registry::{Action, Builtin, CommandEntry};
use super::vetted::Vetted;

/// A command: a built-in by its own rule, a handler by the policy over the
/// command's declared resource and action.
pub(crate) fn authorize_command<V: Vetted>(
    entry: &CommandEntry,
    admitted: &V,
    peer: IpAddr,
) -> Result<(), Error> {
    match &entry.action {
        Action::Builtin(builtin) => authorize_builtin(*builtin, admitted),
        Action::Handler(_) => admitted.authorize(entry.target(), peer),
    }
}

/// An event: the policy over its name.
pub(crate) fn authorize_event<V: Vetted>(
    admitted: &V,
    name: &str,
    peer: IpAddr,
) -> Result<(), Error> {
    admitted.authorize(Target::of_name(name), peer)
}

/// A built-in command: any authenticated caller, `sys.metrics` an admin.
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
