//! [`Config`]: the engine's settings, their defaults, and loading them from TOML.
//!
//! The defaults serve a newcomer: no file is needed. A file names only what
//! it changes. A bad file is refused as a whole with `configuration_error`,
//! naming the file, the line and the field, so the operator can fix it
//! without guessing; a key the engine does not know is an error too, since a
//! misspelt key silently ignored is a setting silently not applied.

mod admin;
mod audit;
mod bounded;
mod engine;
mod key_kinds;
mod nats;
mod rate_limit;
mod rule;
mod security;
mod server;

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::codec::{
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_REPLAY_WINDOW_SECS, Limits, check_version_form,
    check_version_major,
};
use crate::error::{Code, Error};
use crate::message::PROTOCOL_VERSION;
use bounded::bounded;

pub use admin::{AdminConfig, DEFAULT_ADMIN_LISTEN};
pub use audit::{AuditConfig, AuditOutput};
pub use engine::{EngineConfig, Overflow, Topology};
pub use key_kinds::{JwtAlgorithm, KeyUse};
pub use nats::{NatsAuth, NatsConfig, NatsTls};
pub use rate_limit::{MAX_RATE, RateLimit};
pub use rule::Rule;
pub use security::{ANONYMOUS_ROLE, AuthorizationConfig, KeyConfig, RoleConfig, SecurityConfig};
pub use server::{DEFAULT_LISTEN, ServerConfig, TlsFiles};

/// The smallest `max_message_size`: an Error envelope must always fit.
pub const MIN_MESSAGE_SIZE: u64 = 512;
/// The largest `max_message_size`: a frame's length (body plus codec byte)
/// must fit its 32-bit length field.
pub const MAX_MESSAGE_SIZE: u64 = u32::MAX as u64 - 1;

/// The engine's configuration (`MCPConfig` of docs/seed-specification.md, plus the replay window).
///
/// ```
/// use mcp_engine::Config;
///
/// let config = Config::from_toml("max_message_size = 65536\n", "engine.toml").unwrap();
/// assert_eq!(config.max_message_size, 65536);
/// assert_eq!(config.timeout_ms, 200); // the default
///
/// let error = Config::from_toml("\ntimeout_ms = \"fast\"\n", "engine.toml").unwrap_err();
/// assert_eq!(error.code().as_str(), "configuration_error");
/// assert!(error.message().starts_with("engine.toml:2: `timeout_ms`"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The protocol version the engine speaks (`"1.0"`).
    pub version: String,
    /// The largest message body accepted, in bytes (default 1 MiB).
    pub max_message_size: u64,
    /// How long a handler may take before the engine answers `timeout`, in
    /// milliseconds (default 200).
    pub timeout_ms: u64,
    /// How far a message's timestamp may lie from the engine's clock, either
    /// way, in seconds (default 300). Also how long message ids are
    /// remembered for replay detection.
    pub replay_window_secs: u64,
    /// Keys, tokens, levels and replay protection (`[security]`).
    pub security: SecurityConfig,
    /// Roles, rules and IP ranges (`[authorization]`).
    pub authorization: AuthorizationConfig,
    /// Threads, queues and bounds (`[engine]`).
    pub engine: EngineConfig,
    /// Listener, TLS and connection limits of `mcp-engine serve` (`[server]`).
    pub server: ServerConfig,
    /// The NATS ingress (`[nats]`), when the section is present.
    pub nats: Option<NatsConfig>,
    /// The admin endpoint of `mcp-engine serve` (`[admin]`), when the
    /// section is present.
    pub admin: Option<AdminConfig>,
    /// The audit log (`[audit]`), when the section is present.
    pub audit: Option<AuditConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            version: PROTOCOL_VERSION.to_owned(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            timeout_ms: 200,
            replay_window_secs: DEFAULT_REPLAY_WINDOW_SECS,
            security: SecurityConfig::default(),
            authorization: AuthorizationConfig::default(),
            engine: EngineConfig::default(),
            server: ServerConfig::default(),
            nats: None,
            admin: None,
            audit: None,
        }
    }
}

/// The file's shape. Every field is optional (a default fills it) and spanned
/// (so a value that is the right type but out of range can name its line).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    version: Option<Spanned<String>>,
    max_message_size: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    replay_window_secs: Option<Spanned<u64>>,
    security: Option<security::SecurityFile>,
    authorization: Option<security::AuthorizationFile>,
    engine: Option<engine::EngineFile>,
    server: Option<server::ServerFile>,
    nats: Option<nats::NatsFile>,
    admin: Option<admin::AdminFile>,
    audit: Option<audit::AuditFile>,
}

