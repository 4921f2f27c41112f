//! The typed options, in groups by concern, and their defaults (each
//! group's `Default` is the one place its defaults are written).
//!
//! Every field's key is its name in kebab case (`keepalive_secs` is
//! `keepalive-secs` in the file, `--keepalive-secs` as a flag and
//! `MCP_BASTION_KEEPALIVE_SECS` in the environment). `docs/configuration.md`
//! explains each option; the field docs here say what the value is.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use mcp_bastion::{
    audit::AuditSink,
    net::parse_cidr,
    ratelimit::{FailurePolicy, Limit, MethodLimit, RedisStore, ToolLimit},
};
use serde::{Deserialize, Serialize};

use super::value::{FromText, List, MaybeDuration, Parsed, from_text_by_value_enum, switch};

/// `--session-mode`: how many children a stdio server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionMode {
    /// A child process per session.
    PerSession,
    /// One child process for all sessions.
    Shared,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--session-overflow`: what a principal's session over its cap does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Overflow {
    /// End the principal's oldest idle session.
    EvictOldestIdle,
    /// Refuse the new session.
    Refuse,
}

/// `--session-store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// In this process (one replica).
    Memory,
    /// Redis, shared by replicas (`--redis-url`).
    Redis,
}

/// `--upstream-transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamTransport {
    /// Streamable HTTP, falling back to legacy SSE on a 4xx to `initialize`.
    Auto,
    /// Streamable HTTP only.
    Streamable,
    /// Legacy HTTP+SSE (2024-11-05) only.
    Sse,
}

/// `--upstream-protocol-version`: the revision 2026-07-28 requests are
/// spoken to the upstream at, instead of asking it (`server/discover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamProtocolVersion {
    /// Bridge them onto a 2025-11-25 session, even if the upstream speaks 2026-07-28.
    #[value(name = "2025-11-25")]
    V2025_11_25,
    /// Pass them through without probing.
    #[value(name = "2026-07-28")]
    V2026_07_28,
}

/// `--stdio-protocol-version`: the revision 2026-07-28 requests are spoken
/// to a stdio child at, instead of asking it (`server/discover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StdioProtocolVersion {
    /// Bridge them onto 2025-11-25 sessions, even if the child speaks 2026-07-28.
    #[value(name = "2025-11-25")]
    V2025_11_25,
    /// Send them to the child as they are, without probing (per-session mode).
    #[value(name = "2026-07-28")]
    V2026_07_28,
}

/// `--otlp-protocol`: how spans are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (usually port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (usually port 4318, path `/v1/traces`).
    #[value(name = "http-protobuf", alias = "http/protobuf")]
    HttpProtobuf,
}

/// `--otlp-endpoint`: an `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint(pub String);

impl FromText for OtlpEndpoint {
    fn from_text(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let uri: http::Uri = text
            .parse()
            .map_err(|_| "not a URL (e.g. http://127.0.0.1:4318)".to_owned())?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err("must be an http:// or https:// URL with a host".into());
        }
        Ok(OtlpEndpoint(text.to_owned()))
    }
}

/// `--rate-limit-key`: what limits are counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RateLimitKey {
    /// The authenticated principal.
    Principal,
    /// The credential presented.
    Key,
    /// The client IP.
    Ip,
    /// The session.
    Session,
    /// One counter for everyone.
    Global,
}

from_text_by_value_enum!(
    SessionMode,
    LogFormat,
    Overflow,
    StoreKind,
    UpstreamTransport,
    UpstreamProtocolVersion,
    StdioProtocolVersion,
    OtlpProtocol,
    RateLimitKey
);

/// `--route-key`: `[A-Za-z0-9_-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteKey(pub String);

impl FromText for RouteKey {
    fn from_text(text: &str) -> Result<Self, String> {
        mcp_bastion::session::check_route_key(text)
            .map(|()| RouteKey(text.to_owned()))
            .map_err(|e| e.to_string())
    }
}

/// `--max-header-bytes`: at least [`MIN_HEADER_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBytes(pub usize);

/// Smallest `--max-header-bytes`: hyper's read buffer cannot be smaller.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

