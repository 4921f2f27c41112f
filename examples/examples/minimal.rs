//! The shortest useful server: an rmcp tool behind API-key auth, limited by `#[rate_limit]`,
//! at `/mcp` (Streamable HTTP) and `/sse` (legacy SSE), with every layer in the safe order.
//! `MCP_API_KEY=KEY cargo run -p examples --example minimal -- 127.0.0.1:8080`
use mcp_bastion::prelude::*;
use mcp_bastion_macros::rate_limit;
use rmcp::{ServerHandler, handler::server::tool::ToolRouter, model::*};
use rmcp::{tool, tool_handler, tool_router};

#[derive(Clone)]
struct Hello(ToolRouter<Self>);

#[tool_router]
impl Hello {
    #[rate_limit("2/min")]
    #[tool(description = "Say hello")]
    async fn hello(&self) -> String {
        "Hello!".into()
    }
}

#[tool_handler(router = self.0)]
impl ServerHandler for Hello {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = ApiKeys::new().key(std::env::var("MCP_API_KEY")?, Principal::new("user"));
    let limits = McpRateLimitLayer::new(RateLimitPolicy::new()).with_declared_tool_limits();
    let backend = RmcpBackend::new(|| Hello(Hello::tool_router()));
    let stack = McpStack::new()
        .auth(McpAuthLayer::new(keys))
        .rate_limit(limits);
    let listen = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    examples::serve(listen.parse()?, stack.serve(backend.clone())).await?;
    backend.shutdown().await;
    Ok(())
}
