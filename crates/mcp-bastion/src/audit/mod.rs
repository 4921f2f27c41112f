//! The audit log: [`McpAuditLayer`] writes one JSON line per request that
//! reaches a decision: who called (subject and key id, never the
//! credential), which method and tool, resource or prompt, and how it ended
//! (answered, or refused by the Origin guard, authentication, scopes, a rate
//! limit or a size limit, with the HTTP status), with its latency and size.
//!
//! ```json
//! {"time":"2026-12-04T18:21:43.512Z","request_id":7,"subject":"alice","auth_key_id":"ops","session":"9f3c01a2","method":"tools/call","tool":"echo","outcome":"answered","status":200,"latency_ms":3.2,"bytes_in":112,"bytes_out":187}
//! ```
//!
//! | field | what |
//! |---|---|
//! | `time` | arrival, RFC 3339 UTC |
//! | `request_id` | the JSON-RPC id |
//! | `subject`, `auth_key_id` | the [`Principal`](crate::principal::Principal) and its key id |
//! | `client_name`, `client_version` | `clientInfo` of the session's `initialize` (remembered per session) |
//! | `session`, `route_key` | [`session_fingerprint`](crate::session::session_fingerprint) of the session id (never the id); the replica's route key |
//! | `method`, `tool`, `resource`, `prompt` | bounded like the metrics labels (see [`metrics`](crate::metrics)) |
//! | `arguments_sha256` | only with [`hash_arguments`](McpAuditLayer::hash_arguments) |
//! | `outcome`, `refused_by`, `status`, `error_code` | see [`Outcome`], [`RefusedBy`]; the JSON-RPC error code of an error answer |
//! | `latency_ms`, `bytes_in`, `bytes_out` | latency to the response head; `bytes_out` counted as the body streams |
//!
//! The record is written when the answer's body ends (or is dropped because
//! the client went away): an SSE answer is logged once it is complete.
//!
//! Two parts, because refusals happen at both ends of the stack: the layer
//! itself goes outside the Origin guard and authentication, so it sees their
//! refusals; its [`capture`](McpAuditLayer::capture) point goes inside
//! [`McpInspectLayer`](crate::inspect::McpInspectLayer) and fills a
//! per-request slot (in the request extensions) with the parsed request and
//! the principal. A 403 from a request that reached the capture point is the
//! scope layer's; one that did not is the Origin guard's.
//! [`McpStack::audit`](crate::stack::McpStack::audit) mounts both.
//!
//! Lines go through an [`AuditWriter`]: a bounded queue drained by its own
//! thread, so a slow disk or a stalled pipe never stalls a request; when the
//! queue is full a line is dropped and counted
//! (`mcp_audit_records_dropped_total`). [`AuditWriter::reopen`] reopens the
//! file after logrotate renamed it (the binary calls it on `SIGHUP`).
//!
//! ```
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use mcp_bastion::{
//!     audit::{AuditSink, AuditWriter, McpAuditLayer},
//!     inspect::McpInspectLayer,
//! };
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let path = std::env::temp_dir().join(format!("audit-mod-doc-{}.jsonl", std::process::id()));
//! # let _ = std::fs::remove_file(&path);
//! let audit = McpAuditLayer::new(AuditWriter::open(AuditSink::File(path.clone()), 1024).unwrap());
//! let app = Router::new().route("/mcp", post(|| async { "{}" })).layer(
//!     ServiceBuilder::new()
//!         .layer(audit.clone())
//!         .layer(McpInspectLayer::new())
//!         .layer(audit.capture()),
//! );
//! let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
//! let req = Request::post("/mcp")
//!     .header("content-type", "application/json")
//!     .header("accept", "application/json, text/event-stream")
//!     .body(Body::from(call))
//!     .unwrap();
//! assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::OK);
//! drop(audit);
//! # std::thread::sleep(std::time::Duration::from_millis(200));
//! let line = std::fs::read_to_string(&path).unwrap();
//! let record: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
//! assert_eq!(record["method"], "tools/call");
//! assert_eq!(record["tool"], "echo");
//! assert_eq!(record["outcome"], "answered");
//! # let _ = std::fs::remove_file(&path);
//! # }
//! ```

mod body;
mod layer;
mod record;
mod writer;

pub use body::AuditBody;
pub use layer::{AuditCapture, AuditCaptureLayer, McpAudit, McpAuditLayer, ResponseFuture};
pub use record::{AuditRecord, Outcome, RefusedBy};
pub use writer::{
    AUDIT_RECORDS_DROPPED, AuditSink, AuditWriter, DEFAULT_QUEUE_CAPACITY, EmptyAuditSink,
};

#[cfg(test)]
mod tests;
