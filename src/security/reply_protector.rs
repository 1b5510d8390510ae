//! [`ReplyProtector`]: one worker's protection of the replies it writes,
//! as the request was protected (encrypt, then sign; docs/protocol.md
//! sections 5 and 6). Apart from [`Admission`](super::Admission), which
//! checks what comes in: the two share the keys (each caches the keyring)
//! and nothing else.

// Public for the tests and benches (`security::test_support`, feature
// test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use super::admission::SecurityState;
use super::cipher::{CipherScratch, NonceSource, seal_payload};
use super::keyring::Keyring;
use super::protected_response::{
    Protecting, ReplyProtection, ResponseTexts, write_protected_response,
};
use super::signature::{SignatureScratch, sign_message};
use crate::codec::{ResponseParts, encode_response};
use crate::error::Error;
use crate::json::RawJson;
use crate::message::Message;
use crate::sync::{Arc, CellCache};

/// One worker's reply protection: its cached keys, its block of nonces
/// and its scratch space, so that protecting a reply allocates nothing
/// once warm.
pub struct ReplyProtector {
    keyring: CellCache<Keyring>,
    nonces: NonceSource,
    cipher: CipherScratch,
    signatures: SignatureScratch,
    texts: ResponseTexts,
}

impl std::fmt::Debug for ReplyProtector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyProtector").finish_non_exhaustive()
    }
}

impl ReplyProtector {
    /// A worker's reply protection over the shared `state`'s keys and
    /// nonce sequence.
    pub fn new(state: &Arc<SecurityState>) -> ReplyProtector {
        ReplyProtector {
            keyring: state.keyring.cache(),
            nonces: NonceSource::new(Arc::clone(&state.nonces)),
            cipher: CipherScratch::default(),
            signatures: SignatureScratch::default(),
            texts: ResponseTexts::default(),
        }
    }

    /// Appends to `out` the Response `parts` describe, protected as
    /// `protection` says, in JSON: the bytes [`protect_reply`] then the
    /// encoder make, written without building the [`Message`] (see
    /// `protected_response.rs`). One needing no protection loads no keys.
    ///
    /// [`protect_reply`]: Self::protect_reply
    #[inline]
    pub(crate) fn write_response(
        &mut self,
        parts: &ResponseParts<'_>,
        protection: &ReplyProtection,
        now: i128,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if protection.is_empty() {
            encode_response(parts, None, None, out);
            return Ok(());
        }
        let with = Protecting {
            keyring: self.keyring.load(),
            now,
            nonces: &mut self.nonces,
            cipher: &mut self.cipher,
            signatures: &mut self.signatures,
        };
        write_protected_response(parts, protection, with, &mut self.texts, out)
    }

    /// Protects `reply` as `protection` says: its payload becomes
    /// `plaintext` sealed under the encryption key (if any), then the whole
    /// envelope is signed (if a key is given). The reply's id, type and
    /// timestamp must be final.
    pub fn protect_reply(
        &mut self,
        reply: &mut Message,
        plaintext: RawJson,
        protection: &ReplyProtection,
        now: i128,
    ) -> Result<(), Error> {
        let keyring = self.keyring.load();
        match &protection.encryption_key {
            Some(key_id) => seal_payload(
                reply,
                &plaintext,
                keyring,
                key_id,
                now,
                &mut self.nonces,
                &mut self.cipher,
            )?,
            None => reply.payload = plaintext,
        }
        if let Some(key_id) = &protection.signature_key {
            sign_message(reply, keyring, key_id, now, &mut self.signatures)?;
        }
        Ok(())
    }
}
