//! Payload encryption (docs/protocol.md section 6): AES-256-GCM on ring, and
//! nonces that never repeat.
//!
//! `payload = b64u(ciphertext || tag)`, `encryption_info = {"algorithm":
//! "AES-256-GCM", "key_id", "nonce": b64u(12 bytes)}`, AAD = `id "\n" type
//! "\n" timestamp` as sent. Only 96-bit nonces exist here (ring's API takes
//! exactly 12 bytes), so no other nonce size can be asked for.
//!
//! ## Why a nonce never repeats
//!
//! A nonce is `salt (4 bytes) || counter (8 bytes, big-endian)`. The salt is
//! random, drawn once per [`NonceSequence`] (once per process). The counter
//! starts at the wall clock in nanoseconds and only goes up: threads reserve
//! blocks of it with one atomic `fetch_add`, so no two threads ever hold the
//! same value. Across restarts, a new process starts its counter at the
//! clock, which is ahead of every value the previous process used as long as
//! it used fewer than one nonce per nanosecond (an AES-GCM seal takes far
//! longer); if the clock was set back, the fresh random salt still makes a
//! collision a 2^-32 event per overlapping pair of runs. One sequence serves
//! every key, so a nonce is unique under each key a fortiori.

// Public for the tests, benches and loom models (`security::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use ring::rand::{SecureRandom, SystemRandom};

use super::b64u;
use super::keyring::{KeyUse, Keyring, Material};
use crate::error::{Code, Error};
use crate::json::RawJson;
use crate::message::{
    ENCRYPTION_ALGORITHM, EncryptionInfo, Field, Message, MessageType, MessageView,
};
use crate::sync::{Arc, AtomicU64, Ordering};

const TAG_LEN: usize = 16;

/// How many nonces a thread reserves at a time.
const BLOCK: u64 = 4096;

fn refuse(reason: &'static str) -> Error {
    Error::new(Code::EncryptionFailed, reason)
}

/// The process-wide source of nonce counters (see the module docs).
#[derive(Debug)]
pub struct NonceSequence {
    salt: [u8; 4],
    next: AtomicU64,
}

impl NonceSequence {
    /// A sequence with a random salt, starting at the clock.
    pub fn new() -> Result<NonceSequence, Error> {
        let mut salt = [0u8; 4];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Error::new(Code::InternalError, "no randomness for nonces"))?;
        let start = u64::try_from(crate::message::unix_nanos_now()).unwrap_or(0);
        Ok(NonceSequence::starting_at(salt, start))
    }

    /// A sequence with a given salt and first counter (tests and models).
    pub fn starting_at(salt: [u8; 4], start: u64) -> NonceSequence {
        NonceSequence {
            salt,
            next: AtomicU64::new(start),
        }
    }

    /// Reserves `count` counters for the caller alone: `[first, first + count)`.
    fn reserve(&self, count: u64) -> u64 {
        // Relaxed is enough: uniqueness needs only the atomicity of the
        // read-modify-write, not ordering with other memory.
        self.next.fetch_add(count, Ordering::Relaxed)
    }
}

/// One thread's supply of nonces, taken from a shared [`NonceSequence`] in
/// blocks so that the shared counter is touched once per 4096 seals.
#[derive(Debug)]
pub struct NonceSource {
    sequence: Arc<NonceSequence>,
    block: u64,
    next: u64,
    end: u64,
}

impl NonceSource {
    /// A source drawing on `sequence`.
    pub fn new(sequence: Arc<NonceSequence>) -> NonceSource {
        NonceSource::with_block(sequence, BLOCK)
    }

    /// A source that reserves `block` counters at a time (models use small
    /// blocks to exercise refills).
    pub fn with_block(sequence: Arc<NonceSequence>, block: u64) -> NonceSource {
        NonceSource {
            sequence,
            block: block.max(1),
            next: 0,
            end: 0,
        }
    }

    /// The next nonce, never handed out before by any source of the same
    /// sequence.
    pub fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        if self.next == self.end {
            self.next = self.sequence.reserve(self.block);
            self.end = self.next.wrapping_add(self.block);
        }
        let counter = self.next;
        self.next = self.next.wrapping_add(1);
        let mut nonce = [0u8; NONCE_LEN];
        let (salt, count) = nonce.split_at_mut(4);
        salt.copy_from_slice(&self.sequence.salt);
        count.copy_from_slice(&counter.to_be_bytes());
        nonce
    }
}

/// Reusable working space for sealing and opening (one per worker).
#[derive(Debug, Default)]
pub struct CipherScratch {
    bytes: Vec<u8>,
    aad: Vec<u8>,
}

