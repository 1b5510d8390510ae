//! The `[nats]` section: the broker, credentials, subjects and limits of
//! the NATS ingress (`docs/scaling.md`). The section is read on every
//! build, so that a build without the `nats` feature can refuse a config
//! that asks for NATS instead of ignoring it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::bounded::bounded;
use crate::error::Error;

/// How the engine proves itself to the broker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials.
    #[default]
    None,
    /// A user name and the file holding its password.
    UserPassword {
        /// The user name.
        user: String,
        /// The file holding the password (its first line).
        password_file: PathBuf,
    },
    /// The file holding a token (its first line).
    Token {
        /// The file holding the token.
        token_file: PathBuf,
    },
    /// The file holding an nkey seed (`SU...`, its first line).
    Nkey {
        /// The file holding the seed.
        seed_file: PathBuf,
    },
    /// A `.creds` file (a user JWT and its nkey seed).
    Credentials {
        /// The file.
        creds_file: PathBuf,
    },
}

/// TLS to the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsTls {
    /// CA certificates (PEM) the broker's certificate must chain to.
    pub ca: PathBuf,
    /// A client certificate chain (PEM), for brokers that require one.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
}

impl NatsTls {
    /// TLS to a broker whose certificate chains to the CA certificates in
    /// `ca`, without a client certificate.
    pub fn trusting(ca: impl Into<PathBuf>) -> NatsTls {
        NatsTls {
            ca: ca.into(),
            cert: None,
            key: None,
        }
    }
}

/// Where and how the NATS ingress connects and what it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsConfig {
    /// Broker URLs (`nats://host:port` or `tls://host:port`); the client
    /// connects to one and fails over to the others (default
    /// `["nats://127.0.0.1:4222"]`).
    pub urls: Vec<String>,
    /// The subject requests arrive on (default `mcp.requests`). A reply is
    /// published to each request's reply subject.
    pub subject: String,
    /// The subject events arrive on (default `mcp.events`): nothing is
    /// published back.
    pub events_subject: String,
    /// The queue group both subjects are subscribed in: the broker gives
    /// each message to one member (default `mcp-engine`).
    pub queue_group: String,
    /// Messages in the engine at once; past it a request is answered
    /// `resource_exhausted` at once (default 4096).
    pub max_in_flight: u64,
    /// The connection's name, as the broker's monitoring shows it (default
    /// `mcp-engine`).
    pub name: String,
    /// Credentials.
    pub auth: NatsAuth,
    /// TLS to the broker; when set, TLS is required.
    pub tls: Option<NatsTls>,
    /// How long the first connection may take, in milliseconds (default
    /// 5000). Later ones are retried without end.
    pub connect_timeout_ms: u64,
    /// On shutdown, how long to wait for the replies of messages already
    /// taken, in milliseconds (default 5000).
    pub drain_timeout_ms: u64,
}

impl NatsConfig {
    /// The default settings, connecting to `urls` instead of the local
    /// broker.
    pub fn with_urls<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> NatsConfig {
        NatsConfig {
            urls: urls.into_iter().map(Into::into).collect(),
            ..NatsConfig::default()
        }
    }
}

impl Default for NatsConfig {
    fn default() -> NatsConfig {
        NatsConfig {
            urls: vec!["nats://127.0.0.1:4222".to_owned()],
            subject: "mcp.requests".to_owned(),
            events_subject: "mcp.events".to_owned(),
            queue_group: "mcp-engine".to_owned(),
            max_in_flight: 4096,
            name: "mcp-engine".to_owned(),
            auth: NatsAuth::None,
            tls: None,
            connect_timeout_ms: 5000,
            drain_timeout_ms: 5000,
        }
    }
}

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NatsFile {
    urls: Option<Vec<String>>,
    subject: Option<Spanned<String>>,
    events_subject: Option<Spanned<String>>,
    queue_group: Option<Spanned<String>>,
    max_in_flight: Option<Spanned<u64>>,
    name: Option<String>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
    nkey_seed_file: Option<PathBuf>,
    creds_file: Option<PathBuf>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    connect_timeout_ms: Option<Spanned<u64>>,
    drain_timeout_ms: Option<Spanned<u64>>,
}

