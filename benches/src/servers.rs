//! The in-process HTTP targets, served by the `bench-server` binary so that
//! each one runs in its own process and its RSS and CPU are measured the same
//! way as a proxy's.
//!
//! Every server sets `TCP_NODELAY` on accepted sockets (SSE replies are
//! several small writes; without it Nagle and delayed ACKs add ~40 ms).

use std::{fmt, future::IntoFuture as _, net::SocketAddr, path::PathBuf, str::FromStr, sync::Arc};

use axum::{Json, Router, routing::post, serve::ListenerExt};
use mcp_bastion::{
    audit::McpAuditLayer,
    auth::McpAuthLayer,
    backend::rmcp::RmcpBackend,
    cors::{AllowedOrigins, OriginGuardLayer, mcp_cors},
    inspect::McpInspectLayer,
    ratelimit::{KeyBy, Limit, McpRateLimitLayer, RateLimitPolicy},
    session::SessionLayer,
    trace::McpTraceLayer,
    transport::{Sse, StreamableHttp},
};
use rmcp::transport::{
    StreamableHttpServerConfig, StreamableHttpService,
    streamable_http_server::session::local::LocalSessionManager,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::{echo::EchoServer, jwt, oauth, observed::Observed};

/// Which in-process server `bench-server` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Target 1: axum answering every POST with a JSON-RPC result echoing
    /// the request's params: the HTTP + JSON limit on this machine.
    AxumEcho,
    /// Target 2: mcp-bastion's `StreamableHttp` (at `/mcp`) and `Sse` (at
    /// `/sse`), no layers, over `RmcpBackend` serving [`EchoServer`].
    Bastion,
    /// Target 2 with resumption off (`StreamableHttp::without_event_store`):
    /// what the event store costs.
    BastionNoEvents,
    /// Target 3: the full stack in front of target 2 (see [`full_stack`]).
    FullStack,
    /// Target 3 with mcp-bastion's own access tokens instead of the
    /// JWKS-verified RS256 JWTs (see [`full_stack_oauth`]).
    FullStackOAuth,
    /// Target 3 with the audit log and OpenTelemetry export on (issue 21):
    /// see [`full_stack_observed`]. Needs an OTLP endpoint
    /// ([`ServerOptions::otlp`]).
    FullStackObserved,
    /// Target 4: rmcp's own `StreamableHttpService` over [`EchoServer`].
    Rmcp,
    /// A server that speaks revision 2026-07-28 only, at `/mcp`: answers
    /// `server/discover`, `tools/list` and `tools/call` of `echo` as JSON,
    /// with no state. The upstream of the pass-through target.
    Echo2026,
}

impl ServerKind {
    /// The name on the `bench-server` command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AxumEcho => "axum-echo",
            Self::Bastion => "bastion",
            Self::BastionNoEvents => "bastion-no-events",
            Self::FullStack => "full-stack",
            Self::FullStackOAuth => "full-stack-oauth",
            Self::FullStackObserved => "full-stack-observed",
            Self::Rmcp => "rmcp",
            Self::Echo2026 => "echo-2026",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::AxumEcho,
            Self::Bastion,
            Self::BastionNoEvents,
            Self::FullStack,
            Self::FullStackOAuth,
            Self::FullStackObserved,
            Self::Rmcp,
            Self::Echo2026,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            format!(
                "unknown server `{s}`: axum-echo, bastion, bastion-no-events, full-stack, full-stack-oauth, full-stack-observed, rmcp, echo-2026"
            )
        })
    }
}

/// What some kinds need besides their address.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// [`ServerKind::FullStackObserved`]: the OTLP/HTTP base URL spans are
    /// exported to (`/v1/traces` is added).
    pub otlp: Option<String>,
    /// [`ServerKind::FullStackObserved`]: the audit log file (appended to);
    /// default: a new directory under the system's temp dir.
    pub audit_log: Option<PathBuf>,
}

