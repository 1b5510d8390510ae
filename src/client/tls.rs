//! The client's TLS settings: TLS 1.3 only, ALPN `mcp/1`, the server's CA
//! as the only root, an optional client certificate for mutual TLS.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Code, Error};
use crate::server::{ALPN, load_certificates, load_roots, provider};

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
