//! [`Keyring`]: every key by id and use, and [`SharedKeyring`]: the keyring
//! behind one atomic swap, rotated while readers keep going.
//!
//! A keyring is immutable once built. Rotation builds the next one (new keys
//! from the config, plus the keys the config dropped, now retired with a
//! deadline) and swaps it in whole: a reader sees the old keyring or the new
//! one, never a mix, and never waits. A retired key still verifies and
//! decrypts until its deadline, checked at each lookup, so it is gone on time
//! even before the next rotation prunes it. New output always uses the active
//! key, which is never a retired one.
//!
//! Key bytes read from files are held in zeroizing buffers only as long as
//! it takes to build ring's key objects; they are never formatted (`Debug`
//! prints ids and uses only).

use std::fmt;

use ring::digest;
use ring::hmac;
use ring::signature::{self as ed25519, Ed25519KeyPair, KeyPair as _};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use zeroize::Zeroizing;

use super::b64u;
pub use crate::config::{JwtAlgorithm, KeyUse};
use crate::config::{KeyConfig, SecurityConfig};
use crate::error::{Code, Error};
use crate::sync::{Arc, CellCache, Snapshot, SwapCell};

/// The shortest HMAC secret accepted: as long as the hash (RFC 2104).
pub const MIN_SECRET_LEN: usize = 32;

/// Key material, built into ring's key objects.
pub struct Key {
    material: Material,
    fingerprint: u64,
}

pub(crate) enum Material {
    Hs256(hmac::Key),
    Ed25519Public([u8; 32]),
    Ed25519Pair(Box<Ed25519KeyPair>),
    Signing(hmac::Key),
    // Boxed: AES round keys are far larger than the other variants.
    Encryption(Box<ring::aead::LessSafeKey>),
}

