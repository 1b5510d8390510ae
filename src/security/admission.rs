//! [`Admission`]: every security check a decoded message must pass, in the
//! order of docs/protocol.md's fault table, up to and including
//! authorization. Replies are protected apart, by a
//! `ReplyProtector` (`reply_protector.rs`).
//!
//! [`SecurityState`] is what all workers share (keys, revocations, replay
//! memory, the settings); [`Admission`] is one worker's: its token cache and
//! scratch space, so that admitting a message allocates nothing once warm
//! and takes no lock but the replay guard's shard.

// Public for the tests, benches and loom models (`security::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use std::net::IpAddr;

use simd_json::Node;

use super::cipher::{CipherScratch, NonceSequence, open_payload};
use super::key_id::KeyId;
use super::keyring::{Keyring, SharedKeyring};
use super::level::requirements;
use super::policy::{ANONYMOUS_ROLE, Policy, Target};
use super::protected_response::ReplyProtection;
use super::rate_limiter::{RateCache, RateLimiter, RateRules};
use super::replay::ReplayGuard;
use super::replay_shares::{IdReservation, ShareRules, Shares, Table};
use super::replay_streams::{StreamCheck, StreamGuard};
use super::revocation::{RevocationList, SharedRevocations};
use super::signature::{SignatureScratch, verify_signature};
use super::token::{TokenRules, VerifiedToken};
use super::token_cache::TokenCache;
use crate::codec::check_payload_shape;
use crate::config::Config;
use crate::error::{Code, Error};
use crate::json::{JsonRef, MAX_VALUE_DEPTH, Parser, RawJson, TapeLease};
use crate::message::{Field, MessageType, MessageView, SecurityLevel};
use crate::sync::{Arc, CellCache, SwapCell};

/// The settings that a reload replaces whole.
#[derive(Debug)]
struct SecuritySettings {
    min_level: SecurityLevel,
    rules: TokenRules,
    policy: Policy,
    shares: ShareRules,
    rates: RateRules,
    token_ttl_secs: u64,
}

impl SecuritySettings {
    fn from_config(config: &Config) -> Result<SecuritySettings, Error> {
        Ok(SecuritySettings {
            min_level: config.security.min_security_level,
            rules: TokenRules::from_config(&config.security),
            policy: Policy::from_config(&config.authorization)?,
            shares: ShareRules::from_config(config),
            rates: RateRules::from_config(&config.authorization),
            token_ttl_secs: config.security.token_ttl_secs,
        })
    }
}

/// The security state every worker shares.
#[derive(Debug)]
pub struct SecurityState {
    /// The keys.
    pub keyring: SharedKeyring,
    /// Revoked token ids.
    pub revocations: SharedRevocations,
    /// Message ids seen, per principal.
    pub replay: ReplayGuard,
    /// Replay streams, per principal (docs/protocol.md section 7a).
    pub streams: StreamGuard,
    /// What each principal holds of both.
    shares: Shares,
    /// Each rate-limited principal's bucket, and the refusals by role.
    pub rates: RateLimiter,
    /// Where reply nonces come from.
    pub nonces: Arc<NonceSequence>,
    settings: SwapCell<SecuritySettings>,
    token_cache_capacity: usize,
}

impl SecurityState {
    /// Loads keys and builds the state that `config` describes, with the
    /// clock at `now` (unix nanoseconds).
    pub fn from_config(config: &Config, now: i128) -> Result<SecurityState, Error> {
        let security = &config.security;
        let replay = ReplayGuard::new(
            usize::try_from(security.replay_capacity).unwrap_or(usize::MAX),
            config.replay_window_secs,
            now,
        );
        // Both tables count in the id guard's seconds.
        let streams = StreamGuard::with_clock(
            usize::try_from(security.replay_streams).unwrap_or(usize::MAX),
            security.replay_stream_window,
            replay.clock(),
        );
        Ok(SecurityState {
            keyring: SharedKeyring::new(Keyring::load(security)?, security.key_grace_secs),
            revocations: SharedRevocations::new(RevocationList::new(&security.revoked_jti)),
            replay,
            streams,
            shares: Shares::new(config.replay_window_secs),
            rates: RateLimiter::default(),
            nonces: Arc::new(NonceSequence::new()?),
            settings: SwapCell::new(Arc::new(SecuritySettings::from_config(config)?)),
            token_cache_capacity: usize::try_from(security.token_cache_capacity).unwrap_or(0),
        })
    }

