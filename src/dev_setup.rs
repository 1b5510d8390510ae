//! [`DevSetup`]: a complete, working development setup in one folder, as
//! `mcp-engine dev-config` and the dev mode of `serve` make it.
//!
//! Fresh random keys (an HS256 token secret, a signing key, an encryption
//! key), a CA and a `localhost` server certificate signed by it, an
//! `engine.toml` that names the keys, and `credentials.json` with
//! everything a client needs (keys, the CA, and one token per role). Secret
//! files are written owner-only.

use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::{Code, Error};
use crate::security::{Keyring, TokenClaims, b64u, issue_token};

/// The address dev setups serve on unless told otherwise: the server's
/// default.
pub const DEV_ADDR: SocketAddr = crate::config::DEFAULT_LISTEN;

/// Lifetime of the tokens in `credentials.json`, and of renewed dev tokens.
const DEV_TOKEN_TTL_SECS: u64 = 86_400;

const JWT_KID: &str = "dev-jwt-1";
const SIGNING_KID: &str = "dev-sign-1";
const ENCRYPTION_KID: &str = "dev-enc-1";

/// A development setup written to a folder.
#[derive(Debug)]
pub struct DevSetup {
    /// The folder.
    pub dir: PathBuf,
    /// `engine.toml` in it.
    pub config_path: PathBuf,
    /// The CA certificate clients trust.
    pub ca_cert: PathBuf,
    /// The server's certificate (PEM).
    pub server_cert: PathBuf,
    /// The server's private key (PEM, PKCS#8).
    pub server_key: PathBuf,
    /// `credentials.json` in it.
    pub credentials_path: PathBuf,
    /// The credentials, as one line of JSON.
    pub credentials: String,
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(
        Code::ConfigurationError,
        format!("{what} {}: {e}", path.display()),
    )
}

/// Writes `bytes` to `path`, readable by the owner only when `secret`.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), Error> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .map_err(|e| io_error("cannot write", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("cannot write", path, e))
}

/// 32 fresh random bytes.
pub fn random_key() -> Result<Zeroizing<[u8; 32]>, Error> {
    let mut key = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut key[..])
        .map_err(|_| Error::new(Code::InternalError, "no randomness available"))?;
    Ok(key)
}

fn tls_error(e: rcgen::Error) -> Error {
    Error::new(
        Code::InternalError,
        format!("cannot make the dev certificates: {e}"),
    )
}

/// A CA and a `localhost` certificate (SAN `DNS:localhost`, `IP:127.0.0.1`)
/// it signed: `(ca_pem, server_pem, server_key_pem)`.
fn certificates() -> Result<(String, String, Zeroizing<String>), Error> {
    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mcp-engine development CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(tls_error)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().map_err(tls_error)?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).map_err(tls_error)?;
    server
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_cert = server.signed_by(&server_key, &issuer).map_err(tls_error)?;
    Ok((
        ca_cert.pem(),
        server_cert.pem(),
        Zeroizing::new(server_key.serialize_pem()),
    ))
}

fn engine_toml(addr: SocketAddr) -> String {
    format!(
        r#"# mcp-engine development setup, written by `mcp-engine dev-config`.
# Not for production: the keys sit next to this file.
timeout_ms = 200

[security]
min_security_level = "Standard"
token_ttl_secs = {DEV_TOKEN_TTL_SECS}

[[security.keys]]
id = "{JWT_KID}"
use = "jwt"
algorithm = "HS256"
file = "keys/jwt.key"
active = true

[[security.keys]]
id = "{SIGNING_KID}"
use = "signing"
file = "keys/signing.key"
active = true

[[security.keys]]
id = "{ENCRYPTION_KID}"
use = "encryption"
file = "keys/encryption.key"
active = true

[authorization.roles.admin]
allow = ["*:*"]

[authorization.roles.reader]
allow = ["demo:echo", "sys:*"]

[server]
listen = "{addr}"
cert = "server.pem"
key = "server-key.pem"
"#
    )
}

impl DevSetup {
    /// Writes a fresh setup into `dir` (created if missing), for a server at
    /// `addr`.
    pub fn write(dir: &Path, addr: SocketAddr) -> Result<DevSetup, Error> {
        fs::create_dir_all(dir.join("keys")).map_err(|e| io_error("cannot create", dir, e))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| io_error("cannot resolve", dir, e))?;

        let jwt = random_key()?;
        let signing = random_key()?;
        let encryption = random_key()?;
        let (jwt_text, signing_text, encryption_text) = (
            Zeroizing::new(b64u::encode(&jwt[..])),
            Zeroizing::new(b64u::encode(&signing[..])),
            Zeroizing::new(b64u::encode(&encryption[..])),
        );
        let keys = dir.join("keys");
        write_file(&keys.join("jwt.key"), jwt_text.as_bytes(), true)?;
        write_file(&keys.join("signing.key"), signing_text.as_bytes(), true)?;
        write_file(
            &keys.join("encryption.key"),
            encryption_text.as_bytes(),
            true,
        )?;

        let (ca_pem, server_pem, server_key_pem) = certificates()?;
        let ca_cert = dir.join("ca.pem");
        let server_cert = dir.join("server.pem");
        let server_key = dir.join("server-key.pem");
        write_file(&ca_cert, ca_pem.as_bytes(), false)?;
        write_file(&server_cert, server_pem.as_bytes(), false)?;
        write_file(&server_key, server_key_pem.as_bytes(), true)?;

        let config_path = dir.join("engine.toml");
        write_file(&config_path, engine_toml(addr).as_bytes(), false)?;
        // Load it back as the engine would: the setup is proven to work.
        let config = Config::load(&config_path)?;
        let keyring = Keyring::load(&config.security)?;
        let now = crate::message::unix_nanos_now();
        let token = |role: &str| {
            issue_token(
                &keyring,
                &TokenClaims {
                    subject: role,
                    roles: &[role],
                    issuer: config.security.issuer.as_deref(),
                    audience: None,
                    ttl_secs: DEV_TOKEN_TTL_SECS,
                },
                now,
            )
        };
        let credentials = serde_json::json!({
            "addr": addr.to_string(),
            "tls": true,
            "ca_cert": ca_cert.display().to_string(),
            "server_name": "localhost",
            "jwt": {"alg": "HS256", "kid": JWT_KID, "key": &*jwt_text},
            "signing": {"kid": SIGNING_KID, "key": &*signing_text},
            "encryption": {"kid": ENCRYPTION_KID, "key": &*encryption_text},
            "tokens": {"admin": token("admin")?, "reader": token("reader")?},
        })
        .to_string();
        let credentials_path = dir.join("credentials.json");
        write_file(&credentials_path, credentials.as_bytes(), true)?;
        Ok(DevSetup {
            dir,
            config_path,
            ca_cert,
            server_cert,
            server_key,
            credentials_path,
            credentials,
        })
    }
}
