//! The `echo` tool every target serves, in process or over stdio.

use rmcp::{handler::server::wrapper::Parameters, schemars, tool, tool_router};

/// Arguments of `echo`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct EchoArgs {
    /// The text to send back.
    pub message: String,
}

/// An rmcp server with one tool, `echo`, that returns its `message`.
///
/// Deliberately minimal so that a proxy in front of it, not the backend, is
/// what the harness measures.
#[derive(Debug, Clone, Default)]
pub struct EchoServer;

#[tool_router(server_handler)]
impl EchoServer {
    /// Returns `message` unchanged.
    #[tool(description = "Echo a message back")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.message
    }
}