    /// Applies a new configuration: keys rotate (dropped keys retire for the
    /// grace period), revocations and settings (rules, levels, each
    /// principal's share of the replay memory) are replaced. Everything is
    /// loaded and checked first; on error nothing changes. The replay
    /// tables' capacities and windows stay as they were built.
    pub fn reload(&self, config: &Config, now: i128) -> Result<(), Error> {
        let keyring = Keyring::load(&config.security)?;
        let settings = Arc::new(SecuritySettings::from_config(config)?);
        self.keyring.rotate(keyring, now)?;
        self.revocations
            .replace(RevocationList::new(&config.security.revoked_jti));
        self.settings.update(|_| Arc::clone(&settings));
        Ok(())
    }

    /// Messages refused over a rate limit, by the role whose limit it was
    /// (or [`DEFAULT_RATE_LABEL`](super::DEFAULT_RATE_LABEL)): every limit
    /// set now, at 0 if it refused nothing, and any that refused before a
    /// reload removed it.
    pub fn rate_refusals(&self) -> Vec<(String, u64)> {
        let mut counts = self.rates.refused();
        let settings = self.settings.load();
        for label in settings.rates.labels() {
            if !counts.iter().any(|(seen, _)| seen == label) {
                counts.push((label.to_owned(), 0));
            }
        }
        counts
    }

    /// Lifetime of tokens issued by renewal and the CLI, in seconds.
    pub fn token_ttl_secs(&self) -> u64 {
        self.settings.load().token_ttl_secs
    }
}

/// A message that passed every check.
#[derive(Debug)]
pub struct Admitted<'a> {
    /// The level the message claimed (and met).
    pub level: SecurityLevel,
    /// The verified token, if the message carried one.
    pub token: Option<&'a VerifiedToken>,
    /// The message's type.
    pub kind: MessageType,
    /// How to protect the reply.
    pub(crate) protection: ReplyProtection,
    payload: Payload<'a>,
    /// The settings the checks ran under; authorization uses the same.
    settings: &'a Arc<SecuritySettings>,
}

enum Payload<'a> {
    Plain(JsonRef<'a>),
    Decrypted(TapeLease<'a>),
}

impl std::fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Payload::Plain(_) => "Plain",
            Payload::Decrypted(_) => "Decrypted",
        })
    }
}

impl Admitted<'_> {
    /// The principal (`sub`), or `None` for an unauthenticated `Low` message.
    pub fn principal(&self) -> Option<&str> {
        self.token.map(|t| &*t.subject)
    }

    /// The command (or event) name; `None` for Responses and Errors.
    pub fn name(&self) -> Option<&str> {
        let key = match self.kind {
            MessageType::Command => "command",
            MessageType::Event => "event",
            MessageType::Response | MessageType::Error => return None,
        };
        self.payload().get(key).and_then(JsonRef::as_str)
    }

    /// The resource instance a Command named, if any.
    pub fn resource(&self) -> Option<&str> {
        match self.kind {
            MessageType::Command => self.payload().get("resource").and_then(JsonRef::as_str),
            _ => None,
        }
    }

    /// Authorizes the message against `declared`, the target its handler
    /// declares (docs/protocol.md section 10), narrowed to the Command's
    /// `resource` instance when it names one. Uses the settings the other
    /// checks ran under, so a reload in between cannot mix two policies.
    pub fn authorize(&self, declared: Target<'_>, peer: IpAddr) -> Result<(), Error> {
        let target = match self.resource() {
            Some(instance) => declared.instance(instance)?,
            None => declared,
        };
        let policy = &self.settings.policy;
        match self.token {
            Some(token) => policy.authorize(&token.roles, target, peer),
            None => policy.authorize(&[ANONYMOUS_ROLE], target, peer),
        }
    }

    /// The outcome of admission, owned, to hand to another thread (the
    /// staged topology): the payload is copied (decrypted), the token
    /// cloned, and the settings kept so authorization there uses the same.
    pub(crate) fn to_owned_parts(&self) -> AdmittedOwned {
        AdmittedOwned {
            level: self.level,
            token: self.token.cloned(),
            kind: self.kind,
            protection: self.protection.clone(),
            payload: RawJson::from_json(self.payload()),
            settings: Arc::clone(self.settings),
        }
    }

    /// The payload: decrypted if it was encrypted.
    pub fn payload(&self) -> JsonRef<'_> {
        match &self.payload {
            Payload::Plain(value) => *value,
            Payload::Decrypted(lease) => lease.value(0).unwrap_or(JsonRef::NULL),
        }
    }
}

