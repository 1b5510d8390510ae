//! The sending side of a level's protection: attach a token, encrypt the
//! payload, sign the envelope (in that order: the signature covers the
//! ciphertext). What a client does before it sends, and what the engine's
//! tests and benchmarks do to speak to it.

use std::sync::Arc;

use super::cipher::{CipherScratch, NonceSequence, NonceSource, seal_payload};
use super::keyring::Keyring;
use super::signature::{SignatureScratch, sign_message};
use crate::error::Error;
use crate::message::{Field, Message, SecurityLevel};

/// Protects outgoing messages as their level requires (see the module
/// docs). One per sending thread: it keeps working buffers and a block of
/// nonces.
#[derive(Debug)]
pub struct Sealer {
    keyring: Keyring,
    token: Option<String>,
    signing_key: String,
    encryption_key: String,
    nonces: NonceSource,
    cipher: CipherScratch,
    signatures: SignatureScratch,
}

impl Sealer {
    /// A sealer using `keyring`'s keys `signing_key` and `encryption_key`,
    /// and `token` for levels that need one.
    pub fn new(
        keyring: Keyring,
        token: Option<String>,
        signing_key: &str,
        encryption_key: &str,
    ) -> Result<Sealer, Error> {
        Ok(Sealer {
            keyring,
            token,
            signing_key: signing_key.to_owned(),
            encryption_key: encryption_key.to_owned(),
            nonces: NonceSource::new(Arc::new(NonceSequence::new()?)),
            cipher: CipherScratch::default(),
            signatures: SignatureScratch::default(),
        })
    }

    /// Protects `message` as its level requires, at `now` (unix
    /// nanoseconds): the token from `Standard` up, encryption at
    /// `Critical`, a signature from `High` up. Its id, type, timestamp and
    /// payload must be final.
    pub fn seal(&mut self, message: &mut Message, now: i128) -> Result<(), Error> {
        let level = message.security.security_level;
        if level >= SecurityLevel::Standard
            && let Some(token) = &self.token
        {
            message.security.auth_token = Field::Present(token.clone());
        }
        if level >= SecurityLevel::Critical {
            let plaintext = message.payload.clone();
            seal_payload(
                message,
                &plaintext,
                &self.keyring,
                &self.encryption_key,
                now,
                &mut self.nonces,
                &mut self.cipher,
            )?;
        }
        if level >= SecurityLevel::High {
            sign_message(
                message,
                &self.keyring,
                &self.signing_key,
                now,
                &mut self.signatures,
            )?;
        }
        Ok(())
    }

    /// Replaces the token (after `auth.renew`).
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }
}
