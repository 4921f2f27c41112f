//! Backends: where MCP messages go once a transport has accepted them.
//!
//! A [`Backend`] opens a [`Connection`] per session (or, for a shared stdio
//! child, multiplexes many sessions over one process). A connection is a pair
//! of channels of JSON-RPC [`Message`]s plus a close handle; transports know
//! nothing else about what is behind it.
//!
//! | backend | feature | what it serves |
//! |---|---|---|
//! | [`stdio::StdioBackend`] | `stdio` | a child process speaking newline-delimited JSON, one per session or one shared |
//! | `rmcp::RmcpBackend` | `rmcp` | any rmcp `ServerHandler`, in process |
//! | [`upstream::UpstreamBackend`] | `upstream` | a remote MCP server over Streamable HTTP or legacy SSE, with its own credentials |
//!
//! [`tool_filter::ToolFilter`] wraps any of them to trim the tools it
//! exposes (allow and deny lists of globs).
//!
//! Revision 2026-07-28: a backend that speaks it reports so in
//! [`Backend::protocol_versions`] and gets 2026-07-28 requests as they are
//! through [`Backend::forward`]; today that is the upstream backend when its
//! server's `server/discover` lists 2026-07-28. The stdio and rmcp backends
//! (and any backend wrapped in a tool filter, which rewrites answers) speak
//! the handshake revisions only, and the transport bridges 2026-07-28
//! requests onto them.
//!
//! A backend is mounted through a transport
//! ([`StreamableHttp::new`](crate::transport::StreamableHttp::new),
//! [`Sse::new`](crate::transport::Sse::new)), or behind every layer at once
//! with [`McpStack::serve`](crate::stack::McpStack::serve):
//!
//! ```
//! use mcp_bastion::{backend::stdio::StdioBackend, stack::McpStack};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = StdioBackend::builder("my-mcp-server").build()?;
//! let app: axum::Router = McpStack::new().serve(backend); // /mcp, /sse, /messages
//! # Ok(())
//! # }
//! ```
//!
//! Writing your own: implement [`Backend::connect`], return the two channel
//! ends, and stop work when the connection's [`CancellationToken`] fires or
//! the `outgoing` sender is dropped.

use std::{fmt, sync::Arc};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{boxed::BoxFuture, jsonrpc::Message};

#[cfg(feature = "stdio")]
pub mod stdio;

#[cfg(feature = "rmcp")]
pub mod rmcp;

#[cfg(feature = "upstream")]
pub mod upstream;

pub mod tool_filter;

/// What a transport knows about the session a connection is opened for.
///
/// `extensions` carries whatever the outer layers attached to the request that
/// opened the session (the authenticated `Principal`, captured `SessionParams`),
/// so that backends can act on them, e.g. a stdio child's environment.
#[derive(Debug, Clone, Default)]
pub struct SessionContext {
    /// The transport session id, when the transport has sessions.
    pub session_id: Option<String>,
    /// The protocol version the client asked for, if known.
    pub protocol_version: Option<String>,
    /// Request extensions of the request that opened the session.
    pub extensions: http::Extensions,
}

/// An open connection to a backend for one session.
///
/// Send client messages on `outgoing`; read server messages from `incoming`.
/// `incoming` ends (returns `None`) when the backend is gone. Cancelling
/// [`Connection::closed`] ends the connection; backends must also treat the
/// `outgoing` channel closing (every sender dropped) as the end.
#[derive(Debug)]
pub struct Connection {
    /// Client-to-server messages.
    pub outgoing: mpsc::Sender<Message>,
    /// Server-to-client messages.
    pub incoming: mpsc::Receiver<Message>,
    /// Cancel to end the connection; the backend releases its resources
    /// (a per-session child is terminated).
    pub closed: CancellationToken,
}

impl Connection {
    /// Builds a connection from its parts.
    pub fn new(
        outgoing: mpsc::Sender<Message>,
        incoming: mpsc::Receiver<Message>,
        closed: CancellationToken,
    ) -> Self {
        Self {
            outgoing,
            incoming,
            closed,
        }
    }
}