/// Builds the router of `kind`, or says why it cannot be served yet
/// ([`ServerKind::FullStackObserved`] is built by [`serve`], which owns its
/// exporter).
pub async fn router(kind: ServerKind, addr: SocketAddr) -> Result<Router, String> {
    match kind {
        ServerKind::AxumEcho => Ok(Router::new().fallback(post(json_echo))),
        ServerKind::Bastion => Ok(bastion_router(true)),
        ServerKind::BastionNoEvents => Ok(bastion_router(false)),
        ServerKind::FullStack => full_stack(addr),
        ServerKind::FullStackOAuth => full_stack_oauth().await,
        ServerKind::FullStackObserved => {
            Err("full-stack-observed is served by `serve`, with an OTLP endpoint".into())
        }
        ServerKind::Rmcp => Ok(rmcp_router()),
        ServerKind::Echo2026 => Ok(Router::new().route("/mcp", post(echo_2026))),
    }
}

/// Serves `kind` on `listener` until the process is killed;
/// [`ServerKind::FullStackObserved`] until `SIGTERM`, then exports the
/// spans still queued before returning.
pub async fn serve(
    kind: ServerKind,
    listener: TcpListener,
    options: &ServerOptions,
) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let observed = match kind {
        ServerKind::FullStackObserved => {
            let otlp = options.otlp.as_deref().ok_or(
                "full-stack-observed needs an OTLP endpoint (--otlp URL or OTEL_EXPORTER_OTLP_ENDPOINT)",
            )?;
            Some(Observed::start(otlp, options.audit_log.as_deref())?)
        }
        _ => None,
    };
    let app = match &observed {
        Some(observed) => {
            eprintln!(
                "bench-server: audit log {}, spans to {}",
                observed.audit_log().display(),
                options.otlp.as_deref().unwrap_or_default()
            );
            full_stack_observed(addr, observed.audit().clone())?
        }
        None => router(kind, addr).await?,
    };
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).into_future();
    let Some(observed) = observed else {
        return server.await.map_err(|e| e.to_string());
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        served = server => served.map_err(|e| e.to_string())?,
        _ = term.recv() => {}
    }
    observed.shutdown().await;
    Ok(())
}

async fn json_echo(Json(request): Json<Value>) -> Json<Value> {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    Json(json!({ "jsonrpc": "2.0", "id": id, "result": { "echo": params } }))
}

/// [`ServerKind::Echo2026`]'s one handler.
async fn echo_2026(Json(request): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let result = match request.get("method").and_then(Value::as_str) {
        Some("server/discover") => json!({
            "supportedVersions": ["2026-07-28"],
            "capabilities": { "tools": {} },
            "_meta": { "io.modelcontextprotocol/serverInfo": { "name": "echo-2026", "version": "0" } },
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "private",
        }),
        Some("tools/list") => json!({
            "tools": [{ "name": "echo", "inputSchema": { "type": "object" } }],
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "private",
        }),
        Some("tools/call") if request.pointer("/params/name") == Some(&json!("echo")) => {
            let text = request
                .pointer("/params/arguments/message")
                .cloned()
                .unwrap_or(Value::Null);
            json!({ "content": [{ "type": "text", "text": text }], "resultType": "complete" })
        }
        _ => {
            let error = json!({ "code": -32601, "message": "method not found" });
            let body = json!({ "jsonrpc": "2.0", "id": id, "error": error });
            return (http::StatusCode::NOT_FOUND, Json(body)).into_response();
        }
    };
    Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response()
}

fn bastion_router(event_store: bool) -> Router {
    let backend = Arc::new(RmcpBackend::new(EchoServer::default));
    let streamable = StreamableHttp::new(backend.clone());
    let streamable = if event_store {
        streamable
    } else {
        streamable.without_event_store()
    };
    Router::new()
        .route_service("/mcp", streamable)
        .merge(Sse::new(backend).into_router())
}

