//! `--upstream URL`: proxy to a remote MCP server instead of running a
//! command, with the proxy's own outbound credentials.

use std::{sync::Arc, time::Duration};

use mcp_bastion::{
    backend::{
        DynBackend,
        upstream::{UpstreamBackend, UpstreamTransport},
    },
    protocol::ProtocolVersion,
};
use mcp_bastion_cli::config::{ServerConfig, options};
use serde::Serialize;

use crate::{
    outbound::OutboundTrust,
    pem::{CaBundle, ClientIdentity, PemFile},
};

/// The flags of the upstream backend, as given.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
#[command(next_help_heading = "Upstream")]
#[serde(rename_all = "kebab-case")]
pub struct UpstreamFlags {
    /// Proxy to the remote MCP server at URL (its Streamable HTTP endpoint,
    /// or a legacy server's SSE URL) instead of running `-- <command>`. The
    /// client's credentials are never forwarded.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,

    /// A header sent on every upstream request, `"Name: value"` (repeatable).
    /// Values are secrets: never logged.
    #[arg(long, value_name = "NAME: VALUE")]
    pub upstream_header: Vec<String>,

    /// Send `Authorization: Bearer <token>` upstream, the token read from the
    /// environment variable VAR at start.
    #[arg(long, value_name = "VAR")]
    pub upstream_bearer_env: Option<String>,

    /// Send the user's own upstream token (from their login through
    /// --oauth-issuer) in a header of their session's upstream requests:
    /// `NAME=upstream:access_token` (`Authorization` gets `Bearer <token>`).
    #[arg(long, value_name = "NAME=upstream:access_token")]
    pub upstream_header_from: Option<String>,

    /// Seconds the upstream may take to answer one request (0: no limit) [default: 300].
    #[arg(long, value_name = "SECS")]
    pub upstream_timeout: Option<String>,

    /// Seconds to establish a connection to the upstream [default: 10].
    #[arg(long, value_name = "SECS")]
    pub upstream_connect_timeout: Option<String>,

    /// The upstream's transport: `auto` tries Streamable HTTP, then legacy
    /// SSE; or `streamable`, `sse` [default: auto].
    #[arg(long, value_name = "TRANSPORT")]
    pub upstream_transport: Option<String>,

    /// The revision 2026-07-28 requests are spoken to the upstream at:
    /// `2026-07-28` passes them through without asking, `2025-11-25` bridges
    /// them onto a 2025-11-25 session even if the upstream speaks 2026-07-28
    /// [default: what the upstream's `server/discover` says].
    #[arg(long, value_name = "VERSION")]
    pub upstream_protocol_version: Option<String>,

    /// Also trust the CA certificates in this PEM file for an `https`
    /// upstream (one behind a private CA), beside the Mozilla roots built in.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<String>,

    /// Show this client certificate (PEM, leaf first) to an `https` upstream
    /// that asks for one (mutual TLS); needs --upstream-client-key.
    #[arg(long, value_name = "FILE")]
    pub upstream_client_cert: Option<String>,

    /// The private key (PEM) of --upstream-client-cert.
    #[arg(long, value_name = "FILE")]
    pub upstream_client_key: Option<String>,
}

/// The upstream backend of `server`, when it names an upstream.
pub fn backend(server: &ServerConfig, trust: &OutboundTrust) -> Result<Option<DynBackend>, String> {
    let Some(url) = &server.upstream else {
        if !server.upstream_header.is_empty()
            || server.upstream_bearer_env.is_some()
            || server.upstream_header_from.is_some()
            || server.upstream_protocol_version.is_some()
            || server.upstream_ca.is_some()
            || server.upstream_client_cert.is_some()
            || server.upstream_client_key.is_some()
        {
            return Err("--upstream-header, --upstream-bearer-env, --upstream-header-from, --upstream-protocol-version, --upstream-ca and --upstream-client-cert/-key need --upstream URL".into());
        }
        return Ok(None);
    };
    let timeout = server.upstream_timeout();
    let mut builder = UpstreamBackend::builder(url.get().as_str())
        .transport(match server.upstream_transport() {
            options::UpstreamTransport::Auto => UpstreamTransport::Auto,
            options::UpstreamTransport::Streamable => UpstreamTransport::StreamableHttp,
            options::UpstreamTransport::Sse => UpstreamTransport::LegacySse,
        })
        .request_timeout((timeout > 0).then(|| Duration::from_secs(timeout)))
        .connect_timeout(Duration::from_secs(
            server.upstream_connect_timeout().max(1),
        ));
    if let Some(version) = &server.upstream_protocol_version {
        builder = builder.protocol_version(match **version {
            options::UpstreamProtocolVersion::V2025_11_25 => ProtocolVersion::V2025_11_25,
            options::UpstreamProtocolVersion::V2026_07_28 => ProtocolVersion::V2026_07_28,
        });
    }
    for header in server.upstream_header.iter() {
        let (name, value) = parse_header(header)?;
        builder = builder.header(name, value);
    }
    if let Some(var) = &server.upstream_bearer_env {
        builder = builder.bearer_from_env(var.get().as_str());
    }
    if let Some(mapping) = &server.upstream_header_from {
        builder = builder.header_from_upstream_token(parse_header_from(mapping.get())?);
    }
    if let Some(pem) = trust.ca_pem() {
        builder = builder.root_certificates_pem(pem);
    }
    if let Some(ca) = &server.upstream_ca {
        let bundle = CaBundle::load(&PemFile::flag("--upstream-ca", ca.get()))?;
        builder = builder.root_certificates_pem(bundle.pem);
    }
    // the configuration's check has made sure they come together
    if let (Some(cert), Some(key)) = (&server.upstream_client_cert, &server.upstream_client_key) {
        let identity = ClientIdentity::load(
            &PemFile::flag("--upstream-client-cert", cert.get()),
            &PemFile::flag("--upstream-client-key", key.get()),
        )?;
        builder = builder.client_identity_pem(identity.combined());
    }
    let backend = builder.build().map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(backend)))
}

/// `NAME=upstream:access_token`: the header the user's upstream token goes in.
pub(crate) fn parse_header_from(mapping: &str) -> Result<&str, String> {
    match mapping.split_once('=') {
        Some((name, "upstream:access_token")) if !name.trim().is_empty() => Ok(name.trim()),
        _ => Err(format!(
            "--upstream-header-from expects NAME=upstream:access_token, got `{mapping}`"
        )),
    }
}

/// `"Name: value"`. The error never repeats the value (it may be a secret).
fn parse_header(header: &str) -> Result<(&str, &str), String> {
    match header.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim(), value.trim())),
        _ => Err("--upstream-header expects `Name: value`".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_split_at_the_first_colon() {
        assert_eq!(parse_header("X-Api-Key: a:b:c"), Ok(("X-Api-Key", "a:b:c")));
        assert_eq!(parse_header("X-Empty:"), Ok(("X-Empty", "")));
        let err = parse_header("no-colon-secret").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        assert!(parse_header(": value").is_err());
    }

    #[test]
    fn the_upstream_token_header_is_name_equals_its_source() {
        assert_eq!(
            parse_header_from("Authorization=upstream:access_token"),
            Ok("Authorization")
        );
        assert!(parse_header_from("Authorization=upstream:refresh_token").is_err());
        assert!(parse_header_from("=upstream:access_token").is_err());
        assert!(parse_header_from("Authorization").is_err());
    }
}
