//! Auth tokens (docs/protocol.md section 4): a strict JWS/JWT verifier and
//! issuer on ring, HS256 and EdDSA only.
//!
//! Written here rather than taken from jsonwebtoken 11: that crate has no
//! ring back end (its two back ends bring an RSA advisory or a cmake build),
//! and it accepts what the protocol refuses (`crit`, `b64: false`, claims of
//! the wrong type when not required, tokens of any size). A compact JWS is
//! three base64url segments and two JSON objects; the checks are short and
//! each one is tested with a hostile token.
//!
//! Order: size and shape, header, key (`kid` known, its type matching
//! `alg`), signature, and only then claims: a token that is not ours tells
//! nothing about its claims. Among the claims, every `authentication_failed`
//! check comes before `exp`, as the protocol's fault table orders them.

// Public for the tests, benches and loom models (`security::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use std::hash::{DefaultHasher, Hash, Hasher};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use simd_json::Node;

use super::b64u;
use super::keyring::{JwtAlgorithm, Key, KeyUse, Keyring, Material, ed25519_verify};
use super::revocation::RevocationList;
use crate::config::SecurityConfig;
use crate::error::{Code, Error};
use crate::json::write::write_str;
use crate::json::{JsonKind, JsonNumber, JsonRef, Parser, RawJson, TapeLease};

/// The longest token accepted, in bytes. Real tokens are a few hundred
/// bytes; this bounds the work a hostile one can cause.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Header and claims nest no deeper than this.
const MAX_TOKEN_DEPTH: usize = 8;

const NANOS: i128 = 1_000_000_000;

/// What a token must satisfy besides its signature: clock leeway, and the
/// issuer and audience where the configuration names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRules {
    leeway_nanos: i128,
    issuer: Option<Box<str>>,
    audience: Option<Box<str>>,
    /// Tells rule sets apart, so that caches of tokens verified under other
    /// rules can be dropped.
    fingerprint: u64,
}

impl TokenRules {
    /// Rules with `leeway_secs` of clock skew; `issuer` and `audience`, when
    /// given, must appear in every token.
    pub fn new(leeway_secs: u64, issuer: Option<&str>, audience: Option<&str>) -> TokenRules {
        let mut hasher = DefaultHasher::new();
        (leeway_secs, issuer, audience).hash(&mut hasher);
        TokenRules {
            leeway_nanos: i128::from(leeway_secs) * NANOS,
            issuer: issuer.map(Box::from),
            audience: audience.map(Box::from),
            fingerprint: hasher.finish(),
        }
    }

    /// The rules `[security]` sets.
    pub fn from_config(config: &SecurityConfig) -> TokenRules {
        TokenRules::new(
            config.token_leeway_secs,
            config.issuer.as_deref(),
            config.audience.as_deref(),
        )
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// `exp` is checked last, and on cache hits too.
    pub(crate) fn check_expiry(&self, expires_at: i128, now: i128) -> Result<(), Error> {
        if now > expires_at.saturating_add(self.leeway_nanos) {
            return Err(Error::new(Code::TokenExpired, "token expired"));
        }
        Ok(())
    }
}

/// A token that verified: who sent the message, and in which roles.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedToken {
    /// The principal (`sub`).
    pub subject: Box<str>,
    /// The roles (`roles`; empty when absent).
    pub roles: Box<[Box<str>]>,
    /// `exp`, in unix nanoseconds.
    pub expires_at: i128,
    /// `jti`, when present.
    pub token_id: Option<Box<str>>,
    /// `iss`, when present.
    pub issuer: Option<Box<str>>,
    /// `aud` as sent (a string or an array of strings), when present.
    pub audience: Option<RawJson>,
    /// The names in `aud`.
    pub audiences: Box<[Box<str>]>,
    /// The `kid` that verified it.
    pub key_id: Box<str>,
    pub(crate) key_fingerprint: u64,
}

/// Reusable working space for verifying tokens (one per worker).
pub struct TokenScratch {
    parser: Parser,
    text: Vec<u8>,
    tape: Vec<Node<'static>>,
}