impl Config {
    /// Lets messages without a token in: the lowest level accepted becomes
    /// `Low`, and a tokenless message speaks as the role `anonymous`,
    /// which `rules` (`resource-pattern:action-pattern`) grant. For an
    /// engine inside one process, or a trusted network; a message that
    /// carries a token is still checked as its level says.
    ///
    /// ```
    /// use mcp_engine::{Config, SecurityLevel};
    /// let mut config = Config::default();
    /// config.allow_anonymous(["demo:*"]);
    /// assert_eq!(config.security.min_security_level, SecurityLevel::Low);
    /// assert_eq!(config.authorization.roles["anonymous"].allow, ["demo:*"]);
    /// ```
    pub fn allow_anonymous<S: Into<String>>(&mut self, rules: impl IntoIterator<Item = S>) {
        self.security.min_security_level = crate::message::SecurityLevel::Low;
        self.authorization
            .roles
            .insert(ANONYMOUS_ROLE.to_owned(), RoleConfig::allowing(rules));
    }

    /// Reads and validates the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                Code::ConfigurationError,
                format!("{}: cannot read: {e}", path.display()),
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml_in(&text, &path.display().to_string(), base)
    }

    /// Parses and validates TOML `text`; `origin` names it in errors (a
    /// file name, usually). Relative key file paths stay relative to the
    /// working directory.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, Error> {
        Config::from_toml_in(text, origin, Path::new(""))
    }

    /// Parses and validates TOML `text`, resolving relative key file paths
    /// against `base` (the config file's folder).
    pub fn from_toml_in(text: &str, origin: &str, base: &Path) -> Result<Config, Error> {
        let at = |span: Option<Range<usize>>, problem: &str| {
            let place = locate(text, span);
            Error::new(
                Code::ConfigurationError,
                format!("{origin}:{}: {problem}", place),
            )
        };
        // The spanned tree first: it names the field behind a typed error.
        let tree = DeTable::parse(text).map_err(|e| at(e.span(), e.message()))?;
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let field = e
                .span()
                .and_then(|span| field_at(tree.get_ref(), span.start, ""))
                .map(|name| format!("`{name}`: "))
                .unwrap_or_default();
            at(e.span(), &format!("{field}{}", e.message()))
        })?;

        let defaults = Config::default();
        let bounded =
            |value, name, range, unit, default| bounded(&at, value, name, range, unit, default);
        let version = match file.version {
            None => defaults.version,
            Some(v) => {
                let supported = check_version_form(v.get_ref()).is_ok()
                    && check_version_major(Some(v.get_ref())).is_ok();
                if !supported {
                    return Err(at(
                        Some(v.span()),
                        "`version`: must be a version 1 protocol version, e.g. \"1.0\"",
                    ));
                }
                v.into_inner()
            }
        };
        let config = Config {
            version,
            max_message_size: bounded(
                file.max_message_size,
                "max_message_size",
                MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE,
                "bytes",
                defaults.max_message_size,
            )?,
            timeout_ms: bounded(
                file.timeout_ms,
                "timeout_ms",
                1..=3_600_000,
                "milliseconds",
                defaults.timeout_ms,
            )?,
            replay_window_secs: bounded(
                file.replay_window_secs,
                "replay_window_secs",
                1..=86_400,
                "seconds",
                defaults.replay_window_secs,
            )?,
            security: security::security_config(file.security, &at, base)?,
            authorization: security::authorization_config(file.authorization, &at)?,
            engine: engine::engine_config(file.engine, &at)?,
            server: server::server_config(file.server, &at, base)?,
            nats: nats::nats_config(file.nats, &at, base)?,
            admin: admin::admin_config(file.admin, &at)?,
            audit: audit::audit_config(file.audit, &at, base)?,
        };
        if !config.server.enabled && config.nats.is_none() {
            return Err(at(
                None,
                "`server.enabled = false` leaves nothing to serve: add a `[nats]` section",
            ));
        }
        Ok(config)
    }
}

/// `line N` of a byte offset, or `-` when the parser gave no position.
fn locate(text: &str, span: Option<Range<usize>>) -> String {
    match span {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            (before.bytes().filter(|&b| b == b'\n').count() + 1).to_string()
        }
        None => "-".to_owned(),
    }
}

/// The dotted name of the innermost key whose key or value covers `offset`.
fn field_at(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    for (key, value) in table {
        let covers = |span: Range<usize>| span.contains(&offset);
        if !covers(key.span()) && !covers(value.span()) {
            continue;
        }
        let name = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if let DeValue::Table(inner) = value.get_ref()
            && let Some(deeper) = field_at(inner, offset, &name)
        {
            return Some(deeper);
        }
        return Some(name);
    }
    None
}

impl Limits {
    /// The limits a decoder holds messages to under `config`.
    pub fn from_config(config: &Config) -> Limits {
        Limits::new(config.max_message_size, config.replay_window_secs)
    }
}
