//! The `[security]` and `[authorization]` sections: keys, token rules,
//! levels, replay memory, roles and IP ranges.
//!
//! Everything is checked here, at load, so that a reload either applies a
//! complete, valid setup or changes nothing. Key files are named, not read:
//! the [`Keyring`](crate::security::Keyring) reads them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::bounded::bounded;
use super::key_kinds::{JwtAlgorithm, KeyUse};
use super::rate_limit::{RateLimit, rate_limit};
use super::rule::Rule;
use crate::error::Error;
use crate::message::SecurityLevel;

/// Keys, token rules, the lowest accepted level, and replay memory.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// Messages below this level are refused with `access_denied` (default
    /// `Standard`).
    pub min_security_level: SecurityLevel,
    /// Clock skew allowed on a token's `exp`, `nbf` and `iat`, in seconds
    /// (default 5).
    pub token_leeway_secs: u64,
    /// Lifetime of tokens the engine issues (`auth.renew`, `mcp-engine
    /// token`), in seconds (default 3600).
    pub token_ttl_secs: u64,
    /// When set, tokens must carry this `iss`, and issued tokens do.
    pub issuer: Option<String>,
    /// When set, tokens must name this audience in `aud`, and issued tokens do.
    pub audience: Option<String>,
    /// How long a key dropped from the keyring by a reload still verifies
    /// and decrypts, in seconds (default 3600).
    pub key_grace_secs: u64,
    /// How many message ids the replay guard remembers, over all principals
    /// (default 4,194,304). Its table (16 bytes an id, rounded up to a
    /// power of two: 64 MiB by default) is mapped in full at start, on huge
    /// pages where the kernel allows.
    pub replay_capacity: u64,
    /// How many replay streams (docs/protocol.md section 7a) the engine
    /// keeps, over all principals (default 1,048,576; about 190 bytes each
    /// at the default window, taken as streams come).
    pub replay_streams: u64,
    /// The numbers below a stream's highest that its window remembers
    /// (default 1024, the protocol's least; a multiple of 64).
    pub replay_stream_window: u64,
    /// How many live ids one principal may hold in the replay table, unless
    /// a role of its says otherwise (`None`: three quarters of
    /// `replay_capacity`, so that one principal alone cannot fill it).
    pub principal_replay_ids: Option<u64>,
    /// How many live streams one principal may hold, unless a role of its
    /// says otherwise (`None`: a quarter of `replay_streams`).
    pub principal_replay_streams: Option<u64>,
    /// Verified tokens cached per worker (default 4096; 0 turns the cache
    /// off).
    pub token_cache_capacity: u64,
    /// Token ids (`jti`) refused even though their tokens verify.
    pub revoked_jti: Vec<String>,
    /// The keys.
    pub keys: Vec<KeyConfig>,
}

impl Default for SecurityConfig {
    fn default() -> SecurityConfig {
        SecurityConfig {
            min_security_level: SecurityLevel::Standard,
            token_leeway_secs: 5,
            token_ttl_secs: 3600,
            issuer: None,
            audience: None,
            key_grace_secs: 3600,
            replay_capacity: 1 << 22,
            replay_streams: 1 << 20,
            replay_stream_window: 1024,
            principal_replay_ids: None,
            principal_replay_streams: None,
            token_cache_capacity: 4096,
            revoked_jti: Vec::new(),
            keys: Vec::new(),
        }
    }
}

/// One key of the keyring (`[[security.keys]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyConfig {
    /// The key id: the JWT `kid`, the signature's `kid`, or the encryption
    /// `key_id`. Unique over all keys.
    pub id: String,
    /// What the key is for.
    pub key_use: KeyUse,
    /// For JWT keys: the algorithm (`HS256` or `EdDSA`).
    pub algorithm: Option<JwtAlgorithm>,
    /// The file holding the key: base64url text of the secret, or PEM for
    /// Ed25519 (a `PRIVATE KEY` can also issue, a `PUBLIC KEY` only verifies).
    pub file: PathBuf,
    /// Whether new output (issued tokens, the engine's own signatures and
    /// encryption) uses this key. At most one active key per use.
    pub active: bool,
}

