use std::slice;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::InspectRejection;
use crate::{
    jsonrpc::{Message, MessageError, RequestId},
    protocol::{
        HEADER_METHOD, HEADER_NAME, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID,
        META_PROTOCOL_VERSION, ProtocolVersion,
    },
};

/// The parsed body of a POST: one message or (2025-03-26 only) a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// One JSON-RPC message.
    Single(Message),
    /// A JSON-RPC batch (never empty).
    Batch(Vec<Message>),
}

/// What a POST body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// One request.
    Request,
    /// One notification.
    Notification,
    /// One response (an answer to a server-to-client request).
    Response,
    /// A batch of any of these.
    Batch,
}

/// A POSTed MCP message, parsed once by [`McpInspectLayer`](super::McpInspectLayer)
/// and read by every later layer from the request extensions.
///
/// Handlers and layers get it with `Extension<McpRequest>` or
/// `req.extensions().get::<McpRequest>()`.
#[derive(Debug, Clone)]
pub struct McpRequest {
    body: Bytes,
    payload: Payload,
    protocol_version: Option<ProtocolVersion>,
    session_id: Option<String>,
}

impl McpRequest {
    /// Parses a body with the request's headers and query. This is the one
    /// place a body becomes an `McpRequest`.
    pub fn parse(
        headers: &HeaderMap,
        query: Option<&str>,
        body: Bytes,
    ) -> Result<Self, InspectRejection> {
        let protocol_version = match headers.get(HEADER_PROTOCOL_VERSION) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<ProtocolVersion>().ok())
                    .ok_or_else(|| unsupported_version(v, &body))?,
            ),
        };
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| InspectRejection::Message(MessageError::Parse(e.to_string())))?;
        let payload = match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(InspectRejection::InvalidBatch(
                        "an empty batch is not a valid request",
                    ));
                }
                let version = protocol_version.unwrap_or(ProtocolVersion::DEFAULT_STREAMABLE);
                if !version.allows_batches() {
                    return Err(InspectRejection::InvalidBatch(
                        "JSON-RPC batches are not allowed in this protocol revision",
                    ));
                }
                let msgs = items
                    .into_iter()
                    .map(Message::from_value)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(InspectRejection::Message)?;
                if msgs.iter().any(|m| m.method() == Some("initialize")) {
                    return Err(InspectRejection::InvalidBatch(
                        "initialize must not be part of a batch",
                    ));
                }
                Payload::Batch(msgs)
            }
            other => {
                Payload::Single(Message::from_value(other).map_err(InspectRejection::Message)?)
            }
        };
        let session_id = headers
            .get(HEADER_SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| query.and_then(session_id_from_query));
        let req = Self {
            body,
            payload,
            protocol_version,
            session_id,
        };
        req.check_routing_headers(headers)?;
        Ok(req)
    }

    /// Revision 2026-07-28 puts the method and name in headers so that
    /// intermediaries can route without the body; a header that disagrees
    /// with the body is refused so no layer can be steered by a lie. Headers
    /// sent under earlier revisions are checked the same way when present.
    fn check_routing_headers(&self, headers: &HeaderMap) -> Result<(), InspectRejection> {
        let sessionless = self
            .protocol_version
            .is_some_and(ProtocolVersion::is_sessionless);
        let Payload::Single(msg) = &self.payload else {
            return Ok(());
        };
        let mismatch = |header| InspectRejection::HeaderMismatch {
            header,
            id: msg.id().cloned(),
        };
        let header = |name| {
            headers
                .get(name)
                .map(|v| v.to_str().map_err(|_| mismatch(name)))
        };
        if let Some(method) = msg.method() {
            match header(HEADER_METHOD).transpose()? {
                Some(h) if h != method => return Err(mismatch("Mcp-Method")),
                None if sessionless => return Err(mismatch("Mcp-Method")),
                _ => {}
            }
        }
        let name = self.named_target();
        match (header(HEADER_NAME).transpose()?, name) {
            (Some(h), Some(n)) if h != n => Err(mismatch("Mcp-Name")),
            (Some(_), None) => Err(mismatch("Mcp-Name")),
            (None, Some(_)) if sessionless => Err(mismatch("Mcp-Name")),
            _ => Ok(()),
        }
    }

    /// The raw body bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The parsed payload.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Takes the parsed payload, for a transport that consumes it.
    pub fn into_payload(self) -> Payload {
        self.payload
    }

    /// Every message in the body (one, or each element of a batch).
    pub fn messages(&self) -> &[Message] {
        match &self.payload {
            Payload::Single(m) => slice::from_ref(m),
            Payload::Batch(v) => v,
        }
    }

    /// What the body holds.
    pub fn kind(&self) -> MessageKind {
        match &self.payload {
            Payload::Batch(_) => MessageKind::Batch,
            Payload::Single(Message::Request(_)) => MessageKind::Request,
            Payload::Single(Message::Notification(_)) => MessageKind::Notification,
            Payload::Single(Message::Response(_)) => MessageKind::Response,
        }
    }

    /// True when at least one message is a request (and so expects an answer).
    pub fn has_requests(&self) -> bool {
        self.messages().iter().any(Message::is_request)
    }

    /// The method of a single request or notification.
    pub fn method(&self) -> Option<&str> {
        match &self.payload {
            Payload::Single(m) => m.method(),
            Payload::Batch(_) => None,
        }
    }

    /// The id of a single request or response.
    pub fn id(&self) -> Option<&RequestId> {
        match &self.payload {
            Payload::Single(m) => m.id(),
            Payload::Batch(_) => None,
        }
    }

    /// Ids of every request in the body.
    pub fn request_ids(&self) -> impl Iterator<Item = &RequestId> {
        self.messages()
            .iter()
            .filter(|m| m.is_request())
            .filter_map(Message::id)
    }

    /// True for an `initialize` request.
    pub fn is_initialize(&self) -> bool {
        matches!(&self.payload, Payload::Single(Message::Request(r)) if r.method == "initialize")
    }

    /// The tool name of a single `tools/call`.
    pub fn tool_name(&self) -> Option<&str> {
        match &self.payload {
            Payload::Single(m) => tool_name(m),
            Payload::Batch(_) => None,
        }
    }

    /// Tool names of every `tools/call` in the body (batches included).
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.messages().iter().filter_map(tool_name)
    }

    /// The URI of a single `resources/read`.
    pub fn resource_uri(&self) -> Option<&str> {
        self.single_param("resources/read", "uri")
    }

    /// The prompt name of a single `prompts/get`.
    pub fn prompt_name(&self) -> Option<&str> {
        self.single_param("prompts/get", "name")
    }

    /// What `Mcp-Name` must equal: the tool, resource URI or prompt a single
    /// request names.
    pub fn named_target(&self) -> Option<&str> {
        self.tool_name()
            .or_else(|| self.resource_uri())
            .or_else(|| self.prompt_name())
    }

    /// The session id from `Mcp-Session-Id`, or the `session_id`/`sessionId`
    /// query parameter of the legacy SSE message endpoint.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The `MCP-Protocol-Version` header, if sent.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.protocol_version
    }

    /// True for a sessionless (2026-07-28) request: its `MCP-Protocol-Version`
    /// header names a sessionless revision, or its first message's `_meta`
    /// carries a protocol version. Such a request has no session id.
    pub fn is_sessionless(&self) -> bool {
        self.protocol_version
            .is_some_and(ProtocolVersion::is_sessionless)
            || self
                .request_meta()
                .is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION))
    }

    /// The `params._meta` object of the first message, if it has one (in
    /// 2026-07-28 it carries the protocol version, client info and client
    /// capabilities).
    pub fn request_meta(&self) -> Option<&serde_json::Map<String, Value>> {
        self.messages().first()?.params()?.get("_meta")?.as_object()
    }

    /// The client's name from [`request_meta`](Self::request_meta)
    /// (`clientInfo.name`: 2026-07-28 requests name their client on every
    /// request), as the client sent it: bound it before it becomes a label.
    pub fn meta_client_name(&self) -> Option<&str> {
        self.request_meta()?
            .get(crate::protocol::META_CLIENT_INFO)?
            .get("name")?
            .as_str()
    }

    fn single_param(&self, method: &str, key: &str) -> Option<&str> {
        match &self.payload {
            Payload::Single(m) if m.method() == Some(method) => m.params()?.get(key)?.as_str(),
            _ => None,
        }
    }
}

