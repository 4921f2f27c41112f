//! TLS straight from the proxy (`--tls-cert`, `--tls-key`), for deployments
//! without a reverse proxy in front: rustls (ring), TLS 1.2 and 1.3, HTTP/1.1.

use std::{path::Path, sync::Arc};

use tokio_rustls::rustls::{self, ServerConfig};

use crate::pem::{self, PemFile};

/// The server configuration from a PEM certificate chain and a PEM private
/// key. Errors name the flag, the file and what is wrong with it.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = pem::certificate_chain(&PemFile::flag("--tls-cert", cert))?;
    let key = pem::private_key_file(&PemFile::flag("--tls-key", key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "--tls-cert/--tls-key: the key is not the certificate's".to_owned()
            }
            e => format!("--tls-cert/--tls-key: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
