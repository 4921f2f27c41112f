//! `--upstream URL`: proxy to a remote MCP server instead of running a
//! command, with the proxy's own outbound credentials.

use std::{sync::Arc, time::Duration};

use clap::ValueEnum;
use mcp_bastion::backend::{
    DynBackend,
    upstream::{UpstreamBackend, UpstreamTransport},
};

/// The flags of the upstream backend.
#[derive(Debug, clap::Args)]
pub struct UpstreamArgs {
    /// Proxy to the remote MCP server at URL (its Streamable HTTP endpoint,
    /// or a legacy server's SSE URL) instead of running `-- <command>`. The
    /// client's credentials are never forwarded.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,

    /// A header sent on every upstream request, `"Name: value"` (repeatable).
    /// Values are secrets: never logged.
    #[arg(
        long = "upstream-header",
        value_name = "NAME: VALUE",
        requires = "upstream"
    )]
    pub upstream_header: Vec<String>,

    /// Send `Authorization: Bearer <token>` upstream, the token read from the
    /// environment variable VAR at start.
    #[arg(long, value_name = "VAR")]
    pub upstream_bearer_env: Option<String>,

    /// Seconds the upstream may take to answer one request (0: no limit).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub upstream_timeout: u64,

    /// Seconds to establish a connection to the upstream.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub upstream_connect_timeout: u64,

    /// The upstream's transport: `auto` tries Streamable HTTP, then legacy SSE.
    #[arg(long, value_enum, default_value_t = UpstreamTransportArg::Auto)]
    pub upstream_transport: UpstreamTransportArg,
}

/// `--upstream-transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamTransportArg {
    /// Streamable HTTP, falling back to legacy SSE on a 4xx to `initialize`.
    Auto,
    /// Streamable HTTP only.
    Streamable,
    /// Legacy HTTP+SSE (2024-11-05) only.
    Sse,
}

impl UpstreamArgs {
    /// The upstream backend, when `--upstream` is given.
    pub fn build(&self) -> Result<Option<DynBackend>, String> {
        let Some(url) = &self.upstream else {
            if !self.upstream_header.is_empty() || self.upstream_bearer_env.is_some() {
                return Err(
                    "--upstream-header and --upstream-bearer-env need --upstream URL".into(),
                );
            }
            return Ok(None);
        };
        let mut builder = UpstreamBackend::builder(url.as_str())
            .transport(match self.upstream_transport {
                UpstreamTransportArg::Auto => UpstreamTransport::Auto,
                UpstreamTransportArg::Streamable => UpstreamTransport::StreamableHttp,
                UpstreamTransportArg::Sse => UpstreamTransport::LegacySse,
            })
            .request_timeout(
                (self.upstream_timeout > 0).then(|| Duration::from_secs(self.upstream_timeout)),
            )
            .connect_timeout(Duration::from_secs(self.upstream_connect_timeout.max(1)));
        for header in &self.upstream_header {
            let (name, value) = parse_header(header)?;
            builder = builder.header(name, value);
        }
        if let Some(var) = &self.upstream_bearer_env {
            builder = builder.bearer_from_env(var.as_str());
        }
        let backend = builder.build().map_err(|e| e.to_string())?;
        Ok(Some(Arc::new(backend)))
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
}