/// The refusal of an unknown `MCP-Protocol-Version`, with what the body
/// tells of the request (its id, and whether it is sessionless) when it is
/// JSON at all.
fn unsupported_version(header: &http::HeaderValue, body: &[u8]) -> InspectRejection {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let id = value
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok());
    let sessionless = value
        .as_ref()
        .and_then(|v| v.pointer("/params/_meta"))
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION));
    InspectRejection::UnsupportedProtocolVersion {
        requested: echoed_version(header),
        sessionless,
        id,
    }
}

/// The refused header as echoed back: at most 64 characters of it.
pub(crate) fn echoed_version(header: &http::HeaderValue) -> String {
    String::from_utf8_lossy(header.as_bytes())
        .trim()
        .chars()
        .take(64)
        .collect()
}

fn tool_name(m: &Message) -> Option<&str> {
    match m {
        Message::Request(r) if r.method == "tools/call" => r.params.as_ref()?.get("name")?.as_str(),
        _ => None,
    }
}

/// The legacy SSE message endpoint carries the session in the query: the
/// Python SDK says `session_id`, the TypeScript SDK `sessionId`.
pub(crate) fn session_id_from_query(query: &str) -> Option<String> {
    form_pairs(query).find_map(|(k, v)| (k == "session_id" || k == "sessionId").then_some(v))
}

/// Decodes `application/x-www-form-urlencoded` pairs.
pub(crate) fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
