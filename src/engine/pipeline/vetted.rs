//! What the stages after admission read of a message: [`Vetted`], admitted
//! on this thread or, staged, on a front-stage one.

use std::net::IpAddr;

use crate::error::Error;
use crate::json::JsonRef;
use crate::message::{MessageType, SecurityLevel};
use crate::security::{Admitted, ReplyProtection, Target, VerifiedToken};

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
