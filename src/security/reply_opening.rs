//! Opening a reply as its receiver does: its signature checked if it has
//! one, its payload decrypted if it is encrypted. What the client and the
//! engine's own calls both do with a reply.

use super::cipher::{CipherScratch, open_payload};
use super::keyring::Keyring;
use super::signature::{SignatureScratch, verify_signature};
use crate::error::Error;
use crate::message::{Field, MessageView};

/// Checks `reply`'s signature if it is signed, and decrypts its payload if
/// it is encrypted: the plaintext (in `cipher`'s buffer) then, `None` for
/// a plain payload. Which protection the reply's level requires is the
/// caller's to check.
pub(crate) fn open_reply<'s>(
    reply: &MessageView<'_>,
    keyring: &Keyring,
    now: i128,
    signatures: &mut SignatureScratch,
    cipher: &'s mut CipherScratch,
) -> Result<Option<&'s mut [u8]>, Error> {
    if matches!(reply.security().signature, Field::Present(_)) {
        verify_signature(reply, keyring, now, signatures)?;
    }
    if !matches!(reply.security().encryption_info, Field::Present(_)) {
        return Ok(None);
    }
    let (plaintext, _) = open_payload(reply, keyring, now, cipher)?;
    Ok(Some(plaintext))
}