impl std::fmt::Debug for TokenScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenScratch").finish_non_exhaustive()
    }
}

impl Default for TokenScratch {
    fn default() -> TokenScratch {
        TokenScratch {
            parser: Parser::new(MAX_TOKEN_DEPTH),
            text: Vec::new(),
            tape: Vec::new(),
        }
    }
}

fn refuse(reason: &'static str) -> Error {
    Error::new(Code::AuthenticationFailed, reason)
}

/// Verifies `token` completely: shape, header, key, signature, claims.
///
/// Refuses with `authentication_failed` (the reason is in the error's
/// message, which never reaches the wire) or `token_expired`.
pub fn verify_token(
    token: &str,
    rules: &TokenRules,
    keyring: &Keyring,
    revoked: &RevocationList,
    now: i128,
    scratch: &mut TokenScratch,
) -> Result<VerifiedToken, Error> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(refuse("token longer than 8 KiB"));
    }
    let Some((header, claims, signature)) = compact_segments(token) else {
        return Err(refuse("a token has exactly three segments"));
    };
    let signed_len = header.len() + 1 + claims.len();
    let signed = token.as_bytes().get(..signed_len).unwrap_or_default();

    // Header.
    let (algorithm, key_id) = {
        let header = parse_segment(header, scratch, "header")?;
        read_header(header)?
    };
    let key = keyring
        .get(KeyUse::Jwt, &key_id, now)
        .ok_or_else(|| refuse("unknown kid"))?;
    if key.jwt_algorithm() != Some(algorithm) {
        return Err(refuse("alg does not match the key's type"));
    }

    // Signature, before any claim is believed.
    if !signature_matches(key, signed, signature.as_bytes()) {
        return Err(refuse("bad signature"));
    }

    // Claims.
    let claims_value = parse_segment(claims, scratch, "claims")?;
    let (verified, dates) = read_claims(claims_value, key_id, key.fingerprint())?;
    check_claims(&verified, &dates, rules, revoked, now)?;
    Ok(verified)
}

/// Whether `token` is a compact JWS whose signature `key` verifies, and
/// nothing more: no header, kid or claim checks. For test vectors such as
/// RFC 7515's examples, which carry no `kid`; tokens are checked with
/// [`verify_token`].
#[cfg(any(test, feature = "test-support"))]
pub fn jws_signature_valid(token: &str, key: &Key) -> bool {
    let Some((header, claims, signature)) = compact_segments(token) else {
        return false;
    };
    let signed = token
        .as_bytes()
        .get(..header.len() + 1 + claims.len())
        .unwrap_or_default();
    signature_matches(key, signed, signature.as_bytes())
}

/// The checks a cached token must pass again at each use: its key still
/// usable (and the same key), not revoked, not expired.
pub(crate) fn recheck(
    verified: &VerifiedToken,
    rules: &TokenRules,
    keyring: &Keyring,
    revoked: &RevocationList,
    now: i128,
) -> Result<(), Error> {
    match keyring.get(KeyUse::Jwt, &verified.key_id, now) {
        Some(key) if key.fingerprint() == verified.key_fingerprint => {}
        _ => return Err(refuse("unknown kid")),
    }
    if let Some(jti) = &verified.token_id
        && revoked.contains(jti)
    {
        return Err(refuse("revoked jti"));
    }
    rules.check_expiry(verified.expires_at, now)
}

/// A parsed segment, borrowing the scratch space until dropped.
struct Segment<'s> {
    lease: TapeLease<'s>,
}

impl Segment<'_> {
    fn root(&self) -> Option<JsonRef<'_>> {
        self.lease.value(0)
    }
}