/// An admitted message's security outcome, owned (`Admitted::to_owned_parts`
/// makes one, for the staged topology's hand-over).
#[derive(Debug)]
pub struct AdmittedOwned {
    /// The level the message met.
    pub level: SecurityLevel,
    /// The verified token, if it carried one.
    pub token: Option<VerifiedToken>,
    /// The message's type.
    pub kind: MessageType,
    /// How to protect the reply.
    pub protection: ReplyProtection,
    /// The payload, decrypted.
    pub payload: RawJson,
    settings: Arc<SecuritySettings>,
}

impl AdmittedOwned {
    /// Authorizes against `declared`, narrowed to `instance` (the Command's
    /// `resource`), under the settings admission ran with.
    pub fn authorize(
        &self,
        declared: Target<'_>,
        instance: Option<&str>,
        peer: IpAddr,
    ) -> Result<(), Error> {
        let target = match instance {
            Some(instance) => declared.instance(instance)?,
            None => declared,
        };
        let policy = &self.settings.policy;
        match &self.token {
            Some(token) => policy.authorize(&token.roles, target, peer),
            None => policy.authorize(&[ANONYMOUS_ROLE], target, peer),
        }
    }
}

/// One worker's admission checks (see the module docs).
pub struct Admission {
    state: Arc<SecurityState>,
    /// The shared state's settings, keys and revocations, cached for this
    /// worker, which reads them for every message.
    settings: CellCache<SecuritySettings>,
    keyring: CellCache<Keyring>,
    revocations: CellCache<RevocationList>,
    tokens: TokenCache,
    signatures: SignatureScratch,
    cipher: CipherScratch,
    parser: Parser,
    plain_tape: Vec<Node<'static>>,
    /// A copy of a decrypted payload that is not plain, parsed there.
    plain_spare: Vec<u8>,
    /// The principal of the last message admitted here: the guess the next
    /// message's replay bucket is asked for with, before its token says.
    last_principal: String,
    /// Ids reserved from a principal's share of the replay table.
    ids: IdReservation,
    /// The rate-limit buckets of the principals seen last.
    rates: RateCache,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// A worker's admission over the shared `state`.
    pub fn new(state: Arc<SecurityState>) -> Admission {
        Admission {
            tokens: TokenCache::new(state.token_cache_capacity),
            settings: state.settings.cache(),
            keyring: state.keyring.cache(),
            revocations: state.revocations.cache(),
            state,
            signatures: SignatureScratch::default(),
            cipher: CipherScratch::default(),
            parser: Parser::new(MAX_VALUE_DEPTH),
            plain_tape: Vec::new(),
            plain_spare: Vec::new(),
            last_principal: String::new(),
            ids: IdReservation::default(),
            rates: RateCache::default(),
        }
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<SecurityState> {
        &self.state
    }

    /// Runs every check after decoding, in the fault table's order, up to
    /// routing: the client IP, the level's minimum, the token, the
    /// signature, replay, decryption, the Command or Event payload's shape.
    /// Routing (`handler_not_found`) comes next and is the engine's; then
    /// [`Admitted::authorize`] with the handler's declared target.
    pub fn admit<'a>(
        &'a mut self,
        message: &'a MessageView<'_>,
        peer: IpAddr,
        now: i128,
    ) -> Result<Admitted<'a>, Error> {
        self.admit_noting(message, peer, now, &mut None)
    }

    /// [`admit`](Self::admit), noting in `principal` the principal of a
    /// token that verified, so that a refusal after the token check can
    /// name it (the audit log); a pointer store, no copy.
    pub(crate) fn admit_noting<'a>(
        &'a mut self,
        message: &'a MessageView<'_>,
        peer: IpAddr,
        now: i128,
        principal: &mut Option<&'a str>,
    ) -> Result<Admitted<'a>, Error> {
        let noted = principal;
        let Admission {
            state,
            settings,
            keyring,
            revocations,
            tokens,
            signatures,
            cipher,
            parser,
            plain_tape,
            plain_spare,
            last_principal,
            ids,
            rates,
            ..
        } = self;
        let mark = message.replay();
        // The id check's read of its table misses the cache (the table is
        // far larger): its bucket is asked for now, under the guess that
        // this message comes from the last one's principal (a worker's
        // messages mostly come from a few connections), so that it arrives
        // during the token check. A wrong guess costs one hash.
        let guess = match mark {
            None => Some(state.replay.locate(last_principal, message.id())),
            Some(_) => None,
        };
        let settings = settings.load();
        settings.policy.check_peer(peer)?;
        let security = message.security();
        let level = security.security_level;
        if level < settings.min_level {
            return Err(Error::new(
                Code::AccessDenied,
                "security level below the configured minimum",
            ));
        }
        let needs = requirements(level);
        let keyring = keyring.load();

        let token = match security.auth_token {
            Field::Present(token) => {
                let revoked = revocations.load();
                Some(tokens.verify(token, &settings.rules, keyring, revoked, now)?)
            }
            _ if needs.token => {
                return Err(Error::new(Code::AuthenticationFailed, "token missing"));
            }
            _ => None,
        };
        *noted = token.map(|t| &*t.subject);

        // Right after authentication: a principal over its rate spends
        // nothing more (signature, replay memory, decryption).
        if settings.rates.any() {
            let roles: &[Box<str>] = token.map_or(&[], |t| &t.roles);
            if let Some(limit) = settings.rates.of(roles) {
                let principal = token.map_or("", |t| &*t.subject);
                rates.check(&state.rates, principal, limit, now)?;
            }
        }

        let signature_key = match security.signature {
            Field::Present(_) => Some(verify_signature(message, keyring, now, signatures)?),
            _ if needs.signature => {
                return Err(Error::new(Code::SignatureInvalid, "signature missing"));
            }
            _ => None,
        };

        // An unauthenticated sender is "": no token subject is empty.
        let principal = token.map_or("", |t| &*t.subject);
        let roles: &[Box<str>] = token.map_or(&[], |t| &t.roles);
        let timestamp = message.timestamp_nanos();
        match (mark, guess) {
            // A stream's window (section 7a), not the id.
            (Some(mark), _) => {
                let share = || settings.shares.of(Table::Streams, roles);
                let check = StreamCheck {
                    principal,
                    mark,
                    timestamp,
                    now,
                    share: &share,
                };
                state.streams.check(&state.shares, &check)?;
            }
            (None, guess) => {
                let probe = match guess {
                    Some(guess) if principal == last_principal.as_str() => guess,
                    _ => {
                        last_principal.clear();
                        last_principal.push_str(principal);
                        state.replay.locate(principal, message.id())
                    }
                };
                let (expiry, now_secs) = state.replay.clock().expiry_secs(timestamp, now);
                let share = || settings.shares.of(Table::Ids, roles);
                ids.take(&state.shares, principal, share, expiry, now_secs)?;
                if let Err(refused) = state.replay.check_located(probe, expiry, now_secs) {
                    ids.refund();
                    return Err(refused);
                }
            }
        }

        let (payload, encryption_key) = match security.encryption_info {
            Field::Present(_) => {
                let (plain, key_id) = open_payload(message, keyring, now, cipher)?;
                let mut lease = TapeLease::take(plain_tape);
                parser
                    .parse_text(plain, plain_spare, &mut lease.tape)
                    .map_err(|_| Error::new(Code::EncryptionFailed, "plaintext is not JSON"))?;
                (Payload::Decrypted(lease), Some(key_id))
            }
            _ if needs.encryption => {
                return Err(Error::new(Code::EncryptionFailed, "payload not encrypted"));
            }
            _ => (Payload::Plain(message.payload()), None),
        };

        let admitted = Admitted {
            level,
            token,
            kind: message.kind(),
            protection: ReplyProtection {
                signature_key: signature_key.map(KeyId::new),
                encryption_key: encryption_key.map(KeyId::new),
            },
            payload,
            settings,
        };
        check_payload_shape(admitted.payload(), message.kind())?;
        Ok(admitted)
    }
}
