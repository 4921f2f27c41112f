//! Rate limits declared on rmcp tools with `#[rate_limit]`, enforced by
//! `McpRateLimitLayer` in front of the server.
//!
//! | tool | declared limit | counted per |
//! |---|---|---|
//! | `echo` | `2/min` | client IP (the policy's key) |
//! | `summarize` (fn `slow_summary`) | `6/min gcra burst=3` | session |
//! | `ping` | none (only the default `100/min`) | client IP |
//!
//! ```text
//! cargo run -p examples --example rate_limit_tools -- --listen 127.0.0.1:8080
//! ```
//!
//! It prints `mcp-bastion listening on http://ADDR` once bound. Call `echo` a
//! third time within a minute and the answer is HTTP 429 with a JSON-RPC error
//! `-32029` whose `data.retryAfterSeconds` says when to try again.

use std::net::SocketAddr;

use axum::routing::get;
use clap::Parser;
use mcp_bastion::{
    backend::{Backend, rmcp::RmcpBackend},
    ratelimit::{KeyBy, McpRateLimitLayer, RateLimitPolicy, declared_tool_limits},
    stack::McpStack,
};
use mcp_bastion_macros::rate_limit;
use rmcp::{
    ServerHandler,
    handler::server::{tool::ToolRouter, wrapper::Parameters},
    model::{Implementation, ServerCapabilities, ServerConfig},
    schemars, tool, tool_handler, tool_router,
};

/// Serve the rate-limited demo tools.
#[derive(Debug, Parser)]
#[command(name = "rate_limit_tools")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

/// Arguments of the tools.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct TextArgs {
    /// Some text.
    message: String,
}

/// The handler.
#[derive(Debug, Clone)]
struct Tools {
    tools: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    #[rate_limit("2/min")]
    #[tool(description = "Echo a message back, prefixed with `Echo: `")]
    async fn echo(&self, Parameters(args): Parameters<TextArgs>) -> String {
        format!("Echo: {}", args.message)
    }

    #[rate_limit("6/min gcra burst=3", key = session)]
    #[tool(
        name = "summarize",
        description = "Pretend to summarize (the first few words)"
    )]
    async fn slow_summary(&self, Parameters(args): Parameters<TextArgs>) -> String {
        args.message
            .split_whitespace()
            .take(5)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[tool(description = "Answer pong")]
    async fn ping(&self) -> String {
        "pong".to_owned()
    }
}

#[tool_handler(router = self.tools)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("mcp-bastion-rate-limit-demo", env!("CARGO_PKG_VERSION")),
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_tracing();
    let cli = Cli::parse();
    for d in declared_tool_limits() {
        tracing::info!(tool = d.tool, limit = d.limit, key = ?d.key, at = d.location, "declared tool limit");
    }
    let backend = RmcpBackend::new(|| Tools {
        tools: Tools::tool_router(),
    });
    let limits = McpRateLimitLayer::new(
        RateLimitPolicy::new()
            .key(KeyBy::Ip)
            .default_limit("100/min".parse()?),
    )
    .with_declared_tool_limits();
    // every layer in the safe order; both transports over the backend
    let app = McpStack::new()
        .rate_limit(limits)
        .serve(backend.clone())
        .route("/healthz", get(|| async { "ok" }));

    examples::serve(cli.listen, app).await?;
    backend.shutdown().await;
    Ok(())
}