impl Key {
    /// An HS256 token secret (at least [`MIN_SECRET_LEN`] bytes).
    pub fn hs256(secret: &[u8]) -> Result<Key, Error> {
        check_secret(secret)?;
        Ok(Key::new(
            Material::Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret)),
            b"hs256",
            secret,
        ))
    }

    /// An HMAC-SHA256 envelope signing key (at least [`MIN_SECRET_LEN`] bytes).
    pub fn signing(secret: &[u8]) -> Result<Key, Error> {
        check_secret(secret)?;
        Ok(Key::new(
            Material::Signing(hmac::Key::new(hmac::HMAC_SHA256, secret)),
            b"signing",
            secret,
        ))
    }

    /// An AES-256-GCM payload key (exactly 32 bytes).
    pub fn encryption(secret: &[u8]) -> Result<Key, Error> {
        let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, secret)
            .map_err(|_| key_error("an encryption key must be exactly 32 bytes"))?;
        Ok(Key::new(
            Material::Encryption(Box::new(ring::aead::LessSafeKey::new(unbound))),
            b"encryption",
            secret,
        ))
    }

    /// An Ed25519 key pair from PKCS#8 DER (v1 or v2): verifies and issues
    /// EdDSA tokens.
    pub fn ed25519_private(pkcs8: &[u8]) -> Result<Key, Error> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| key_error("not an Ed25519 PKCS#8 private key"))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Key::new(
            Material::Ed25519Pair(Box::new(pair)),
            b"ed25519",
            &public,
        ))
    }

    /// An Ed25519 public key (its 32 raw bytes): verifies EdDSA tokens only.
    pub fn ed25519_public(public: &[u8]) -> Result<Key, Error> {
        let raw: [u8; 32] = public
            .try_into()
            .map_err(|_| key_error("an Ed25519 public key is 32 bytes"))?;
        Ok(Key::new(Material::Ed25519Public(raw), b"ed25519", &raw))
    }

    /// Reads the key that `config` names, as its use and algorithm say.
    pub fn load(config: &KeyConfig) -> Result<Key, Error> {
        let path = config.file.display();
        let text = Zeroizing::new(std::fs::read(&config.file).map_err(|e| {
            Error::new(
                Code::ConfigurationError,
                format!("key `{}`: cannot read {path}: {e}", config.id),
            )
        })?);
        let named = |e: Error| {
            Error::new(
                Code::ConfigurationError,
                format!("key `{}` ({path}): {}", config.id, e.message()),
            )
        };
        let pem = text.starts_with(b"-----BEGIN");
        match (config.key_use, config.algorithm) {
            (KeyUse::Jwt, Some(JwtAlgorithm::EdDsa)) if pem => {
                if let Ok(der) = PrivatePkcs8KeyDer::from_pem_slice(&text) {
                    Key::ed25519_private(der.secret_pkcs8_der()).map_err(named)
                } else if let Ok(spki) = SubjectPublicKeyInfoDer::from_pem_slice(&text) {
                    Key::ed25519_public(ed25519_spki_key(&spki).unwrap_or(&[])).map_err(named)
                } else {
                    Err(named(key_error(
                        "expected a PEM PRIVATE KEY (PKCS#8) or PUBLIC KEY",
                    )))
                }
            }
            (KeyUse::Jwt, Some(JwtAlgorithm::EdDsa)) => Err(named(key_error(
                "an EdDSA key file must be PEM (PRIVATE KEY or PUBLIC KEY)",
            ))),
            (use_, _) => {
                let mut bytes = Zeroizing::new(Vec::new());
                b64u::decode_into(text.trim_ascii(), &mut bytes)
                    .ok_or_else(|| named(key_error("the file must hold base64url text")))?;
                match use_ {
                    KeyUse::Jwt => Key::hs256(&bytes),
                    KeyUse::Signing => Key::signing(&bytes),
                    KeyUse::Encryption => Key::encryption(&bytes),
                }
                .map_err(named)
            }
        }
    }

    fn new(material: Material, kind: &[u8], bytes: &[u8]) -> Key {
        // A fingerprint tells two keys apart without keeping their bytes.
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(kind);
        context.update(bytes);
        let hash = context.finish();
        let mut first = [0u8; 8];
        first.copy_from_slice(hash.as_ref().get(..8).unwrap_or(&[0; 8]));
        Key {
            material,
            fingerprint: u64::from_le_bytes(first),
        }
    }

    /// What the key can be used for.
    pub fn key_use(&self) -> KeyUse {
        match self.material {
            Material::Hs256(_) | Material::Ed25519Public(_) | Material::Ed25519Pair(_) => {
                KeyUse::Jwt
            }
            Material::Signing(_) => KeyUse::Signing,
            Material::Encryption(_) => KeyUse::Encryption,
        }
    }

    /// For token keys, their algorithm.
    pub fn jwt_algorithm(&self) -> Option<JwtAlgorithm> {
        match self.material {
            Material::Hs256(_) => Some(JwtAlgorithm::Hs256),
            Material::Ed25519Public(_) | Material::Ed25519Pair(_) => Some(JwtAlgorithm::EdDsa),
            _ => None,
        }
    }

    /// Whether this key can produce output (issue tokens); an Ed25519 public
    /// key only verifies.
    pub fn can_sign(&self) -> bool {
        !matches!(self.material, Material::Ed25519Public(_))
    }

    pub(crate) fn material(&self) -> &Material {
        &self.material
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("use", &self.key_use())
            .field("algorithm", &self.jwt_algorithm())
            .finish_non_exhaustive()
    }
}

fn key_error(problem: &'static str) -> Error {
    Error::new(Code::ConfigurationError, problem)
}

fn check_secret(secret: &[u8]) -> Result<(), Error> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(key_error("an HMAC secret must be at least 32 bytes"));
    }
    Ok(())
}

/// The raw key inside an Ed25519 SubjectPublicKeyInfo (RFC 8410: a fixed
/// 12-byte prefix, then the 32 key bytes).
fn ed25519_spki_key<'a>(spki: &'a SubjectPublicKeyInfoDer<'_>) -> Option<&'a [u8]> {
    const PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.as_ref().strip_prefix(&PREFIX[..])
}

/// One key in a keyring, with its retirement deadline if it was retired.
#[derive(Clone)]
struct Slot {
    id: Arc<str>,
    key: Arc<Key>,
    active: bool,
    /// Unix nanoseconds after which the key is gone.
    retired_until: Option<i128>,
}

impl Slot {
    fn usable_at(&self, now: i128) -> bool {
        self.retired_until.is_none_or(|until| now < until)
    }
}

