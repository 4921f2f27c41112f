//! The in-process HTTP targets, served by the `bench-server` binary so that
//! each one runs in its own process and its RSS and CPU are measured the same
//! way as a proxy's.
//!
//! Every server sets `TCP_NODELAY` on accepted sockets (SSE replies are
//! several small writes; without it Nagle and delayed ACKs add ~40 ms).

use std::{fmt, net::SocketAddr, str::FromStr, sync::Arc};

use axum::{Json, Router, routing::post, serve::ListenerExt};
use mcp_bastion::{
    auth::McpAuthLayer,
    backend::rmcp::RmcpBackend,
    cors::{AllowedOrigins, OriginGuardLayer, mcp_cors},
    inspect::McpInspectLayer,
    ratelimit::{KeyBy, Limit, McpRateLimitLayer, RateLimitPolicy},
    session::SessionLayer,
    transport::{Sse, StreamableHttp},
};
use rmcp::transport::{
    StreamableHttpServerConfig, StreamableHttpService,
    streamable_http_server::session::local::LocalSessionManager,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::{echo::EchoServer, jwt, oauth};

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
            Self::Rmcp,
            Self::Echo2026,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            format!(
                "unknown server `{s}`: axum-echo, bastion, bastion-no-events, full-stack, full-stack-oauth, rmcp, echo-2026"
            )
        })
    }
}

/// Builds the router of `kind`, or says why it cannot be served yet.
pub async fn router(kind: ServerKind, addr: SocketAddr) -> Result<Router, String> {
    match kind {
        ServerKind::AxumEcho => Ok(Router::new().fallback(post(json_echo))),
        ServerKind::Bastion => Ok(bastion_router(true)),
        ServerKind::BastionNoEvents => Ok(bastion_router(false)),
        ServerKind::FullStack => full_stack(addr),
        ServerKind::FullStackOAuth => full_stack_oauth().await,
        ServerKind::Rmcp => Ok(rmcp_router()),
        ServerKind::Echo2026 => Ok(Router::new().route("/mcp", post(echo_2026))),
    }
}

/// Serves `kind` on `listener` until the process is killed.
pub async fn serve(kind: ServerKind, listener: TcpListener) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = router(kind, addr).await?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.map_err(|e| e.to_string())
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

/// The stack of [`full_stack`] with `auth` as its authentication.
fn full_stack_with(auth: McpAuthLayer) -> Result<Router, String> {
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
    // One stack, applied once: `Router::layer` boxes each layer it is given
    // into a route of its own, so layering one by one would add a boxed
    // clone and a route future per layer to every request.
    let stack = ServiceBuilder::new()
        .layer(mcp_cors(origins.clone()))
        .layer(OriginGuardLayer::new(origins))
        .layer(auth)
        .layer(McpInspectLayer::new())
        .layer(limits)
        .layer(sessions);
    Ok(Router::new()
        .route_service("/mcp", streamable)
        .merge(sse.into_router())
        .layer(stack))
}

/// The `Origin` the full stack allows and its clients send.
pub const FULL_STACK_ORIGIN: &str = "https://app.bench.invalid";