fn parse_segment<'s>(
    text: &str,
    scratch: &'s mut TokenScratch,
    what: &'static str,
) -> Result<Segment<'s>, Error> {
    let TokenScratch {
        parser,
        text: buf,
        tape,
    } = scratch;
    buf.clear();
    if text.is_empty() || b64u::decode_into(text.as_bytes(), buf).is_none() {
        return Err(refuse(match what {
            "header" => "header is not base64url",
            _ => "claims are not base64url",
        }));
    }
    let mut lease = TapeLease::take(tape);
    if parser.parse(buf, &mut lease.tape).is_err() {
        return Err(refuse(match what {
            "header" => "header is not JSON",
            _ => "claims are not JSON",
        }));
    }
    let segment = Segment { lease };
    if segment.root().map(JsonRef::kind) != Some(JsonKind::Object) {
        return Err(refuse(match what {
            "header" => "header is not an object",
            _ => "claims are not an object",
        }));
    }
    Ok(segment)
}

fn read_header(segment: Segment<'_>) -> Result<(JwtAlgorithm, String), Error> {
    let Some(header) = segment.root() else {
        return Err(refuse("header is not an object"));
    };
    let mut algorithm = None;
    let mut key_id = None;
    for (name, value) in header.entries() {
        match name {
            "alg" => {
                let alg = value
                    .as_str()
                    .ok_or_else(|| refuse("alg is not a string"))?;
                algorithm = Some(
                    JwtAlgorithm::from_name(alg)
                        .ok_or_else(|| refuse("alg is not HS256 or EdDSA"))?,
                );
            }
            "kid" => {
                key_id = Some(
                    value
                        .as_str()
                        .ok_or_else(|| refuse("kid is not a string"))?,
                );
            }
            "typ"
                if !value
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("JWT")) =>
            {
                return Err(refuse("typ is not JWT"));
            }
            // Extensions we do not implement must not be ignored (RFC 7515
            // section 4.1.11), and an unencoded payload is not a JWT.
            "crit" => return Err(refuse("crit is not supported")),
            "b64" => return Err(refuse("b64 is not supported")),
            _ => {}
        }
    }
    let algorithm = algorithm.ok_or_else(|| refuse("alg is missing"))?;
    let key_id = key_id.ok_or_else(|| refuse("kid is missing"))?;
    Ok((algorithm, key_id.to_owned()))
}

fn signature_matches(key: &Key, signed: &[u8], signature: &[u8]) -> bool {
    match key.material() {
        Material::Hs256(secret) => b64u::decode_array::<32>(signature)
            .is_some_and(|tag| hmac::verify(secret, signed, &tag).is_ok()),
        Material::Ed25519Public(public) => b64u::decode_array::<64>(signature)
            .is_some_and(|sig| ed25519_verify(public, signed, &sig)),
        Material::Ed25519Pair(pair) => {
            use ring::signature::KeyPair as _;
            b64u::decode_array::<64>(signature)
                .is_some_and(|sig| ed25519_verify(pair.public_key().as_ref(), signed, &sig))
        }
        Material::Signing(_) | Material::Encryption(_) => false,
    }
}

/// A NumericDate in unix nanoseconds.
fn numeric_date(value: JsonRef<'_>, what: &'static str) -> Result<i128, Error> {
    match value.as_number() {
        Some(JsonNumber::Int(v)) => Ok(i128::from(v) * NANOS),
        Some(JsonNumber::Uint(v)) => Ok(i128::from(v) * NANOS),
        // `as` saturates: a date beyond i128 nanoseconds is simply far away.
        Some(JsonNumber::Float(v)) => Ok((v * 1e9) as i128),
        None => Err(refuse(what)),
    }
}