/// Why a backend could not open a connection.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The child process could not be started.
    #[error("failed to spawn backend process `{program}`: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The backend refused or is not available.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The configuration cannot work.
    #[error("invalid backend configuration: {0}")]
    Config(String),
}

/// A revision 2026-07-28 request handed to a backend that speaks that
/// revision, as the client sent it (see [`Backend::forward`]).
///
/// `headers` holds only the MCP protocol headers of the client's request
/// (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`), which
/// the inspect layer has checked against the body; never its credentials,
/// cookies or session headers.
#[derive(Debug, Default)]
pub struct PassThrough {
    /// The JSON-RPC body, byte for byte.
    pub body: bytes::Bytes,
    /// The client's MCP protocol headers (nothing else).
    pub headers: http::HeaderMap,
    /// Request extensions (the `Principal`, captured parameters), as in
    /// [`SessionContext::extensions`].
    pub extensions: http::Extensions,
}

/// The revisions every backend speaks unless it says otherwise: those with
/// the `initialize` handshake (2024-11-05 to 2025-11-25).
pub fn handshake_versions() -> Vec<String> {
    crate::protocol::served_versions()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Something that serves MCP sessions.
///
/// Cheap to clone and shared by all requests; [`Backend::connect`] is called
/// once per session (for a sessionless 2026-07-28 request that is bridged,
/// once per pooled link of a principal, and once per `subscriptions/listen`
/// stream).
///
/// A backend that speaks revision 2026-07-28 itself says so in
/// [`protocol_versions`](Backend::protocol_versions) and takes such
/// requests as they are in [`forward`](Backend::forward); the transport then
/// passes them through instead of bridging them onto a handshake session.
pub trait Backend: Send + Sync + 'static {
    /// Opens a connection for a new session.
    fn connect(&self, ctx: SessionContext) -> BoxFuture<'static, Result<Connection, BackendError>>;

    /// The protocol revisions the backend speaks. When it lists
    /// `2026-07-28`, 2026-07-28 requests go to [`forward`](Backend::forward)
    /// unchanged. Default: the handshake revisions only
    /// ([`handshake_versions`]), so 2026-07-28 requests are bridged. An
    /// error counts as the default for that request.
    fn protocol_versions(&self) -> BoxFuture<'static, Result<Vec<String>, BackendError>> {
        Box::pin(async { Ok(handshake_versions()) })
    }

    /// Sends one 2026-07-28 request as it is and returns the backend's
    /// HTTP answer (status, `Content-Type`, body: JSON or an SSE stream),
    /// which goes to the client unchanged. Dropping the answer's body (the
    /// client went away) must cancel the request at the backend. Called only
    /// when [`protocol_versions`](Backend::protocol_versions) lists
    /// 2026-07-28. Default: unavailable.
    fn forward(
        &self,
        request: PassThrough,
    ) -> BoxFuture<'static, Result<http::Response<axum::body::Body>, BackendError>> {
        drop(request);
        Box::pin(async {
            Err(BackendError::Unavailable(
                "this backend does not take 2026-07-28 requests as they are".into(),
            ))
        })
    }

    /// Whether the backend can serve now (used by `/readyz`). Default: yes.
    fn ready(&self) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(async { Ok(()) })
    }

    /// Ends all connections and releases every resource (children are
    /// terminated). Called on shutdown. Default: nothing to do.
    fn shutdown(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn connect(&self, ctx: SessionContext) -> BoxFuture<'static, Result<Connection, BackendError>> {
        (**self).connect(ctx)
    }
    fn ready(&self) -> BoxFuture<'static, Result<(), BackendError>> {
        (**self).ready()
    }
    fn protocol_versions(&self) -> BoxFuture<'static, Result<Vec<String>, BackendError>> {
        (**self).protocol_versions()
    }
    fn forward(
        &self,
        request: PassThrough,
    ) -> BoxFuture<'static, Result<http::Response<axum::body::Body>, BackendError>> {
        (**self).forward(request)
    }
    fn shutdown(&self) -> BoxFuture<'static, ()> {
        (**self).shutdown()
    }
}

/// A type-erased backend, for choosing one at run time.
pub type DynBackend = Arc<dyn Backend>;

impl fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Backend")
    }
}