impl FromText for HeaderBytes {
    fn from_text(text: &str) -> Result<Self, String> {
        let n = usize::from_text(text)?;
        if n < MIN_HEADER_BYTES {
            return Err(format!("must be at least {MIN_HEADER_BYTES}"));
        }
        Ok(HeaderBytes(n))
    }
}

/// `--tier-rate-limit SCOPE=LIMIT`.
#[derive(Debug, Clone, PartialEq)]
pub struct TierLimit {
    /// The scope a principal must hold.
    pub scope: String,
    /// Its limit instead of `--rate-limit`.
    pub limit: Limit,
}

fn split_pair(s: &str, what: &str) -> Result<(String, Limit), String> {
    let (name, limit) = s
        .split_once('=')
        .filter(|(n, _)| !n.trim().is_empty())
        .ok_or_else(|| format!("expected {what}=LIMIT, e.g. `search=10/min`"))?;
    let limit = limit.parse::<Limit>().map_err(|e| e.to_string())?;
    Ok((name.trim().to_owned(), limit))
}

impl FromText for TierLimit {
    fn from_text(text: &str) -> Result<Self, String> {
        split_pair(text, "SCOPE").map(|(scope, limit)| TierLimit { scope, limit })
    }
}

impl FromText for ToolLimit {
    fn from_text(text: &str) -> Result<Self, String> {
        split_pair(text, "TOOL").map(|(tool, limit)| ToolLimit {
            tool,
            limit,
            key: None,
        })
    }
}

impl FromText for MethodLimit {
    fn from_text(text: &str) -> Result<Self, String> {
        split_pair(text, "METHOD").map(|(method, limit)| MethodLimit {
            method,
            limit,
            key: None,
        })
    }
}

impl FromText for Limit {
    fn from_text(text: &str) -> Result<Self, String> {
        Limit::from_str(text).map_err(|e| e.to_string())
    }
}

impl FromText for ipnet::IpNet {
    fn from_text(text: &str) -> Result<Self, String> {
        parse_cidr(text).map_err(|e| e.to_string())
    }
}

impl FromText for AuditSink {
    fn from_text(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|e: mcp_bastion::audit::EmptyAuditSink| e.to_string())
    }
}

impl FromText for RedisStore {
    fn from_text(text: &str) -> Result<Self, String> {
        RedisStore::open(text).map_err(|e| e.to_string())
    }
}

impl FromText for FailurePolicy {
    fn from_text(text: &str) -> Result<Self, String> {
        FailurePolicy::from_str(text).map_err(|e| e.to_string())
    }
}

/// The listener, the transports, TLS, logs and the operator's switches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct GeneralConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: Parsed<SocketAddr>,
    /// Serve everything under this path prefix (`/k/abc`).
    pub path_prefix: Option<Parsed<String>>,
    /// Answer Streamable HTTP requests with JSON instead of SSE streams.
    #[serde(deserialize_with = "switch")]
    pub json_response: bool,
    /// Deprecated, no effect: 2026-07-28 requests are served by default
    /// (accepted so that older configurations still load).
    #[serde(deserialize_with = "switch")]
    pub sessionless: bool,
    /// Do not serve revision 2026-07-28 (sessionless) requests: they get
    /// `400` with `-32022`, and negotiating clients fall back to `initialize`.
    #[serde(deserialize_with = "switch")]
    pub no_2026: bool,
    /// This replica's route key, the prefix of its session ids.
    pub route_key: Option<Parsed<RouteKey>>,
    /// Seconds between SSE keepalive comments (0: none).
    pub keepalive_secs: Parsed<u64>,
    /// Largest accepted POST body in bytes.
    pub max_body_bytes: Parsed<usize>,
    /// Log format.
    pub log_format: Parsed<LogFormat>,
    /// PEM certificate chain to serve HTTPS with.
    pub tls_cert: Option<Parsed<PathBuf>>,
    /// The PEM private key of `tls-cert`.
    pub tls_key: Option<Parsed<PathBuf>>,
    /// PEM file of CA certificates every outbound HTTPS client trusts beside
    /// the built-in roots: the identity provider, JWKS and OIDC discovery,
    /// remote authentication and introspection, upstream servers.
    pub outbound_ca: Option<Parsed<PathBuf>>,
    /// Serve `/metrics` on this address only.
    pub metrics_listen: Option<Parsed<SocketAddr>>,
    /// Where audit records go: a file, `stdout` or `stderr`.
    pub audit_log: Option<Parsed<AuditSink>>,
    /// Add the SHA-256 of a tool call's canonical arguments to its record.
    #[serde(deserialize_with = "switch")]
    pub audit_hash_arguments: bool,
    /// Export trace spans over OTLP to this collector URL.
    pub otlp_endpoint: Option<Parsed<OtlpEndpoint>>,
    /// The OTLP protocol (default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    /// HTTP/protobuf).
    pub otlp_protocol: Option<Parsed<OtlpProtocol>>,
    /// Serve without authentication when none is configured.
    #[serde(deserialize_with = "switch")]
    pub allow_unauthenticated: bool,
    /// Seconds to wait for in-flight work on shutdown.
    pub shutdown_timeout: Parsed<u64>,
}