fn read_claims(
    segment: Segment<'_>,
    key_id: String,
    key_fingerprint: u64,
) -> Result<(VerifiedToken, Dates), Error> {
    let Some(claims) = segment.root() else {
        return Err(refuse("claims are not an object"));
    };
    let mut subject = None;
    let mut roles: Vec<Box<str>> = Vec::new();
    let mut expires_at = None;
    let mut token_id = None;
    let mut issuer = None;
    let mut audience = None;
    let mut audiences: Vec<Box<str>> = Vec::new();
    // `nbf` and `iat` are only read here; `check_claims` checks them
    // against the clock and they are not kept in the token.
    let mut not_before = None;
    let mut issued_at = None;
    for (name, value) in claims.entries() {
        match name {
            "sub" => subject = Some(claim_str(value, "sub is not a string")?),
            "exp" => expires_at = Some(numeric_date(value, "exp is not a number")?),
            "nbf" => not_before = Some(numeric_date(value, "nbf is not a number")?),
            "iat" => issued_at = Some(numeric_date(value, "iat is not a number")?),
            "jti" => token_id = Some(Box::from(claim_str(value, "jti is not a string")?)),
            "iss" => issuer = Some(Box::from(claim_str(value, "iss is not a string")?)),
            "aud" => {
                let not_strings = || refuse("aud is not a string or an array of strings");
                match value.kind() {
                    JsonKind::String => audiences.push(Box::from(value.as_str().unwrap_or(""))),
                    JsonKind::Array => {
                        for name in value.elements() {
                            audiences.push(Box::from(name.as_str().ok_or_else(not_strings)?));
                        }
                    }
                    _ => return Err(not_strings()),
                }
                audience = Some(RawJson::from_json(value));
            }
            "roles" => {
                if value.kind() != JsonKind::Array {
                    return Err(refuse("roles is not an array"));
                }
                for role in value.elements() {
                    roles.push(Box::from(claim_str(role, "roles holds a non-string")?));
                }
            }
            _ => {}
        }
    }
    let subject = match subject {
        Some(sub) if !sub.is_empty() => Box::from(sub),
        _ => return Err(refuse("sub is missing")),
    };
    let expires_at = expires_at.ok_or_else(|| refuse("exp is missing"))?;
    let token = VerifiedToken {
        subject,
        roles: roles.into_boxed_slice(),
        expires_at,
        token_id,
        issuer,
        audience,
        audiences: audiences.into_boxed_slice(),
        key_id: key_id.into_boxed_str(),
        key_fingerprint,
    };
    Ok((
        token,
        Dates {
            not_before,
            issued_at,
        },
    ))
}

/// The header, claims and signature of a compact JWS, or `None` unless
/// there are exactly three dot-separated segments.
fn compact_segments(token: &str) -> Option<(&str, &str, &str)> {
    let mut segments = token.split('.');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(header), Some(claims), Some(signature), None) => Some((header, claims, signature)),
        _ => None,
    }
}

/// A claim that must be a JSON string, or the token is refused with `reason`.
fn claim_str<'a>(value: JsonRef<'a>, reason: &'static str) -> Result<&'a str, Error> {
    value.as_str().ok_or_else(|| refuse(reason))
}

/// The claims that are checked once, at verification, and not kept.
#[derive(Clone, Copy)]
struct Dates {
    not_before: Option<i128>,
    issued_at: Option<i128>,
}

fn check_claims(
    token: &VerifiedToken,
    dates: &Dates,
    rules: &TokenRules,
    revoked: &RevocationList,
    now: i128,
) -> Result<(), Error> {
    let Dates {
        not_before,
        issued_at,
    } = *dates;
    if let Some(expected) = &rules.issuer
        && token.issuer.as_deref() != Some(&**expected)
    {
        return Err(refuse("wrong iss"));
    }
    if let Some(expected) = &rules.audience
        && !token.audiences.iter().any(|aud| **aud == **expected)
    {
        return Err(refuse("wrong aud"));
    }
    if let Some(nbf) = not_before
        && nbf > now.saturating_add(rules.leeway_nanos)
    {
        return Err(refuse("nbf is in the future"));
    }
    if let Some(iat) = issued_at
        && iat > now.saturating_add(rules.leeway_nanos)
    {
        return Err(refuse("iat is in the future"));
    }
    if let Some(jti) = &token.token_id
        && revoked.contains(jti)
    {
        return Err(refuse("revoked jti"));
    }
    rules.check_expiry(token.expires_at, now)
}

