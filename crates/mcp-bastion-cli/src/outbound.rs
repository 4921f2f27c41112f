//! What the binary's outbound HTTPS clients trust beside the Mozilla roots
//! built in: the CA bundle of `--outbound-ca`, for a private CA in front of
//! the services the operator configures (the OAuth identity provider, JWKS
//! and OIDC discovery, remote authentication and introspection, upstream MCP
//! servers). An upstream's own `--upstream-ca` adds to it.
//!
//! The OTLP exporter is not among them: the OpenTelemetry variables
//! (`OTEL_EXPORTER_OTLP_CERTIFICATE`) say what it trusts, and that bundle
//! *replaces* the roots, as the exporter specification says. Client
//! metadata documents are fetched from the clients' own hosts, on the public
//! roots (and `--oauth-cimd-ca-file`, for tests).

use mcp_bastion_cli::config::{
    options::{GeneralConfig, RateLimitConfig},
    value::Parsed,
};

use crate::pem::{CaBundle, PemFile};

/// `--redis-ca`: the one Redis connection of `--redis-url` (rate limits,
/// sessions, the OAuth store, the registration limit) checks its `rediss://`
/// server against this bundle instead of the built-in roots. A Redis is
/// trusted by its own CA alone (a self-hosted Redis's `tls-ca-cert-file`),
/// so `--outbound-ca` does not apply to it.
pub(crate) fn apply_redis_ca(rate_limit: &mut RateLimitConfig) -> Result<(), String> {
    let (Some(ca), Some(url)) = (&rate_limit.redis_ca, &mut rate_limit.redis_url) else {
        return Ok(());
    };
    let bundle = CaBundle::load(&PemFile::flag("--redis-ca", ca.get()))?;
    let store = url
        .get()
        .clone()
        .with_root_certificates(&bundle.pem)
        .map_err(|e| format!("--redis-ca with --redis-url: {e}"))?;
    *url = Parsed::known(url.text(), store);
    Ok(())
}

/// The extra CA certificates, read and checked once at start.
#[derive(Default)]
pub(crate) struct OutboundTrust {
    ca: Option<CaBundle>,
}

impl OutboundTrust {
    /// Reads and checks the file of `--outbound-ca`, if one is given.
    pub(crate) fn load(general: &GeneralConfig) -> Result<Self, String> {
        let ca = general
            .outbound_ca
            .as_ref()
            .map(|path| CaBundle::load(&PemFile::flag("--outbound-ca", path.get())))
            .transpose()?;
        Ok(Self { ca })
    }

    /// The bundle's PEM text, for the library builders that take PEM (the
    /// upstream backend, the OAuth server's identity provider).
    pub(crate) fn ca_pem(&self) -> Option<&[u8]> {
        self.ca.as_ref().map(|ca| ca.pem.as_slice())
    }

    /// A client that trusts the bundle, for the builders that take a client
    /// (JWT key sources, remote authentication, introspection); `None`
    /// without a bundle: their default client.
    pub(crate) fn http_client(&self) -> Result<Option<reqwest::Client>, String> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let mut builder = reqwest::Client::builder();
        for cert in ca.reqwest_certificates() {
            builder = builder.add_root_certificate(cert);
        }
        builder
            .build()
            .map(Some)
            .map_err(|e| format!("--outbound-ca: HTTP client: {e}"))
    }
}