impl Default for GeneralConfig {
    fn default() -> Self {
        Self {
            listen: Parsed::known("127.0.0.1:8080", SocketAddr::from(([127, 0, 0, 1], 8080))),
            path_prefix: None,
            json_response: false,
            sessionless: false,
            no_2026: false,
            route_key: None,
            keepalive_secs: Parsed::known("30", 30),
            max_body_bytes: Parsed::known("4194304", 4 * 1024 * 1024),
            log_format: Parsed::known("text", LogFormat::Text),
            tls_cert: None,
            tls_key: None,
            outbound_ca: None,
            metrics_listen: None,
            audit_log: None,
            audit_hash_arguments: false,
            otlp_endpoint: None,
            otlp_protocol: None,
            allow_unauthenticated: false,
            shutdown_timeout: Parsed::known("10", 10),
        }
    }
}

impl GeneralConfig {
    /// The path prefix without a trailing `/` (`""` for none).
    pub fn prefix(&self) -> &str {
        self.path_prefix
            .as_ref()
            .map_or("", |p| p.text().trim_end_matches('/'))
    }
}

/// Connection limits against slow and hostile clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct ServeConfig {
    /// Seconds a client gets to send a request's headers (0: no limit).
    pub header_read_timeout: Parsed<u64>,
    /// Seconds a client gets to send a whole body after its headers (0: no limit).
    pub body_read_timeout: Parsed<u64>,
    /// Largest request head in bytes.
    pub max_header_bytes: Parsed<HeaderBytes>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Parsed::known("10", 10),
            body_read_timeout: Parsed::known("30", 30),
            max_header_bytes: Parsed::known("65536", HeaderBytes(64 * 1024)),
        }
    }
}

impl ServeConfig {
    /// `header-read-timeout`, `None` for no limit.
    pub fn header_read_timeout(&self) -> Option<Duration> {
        (*self.header_read_timeout > 0).then(|| Duration::from_secs(*self.header_read_timeout))
    }

    /// `body-read-timeout`, `None` for no limit.
    pub fn body_read_timeout(&self) -> Option<Duration> {
        (*self.body_read_timeout > 0).then(|| Duration::from_secs(*self.body_read_timeout))
    }
}

