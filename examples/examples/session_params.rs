//! Session parameters in an rmcp tool: `SessionLayer` captures allowlisted
//! query parameters when a session opens, and every tool call of that session
//! reads them as [`SessionParams`] from the `http::request::Parts` extension.
//!
//! ```text
//! cargo run -p examples --example session_params -- --listen 127.0.0.1:8080 \
//!     --api-key alice=KEY_A --api-key bob=KEY_B
//! # Python SDK:  sse_client("http://127.0.0.1:8080/sse?auth=K1&service=billing",
//! #                          headers={"Authorization": "Bearer KEY_A"})
//! # TypeScript:  new StreamableHTTPClientTransport(new URL("http://127.0.0.1:8080/mcp?auth=K1&service=billing"))
//! ```
//!
//! Served three ways, all behind the same layers: our Streamable HTTP at
//! `/mcp`, our legacy SSE at `/sse`, and rmcp's own `StreamableHttpService` at
//! `/rmcp` (`SessionLayer` learns session ids from responses, so it works in
//! front of any transport).
//!
//! | tool | returns |
//! |---|---|
//! | `param` | `{"name": "service"}` → the captured value (`<unset>` if none; `<redacted>` for a sensitive name such as `auth`) |
//! | `whoami` | the subject of the principal that opened the session |
//!
//! The stack is an `McpStack`, outermost first: MCP CORS preset, Origin
//! guard, `McpInspectLayer`, a trace span, a toy API-key authenticator
//! (`Authorization: Bearer KEY`, keys from `--api-key NAME=KEY`; no key is
//! anonymous), `SessionLayer` (captures `service` and `auth`, `auth`
//! sensitive, sessions bound to their principal), then both transports over
//! an in-process rmcp server. It prints `mcp-bastion listening on http://ADDR` once bound.
//!
//! Here `auth` is a captured credential for the tools (say, a downstream
//! API key), not what signs the caller in: legacy SSE clients POST to the
//! endpoint URI the server sends, which does not repeat the `/sse` URL's
//! query, so a query-string token would only reach the opening request.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use clap::Parser;
use mcp_bastion::{
    backend::{Backend, rmcp::RmcpBackend},
    cors::AllowedOrigins,
    jsonrpc::{ErrorObject, codes, http_error},
    principal::Principal,
    session::{SessionCloser, SessionLayer, SessionParams},
    stack::McpStack,
    transport::{Sse, StreamableHttp},
};
use rmcp::{
    handler::server::{common::Extension, wrapper::Parameters},
    schemars, tool, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
        session::{SessionManager, local::LocalSessionManager},
    },
};

/// Serve the session-params demo.
#[derive(Debug, Parser)]
#[command(name = "session_params")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// An API key, `NAME=KEY` (repeatable): `Authorization: Bearer KEY` signs in as NAME.
    #[arg(long = "api-key", value_name = "NAME=KEY")]
    api_keys: Vec<String>,
    /// Log filter (overrides `MCP_BASTION_LOG`), e.g. `debug`.
    #[arg(long)]
    log: Option<String>,
}

/// Arguments of `param`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct ParamArgs {
    /// The captured parameter to return.
    name: String,
}

/// The demo handler.
#[derive(Debug, Clone, Default)]
struct Demo;

#[tool_router(server_handler)]
impl Demo {
    #[tool(description = "Return a parameter captured when this session opened")]
    async fn param(
        &self,
        Parameters(args): Parameters<ParamArgs>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> String {
        let Some(params) = parts.extensions.get::<SessionParams>() else {
            return "<no SessionLayer>".into();
        };
        if params.is_sensitive(&args.name) {
            return "<redacted>".into();
        }
        params.get_or(&args.name, "<unset>").to_owned()
    }

    #[tool(description = "Who opened this session")]
    async fn whoami(&self, Extension(parts): Extension<axum::http::request::Parts>) -> String {
        parts
            .extensions
            .get::<Principal>()
            .map_or_else(|| "anonymous".to_owned(), |p| p.subject().to_owned())
    }
}

/// Ends sessions of rmcp's own `StreamableHttpService` for `SessionLayer`
/// (idle, expired, evicted), through its session manager.
#[derive(Debug, Clone)]
struct RmcpSessions(Arc<LocalSessionManager>);

impl SessionCloser for RmcpSessions {
    fn close_session(&self, id: &str) -> bool {
        let (manager, id) = (Arc::clone(&self.0), Arc::<str>::from(id));
        tokio::spawn(async move {
            let _ = manager.close_session(&id).await;
        });
        true
    }
}

/// Key → subject.
type Keys = Arc<BTreeMap<String, String>>;

/// A toy authenticator standing in for `McpAuthLayer`: a presented key must
/// be known (401 otherwise); no key is anonymous.
async fn demo_auth(State(keys): State<Keys>, mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    match bearer {
        None => next.run(req).await,
        Some(key) => match keys.get(&key) {
            Some(subject) => {
                req.extensions_mut().insert(Principal::new(subject.clone()));
                next.run(req).await
            }
            None => http_error(
                axum::http::StatusCode::UNAUTHORIZED,
                None,
                ErrorObject::new(codes::UNAUTHORIZED, "unknown API key"),
            )
            .into_response(),
        },
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let filter = match &cli.log {
        Some(f) => tracing_subscriber::EnvFilter::new(f),
        None => tracing_subscriber::EnvFilter::try_from_env("MCP_BASTION_LOG")
            .unwrap_or_else(|_| "info,rmcp=warn".into()),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    let mut keys = BTreeMap::new();
    for spec in &cli.api_keys {
        let (name, key) = spec.split_once('=').ok_or("--api-key expects NAME=KEY")?;
        keys.insert(key.to_owned(), name.to_owned());
    }

    let backend = RmcpBackend::new(Demo::default);
    let streamable = StreamableHttp::new(backend.clone());
    let sse = Sse::new(backend.clone());
    // rmcp's own Streamable HTTP server, behind the same layers: SessionLayer
    // learns its session ids from the responses like ours.
    let rmcp_sessions = Arc::new(LocalSessionManager::default());
    let rmcp_http = StreamableHttpService::new(
        || Ok(Demo),
        Arc::clone(&rmcp_sessions),
        StreamableHttpServerConfig::default(),
    );
    let sessions = SessionLayer::new()
        .capture_param("service")
        .capture_param("auth")
        .sensitive_param("auth")
        .closer(RmcpSessions(rmcp_sessions));
    let stack = McpStack::new()
        .browser(AllowedOrigins::loopback())
        .sessions(sessions);
    // the stack adds our two transports to the session layer's closers
    let endpoints = stack
        .endpoints_with(
            Router::new().route_service("/rmcp", rmcp_http),
            streamable,
            sse,
        )
        // the toy authenticator sits just outside the session layer (a real
        // server gives `McpStack::auth` an `McpAuthLayer`, which runs before
        // the body is read)
        .layer(middleware::from_fn_with_state(Arc::new(keys), demo_auth));
    let app = stack.wrap(endpoints);

    examples::serve(cli.listen, app).await?;
    backend.shutdown().await;
    Ok(())
}