impl CipherScratch {
    /// Seals `plaintext` (its pieces, in order) under `key` with a fresh
    /// nonce, the AAD made of the message's `(id, type, timestamp)`, and
    /// returns the nonce; the ciphertext and tag are then
    /// [`sealed`](Self::sealed).
    pub(super) fn seal(
        &mut self,
        key: &LessSafeKey,
        nonces: &mut NonceSource,
        (id, kind, timestamp): (&str, MessageType, &str),
        plaintext: &[&[u8]],
    ) -> Result<[u8; NONCE_LEN], Error> {
        let nonce = nonces.next_nonce();
        write_aad(&mut self.aad, id, kind, timestamp);
        self.bytes.clear();
        for piece in plaintext {
            self.bytes.extend_from_slice(piece);
        }
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&self.aad[..]),
            &mut self.bytes,
        )
        .map_err(|_| Error::new(Code::InternalError, "AES-GCM seal failed"))?;
        Ok(nonce)
    }

    /// What [`seal`](Self::seal) made last: ciphertext, then tag.
    pub(super) fn sealed(&self) -> &[u8] {
        &self.bytes
    }
}

fn aead_key<'k>(keyring: &'k Keyring, key_id: &str, now: i128) -> Option<&'k LessSafeKey> {
    match keyring.get(KeyUse::Encryption, key_id, now)?.material() {
        Material::Encryption(key) => Some(key),
        _ => None,
    }
}

/// The key to seal a reply under: a config fault if `key_id` names none
/// usable at `now`.
pub(super) fn sealing_key<'k>(
    keyring: &'k Keyring,
    key_id: &str,
    now: i128,
) -> Result<&'k LessSafeKey, Error> {
    aead_key(keyring, key_id, now).ok_or_else(|| {
        Error::new(
            Code::ConfigurationError,
            format!("no usable encryption key `{key_id}`"),
        )
    })
}

fn write_aad(out: &mut Vec<u8>, id: &str, kind: MessageType, timestamp: &str) {
    out.clear();
    out.extend_from_slice(id.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(kind.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(timestamp.as_bytes());
}

/// Decrypts the payload of `message` and returns the plaintext bytes (the
/// JSON text of the real payload, not yet parsed) with the key id used.
///
/// Refuses with `encryption_failed`: no `encryption_info`, another
/// algorithm, an unknown or retired-past-grace `key_id`, a nonce that is not
/// 12 bytes of base64url, a payload that is not a base64url string, a tag
/// that does not verify.
pub fn open_payload<'s, 'm>(
    message: &MessageView<'m>,
    keyring: &Keyring,
    now: i128,
    scratch: &'s mut CipherScratch,
) -> Result<(&'s mut [u8], &'m str), Error> {
    let Field::Present(info) = &message.security().encryption_info else {
        return Err(refuse("payload not encrypted"));
    };
    if info.algorithm != ENCRYPTION_ALGORITHM {
        return Err(refuse("algorithm is not AES-256-GCM"));
    }
    let key = aead_key(keyring, info.key_id, now).ok_or_else(|| refuse("unknown key_id"))?;
    let nonce = b64u::decode_array::<NONCE_LEN>(info.nonce.as_bytes())
        .ok_or_else(|| refuse("nonce is not 12 bytes of base64url"))?;
    let ciphertext = message
        .payload()
        .as_str()
        .ok_or_else(|| refuse("encrypted payload is not a string"))?;
    scratch.bytes.clear();
    b64u::decode_into(ciphertext.as_bytes(), &mut scratch.bytes)
        .ok_or_else(|| refuse("encrypted payload is not base64url"))?;
    if scratch.bytes.len() < TAG_LEN {
        return Err(refuse("encrypted payload shorter than its tag"));
    }
    write_aad(
        &mut scratch.aad,
        message.id(),
        message.kind(),
        message.timestamp(),
    );
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&scratch.aad[..]),
            &mut scratch.bytes,
        )
        .map_err(|_| refuse("tag check failed"))?;
    Ok((plaintext, info.key_id))
}

/// Encrypts `plaintext` as the payload of `message` under `key_id` with a
/// fresh nonce, setting `encryption_info`. The message's id, type and
/// timestamp must be final: they are the AAD.
pub fn seal_payload(
    message: &mut Message,
    plaintext: &RawJson,
    keyring: &Keyring,
    key_id: &str,
    now: i128,
    nonces: &mut NonceSource,
    scratch: &mut CipherScratch,
) -> Result<(), Error> {
    let key = sealing_key(keyring, key_id, now)?;
    let nonce = scratch.seal(
        key,
        nonces,
        (&message.id, message.kind, message.timestamp.as_str()),
        &[plaintext.as_bytes()],
    )?;
    message.payload = RawJson::string(&b64u::encode(scratch.sealed()));
    message.security.encryption_info = Field::Present(EncryptionInfo {
        algorithm: ENCRYPTION_ALGORITHM.to_owned(),
        key_id: key_id.to_owned(),
        nonce: b64u::encode(&nonce),
    });
    Ok(())
}

/// AES-256-GCM with a raw key, for test vectors: `Some(plaintext)` if the
/// tag verifies. Nonces other than 96 bits are refused (`None`).
#[cfg(any(test, feature = "test-support"))]
pub fn open_raw(key: &[u8], nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key).ok()?;
    let key = LessSafeKey::new(unbound);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buffer = sealed.to_vec();
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut buffer).ok()?;
    Some(plain.to_vec())
}
