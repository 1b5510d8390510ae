//! TLS for both sides, as docs/protocol.md section 2 fixes it: TLS 1.3
//! only, ALPN `mcp/1`, ring as the crypto provider, certificates and keys
//! read with `rustls-pki-types`' PEM support. The server asks for client
//! certificates when a client CA is configured; the client trusts the
//! server's CA only and may present a certificate of its own.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;
use crate::error::{Code, Error};

/// The ALPN protocol id of MCP (docs/protocol.md section 2).
pub const ALPN: &[u8] = b"mcp/1";

fn refuse(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(
        Code::ConfigurationError,
        format!("{what} {}: {e}", path.display()),
    )
}

/// The certificates in the PEM file at `path` (at least one).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| refuse("cannot read certificates from", path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refuse("bad certificate in", path, e))?;
    if certs.is_empty() {
        return Err(refuse("no certificate in", path, "empty"));
    }
    Ok(certs)
}

/// A root store of the CA certificates in the PEM file at `path`.
pub fn load_roots(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| refuse("unusable CA certificate in", path, e))?;
    }
    Ok(roots)
}

/// The crypto provider everything here uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS configuration, from `files`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs = load_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| refuse("cannot read the private key", &files.key, e))?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::new(Code::ConfigurationError, format!("TLS: {e}")))?;
    let builder = match &files.client_ca {
        Some(path) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(path)?), provider)
                    .build()
                    .map_err(|e| refuse("cannot use the client CA", path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| refuse("certificate and key do not fit,", &files.cert, e))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// A client TLS configuration trusting the CA certificates in `ca_cert`,
/// presenting `identity` (certificate chain and key files) if given.
pub fn client_config(
    ca_cert: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let roots = load_roots(ca_cert)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::new(Code::ConfigurationError, format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => {
            let chain = load_certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                Error::new(
                    Code::ConfigurationError,
                    format!("cannot read the private key {}: {e}", key.display()),
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::new(Code::ConfigurationError, format!("TLS: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}