/// Every key the engine holds, by id and use. Immutable: rotation builds a
/// new one.
#[derive(Clone, Default)]
pub struct Keyring {
    slots: Vec<Slot>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.slots.iter().map(|s| {
                (
                    &*s.id,
                    s.key.key_use().as_str(),
                    if s.active { "active" } else { "" },
                    s.retired_until,
                )
            }))
            .finish()
    }
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Reads every key the config names.
    pub fn load(config: &SecurityConfig) -> Result<Keyring, Error> {
        let mut keyring = Keyring::new();
        for key in &config.keys {
            keyring = keyring.with(&key.id, Key::load(key)?, key.active)?;
        }
        Ok(keyring)
    }

    /// This keyring plus `key` under `id`; `active` makes it the key new
    /// output of its use is made with. Refuses an id already present, and a
    /// second active key of one use.
    pub fn with(mut self, id: &str, key: Key, active: bool) -> Result<Keyring, Error> {
        if self.slots.iter().any(|s| &*s.id == id) {
            return Err(key_error("a key id may be used only once"));
        }
        if active && !key.can_sign() {
            return Err(key_error(
                "an Ed25519 public key cannot be active: it cannot sign",
            ));
        }
        if active && self.active(key.key_use()).is_some() {
            return Err(key_error("at most one active key per use"));
        }
        self.slots.push(Slot {
            id: Arc::from(id),
            key: Arc::new(key),
            active,
            retired_until: None,
        });
        Ok(self)
    }

    /// The key `id` of `use_` if it is usable at `now` (present, and not
    /// past its retirement deadline).
    pub fn get(&self, use_: KeyUse, id: &str, now: i128) -> Option<&Key> {
        self.slots
            .iter()
            .find(|s| &*s.id == id)
            .filter(|s| s.key.key_use() == use_ && s.usable_at(now))
            .map(|s| &*s.key)
    }

    /// The id and key new output of `use_` is made with.
    pub fn active(&self, use_: KeyUse) -> Option<(&str, &Key)> {
        self.slots
            .iter()
            .find(|s| s.active && s.key.key_use() == use_)
            .map(|s| (&*s.id, &*s.key))
    }

    /// The ids of `use_`, with whether each is retired.
    pub fn ids(&self, use_: KeyUse) -> impl Iterator<Item = (&str, bool)> {
        self.slots
            .iter()
            .filter(move |s| s.key.key_use() == use_)
            .map(|s| (&*s.id, s.retired_until.is_some()))
    }

    /// Every key by use (jwt, signing, encryption), id and state: `active`
    /// (new output is made with it), `standby` (accepted) or `retired`
    /// (accepted until its grace period ends). Never the key material.
    pub fn states(&self) -> impl Iterator<Item = (KeyUse, &str, &'static str)> {
        [KeyUse::Jwt, KeyUse::Signing, KeyUse::Encryption]
            .into_iter()
            .flat_map(move |key_use| {
                let active = self.active(key_use).map(|(id, _)| id);
                self.ids(key_use).map(move |(id, retired)| {
                    let state = match (retired, active == Some(id)) {
                        (true, _) => "retired",
                        (false, true) => "active",
                        (false, false) => "standby",
                    };
                    (key_use, id, state)
                })
            })
    }

    /// How many keys the keyring holds, retired ones included.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the keyring holds no key.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The keyring that follows `self` when `next` is loaded at `now`: every
    /// key of `next`, plus each key of `self` that `next` dropped, retired
    /// until `now + grace` (or its earlier deadline), minus keys whose
    /// deadline has passed. Refuses `next` if it reuses an id for other key
    /// material: a new key needs a new id, or holders of the old one could
    /// not tell which key a signature was made with.
    fn followed_by(&self, next: &Keyring, now: i128, grace_nanos: i128) -> Result<Keyring, Error> {
        let mut slots = next.slots.clone();
        for old in &self.slots {
            match slots.iter().find(|s| s.id == old.id) {
                Some(new) if new.key.fingerprint() != old.key.fingerprint() => {
                    return Err(Error::new(
                        Code::ConfigurationError,
                        format!(
                            "key id `{}` now names different key material; give a new key a new id",
                            old.id
                        ),
                    ));
                }
                Some(_) => {}
                None if old.usable_at(now) => slots.push(Slot {
                    active: false,
                    retired_until: Some(old.retired_until.unwrap_or(now + grace_nanos)),
                    ..old.clone()
                }),
                None => {}
            }
        }
        Ok(Keyring { slots })
    }
}

/// A keyring shared by every worker, replaced whole by [`rotate`](Self::rotate).
///
/// Readers call [`load`](Self::load) per message (or per batch) and never
/// wait; a rotation never waits for readers either.
pub struct SharedKeyring {
    current: SwapCell<Keyring>,
    grace_nanos: i128,
}

impl fmt::Debug for SharedKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyring")
            .field("current", &*self.load())
            .field("grace_nanos", &self.grace_nanos)
            .finish()
    }
}

/// A reader's view of a [`SharedKeyring`]: one whole keyring, valid however
/// many rotations follow.
pub struct KeyringSnapshot(Snapshot<Keyring>);

