//! Writing a Response, protected as its request was, straight into bytes.
//!
//! The general path builds an owned [`Message`](crate::Message), seals its
//! payload, canonicalizes it (parsing its texts back) to sign it, then
//! encodes it: a dozen allocations and the same strings written three
//! times. A Response the engine writes has a fixed shape
//! (`codec/response.rs`), so here each piece is written once: the payload
//! sealed in the worker's cipher scratch, the signature over the signed
//! input written from the parts, then the envelope.

// Public for the tests (`security::test_support`, feature test-support);
// the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use super::b64u;
use super::cipher::{CipherScratch, NonceSource, sealing_key};
use super::key_id::KeyId;
use super::keyring::Keyring;
use super::signature::{SignatureScratch, sign_response};
use crate::codec::{ResponseParts, SealedPayload, encode_response};
use crate::error::Error;
use crate::message::MessageType;

/// How a reply must be protected: as the request was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyProtection {
    /// Sign with this key (the request's signature `kid`).
    pub signature_key: Option<KeyId>,
    /// Encrypt under this key (the request's `key_id`).
    pub encryption_key: Option<KeyId>,
}

impl ReplyProtection {
    /// Whether the reply is neither signed nor encrypted.
    pub fn is_empty(&self) -> bool {
        self.signature_key.is_none() && self.encryption_key.is_none()
    }
}

/// The texts a protected Response carries, kept between replies.
#[derive(Debug, Default)]
pub(crate) struct ResponseTexts {
    ciphertext: String,
    nonce: String,
    signature: String,
}

/// What protecting a Response borrows from its worker's admission.
pub(crate) struct Protecting<'a> {
    pub(crate) keyring: &'a Keyring,
    pub(crate) now: i128,
    pub(crate) nonces: &'a mut NonceSource,
    pub(crate) cipher: &'a mut CipherScratch,
    pub(crate) signatures: &'a mut SignatureScratch,
}

/// Appends to `out` the Response `parts` describe, protected as
/// `protection` says: its payload sealed under the encryption key (if
/// any), then the whole signed (if a key is given). Fails, writing
/// nothing, when a key is not usable, with the general path's errors in
/// its order.
pub(crate) fn write_protected_response(
    parts: &ResponseParts<'_>,
    protection: &ReplyProtection,
    with: Protecting<'_>,
    texts: &mut ResponseTexts,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let ResponseTexts {
        ciphertext,
        nonce: nonce_text,
        signature,
    } = texts;
    let sealed = match &protection.encryption_key {
        None => None,
        Some(key_id) => {
            let key = sealing_key(with.keyring, key_id, with.now)?;
            let nonce = with.cipher.seal(
                key,
                with.nonces,
                (parts.id, MessageType::Response, parts.timestamp),
                &[b"{\"result\":", parts.result.as_bytes(), b"}"],
            )?;
            ciphertext.clear();
            b64u::encode_into(with.cipher.sealed(), ciphertext);
            nonce_text.clear();
            b64u::encode_into(&nonce, nonce_text);
            Some(SealedPayload {
                key_id,
                nonce: nonce_text,
                ciphertext,
            })
        }
    };
    let signed = match &protection.signature_key {
        None => None,
        Some(key_id) => {
            signature.clear();
            sign_response(
                parts,
                sealed.as_ref(),
                with.keyring,
                key_id,
                with.now,
                with.signatures,
                signature,
            )?;
            Some(signature.as_str())
        }
    };
    encode_response(parts, sealed.as_ref(), signed, out);
    Ok(())
}
