//! [`ToolFilter`]: trim the tools a backend exposes, by allow and deny lists
//! of glob patterns, whatever the transport and the backend.
//!
//! A stdio server often has tools an operator does not want on the network
//! (a shell, a delete). [`ToolFilter::wrap`] puts a backend behind the lists:
//!
//! - `tools/list` answers without the removed tools;
//! - `tools/call` of a removed tool is answered by the filter, before the
//!   backend sees it, with the error of an unknown tool (JSON-RPC `-32602`
//!   `Unknown tool: NAME`, as the MCP specification shows it);
//! - `notifications/tools/list_changed` passes through, and the client's
//!   next `tools/list` is trimmed again.
//!
//! It works on the backend's messages, so it holds for Streamable HTTP
//! (JSON or SSE answers), legacy SSE and sessionless requests alike, and it
//! composes with per-tool scopes (`McpScopeLayer` trims what is left per
//! caller).
//!
//! The `mcp-bastion` binary exposes the same lists per server
//! (`--tools-allow`, `--tools-deny`, and the `[servers.<name>]` keys of its
//! configuration file).
//!
//! ```
//! use mcp_bastion::backend::{stdio::StdioBackend, tool_filter::ToolFilter};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = StdioBackend::builder("npx")
//!     .args(["-y", "@modelcontextprotocol/server-filesystem", "/srv"])
//!     .build()?;
//! let filter = ToolFilter::new().deny("*delete*").deny("move_file");
//! assert!(!filter.allows("delete_file"));
//! let backend = filter.wrap(backend); // a Backend like any other
//! let app: axum::Router = mcp_bastion::stack::McpStack::new().serve(backend);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! Patterns are globs over the whole name: `*` matches any run of
//! characters, `?` one character; anything else matches itself. A name is
//! allowed when the allow list is empty or one of its patterns matches, and
//! no deny pattern matches.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use tokio::sync::mpsc;

use super::{Backend, BackendError, Connection, SessionContext};
use crate::boxed::BoxFuture;
use crate::jsonrpc::{ErrorObject, Message, RequestId, Response, codes};

/// Allow and deny lists of tool-name globs; see the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolFilter {
    allow: Vec<String>,
    deny: Vec<String>,
}

impl ToolFilter {
    /// Every tool allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows the tools matching `pattern` (once any allow pattern is given,
    /// only matching tools remain).
    pub fn allow(mut self, pattern: impl Into<String>) -> Self {
        self.allow.push(pattern.into());
        self
    }

    /// Removes the tools matching `pattern`, even if allowed.
    pub fn deny(mut self, pattern: impl Into<String>) -> Self {
        self.deny.push(pattern.into());
        self
    }

    /// Whether the filter removes nothing.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether the tool `name` stays.
    pub fn allows(&self, name: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|p| glob_matches(p, name)))
            && !self.deny.iter().any(|p| glob_matches(p, name))
    }

    /// `backend` behind this filter.
    pub fn wrap<B: Backend>(self, backend: B) -> FilteredBackend<B> {
        FilteredBackend {
            inner: backend,
            filter: Arc::new(self),
        }
    }
}

/// Whether the glob `pattern` (`*`, `?`) matches all of `name`.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // the classic two-pointer match with backtracking to the last `*`
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A backend behind a [`ToolFilter`].
#[derive(Debug, Clone)]
pub struct FilteredBackend<B> {
    inner: B,
    filter: Arc<ToolFilter>,
}

/// Messages a connection's relay tasks hold at most in each direction.
const RELAY_CAPACITY: usize = 64;

impl<B: Backend> Backend for FilteredBackend<B> {
    fn connect(&self, ctx: SessionContext) -> BoxFuture<'static, Result<Connection, BackendError>> {
        let connect = self.inner.connect(ctx);
        let filter = Arc::clone(&self.filter);
        Box::pin(async move {
            let inner = connect.await?;
            Ok(relay(inner, filter))
        })
    }

    fn ready(&self) -> BoxFuture<'static, Result<(), BackendError>> {
        self.inner.ready()
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        self.inner.shutdown()
    }
}

/// The client's side of `inner`, with two tasks between them that apply the
/// filter.
fn relay(inner: Connection, filter: Arc<ToolFilter>) -> Connection {
    let Connection {
        outgoing: to_backend,
        incoming: mut from_backend,
        closed,
    } = inner;
    let (to_client, from_filter) = mpsc::channel::<Message>(RELAY_CAPACITY);
    let (to_filter, mut from_client) = mpsc::channel::<Message>(RELAY_CAPACITY);
    // ids of the client's tools/list requests whose answers are still due
    let listing: Arc<Mutex<HashSet<RequestId>>> = Arc::default();

    let (answer, lists, stop) = (to_client.clone(), Arc::clone(&listing), closed.clone());
    let up_filter = Arc::clone(&filter);
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => break,
                m = from_client.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            if let Message::Request(request) = &message {
                match request.method.as_str() {
                    "tools/call" => {
                        let name = tool_name(request.params.as_ref());
                        if !up_filter.allows(name) {
                            let error = ErrorObject::new(
                                codes::INVALID_PARAMS,
                                format!("Unknown tool: {name}"),
                            );
                            let refusal = Response::error(Some(request.id.clone()), error);
                            if answer.send(Message::Response(refusal)).await.is_err() {
                                break;
                            }
                            continue;
                        }
                    }
                    "tools/list" => {
                        lock(&lists).insert(request.id.clone());
                    }
                    _ => {}
                }
            }
            if to_backend.send(message).await.is_err() {
                break;
            }
        }
    });

    let stop = closed.clone();
    tokio::spawn(async move {
        loop {
            let mut message = tokio::select! {
                () = stop.cancelled() => break,
                m = from_backend.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            if let Message::Response(response) = &mut message {
                let listed = response
                    .id
                    .as_ref()
                    .is_some_and(|id| lock(&listing).remove(id));
                if listed && let Ok(result) = &mut response.outcome {
                    trim_listed_tools(result, &filter);
                }
            }
            if to_client.send(message).await.is_err() {
                break;
            }
        }
    });
    Connection::new(to_filter, from_filter, closed)
}