/// Authentication and authorization.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct AuthConfig {
    /// Accepted API keys.
    pub api_key: List<String>,
    /// A JSON file of API keys.
    pub api_keys_file: Option<Parsed<PathBuf>>,
    /// The header carrying API keys (besides `Authorization: Bearer`).
    pub api_key_header: Parsed<String>,
    /// Query parameters accepted as credentials.
    pub api_key_query_param: List<String>,
    /// Environment variable holding an HS* JWT secret.
    pub jwt_secret_env: Option<Parsed<String>>,
    /// PEM public key for JWTs.
    pub jwt_public_key_file: Option<Parsed<PathBuf>>,
    /// JWKS URL for JWTs.
    pub jwt_jwks_url: Option<Parsed<String>>,
    /// OIDC issuer whose JWKS verifies JWTs.
    pub jwt_oidc_issuer: Option<Parsed<String>>,
    /// Accepted `iss`.
    pub jwt_issuer: List<String>,
    /// Accepted `aud`.
    pub jwt_audience: List<String>,
    /// Allowed JWT algorithms.
    pub jwt_algorithm: List<String>,
    /// Clock-skew allowance in seconds.
    pub jwt_leeway_secs: Parsed<u64>,
    /// Claim to read scopes from.
    pub jwt_scope_claim: Option<Parsed<String>>,
    /// Least seconds between two JWKS fetches.
    pub jwks_refetch_interval_secs: Parsed<u64>,
    /// Seconds a JWKS stays fresh without `Cache-Control: max-age`.
    pub jwks_fallback_ttl_secs: Parsed<u64>,
    /// Remote credential check endpoint.
    pub auth_server_url: Option<Parsed<String>>,
    /// RFC 7662 introspection endpoint.
    pub introspection_url: Option<Parsed<String>>,
    /// Introspection client id.
    pub introspection_client_id: Option<Parsed<String>>,
    /// Environment variable holding the introspection client secret.
    pub introspection_client_secret_env: Option<Parsed<String>>,
    /// Time limit of a remote auth call, in seconds.
    pub auth_timeout_secs: Parsed<u64>,
    /// Seconds an accepted remote credential is cached.
    pub auth_cache_secs: Parsed<u64>,
    /// This server's MCP endpoint URL.
    pub resource_url: Option<Parsed<String>>,
    /// Authorization servers named in the RFC 9728 metadata.
    pub authorization_server: List<String>,
    /// Per-tool scope rules.
    pub tool_scope: List<String>,
    /// Principal fields put into a per-session child's environment.
    pub principal_env: List<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            api_key: List::default(),
            api_keys_file: None,
            api_key_header: Parsed::known("x-api-key", "x-api-key".to_owned()),
            api_key_query_param: List::default(),
            jwt_secret_env: None,
            jwt_public_key_file: None,
            jwt_jwks_url: None,
            jwt_oidc_issuer: None,
            jwt_issuer: List::default(),
            jwt_audience: List::default(),
            jwt_algorithm: List::default(),
            jwt_leeway_secs: Parsed::known("60", 60),
            jwt_scope_claim: None,
            jwks_refetch_interval_secs: Parsed::known("30", 30),
            jwks_fallback_ttl_secs: Parsed::known("300", 300),
            auth_server_url: None,
            introspection_url: None,
            introspection_client_id: None,
            introspection_client_secret_env: None,
            auth_timeout_secs: Parsed::known("5", 5),
            auth_cache_secs: Parsed::known("60", 60),
            resource_url: None,
            authorization_server: List::default(),
            tool_scope: List::default(),
            principal_env: List::default(),
        }
    }
}

/// Rate limits, concurrency caps, trusted proxies and the Redis store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RateLimitConfig {
    /// Limit on every request.
    pub rate_limit: Option<Parsed<Limit>>,
    /// What limits are counted per.
    pub rate_limit_key: Parsed<RateLimitKey>,
    /// Limits on single tools.
    pub tool_rate_limit: List<ToolLimit>,
    /// Limits on single JSON-RPC methods.
    pub method_rate_limit: List<MethodLimit>,
    /// Limits by scope, instead of `rate-limit`.
    pub tier_rate_limit: List<TierLimit>,
    /// Requests in flight per key.
    pub max_concurrent: Option<Parsed<u32>>,
    /// Open GET streams per key.
    pub max_streams: Option<Parsed<u32>>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxy: List<ipnet::IpNet>,
    /// Redis shared by replicas.
    pub redis_url: Option<Parsed<RedisStore>>,
    /// PEM file of the CA certificates a `rediss://` Redis is checked
    /// against, instead of the built-in roots.
    pub redis_ca: Option<Parsed<PathBuf>>,
    /// What an unreachable Redis does to requests.
    pub redis_failure: Parsed<FailurePolicy>,
    /// Leave the RateLimit headers off allowed answers.
    #[serde(deserialize_with = "switch")]
    pub no_rate_limit_headers: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            rate_limit: None,
            rate_limit_key: Parsed::known("ip", RateLimitKey::Ip),
            tool_rate_limit: List::default(),
            method_rate_limit: List::default(),
            tier_rate_limit: List::default(),
            max_concurrent: None,
            max_streams: None,
            trusted_proxy: List::default(),
            redis_url: None,
            redis_ca: None,
            redis_failure: Parsed::known("open", FailurePolicy::default()),
            no_rate_limit_headers: false,
        }
    }
}

