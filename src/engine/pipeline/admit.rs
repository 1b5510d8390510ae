//! Stage admit: the security checks, in the protocol's order (token,
//! level, signature, replay, decryption; docs/protocol.md sections 4 to
//! 7a). The checks themselves are the security layer's
//! ([`Admission`](crate::security::Admission)).

use std::net::IpAddr;

use crate::error::Error;
use crate::message::MessageView;
use crate::security::{Admission, Admitted};

/// Admits `message` from `peer` at `wall_now`, or refuses it with the
/// security category's code; `principal` is the token's principal once it
/// verified (for the audit log of a refusal).
#[inline]
pub(crate) fn admit<'a>(
    admission: &'a mut Admission,
    message: &'a MessageView<'_>,
    peer: IpAddr,
    wall_now: i128,
    principal: &mut Option<&'a str>,
) -> Result<Admitted<'a>, Error> {
    admission.admit_noting(message, peer, wall_now, principal)
}