pub(super) fn nats_config(
    file: Option<NatsFile>,
    at: &impl Fn(Option<Range<usize>>, &str) -> Error,
    base: &Path,
) -> Result<Option<NatsConfig>, Error> {
    let Some(file) = file else {
        return Ok(None);
    };
    let defaults = NatsConfig::default();
    let urls = match file.urls {
        None => defaults.urls,
        Some(urls) if urls.is_empty() => {
            return Err(at(None, "`nats.urls`: needs at least one URL"));
        }
        Some(urls) => urls,
    };
    let subject = |value: Option<Spanned<String>>, name: &str, default: String| match value {
        None => Ok(default),
        Some(text) if is_subject(text.get_ref()) => Ok(text.into_inner()),
        Some(text) => Err(at(
            Some(text.span()),
            &format!("`nats.{name}`: not a NATS subject (dot-separated tokens, no spaces)"),
        )),
    };
    let path = |p: PathBuf| base.join(p);
    let auth = match (
        file.user,
        file.password_file,
        file.token_file,
        file.nkey_seed_file,
        file.creds_file,
    ) {
        (None, None, None, None, None) => NatsAuth::None,
        (Some(user), Some(password_file), None, None, None) => NatsAuth::UserPassword {
            user,
            password_file: path(password_file),
        },
        (None, None, Some(token_file), None, None) => NatsAuth::Token {
            token_file: path(token_file),
        },
        (None, None, None, Some(seed_file), None) => NatsAuth::Nkey {
            seed_file: path(seed_file),
        },
        (None, None, None, None, Some(creds_file)) => NatsAuth::Credentials {
            creds_file: path(creds_file),
        },
        (Some(_), None, ..) | (None, Some(_), ..) => {
            return Err(at(None, "`nats.user` and `nats.password_file` go together"));
        }
        _ => {
            return Err(at(
                None,
                "`nats`: one kind of credentials: user and password_file, token_file, \
                 nkey_seed_file or creds_file",
            ));
        }
    };
    let tls = match (file.ca, file.cert, file.key) {
        (None, None, None) => None,
        (Some(ca), cert, key) if cert.is_some() == key.is_some() => Some(NatsTls {
            ca: path(ca),
            cert: cert.map(path),
            key: key.map(path),
        }),
        (None, ..) => return Err(at(None, "`nats.cert` and `nats.key` need `nats.ca`")),
        _ => return Err(at(None, "`nats.cert` and `nats.key` go together")),
    };
    let bounded =
        |value, name, range, unit, default| bounded(at, value, name, range, unit, default);
    Ok(Some(NatsConfig {
        urls,
        subject: subject(file.subject, "subject", defaults.subject)?,
        events_subject: subject(
            file.events_subject,
            "events_subject",
            defaults.events_subject,
        )?,
        queue_group: subject(file.queue_group, "queue_group", defaults.queue_group)?,
        max_in_flight: bounded(
            file.max_in_flight,
            "nats.max_in_flight",
            1..=1_048_576,
            "messages",
            defaults.max_in_flight,
        )?,
        name: file.name.unwrap_or(defaults.name),
        auth,
        tls,
        connect_timeout_ms: bounded(
            file.connect_timeout_ms,
            "nats.connect_timeout_ms",
            100..=600_000,
            "milliseconds",
            defaults.connect_timeout_ms,
        )?,
        drain_timeout_ms: bounded(
            file.drain_timeout_ms,
            "nats.drain_timeout_ms",
            0..=600_000,
            "milliseconds",
            defaults.drain_timeout_ms,
        )?,
    }))
}

/// Whether `text` is a subject one may subscribe to: dot-separated,
/// non-empty tokens of printable ASCII without spaces (wildcards allowed).
fn is_subject(text: &str) -> bool {
    !text.is_empty()
        && text
            .split('.')
            .all(|token| !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    #[test]
    fn a_bare_section_takes_every_default() {
        let config = Config::from_toml("[nats]\n", "t").unwrap();
        assert_eq!(config.nats, Some(NatsConfig::default()));
        assert_eq!(Config::from_toml("", "t").unwrap().nats, None);
    }

    #[test]
    fn every_field_is_read_and_paths_are_relative_to_the_file() {
        let text = r#"
            [nats]
            urls = ["tls://a:4222", "tls://b:4222"]
            subject = "svc.mcp"
            events_subject = "svc.events"
            queue_group = "blue"
            max_in_flight = 100
            name = "engine-7"
            user = "mcp"
            password_file = "pw"
            ca = "ca.pem"
            cert = "c.pem"
            key = "k.pem"
            connect_timeout_ms = 200
            drain_timeout_ms = 0
        "#;
        let config = Config::from_toml_in(text, "t", Path::new("/etc/mcp"))
            .unwrap()
            .nats
            .unwrap();
        assert_eq!(config.urls, ["tls://a:4222", "tls://b:4222"]);
        assert_eq!(
            (
                &*config.subject,
                &*config.events_subject,
                &*config.queue_group
            ),
            ("svc.mcp", "svc.events", "blue")
        );
        assert_eq!(config.max_in_flight, 100);
        assert_eq!(config.name, "engine-7");
        assert_eq!(
            config.auth,
            NatsAuth::UserPassword {
                user: "mcp".into(),
                password_file: "/etc/mcp/pw".into()
            }
        );
        let tls = config.tls.unwrap();
        assert_eq!(tls.ca, Path::new("/etc/mcp/ca.pem"));
        assert_eq!(tls.cert.as_deref(), Some(Path::new("/etc/mcp/c.pem")));
        assert_eq!(
            (config.connect_timeout_ms, config.drain_timeout_ms),
            (200, 0)
        );
    }

    #[test]
    fn faults_are_named() {
        let cases = [
            ("urls = []", "at least one URL"),
            ("subject = \"a..b\"", "`nats.subject`: not a NATS subject"),
            ("queue_group = \"a b\"", "`nats.queue_group`"),
            ("max_in_flight = 0", "`nats.max_in_flight`: must be between"),
            ("user = \"u\"", "go together"),
            (
                "token_file = \"t\"\nnkey_seed_file = \"s\"",
                "one kind of credentials",
            ),
            ("cert = \"c\"\nkey = \"k\"", "need `nats.ca`"),
            ("ca = \"a\"\ncert = \"c\"", "go together"),
            ("colour = 1", "unknown field"),
        ];
        let alone = Config::from_toml("[server]\nenabled = false\n", "t").unwrap_err();
        assert!(alone.message().contains("leaves nothing to serve"));
        let nats_only = Config::from_toml("[server]\nenabled = false\n[nats]\n", "t").unwrap();
        assert!(!nats_only.server.enabled);
        for (body, expected) in cases {
            let text = format!("[nats]\n{body}\n");
            let error = Config::from_toml(&text, "t").unwrap_err();
            assert!(
                error.message().contains(expected),
                "{body}: {}",
                error.message()
            );
        }
    }
}
