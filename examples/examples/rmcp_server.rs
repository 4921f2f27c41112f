//! An rmcp server served in process by mcp-bastion.
//!
//! The handler, [`Demo`], has what the black-box tests drive:
//!
//! | kind | name | does |
//! |---|---|---|
//! | tool | `echo` | `{"message": "hi"}` → `Echo: hi` |
//! | tool | `progress` | sends `steps` (default 3, at least 3) progress notifications to the request's `progressToken`, then returns |
//! | tool | `sample` | sends `sampling/createMessage` to the client and returns the text the client answered |
//! | resource | `demo://greeting` | a `text/plain` greeting |
//! | prompt | `greet` | `{"name": "Ada"}` → one user message asking to greet Ada |
//!
//! ```text
//! cargo run -p examples --example rmcp_server -- --listen 127.0.0.1:8080
//! cargo run -p examples --example rmcp_server -- --stdio
//! ```
//!
//! Over HTTP it prints `mcp-bastion listening on http://ADDR` to stderr once
//! the socket is bound (with `--listen 127.0.0.1:0`, ADDR has the port the OS
//! chose). With `--stdio` it speaks newline-delimited JSON-RPC on stdin and
//! stdout, through the same `RmcpBackend` the HTTP transports use.

use std::{net::SocketAddr, time::Duration};

use axum::routing::get;
use clap::Parser;
use mcp_bastion::{
    backend::{Backend, Connection, SessionContext, rmcp::RmcpBackend},
    jsonrpc::Message,
    stack::McpStack,
};
use rmcp::{
    ErrorData, Peer, RoleServer, ServerHandler,
    handler::server::{router::prompt::PromptRouter, tool::ToolRouter, wrapper::Parameters},
    model::{
        GetPromptResult, Implementation, ListResourcesResult, PaginatedRequestParams,
        ProgressNotificationParam, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
        ReadResourceResult, RequestMetaObject, Resource, ResourceContents, Role,
        ServerCapabilities, ServerConfig,
    },
    prompt, prompt_handler, prompt_router, schemars,
    service::RequestContext,
    tool, tool_handler, tool_router,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Serve the demo rmcp server.
#[derive(Debug, Parser)]
#[command(name = "rmcp_server")]
struct Cli {
    /// Address to listen on for HTTP.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve one session on stdin/stdout instead of HTTP.
    #[arg(long)]
    stdio: bool,
}

const GREETING_URI: &str = "demo://greeting";
const GREETING: &str = "Hello from an rmcp server behind mcp-bastion!";

/// Arguments of `echo`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct EchoArgs {
    /// The text to echo back.
    message: String,
}

/// Arguments of `progress`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct ProgressArgs {
    /// How many notifications to send (3 to 100; default 3).
    #[serde(default)]
    steps: Option<u32>,
}

/// Arguments of `sample`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct SampleArgs {
    /// What to ask the client's model (default: "Say hello").
    #[serde(default)]
    prompt: Option<String>,
}

/// Arguments of the `greet` prompt.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct GreetArgs {
    /// Who to greet.
    name: String,
}

/// The demo handler: a fresh one per session.
#[derive(Debug, Clone)]
struct Demo {
    tools: ToolRouter<Self>,
    prompts: PromptRouter<Self>,
}

impl Demo {
    fn new() -> Self {
        Self {
            tools: Self::tool_router(),
            prompts: Self::prompt_router(),
        }
    }
}

