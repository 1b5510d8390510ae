//! What only the staged topology needs: a message admitted on a
//! front-stage worker, owned on its way to the back stage, and the view
//! the back stage's stages read of it.

use std::net::IpAddr;

use crate::error::Error;
use crate::json::JsonRef;
use crate::message::{MessageType, SecurityLevel};
use crate::security::{AdmittedOwned, ReplyProtection, Target, VerifiedToken};

use super::pipeline::Vetted;

/// A message admitted by a front-stage worker, on its way to the back
/// stage: everything routing and the reply need, owned.
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) admitted: AdmittedOwned,
    pub(crate) id: Box<str>,
    pub(crate) correlation: Option<Box<str>>,
    pub(crate) ack: bool,
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