/// The set, even if a relay task panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `params.name` of a `tools/call` (empty when absent: no tool has it).
fn tool_name(params: Option<&Value>) -> &str {
    params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Removes the tools `filter` does not allow from a `tools/list` result.
fn trim_listed_tools(result: &mut Value, filter: &ToolFilter) {
    if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
        tools.retain(|tool| filter.allows(tool.get("name").and_then(Value::as_str).unwrap_or("")));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_matches("echo", "echo"));
        assert!(!glob_matches("echo", "echoes"));
        assert!(glob_matches("*delete*", "file_delete_all"));
        assert!(glob_matches("get-?um", "get-sum"));
        assert!(glob_matches("a*b*c", "a-b-b-c"));
        assert!(!glob_matches("a*b*c", "a-b-b-d"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("?", ""));
    }

    #[test]
    fn allow_then_deny() {
        let f = ToolFilter::new()
            .allow("get-*")
            .allow("echo")
            .deny("get-env");
        assert!(f.allows("echo"));
        assert!(f.allows("get-sum"));
        assert!(!f.allows("get-env"), "deny wins over allow");
        assert!(!f.allows("trigger-long-running-operation"), "not allowed");
        assert!(ToolFilter::new().allows("anything"));
        assert!(!ToolFilter::new().deny("*").allows("anything"));
    }

    /// A backend that answers `tools/list` with three tools and records every
    /// message it receives: a stand-in beside the black-box tests with real
    /// servers (tests/tests/servers.rs), to show what never reaches it.
    #[derive(Clone, Default)]
    struct Recording(Arc<Mutex<Vec<Message>>>);

    impl Backend for Recording {
        fn connect(
            &self,
            _: SessionContext,
        ) -> BoxFuture<'static, Result<Connection, BackendError>> {
            let seen = Arc::clone(&self.0);
            Box::pin(async move {
                let (to_backend, mut requests) = mpsc::channel::<Message>(8);
                let (to_client, answers) = mpsc::channel::<Message>(8);
                tokio::spawn(async move {
                    while let Some(m) = requests.recv().await {
                        lock(&seen).push(m.clone());
                        if let Message::Request(r) = m {
                            let result = match r.method.as_str() {
                                "tools/list" => json!({"tools": [
                                    {"name": "echo"}, {"name": "shell"}, {"name": "delete_all"}]}),
                                _ => json!({"content": [{"type": "text", "text": "called"}]}),
                            };
                            let _ = to_client
                                .send(Message::Response(Response::result(r.id, result)))
                                .await;
                        }
                    }
                });
                Ok(Connection::new(
                    to_backend,
                    answers,
                    CancellationToken::new(),
                ))
            })
        }
    }

    fn request(id: i64, method: &str, params: Value) -> Message {
        Message::Request(crate::jsonrpc::Request {
            id: RequestId::Number(id),
            method: method.into(),
            params: Some(params),
        })
    }

    #[tokio::test]
    async fn removed_tools_are_neither_listed_nor_called() {
        let recording = Recording::default();
        let backend = ToolFilter::new()
            .deny("shell")
            .deny("delete*")
            .wrap(recording.clone());
        let mut conn = backend.connect(SessionContext::default()).await.unwrap();

        conn.outgoing
            .send(request(1, "tools/list", json!({})))
            .await
            .unwrap();
        let Some(Message::Response(listed)) = conn.incoming.recv().await else {
            panic!("no answer to tools/list");
        };
        assert_eq!(
            listed.outcome.unwrap(),
            json!({"tools": [{"name": "echo"}]})
        );

        conn.outgoing
            .send(request(
                2,
                "tools/call",
                json!({"name": "shell", "arguments": {}}),
            ))
            .await
            .unwrap();
        let Some(Message::Response(refused)) = conn.incoming.recv().await else {
            panic!("no answer to the call");
        };
        assert_eq!(refused.id, Some(RequestId::Number(2)));
        let error = refused.outcome.unwrap_err();
        assert_eq!(error.code, codes::INVALID_PARAMS);
        assert_eq!(error.message, "Unknown tool: shell");

        conn.outgoing
            .send(request(
                3,
                "tools/call",
                json!({"name": "echo", "arguments": {}}),
            ))
            .await
            .unwrap();
        let Some(Message::Response(called)) = conn.incoming.recv().await else {
            panic!("no answer to the allowed call");
        };
        assert!(called.outcome.is_ok());

        let seen: Vec<String> = lock(&recording.0)
            .iter()
            .map(|m| {
                m.params()
                    .and_then(|p| p.get("name"))
                    .map_or("-", |n| n.as_str().unwrap_or("?"))
                    .to_owned()
            })
            .collect();
        assert_eq!(
            seen,
            ["-", "echo"],
            "the refused call never reached the backend"
        );
    }
}