impl KeyConfig {
    /// Key `id` for `key_use`, read from `file`: no JWT algorithm, not
    /// active (set those fields as the key needs).
    pub fn new(id: impl Into<String>, key_use: KeyUse, file: impl Into<PathBuf>) -> KeyConfig {
        KeyConfig {
            id: id.into(),
            key_use,
            algorithm: None,
            file: file.into(),
            active: false,
        }
    }
}

/// Who may do what, and from where (`[authorization]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizationConfig {
    /// When not empty, only clients in these ranges are served at all.
    pub allow_ips: Vec<IpNet>,
    /// Clients in these ranges are refused before anything else.
    pub deny_ips: Vec<IpNet>,
    /// Rules by role name.
    pub roles: BTreeMap<String, RoleConfig>,
    /// Each principal's rate limit unless a role of its sets one (`rate`,
    /// `burst`); `None`: no limit.
    pub rate_limit: Option<RateLimit>,
}

/// The role of a message that carries no token (only possible where
/// `min_security_level` is `Low`).
pub const ANONYMOUS_ROLE: &str = "anonymous";

/// One role's rules (`[authorization.roles.NAME]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoleConfig {
    /// `resource-pattern:action-pattern` rules that grant.
    pub allow: Vec<String>,
    /// Rules that refuse; a matching deny wins over any allow.
    pub deny: Vec<String>,
    /// When not empty, the role grants only to clients in these ranges.
    pub ips: Vec<IpNet>,
    /// Live ids a principal with this role may hold in the replay table
    /// (`None`: `security.principal_replay_ids`). A principal with several
    /// roles gets the largest.
    pub replay_ids: Option<u64>,
    /// Live replay streams a principal with this role may hold (`None`:
    /// `security.principal_replay_streams`).
    pub replay_streams: Option<u64>,
    /// The rate limit of a principal with this role (`None`:
    /// `authorization`'s). A principal with several roles that set one
    /// gets the one of the highest rate.
    pub rate_limit: Option<RateLimit>,
}