/// What a new token says.
#[derive(Clone, Debug)]
pub struct TokenClaims<'a> {
    /// The principal (`sub`).
    pub subject: &'a str,
    /// The roles.
    pub roles: &'a [&'a str],
    /// `iss`, if any.
    pub issuer: Option<&'a str>,
    /// `aud` as JSON (a string or an array of strings), if any.
    pub audience: Option<&'a RawJson>,
    /// Lifetime in seconds from `now`.
    pub ttl_secs: u64,
}

/// Issues a token signed with the keyring's active JWT key, with a fresh
/// `iat`, `exp` and random `jti`.
pub fn issue_token(
    keyring: &Keyring,
    claims: &TokenClaims<'_>,
    now: i128,
) -> Result<String, Error> {
    let (key_id, key) = keyring.active(KeyUse::Jwt).ok_or_else(|| {
        Error::new(
            Code::ConfigurationError,
            "no active jwt key to issue tokens with",
        )
    })?;
    let algorithm = key
        .jwt_algorithm()
        .ok_or_else(|| Error::new(Code::InternalError, "active jwt key has no algorithm"))?;

    let mut header = Vec::with_capacity(64);
    header.extend_from_slice(b"{\"alg\":");
    write_str(&mut header, algorithm.as_str());
    header.extend_from_slice(b",\"kid\":");
    write_str(&mut header, key_id);
    header.extend_from_slice(b",\"typ\":\"JWT\"}");

    let mut jti = [0u8; 16];
    SystemRandom::new()
        .fill(&mut jti)
        .map_err(|_| Error::new(Code::InternalError, "no randomness for jti"))?;
    let issued = now.div_euclid(NANOS);
    let expires = issued.saturating_add(i128::from(claims.ttl_secs));
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"sub\":");
    write_str(&mut body, claims.subject);
    body.extend_from_slice(b",\"roles\":[");
    for (n, role) in claims.roles.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        write_str(&mut body, role);
    }
    body.extend_from_slice(b"],\"iat\":");
    body.extend_from_slice(issued.to_string().as_bytes());
    body.extend_from_slice(b",\"exp\":");
    body.extend_from_slice(expires.to_string().as_bytes());
    body.extend_from_slice(b",\"jti\":");
    write_str(&mut body, &b64u::encode(&jti));
    if let Some(iss) = claims.issuer {
        body.extend_from_slice(b",\"iss\":");
        write_str(&mut body, iss);
    }
    if let Some(aud) = claims.audience {
        body.extend_from_slice(b",\"aud\":");
        body.extend_from_slice(aud.as_bytes());
    }
    body.push(b'}');

    let mut token = String::with_capacity(512);
    b64u::encode_into(&header, &mut token);
    token.push('.');
    b64u::encode_into(&body, &mut token);
    let signature = sign(key, token.as_bytes())?;
    token.push('.');
    b64u::encode_into(&signature, &mut token);
    Ok(token)
}

/// A renewal of `token` (docs/protocol.md section 4): same `sub`, `roles`, `iss`
/// and `aud`, fresh dates and `jti`, signed with the active key.
pub fn renew_token(
    keyring: &Keyring,
    token: &VerifiedToken,
    ttl_secs: u64,
    now: i128,
) -> Result<String, Error> {
    let roles: Vec<&str> = token.roles.iter().map(|r| &**r).collect();
    issue_token(
        keyring,
        &TokenClaims {
            subject: &token.subject,
            roles: &roles,
            issuer: token.issuer.as_deref(),
            audience: token.audience.as_ref(),
            ttl_secs,
        },
        now,
    )
}

fn sign(key: &Key, input: &[u8]) -> Result<Vec<u8>, Error> {
    match key.material() {
        Material::Hs256(secret) => Ok(hmac::sign(secret, input).as_ref().to_vec()),
        Material::Ed25519Pair(pair) => Ok(pair.sign(input).as_ref().to_vec()),
        _ => Err(Error::new(
            Code::InternalError,
            "the active jwt key cannot sign",
        )),
    }
}