/// Sessions (capture, binding, lifetimes, store) and browsers (CORS, Origin, Host).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct SessionConfig {
    /// Query parameters captured when a session opens.
    pub capture_param: List<String>,
    /// Headers captured as parameters, `HEADER=PARAM`.
    pub capture_header: List<String>,
    /// Parameters never logged.
    pub sensitive_param: List<String>,
    /// Captured parameters put into a per-session child's environment, `PARAM=VAR`.
    pub param_env: List<String>,
    /// End sessions idle this long.
    pub session_idle_timeout: Parsed<MaybeDuration>,
    /// End sessions this long after they opened.
    pub session_max_lifetime: Option<Parsed<MaybeDuration>>,
    /// Close a pooled backend link of 2026-07-28 requests idle this long.
    pub sessionless_idle_timeout: Parsed<MaybeDuration>,
    /// Backend links of one principal busy at once for 2026-07-28 requests.
    pub sessionless_max_links_per_principal: Parsed<usize>,
    /// Backend links open at once for 2026-07-28 requests, busy and idle.
    pub sessionless_max_links: Parsed<usize>,
    /// Live sessions per principal.
    pub max_sessions_per_principal: Option<Parsed<usize>>,
    /// What a session over that cap does.
    pub session_overflow: Parsed<Overflow>,
    /// Where session records live.
    pub session_store: Parsed<StoreKind>,
    /// Browser origins allowed.
    pub allow_origin: List<String>,
    /// Accepted `Host` values.
    pub allow_host: List<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    #[serde(deserialize_with = "switch")]
    pub cors_credentials: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            capture_param: List::default(),
            capture_header: List::default(),
            sensitive_param: List::default(),
            param_env: List::default(),
            session_idle_timeout: Parsed::known(
                "30m",
                MaybeDuration(Some(Duration::from_secs(1800))),
            ),
            session_max_lifetime: None,
            sessionless_idle_timeout: Parsed::known(
                "60s",
                MaybeDuration(Some(Duration::from_secs(60))),
            ),
            sessionless_max_links_per_principal: Parsed::known("8", 8),
            sessionless_max_links: Parsed::known("128", 128),
            max_sessions_per_principal: None,
            session_overflow: Parsed::known("evict-oldest-idle", Overflow::EvictOldestIdle),
            session_store: Parsed::known("memory", StoreKind::Memory),
            allow_origin: List::default(),
            allow_host: List::default(),
            cors_credentials: false,
        }
    }
}

/// One backend: the default server (top-level keys) or a named one
/// (`[servers.<name>]`). Options left unset in a named server's table take
/// the top-level value (see [`ServerConfig::inherit`]); the defaults of
/// unset options are [`ServerConfig`]'s accessors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct ServerConfig {
    /// One child per session, or one shared (default: per session).
    pub session_mode: Option<Parsed<SessionMode>>,
    /// Variables the child inherits (default: PATH, HOME, USER, LANG, TMPDIR).
    pub pass_env: Option<List<String>>,
    /// Fixed variables for the child, `NAME=VALUE` (never inherited).
    pub env: List<String>,
    /// `PARAM=VAR` mappings of a named server, instead of the top-level ones.
    pub param_env: Option<List<String>>,
    /// Globs of the tool names the backend may expose (default: all).
    pub tools_allow: Option<List<String>>,
    /// Globs of tool names removed from the backend, even if allowed.
    pub tools_deny: Option<List<String>>,
    /// The remote MCP server, instead of a command.
    pub upstream: Option<Parsed<String>>,
    /// Headers sent upstream, `Name: value` (secrets).
    pub upstream_header: List<String>,
    /// Variable holding the upstream bearer token.
    pub upstream_bearer_env: Option<Parsed<String>>,
    /// `NAME=upstream:access_token`: the header of the user's upstream token.
    pub upstream_header_from: Option<Parsed<String>>,
    /// Seconds the upstream may take per request (default 300; 0: no limit).
    pub upstream_timeout: Option<Parsed<u64>>,
    /// Seconds to connect to the upstream (default 10).
    pub upstream_connect_timeout: Option<Parsed<u64>>,
    /// The upstream's transport (default `auto`).
    pub upstream_transport: Option<Parsed<UpstreamTransport>>,
    /// The revision 2026-07-28 requests are spoken to the upstream at
    /// (default: what its `server/discover` says).
    pub upstream_protocol_version: Option<Parsed<UpstreamProtocolVersion>>,
    /// PEM file of CA certificates trusted for an `https` upstream, beside
    /// the built-in roots (a private CA).
    pub upstream_ca: Option<Parsed<PathBuf>>,
    /// PEM file of the client certificate shown to an `https` upstream that
    /// asks for one (mutual TLS); with `upstream-client-key`.
    pub upstream_client_cert: Option<Parsed<PathBuf>>,
    /// PEM file of the private key of `upstream-client-cert` (a secret).
    pub upstream_client_key: Option<Parsed<PathBuf>>,
    /// The revision 2026-07-28 requests are spoken to a stdio child at
    /// (default: what its `server/discover` says).
    pub stdio_protocol_version: Option<Parsed<StdioProtocolVersion>>,
    /// The stdio MCP server to run, program first.
    #[serde(deserialize_with = "super::value::command")]
    pub command: Vec<String>,
}

