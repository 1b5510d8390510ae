//! [`Credentials`]: what a client needs to talk to a server, as
//! `mcp-engine dev-config` and `serve` write it (`credentials.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Code, Error};
use crate::security::{Key, Keyring, b64u};

/// A key and its id, the key as base64url text.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedKey {
    /// The key id.
    pub kid: String,
    /// The key, base64url.
    pub key: Zeroizing<String>,
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedKey").field("kid", &self.kid).finish()
    }
}

/// The token key, for clients that mint tokens of their own.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    /// `HS256`.
    pub alg: String,
    /// The key id and secret.
    #[serde(flatten)]
    pub key: NamedKey,
    /// The issuer the server checks, if any.
    pub iss: Option<String>,
    /// The audience the server checks, if any.
    pub aud: Option<String>,
}

/// The contents of `credentials.json` (docs/cli.md, `dev-config`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The server's address.
    pub addr: String,
    /// Whether the server speaks TLS.
    pub tls: bool,
    /// The CA certificate that signed the server's certificate.
    pub ca_cert: Option<PathBuf>,
    /// The name the server's certificate is for.
    pub server_name: Option<String>,
    /// The token key.
    pub jwt: Option<JwtKey>,
    /// The HMAC key for signatures.
    pub signing: Option<NamedKey>,
    /// The AES-256-GCM key for payloads.
    pub encryption: Option<NamedKey>,
    /// Tokens by role.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
    /// The admin endpoint's URL (`http://127.0.0.1:7451`), when the server
    /// runs one (dev mode does).
    #[serde(default)]
    pub admin: Option<String>,
}

fn bad(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::new(Code::ConfigurationError, format!("{what}: {detail}"))
}

impl Credentials {
    /// Reads `credentials.json` at `path`.
    pub fn load(path: &Path) -> Result<Credentials, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(&format!("cannot read {}", path.display()), e))?;
        Credentials::parse(&text).map_err(|e| bad(&path.display().to_string(), e.message()))
    }

    /// Parses credentials from JSON text.
    pub fn parse(text: &str) -> Result<Credentials, Error> {
        serde_json::from_str(text).map_err(|e| bad("credentials", e))
    }

    /// A keyring with the signing and encryption keys (what a client needs
    /// to seal requests and open replies).
    pub fn keyring(&self) -> Result<Keyring, Error> {
        let mut keyring = Keyring::new();
        if let Some(signing) = &self.signing {
            let secret = Zeroizing::new(
                b64u::decode(&signing.key).ok_or_else(|| bad("signing key", "not base64url"))?,
            );
            keyring = keyring.with(&signing.kid, Key::signing(&secret)?, true)?;
        }
        if let Some(encryption) = &self.encryption {
            let secret = Zeroizing::new(
                b64u::decode(&encryption.key)
                    .ok_or_else(|| bad("encryption key", "not base64url"))?,
            );
            keyring = keyring.with(&encryption.kid, Key::encryption(&secret)?, true)?;
        }
        Ok(keyring)
    }

    /// The token of `role`.
    pub fn token(&self, role: &str) -> Option<&str> {
        self.tokens.get(role).map(String::as_str)
    }
}
