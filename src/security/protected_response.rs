//! Writing a protected Response (encrypted, signed, or both) straight into
//! bytes.
//!
//! The general path builds an owned [`Message`](crate::Message), seals its
//! payload, canonicalizes it (parsing its texts back) to sign it, then
//! encodes it: a dozen allocations and the same strings written three
//! times. A Response the engine writes has a fixed shape, so here each
//! piece is written once into reused buffers: the sealed payload, the
//! signed input (`Canonicalizer::write_response_signing_input`), then the
//! envelope. The envelope's bytes are those the general path's encoder
//! writes, field for field.

use ring::aead::{Aad, Nonce};
use ring::hmac;

use super::admission::ReplyProtection;
use super::b64u;
use super::cipher::{NonceSource, sealing_key, write_aad};
use super::keyring::Keyring;
use super::signature::reply_signing_key;
use crate::codec::{Canonicalizer, ResponseParts, SealedPayload};
use crate::error::{Code, Error};
use crate::json::write::write_str;
use crate::message::{MessageType, PROTOCOL_VERSION};

/// Reused buffers for [`write_protected_response`].
#[derive(Debug, Default)]
pub(crate) struct ResponseScratch {
    /// `{"result": ...}`, then sealed in place.
    payload: Vec<u8>,
    aad: Vec<u8>,
    ciphertext: String,
    nonce: String,
    signing_input: Vec<u8>,
    signature: String,
    canonical: Canonicalizer,
}

/// Appends to `out` the Response `parts` describe, protected as
/// `protection` says: its payload sealed under the encryption key (if
/// any), then the whole signed (if a key is given). Fails, writing
/// nothing, when a key is not usable at `now`, with the general path's
/// errors in its order.
pub(crate) fn write_protected_response(
    parts: &ResponseParts<'_>,
    protection: &ReplyProtection,
    keyring: &Keyring,
    now: i128,
    nonces: &mut NonceSource,
    scratch: &mut ResponseScratch,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let ResponseScratch {
        payload,
        aad,
        ciphertext,
        nonce: nonce_text,
        signing_input,
        signature,
        canonical,
    } = scratch;
    payload.clear();
    payload.extend_from_slice(b"{\"result\":");
    payload.extend_from_slice(parts.result.as_bytes());
    payload.push(b'}');

    let sealed = match &protection.encryption_key {
        None => None,
        Some(key_id) => {
            let key = sealing_key(keyring, key_id, now)?;
            let nonce = nonces.next_nonce();
            write_aad(aad, parts.id, MessageType::Response, parts.timestamp);
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                payload,
            )
            .map_err(|_| Error::new(Code::InternalError, "AES-GCM seal failed"))?;
            ciphertext.clear();
            b64u::encode_into(payload, ciphertext);
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
        None => false,
        Some(key_id) => {
            let key = reply_signing_key(keyring, key_id, now)?;
            signing_input.clear();
            canonical.write_response_signing_input(parts, sealed.as_ref(), signing_input)?;
            let tag = hmac::sign(key, signing_input);
            signature.clear();
            signature.push_str(key_id);
            signature.push(':');
            b64u::encode_into(tag.as_ref(), signature);
            true
        }
    };

    out.extend_from_slice(b"{\"version\":");
    write_str(out, PROTOCOL_VERSION);
    out.extend_from_slice(b",\"id\":");
    write_str(out, parts.id);
    out.extend_from_slice(b",\"type\":\"Response\",\"payload\":");
    match &sealed {
        Some(sealed) => write_str(out, sealed.ciphertext),
        None => out.extend_from_slice(payload),
    }
    out.extend_from_slice(b",\"metadata\":{\"correlation_id\":");
    write_str(out, parts.correlation_id);
    out.extend_from_slice(b"},\"security\":{\"security_level\":\"");
    out.extend_from_slice(parts.level.as_str().as_bytes());
    out.push(b'"');
    if let Some(sealed) = &sealed {
        sealed.write_encryption_info(out);
    }
    if signed {
        out.extend_from_slice(b",\"signature\":");
        write_str(out, signature);
    }
    out.extend_from_slice(b",\"auth_token\":null},\"timestamp\":");
    write_str(out, parts.timestamp);
    out.push(b'}');
    Ok(())
}