impl RoleConfig {
    /// A role that grants `rules` (`resource-pattern:action-pattern`) and
    /// nothing else: no deny rules, any address, the default replay
    /// shares.
    ///
    /// ```
    /// use mcp_engine::config::RoleConfig;
    /// let reader = RoleConfig::allowing(["datasets/*:read"]);
    /// assert_eq!(reader.allow, ["datasets/*:read"]);
    /// assert!(reader.deny.is_empty());
    /// ```
    pub fn allowing<S: Into<String>>(rules: impl IntoIterator<Item = S>) -> RoleConfig {
        RoleConfig {
            allow: rules.into_iter().map(Into::into).collect(),
            ..RoleConfig::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecurityFile {
    min_security_level: Option<Spanned<String>>,
    token_leeway_secs: Option<Spanned<u64>>,
    token_ttl_secs: Option<Spanned<u64>>,
    issuer: Option<Spanned<String>>,
    audience: Option<Spanned<String>>,
    key_grace_secs: Option<Spanned<u64>>,
    replay_capacity: Option<Spanned<u64>>,
    replay_streams: Option<Spanned<u64>>,
    replay_stream_window: Option<Spanned<u64>>,
    principal_replay_ids: Option<Spanned<u64>>,
    principal_replay_streams: Option<Spanned<u64>>,
    token_cache_capacity: Option<Spanned<u64>>,
    revoked_jti: Option<Vec<Spanned<String>>>,
    keys: Option<Vec<Spanned<KeyFile>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    id: Spanned<String>,
    #[serde(rename = "use")]
    key_use: Spanned<String>,
    algorithm: Option<Spanned<String>>,
    file: Spanned<String>,
    active: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthorizationFile {
    allow_ips: Option<Vec<Spanned<String>>>,
    deny_ips: Option<Vec<Spanned<String>>>,
    rate: Option<Spanned<u64>>,
    burst: Option<Spanned<u64>>,
    roles: Option<BTreeMap<String, Spanned<RoleFile>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    allow: Option<Vec<Spanned<String>>>,
    deny: Option<Vec<Spanned<String>>>,
    ips: Option<Vec<Spanned<String>>>,
    replay_ids: Option<Spanned<u64>>,
    replay_streams: Option<Spanned<u64>>,
    rate: Option<Spanned<u64>>,
    burst: Option<Spanned<u64>>,
}

type At<'a> = dyn Fn(Option<Range<usize>>, &str) -> Error + 'a;

pub(super) fn security_config(
    file: Option<SecurityFile>,
    at: &At<'_>,
    base: &Path,
) -> Result<SecurityConfig, Error> {
    let defaults = SecurityConfig::default();
    let Some(file) = file else {
        return Ok(defaults);
    };
    let min_security_level = match file.min_security_level {
        None => defaults.min_security_level,
        Some(name) => SecurityLevel::from_name(name.get_ref()).ok_or_else(|| {
            at(
                Some(name.span()),
                "`security.min_security_level`: must be Low, Standard, High or Critical",
            )
        })?,
    };
    let non_empty = |value: Option<Spanned<String>>, name: &str| match value {
        Some(v) if v.get_ref().is_empty() => Err(at(
            Some(v.span()),
            &format!("`security.{name}`: must not be empty"),
        )),
        v => Ok(v.map(Spanned::into_inner)),
    };
    let mut keys: Vec<KeyConfig> = Vec::new();
    for spanned in file.keys.unwrap_or_default() {
        let span = spanned.span();
        let key = key_config(spanned.into_inner(), at, base)?;
        if keys.iter().any(|k| k.id == key.id) {
            return Err(at(
                Some(span),
                &format!("`security.keys`: key id `{}` is used twice", key.id),
            ));
        }
        if key.active && keys.iter().any(|k| k.active && k.key_use == key.key_use) {
            return Err(at(
                Some(span),
                &format!(
                    "`security.keys`: two active {} keys; at most one per use",
                    key.key_use.as_str()
                ),
            ));
        }
        keys.push(key);
    }
    Ok(SecurityConfig {
        min_security_level,
        token_leeway_secs: bounded(
            at,
            file.token_leeway_secs,
            "security.token_leeway_secs",
            0..=300,
            "seconds",
            defaults.token_leeway_secs,
        )?,
        token_ttl_secs: bounded(
            at,
            file.token_ttl_secs,
            "security.token_ttl_secs",
            1..=31_536_000,
            "seconds",
            defaults.token_ttl_secs,
        )?,
        issuer: non_empty(file.issuer, "issuer")?,
        audience: non_empty(file.audience, "audience")?,
        key_grace_secs: bounded(
            at,
            file.key_grace_secs,
            "security.key_grace_secs",
            0..=30 * 86_400,
            "seconds",
            defaults.key_grace_secs,
        )?,
        replay_capacity: bounded(
            at,
            file.replay_capacity,
            "security.replay_capacity",
            1024..=1 << 30,
            "ids",
            defaults.replay_capacity,
        )?,
        replay_streams: bounded(
            at,
            file.replay_streams,
            "security.replay_streams",
            1..=1 << 26,
            "streams",
            defaults.replay_streams,
        )?,
        replay_stream_window: stream_window(
            file.replay_stream_window,
            at,
            defaults.replay_stream_window,
        )?,
        principal_replay_ids: optional_count(
            at,
            file.principal_replay_ids,
            "security.principal_replay_ids",
            "ids",
        )?,
        principal_replay_streams: optional_count(
            at,
            file.principal_replay_streams,
            "security.principal_replay_streams",
            "streams",
        )?,
        token_cache_capacity: bounded(
            at,
            file.token_cache_capacity,
            "security.token_cache_capacity",
            0..=1 << 20,
            "tokens",
            defaults.token_cache_capacity,
        )?,
        revoked_jti: file
            .revoked_jti
            .unwrap_or_default()
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        keys,
    })
}

/// `replay_stream_window`: 1024 to 65,536 numbers, a multiple of 64.
fn stream_window(value: Option<Spanned<u64>>, at: &At<'_>, default: u64) -> Result<u64, Error> {
    let span = value.as_ref().map(Spanned::span);
    let window = bounded(
        at,
        value,
        "security.replay_stream_window",
        1024..=65_536,
        "numbers",
        default,
    )?;
    if window % 64 != 0 {
        return Err(at(
            span,
            "`security.replay_stream_window`: must be a multiple of 64",
        ));
    }
    Ok(window)
}

/// A count of replay entries one principal may hold: at least one.
fn optional_count(
    at: &At<'_>,
    value: Option<Spanned<u64>>,
    name: &str,
    unit: &str,
) -> Result<Option<u64>, Error> {
    match value {
        None => Ok(None),
        value => bounded(at, value, name, 1..=1 << 40, unit, 0).map(Some),
    }
}

fn key_config(file: KeyFile, at: &At<'_>, base: &Path) -> Result<KeyConfig, Error> {
    let id = file.id.get_ref();
    // A key id travels in `kid:signature`, so it must not hold a colon.
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(at(
            Some(file.id.span()),
            "`security.keys.id`: 1 to 128 characters of A-Z a-z 0-9 . _ -",
        ));
    }
    let key_use = KeyUse::from_name(file.key_use.get_ref()).ok_or_else(|| {
        at(
            Some(file.key_use.span()),
            "`security.keys.use`: must be jwt, signing or encryption",
        )
    })?;
    let algorithm = match (key_use, file.algorithm) {
        (KeyUse::Jwt, Some(name)) => {
            Some(JwtAlgorithm::from_name(name.get_ref()).ok_or_else(|| {
                at(
                    Some(name.span()),
                    "`security.keys.algorithm`: must be HS256 or EdDSA",
                )
            })?)
        }
        (KeyUse::Jwt, None) => {
            return Err(at(
                Some(file.id.span()),
                "`security.keys.algorithm`: a jwt key needs one (HS256 or EdDSA)",
            ));
        }
        (_, Some(name)) => {
            return Err(at(
                Some(name.span()),
                "`security.keys.algorithm`: only jwt keys take one (signing is HMAC-SHA256, encryption AES-256-GCM)",
            ));
        }
        (_, None) => None,
    };
    if file.file.get_ref().is_empty() {
        return Err(at(
            Some(file.file.span()),
            "`security.keys.file`: must not be empty",
        ));
    }
    Ok(KeyConfig {
        id: file.id.into_inner(),
        key_use,
        algorithm,
        file: base.join(file.file.get_ref()),
        active: file.active.unwrap_or(false),
    })
}

pub(super) fn authorization_config(
    file: Option<AuthorizationFile>,
    at: &At<'_>,
) -> Result<AuthorizationConfig, Error> {
    let Some(file) = file else {
        return Ok(AuthorizationConfig::default());
    };
    let ranges = |list: Option<Vec<Spanned<String>>>, name: &str| {
        list.unwrap_or_default()
            .into_iter()
            .map(|text| {
                parse_range(text.get_ref()).ok_or_else(|| {
                    at(
                        Some(text.span()),
                        &format!("`authorization.{name}`: not an IP address or CIDR range"),
                    )
                })
            })
            .collect::<Result<Vec<IpNet>, Error>>()
    };
    let rules = |list: Option<Vec<Spanned<String>>>, name: &str| {
        list.unwrap_or_default()
            .into_iter()
            .map(|text| match Rule::parse(text.get_ref()) {
                Ok(_) => Ok(text.into_inner()),
                Err(problem) => Err(at(
                    Some(text.span()),
                    &format!("`authorization.{name}`: {problem}"),
                )),
            })
            .collect::<Result<Vec<String>, Error>>()
    };
    let mut roles = BTreeMap::new();
    for (name, role) in file.roles.unwrap_or_default() {
        let role = role.into_inner();
        let prefix = format!("roles.{name}");
        roles.insert(
            name,
            RoleConfig {
                allow: rules(role.allow, &format!("{prefix}.allow"))?,
                deny: rules(role.deny, &format!("{prefix}.deny"))?,
                ips: ranges(role.ips, &format!("{prefix}.ips"))?,
                replay_ids: optional_count(
                    at,
                    role.replay_ids,
                    &format!("authorization.{prefix}.replay_ids"),
                    "ids",
                )?,
                replay_streams: optional_count(
                    at,
                    role.replay_streams,
                    &format!("authorization.{prefix}.replay_streams"),
                    "streams",
                )?,
                rate_limit: rate_limit(
                    at,
                    role.rate,
                    role.burst,
                    &format!("authorization.{prefix}."),
                )?,
            },
        );
    }
    Ok(AuthorizationConfig {
        allow_ips: ranges(file.allow_ips, "allow_ips")?,
        deny_ips: ranges(file.deny_ips, "deny_ips")?,
        roles,
        rate_limit: rate_limit(at, file.rate, file.burst, "authorization.")?,
    })
}

/// A CIDR range, or a single address as its one-address range.
pub(crate) fn parse_range(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}
