//! An rmcp server behind `McpAuthLayer`: its `whoami` tool greets the
//! authenticated subject, read from the `http::request::Parts` rmcp hands the
//! tool (their extensions are those of the request that opened the session).
//!
//! ```text
//! MCP_API_KEYS=sk-alice cargo run -p examples --example auth_rmcp -- --listen 127.0.0.1:8080
//! ```
//!
//! Each key in `MCP_API_KEYS` (comma-separated) is a principal named
//! `user-N`; `--admin-key` adds one named `admin` with the `tools:admin`
//! scope, the only one allowed to call (and to see) the `shutdown_all` tool.
//! The same handler is also served by rmcp's own `StreamableHttpService` at
//! `/rmcp`, behind the same layers.
//! A client sends `Authorization: Bearer <key>` (or `X-API-Key`); without
//! one, it gets `401` and `WWW-Authenticate: Bearer resource_metadata="…"`
//! pointing at `/.well-known/oauth-protected-resource/mcp`, served outside
//! authentication.

use std::net::SocketAddr;

use axum::routing::get;
use clap::Parser;
use mcp_bastion::{
    auth::{
        ApiKeys, McpAuthLayer, McpScopeLayer, ProtectedResourceMetadata, ScopePolicy,
        WELL_KNOWN_PATH,
    },
    backend::{Backend, rmcp::RmcpBackend},
    principal::Principal,
    stack::McpStack,
    transport::{Sse, StreamableHttp},
};
use rmcp::{
    ServerHandler,
    handler::server::{common::Extension, tool::ToolRouter},
    model::{Implementation, ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};

/// Serve an authenticated rmcp server.
#[derive(Debug, Parser)]
#[command(name = "auth_rmcp")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Accepted API keys, one principal `user-N` each.
    #[arg(
        long,
        env = "MCP_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// An API key for the principal `admin`, with scope `tools:admin`.
    #[arg(long, env = "MCP_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
}

#[derive(Debug, Clone)]
struct Greeter {
    tools: ToolRouter<Self>,
}

#[tool_router]
impl Greeter {
    #[tool(description = "Greet the authenticated caller by subject")]
    async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        match parts.extensions.get::<Principal>() {
            Some(p) => format!("Hello, {}!", p.subject()),
            None => "Hello, stranger (no McpAuthLayer in front of me)".to_owned(),
        }
    }

    #[tool(description = "An administrative tool: needs the tools:admin scope")]
    async fn shutdown_all(&self) -> String {
        "(pretending to shut everything down)".to_owned()
    }
}

#[tool_handler(router = self.tools)]
impl ServerHandler for Greeter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("mcp-bastion-auth-demo", env!("CARGO_PKG_VERSION")),
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_tracing();
    let cli = Cli::parse();
    let mut keys = ApiKeys::new();
    for (i, key) in cli.api_keys.iter().filter(|k| !k.is_empty()).enumerate() {
        keys = keys.key(key, Principal::new(format!("user-{}", i + 1)));
    }
    if let Some(key) = &cli.admin_key {
        keys = keys.key(key, Principal::new("admin").with_scopes(["tools:admin"]));
    }
    if keys.is_empty() {
        return Err("no API keys: set MCP_API_KEYS or --admin-key".into());
    }

    let backend = RmcpBackend::new(|| Greeter {
        tools: Greeter::tool_router(),
    });
    // rmcp's own Streamable HTTP service works behind the same layers: its
    // handlers find the same `http::request::Parts` (with the `Principal`).
    let rmcp_service = StreamableHttpService::new(
        || {
            Ok(Greeter {
                tools: Greeter::tool_router(),
            })
        },
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default().disable_allowed_hosts(),
    );
    let policy = ScopePolicy::new().tool("shutdown_all", ["tools:admin"]);
    let metadata = ProtectedResourceMetadata::new().scopes(policy.all_scopes());
    let metadata_path = format!("{WELL_KNOWN_PATH}/mcp");
    // McpStack puts authentication before the body is read, and scopes after
    // it is parsed; the metadata routes stay outside authentication.
    let stack = McpStack::new()
        .auth(McpAuthLayer::new(keys).resource_metadata_path(&metadata_path))
        .scopes(McpScopeLayer::new(policy).resource_metadata_path(&metadata_path))
        .resource_metadata(metadata);
    let endpoints = stack
        .endpoints(
            StreamableHttp::new(backend.clone()),
            Sse::new(backend.clone()),
        )
        .route_service("/rmcp", rmcp_service);
    let app = stack
        .wrap(endpoints)
        .route("/healthz", get(|| async { "ok" }));

    examples::serve(cli.listen, app).await?;
    backend.shutdown().await;
    Ok(())
}
