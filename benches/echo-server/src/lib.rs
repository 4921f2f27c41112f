//! The `echo` tool every target of the load harness serves: in process
//! (`benches`' servers mount [`EchoServer`] behind each transport) or over
//! stdio (the `bench-echo-server` binary, the backend of every proxy).
//!
//! A package of its own so that the binary links only rmcp, serde and a
//! current-thread tokio: `cargo run -p benches --release` builds it with the
//! workspace's `bench-echo` profile, statically linked, because the proxy in
//! per-session mode runs one per session, and the tree's memory should be
//! the proxy's rather than 32 copies of a web stack's code.

use std::sync::LazyLock;

use rmcp::{
    ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    schemars, tool, tool_handler, tool_router,
};

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

/// The tool router, built once: rmcp's generated handler would otherwise
/// rebuild it (schema included) on every call, which a profile showed as 14%
/// of a call's instructions, in the backend rather than the proxy measured.
static ROUTER: LazyLock<ToolRouter<EchoServer>> = LazyLock::new(EchoServer::tool_router);

#[tool_router]
impl EchoServer {
    /// Returns `message` unchanged.
    #[tool(description = "Echo a message back")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.message
    }
}

#[tool_handler(router = ROUTER)]
impl ServerHandler for EchoServer {}