fn rmcp_router() -> Router {
    let service = StreamableHttpService::new(
        || Ok(EchoServer),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    Router::new().route_service("/mcp", service)
}

/// Target 3, the full stack in front of the transports of
/// [`ServerKind::Bastion`], outermost first as the binary mounts it: the MCP
/// CORS preset, the Origin guard, `McpAuthLayer` verifying RS256 JWTs through
/// a `JwksCache` (the JWKS served by this same process at
/// [`jwt::JWKS_PATH`], fetched once and then cached),
/// `McpInspectLayer`, `McpRateLimitLayer` keyed by principal with a per-tool
/// limit on `echo` (high enough never to refuse, so every decision is made
/// and allowed), and `SessionLayer` capturing `service` and a sensitive
/// `auth` from the connect URL and binding sessions to their principal.
/// Clients send the token of [`jwt::token`] and an
/// allowed `Origin` ([`FULL_STACK_ORIGIN`]).
pub fn full_stack(addr: SocketAddr) -> Result<Router, String> {
    let jwt = jwt::verifier(addr).build().map_err(|e| e.to_string())?;
    Ok(full_stack_with(McpAuthLayer::new(jwt))?.merge(jwt::jwks_router()))
}

/// Target 3 with mcp-bastion's own access tokens: the same stack, with
/// `McpAuthLayer` over the authenticator of [`oauth::server`] (ES256 with
/// its key, `iss`, `aud`, then the grant looked up in its memory store) and
/// the authorization server's routes beside it as the binary mounts them.
/// Clients send the token of [`oauth::token`].
pub async fn full_stack_oauth() -> Result<Router, String> {
    let server = oauth::server().await?;
    let auth = McpAuthLayer::new(server.authenticator());
    Ok(full_stack_with(auth)?.merge(server.router()))
}

/// Target 3 with the audit log and OpenTelemetry export on: the stack of
/// [`full_stack`] (the same JWTs through the same JWKS cache) plus `audit`
/// and [`McpTraceLayer`], where `McpStack` (and so the binary) mounts them:
/// the audit layer outside the Origin guard, its capture point and the
/// trace layer inside `McpInspectLayer`. Export itself is the process's
/// tracing subscriber ([`Observed`]); without one the trace layer's spans
/// go nowhere.
pub fn full_stack_observed(addr: SocketAddr, audit: McpAuditLayer) -> Result<Router, String> {
    let jwt = jwt::verifier(addr).build().map_err(|e| e.to_string())?;
    Ok(full_stack_layers(McpAuthLayer::new(jwt), Some(audit))?.merge(jwt::jwks_router()))
}

/// The stack of [`full_stack`] with `auth` as its authentication.
fn full_stack_with(auth: McpAuthLayer) -> Result<Router, String> {
    full_stack_layers(auth, None)
}

/// The stack of [`full_stack`] with `auth`, and with `audit` and the trace
/// layer when `audit` is given (the stack without them is built exactly as
/// before: no `Option` layer in its path).
fn full_stack_layers(auth: McpAuthLayer, audit: Option<McpAuditLayer>) -> Result<Router, String> {
    let backend = Arc::new(RmcpBackend::new(EchoServer::default));
    let streamable = StreamableHttp::new(backend.clone());
    let sse = Sse::new(backend);
    let sessions = SessionLayer::new()
        .capture_param("service")
        .capture_param("auth")
        .sensitive_param("auth")
        .closer(streamable.clone())
        .closer(sse.clone());
    let per_tool = "1000000/s".parse::<Limit>().map_err(|e| e.to_string())?;
    let limits = McpRateLimitLayer::new(
        RateLimitPolicy::new()
            .key(KeyBy::Principal)
            .tool("echo", per_tool),
    );
    let origins = AllowedOrigins::loopback()
        .allow(FULL_STACK_ORIGIN)
        .map_err(|e| e.to_string())?;
    let routes = Router::new()
        .route_service("/mcp", streamable)
        .merge(sse.into_router());
    // One stack, applied once: `Router::layer` boxes each layer it is given
    // into a route of its own, so layering one by one would add a boxed
    // clone and a route future per layer to every request.
    Ok(match audit {
        None => routes.layer(
            ServiceBuilder::new()
                .layer(mcp_cors(origins.clone()))
                .layer(OriginGuardLayer::new(origins))
                .layer(auth)
                .layer(McpInspectLayer::new())
                .layer(limits)
                .layer(sessions),
        ),
        Some(audit) => routes.layer(
            ServiceBuilder::new()
                .layer(mcp_cors(origins.clone()))
                .layer(audit.clone())
                .layer(OriginGuardLayer::new(origins))
                .layer(auth)
                .layer(McpInspectLayer::new())
                .layer(audit.capture())
                .layer(McpTraceLayer::new())
                .layer(limits)
                .layer(sessions),
        ),
    })
}

/// The `Origin` the full stack allows and its clients send.
pub const FULL_STACK_ORIGIN: &str = "https://app.bench.invalid";