impl ServerConfig {
    /// The keys a named server takes from the top level when its table does
    /// not set them. Commands, upstreams, credentials and `env` never are.
    pub const INHERITED: [&str; 8] = [
        "session-mode",
        "pass-env",
        "param-env",
        "tools-allow",
        "tools-deny",
        "upstream-timeout",
        "upstream-connect-timeout",
        "upstream-transport",
    ];

    /// Fills the [`INHERITED`](Self::INHERITED) options this table leaves unset from `top`.
    pub fn inherit(&mut self, top: &ServerConfig) {
        fn fill<T: Clone>(mine: &mut Option<T>, top: &Option<T>) {
            if mine.is_none() {
                mine.clone_from(top);
            }
        }
        fill(&mut self.session_mode, &top.session_mode);
        fill(&mut self.pass_env, &top.pass_env);
        fill(&mut self.param_env, &top.param_env);
        fill(&mut self.tools_allow, &top.tools_allow);
        fill(&mut self.tools_deny, &top.tools_deny);
        fill(&mut self.upstream_timeout, &top.upstream_timeout);
        fill(
            &mut self.upstream_connect_timeout,
            &top.upstream_connect_timeout,
        );
        fill(&mut self.upstream_transport, &top.upstream_transport);
    }

    /// `session-mode`, per session by default.
    pub fn session_mode(&self) -> SessionMode {
        self.session_mode
            .as_ref()
            .map_or(SessionMode::PerSession, |m| **m)
    }

    /// `upstream-timeout` in seconds, 300 by default.
    pub fn upstream_timeout(&self) -> u64 {
        self.upstream_timeout.as_ref().map_or(300, |t| **t)
    }

    /// `upstream-connect-timeout` in seconds, 10 by default.
    pub fn upstream_connect_timeout(&self) -> u64 {
        self.upstream_connect_timeout.as_ref().map_or(10, |t| **t)
    }

    /// `upstream-transport`, `auto` by default.
    pub fn upstream_transport(&self) -> UpstreamTransport {
        self.upstream_transport
            .as_ref()
            .map_or(UpstreamTransport::Auto, |t| **t)
    }

    /// The tool filter of `tools-allow` and `tools-deny` (`None`: every
    /// tool stays).
    pub fn tool_filter(&self) -> Option<mcp_bastion::backend::tool_filter::ToolFilter> {
        let mut filter = mcp_bastion::backend::tool_filter::ToolFilter::new();
        for pattern in self.tools_allow.iter().flat_map(|l| l.iter()) {
            filter = filter.allow(pattern);
        }
        for pattern in self.tools_deny.iter().flat_map(|l| l.iter()) {
            filter = filter.deny(pattern);
        }
        (!filter.is_empty()).then_some(filter)
    }

    /// Whether this names a backend at all (a command or an upstream).
    pub fn is_configured(&self) -> bool {
        !self.command.is_empty() || self.upstream.is_some()
    }
}