#[tool_router]
impl Demo {
    #[tool(description = "Echo a message back, prefixed with `Echo: `")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        format!("Echo: {}", args.message)
    }

    #[tool(description = "Send progress notifications to the caller's progressToken, then return")]
    async fn progress(
        &self,
        Parameters(args): Parameters<ProgressArgs>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<String, ErrorData> {
        let steps = args.steps.unwrap_or(3).clamp(3, 100);
        let Some(token) = meta.get_progress_token() else {
            return Ok(format!("no progressToken: sent 0 of {steps} notifications"));
        };
        for step in 1..=steps {
            let update = ProgressNotificationParam::new(token.clone(), f64::from(step))
                .with_total(f64::from(steps))
                .with_message(format!("step {step} of {steps}"));
            peer.notify_progress(update)
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(format!("sent {steps} progress notifications"))
    }

    #[tool(description = "Ask the client's model (sampling/createMessage) and return its answer")]
    #[allow(
        deprecated,
        reason = "sampling is deprecated in 2026-07-28; 2025 clients still use it"
    )]
    async fn sample(
        &self,
        Parameters(args): Parameters<SampleArgs>,
        peer: Peer<RoleServer>,
    ) -> Result<String, ErrorData> {
        use rmcp::model::{CreateMessageRequestParams, SamplingMessage};

        let prompt = args.prompt.unwrap_or_else(|| "Say hello".into());
        let request =
            CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
        let answer = peer
            .create_message(request)
            .await
            .map_err(|e| ErrorData::internal_error(format!("sampling failed: {e}"), None))?;
        let text: Vec<String> = answer
            .message
            .content
            .into_vec()
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.clone()))
            .collect();
        Ok(text.concat())
    }
}

#[prompt_router]
impl Demo {
    #[prompt(description = "Ask the model to greet someone by name")]
    async fn greet(&self, Parameters(args): Parameters<GreetArgs>) -> GetPromptResult {
        let text = format!("Please greet {} warmly.", args.name);
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description("A greeting")
    }
}

#[tool_handler(router = self.tools)]
#[prompt_handler(router = self.prompts)]
impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_prompts()
            .enable_resources()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                "mcp-bastion-rmcp-demo",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Demo server: echo, progress, sample, demo://greeting, greet.")
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let greeting = Resource::new(GREETING_URI, "greeting")
            .with_description("A short greeting")
            .with_mime_type("text/plain");
        Ok(ListResourcesResult::with_all_items(vec![greeting]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != GREETING_URI {
            let why = format!("no resource at {}", request.uri);
            return Err(ErrorData::resource_not_found(why, None));
        }
        let contents = ResourceContents::text(GREETING, request.uri).with_mime_type("text/plain");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_tracing();
    let cli = Cli::parse();
    let backend = RmcpBackend::new(Demo::new);

    if cli.stdio {
        return serve_stdio(backend).await;
    }

    // Streamable HTTP at `/mcp`, legacy SSE at `/sse` + `/messages`
    // (`examples::serve` sets TCP_NODELAY: SSE replies are several small
    // writes, and Nagle plus delayed ACKs would add ~40 ms to each request)
    let app = McpStack::new()
        .serve(backend.clone())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));

    examples::serve(cli.listen, app).await?;
    backend.shutdown().await;
    Ok(())
}

/// One session over rmcp's stdio handles, through the `RmcpBackend` (so the
/// same channel transport as over HTTP): each line one JSON-RPC message.
async fn serve_stdio(backend: impl Backend) -> Result<(), Box<dyn std::error::Error>> {
    let Connection {
        outgoing,
        mut incoming,
        closed,
    } = backend.connect(SessionContext::default()).await?;
    let (stdin, mut stdout) = rmcp::transport::stdio();
    let from_stdin = async move {
        let mut lines = BufReader::new(stdin).lines();
        while let Some(line) = lines.next_line().await? {
            if line.trim().is_empty() {
                continue;
            }
            match Message::from_slice(line.as_bytes()) {
                Ok(message) => {
                    if outgoing.send(message).await.is_err() {
                        break; // the session is over
                    }
                }
                Err(error) => tracing::warn!(%error, "skipping a line that is not JSON-RPC"),
            }
        }
        // Dropping `outgoing` here (stdin closed) ends the session.
        std::io::Result::Ok(())
    };
    let to_stdout = async {
        while let Some(message) = incoming.recv().await {
            let mut line = message.to_json();
            line.push('\n');
            stdout.write_all(line.as_bytes()).await?;
            stdout.flush().await?;
        }
        std::io::Result::Ok(())
    };
    let (read, write) = tokio::join!(from_stdin, to_stdout);
    closed.cancel();
    read?;
    write?;
    Ok(())
}
