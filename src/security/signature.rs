//! Envelope signatures (docs/protocol.md section 5): HMAC-SHA256 over the
//! canonical (RFC 8785) envelope without `security.signature`.
//!
//! `signature = kid ":" b64u(tag)`. The tag must be the full 32 bytes (a
//! truncated tag is refused) and is compared in constant time by ring. A
//! signature covers the ciphertext of an encrypted payload, so it is checked
//! before decryption.

// Public for the tests, benches and loom models (`security::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use ring::hmac;

use super::b64u;
use super::keyring::{KeyUse, Keyring, Material};
use crate::codec::{Canonicalizer, ResponseParts, SealedPayload};
use crate::error::{Code, Error};
use crate::message::{Field, Message, MessageView};

/// Reusable working space for signing and verifying (one per worker).
#[derive(Debug, Default)]
pub struct SignatureScratch {
    canonical: Canonicalizer,
    input: Vec<u8>,
}

fn refuse(reason: &'static str) -> Error {
    Error::new(Code::SignatureInvalid, reason)
}

/// Splits `kid:b64u(tag)`.
fn split(signature: &str) -> Option<(&str, [u8; 32])> {
    let (key_id, tag) = signature.rsplit_once(':')?;
    if key_id.is_empty() {
        return None;
    }
    Some((key_id, b64u::decode_array::<32>(tag.as_bytes())?))
}

fn signing_key<'k>(keyring: &'k Keyring, key_id: &str, now: i128) -> Option<&'k hmac::Key> {
    match keyring.get(KeyUse::Signing, key_id, now)?.material() {
        Material::Signing(key) => Some(key),
        _ => None,
    }
}

/// The key to sign a reply with: a config fault if `key_id` names none
/// usable at `now`.
fn reply_signing_key<'k>(
    keyring: &'k Keyring,
    key_id: &str,
    now: i128,
) -> Result<&'k hmac::Key, Error> {
    signing_key(keyring, key_id, now).ok_or_else(|| {
        Error::new(
            Code::ConfigurationError,
            format!("no usable signing key `{key_id}`"),
        )
    })
}

/// Verifies the signature of `message` and returns its key id. Refuses
/// with `signature_invalid` a missing, malformed, unknown-key or wrong
/// signature.
pub fn verify_signature<'m>(
    message: &MessageView<'m>,
    keyring: &Keyring,
    now: i128,
    scratch: &mut SignatureScratch,
) -> Result<&'m str, Error> {
    let Field::Present(signature) = message.security().signature else {
        return Err(refuse("signature missing"));
    };
    let (key_id, tag) = split(signature).ok_or_else(|| refuse("signature malformed"))?;
    let key = signing_key(keyring, key_id, now).ok_or_else(|| refuse("unknown signature kid"))?;
    scratch.input.clear();
    scratch
        .canonical
        .write_signing_input(message, &mut scratch.input);
    if !tag_matches(key, &scratch.input, &tag) {
        return Err(refuse("signature does not match"));
    }
    Ok(key_id)
}

/// Whether `tag` is the full HMAC-SHA256 of `input`: 32 bytes (a truncated
/// tag never matches), compared in constant time.
fn tag_matches(key: &hmac::Key, input: &[u8], tag: &[u8]) -> bool {
    tag.len() == 32 && hmac::verify(key, input, tag).is_ok()
}

/// HMAC-SHA256 verification with a raw key, for test vectors: the same
/// comparison envelopes get, without the keyring's minimum key length.
#[cfg(any(test, feature = "test-support"))]
pub fn hmac_sha256_matches(key: &[u8], input: &[u8], tag: &[u8]) -> bool {
    tag_matches(&hmac::Key::new(hmac::HMAC_SHA256, key), input, tag)
}

/// Signs `message` with key `key_id`, setting `security.signature`.
pub fn sign_message(
    message: &mut Message,
    keyring: &Keyring,
    key_id: &str,
    now: i128,
    scratch: &mut SignatureScratch,
) -> Result<(), Error> {
    let key = reply_signing_key(keyring, key_id, now)?;
    message.security.signature = Field::Absent;
    scratch.input.clear();
    scratch
        .canonical
        .write_message_signing_input(message, &mut scratch.input)?;
    let mut text = String::with_capacity(key_id.len() + 44);
    write_signature(key, key_id, &scratch.input, &mut text);
    message.security.signature = Field::Present(text);
    Ok(())
}

/// Appends to `out` the `security.signature` of the Response `parts`
/// describe (payload `sealed` if given), signed with key `key_id`: the
/// signature [`sign_message`] gives that Response as a [`Message`].
pub(super) fn sign_response(
    parts: &ResponseParts<'_>,
    sealed: Option<&SealedPayload<'_>>,
    keyring: &Keyring,
    key_id: &str,
    now: i128,
    scratch: &mut SignatureScratch,
    out: &mut String,
) -> Result<(), Error> {
    let key = reply_signing_key(keyring, key_id, now)?;
    scratch.input.clear();
    scratch
        .canonical
        .write_response_signing_input(parts, sealed, &mut scratch.input)?;
    write_signature(key, key_id, &scratch.input, out);
    Ok(())
}

/// Appends `key_id:` and the base64url HMAC of `input`: the text of
/// `security.signature`.
fn write_signature(key: &hmac::Key, key_id: &str, input: &[u8], out: &mut String) {
    let tag = hmac::sign(key, input);
    out.push_str(key_id);
    out.push(':');
    b64u::encode_into(tag.as_ref(), out);
}