impl std::ops::Deref for KeyringSnapshot {
    type Target = Keyring;
    fn deref(&self) -> &Keyring {
        &self.0
    }
}

impl fmt::Debug for KeyringSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl SharedKeyring {
    /// Shares `keyring`; keys that later rotations drop stay usable for
    /// verification and decryption for `grace_secs`.
    pub fn new(keyring: Keyring, grace_secs: u64) -> SharedKeyring {
        SharedKeyring {
            current: SwapCell::new(Arc::new(keyring)),
            grace_nanos: i128::from(grace_secs) * 1_000_000_000,
        }
    }

    /// The current keyring.
    pub fn load(&self) -> KeyringSnapshot {
        KeyringSnapshot(self.current.load())
    }

    /// A cache of the keyring for one worker, which reads it for every
    /// message (see [`CellCache`]).
    pub(crate) fn cache(&self) -> CellCache<Keyring> {
        self.current.cache()
    }

    /// Replaces the keyring with `next` at `now` (unix nanoseconds): keys
    /// that `next` leaves out are retired for the grace period, and output
    /// moves to `next`'s active keys at once. One atomic swap; concurrent
    /// rotations are applied one after the other, neither lost. On error
    /// (an id reused for other key material) nothing changes.
    pub fn rotate(&self, next: Keyring, now: i128) -> Result<(), Error> {
        let mut refusal = None;
        self.current.update(
            |current| match current.followed_by(&next, now, self.grace_nanos) {
                Ok(merged) => Arc::new(merged),
                Err(e) => {
                    refusal = Some(e);
                    Arc::clone(current)
                }
            },
        );
        refusal.map_or(Ok(()), Err)
    }
}

/// Verifies an Ed25519 signature with a raw public key.
pub(crate) fn ed25519_verify(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ed25519::UnparsedPublicKey::new(&ed25519::ED25519, public)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing(id: &str, byte: u8) -> Keyring {
        Keyring::new()
            .with(id, Key::signing(&[byte; 32]).unwrap(), true)
            .unwrap()
    }

    #[test]
    fn a_dropped_key_is_usable_during_the_grace_period_then_gone() {
        let shared = SharedKeyring::new(signing("k1", 1), 10);
        let second = 1_000_000_000;
        shared.rotate(signing("k2", 2), 100 * second).unwrap();
        let keyring = shared.load();
        assert_eq!(keyring.active(KeyUse::Signing).unwrap().0, "k2");
        assert!(keyring.get(KeyUse::Signing, "k1", 109 * second).is_some());
        assert!(keyring.get(KeyUse::Signing, "k1", 110 * second).is_none());
        // A later rotation keeps the first deadline, then prunes the key.
        shared.rotate(signing("k3", 3), 105 * second).unwrap();
        assert!(
            shared
                .load()
                .get(KeyUse::Signing, "k1", 111 * second)
                .is_none()
        );
        shared.rotate(signing("k4", 4), 111 * second).unwrap();
        assert_eq!(shared.load().ids(KeyUse::Signing).count(), 3);
    }

    #[test]
    fn reusing_an_id_for_other_material_is_refused_and_changes_nothing() {
        let shared = SharedKeyring::new(signing("k1", 1), 10);
        assert!(shared.rotate(signing("k1", 9), 0).is_err());
        assert!(shared.load().get(KeyUse::Signing, "k1", 0).is_some());
        assert_eq!(
            shared
                .load()
                .get(KeyUse::Signing, "k1", 0)
                .unwrap()
                .fingerprint(),
            Key::signing(&[1; 32]).unwrap().fingerprint()
        );
    }

    #[test]
    fn a_key_of_another_use_is_not_found() {
        let keyring = signing("k1", 1);
        assert!(keyring.get(KeyUse::Encryption, "k1", 0).is_none());
        assert!(keyring.get(KeyUse::Jwt, "k1", 0).is_none());
    }

    #[test]
    fn short_secrets_and_wrong_aes_sizes_are_refused() {
        assert!(Key::signing(&[0; 31]).is_err());
        assert!(Key::hs256(&[0; 16]).is_err());
        assert!(Key::encryption(&[0; 16]).is_err());
        assert!(Key::encryption(&[0; 33]).is_err());
    }

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let keyring = signing("k1", 0xAB);
        let text = format!("{keyring:?} {:?}", keyring.active(KeyUse::Signing));
        assert!(text.contains("k1"));
        assert!(!text.contains("171") && !text.to_lowercase().contains("ab, ab"));
    }
}
