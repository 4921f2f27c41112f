//! The audit record: what one request left behind, and how its outcome is
//! read from the response.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    inspect::{McpRequest, MessageKind},
    jsonrpc::{Message, RequestId},
    metrics::labels,
    principal::Principal,
    protocol::HEADER_SESSION_ID,
    session::{route_key_of, session_fingerprint},
};

/// One line of the audit log (serialized as JSON; absent fields are left
/// out). See the [module docs](super) for a sample.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AuditRecord {
    /// When the request arrived, RFC 3339 in UTC, to the millisecond.
    pub time: String,
    /// The JSON-RPC request id, as the client sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// The authenticated principal's subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// How it authenticated: the key id of the API key or token (never the
    /// credential itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_key_id: Option<String>,
    /// `clientInfo.name` of the session's `initialize` request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// `clientInfo.version` of the session's `initialize` request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// [`session_fingerprint`] of the session id (never the id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The replica's route key carried in the session id, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_key: Option<String>,
    /// The JSON-RPC method, bounded like the metrics label (`other` outside
    /// MCP's vocabulary; `batch` for a batch; `http:GET`… for a request with no
    /// parsed body).
    pub method: String,
    /// The tool of a `tools/call`, bounded like the metrics label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The prompt of a `prompts/get`, bounded like a tool name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The URI of a `resources/read`, bounded like a tool name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// SHA-256 (hex) of the canonical arguments of a `tools/call`, when
    /// [`hash_arguments`](super::McpAuditLayer::hash_arguments) is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments_sha256: Option<String>,
    /// `answered`, `error`, `tool_error`, `refused` or `failed`.
    pub outcome: Outcome,
    /// The JSON-RPC error code of the answer, when it was an error
    /// (refusals with a JSON-RPC body included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// Which layer refused, for `refused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<RefusedBy>,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Milliseconds from the request to the response head (an SSE answer
    /// streams on after it), to the microsecond.
    pub latency_ms: f64,
    /// Bytes of the request body (the parsed body, else `Content-Length`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// Bytes of the response body, counted as it streamed (up to the end,
    /// or to where the client went away).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
}

impl AuditRecord {
    /// Appends the record as one JSON line (without its newline) to `out`:
    /// the same text as its `Serialize` through `serde_json`, written
    /// directly (member names are constants, values are escaped in place).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":");
        json_str(out, &self.time);
        if let Some(id) = &self.request_id {
            out.extend_from_slice(b",\"request_id\":");
            match id {
                RequestId::Number(n) => json_int(out, *n),
                RequestId::String(s) => json_str(out, s),
            }
        }
        opt_str(out, b",\"subject\":", self.subject.as_deref());
        opt_str(out, b",\"auth_key_id\":", self.auth_key_id.as_deref());
        opt_str(out, b",\"client_name\":", self.client_name.as_deref());
        opt_str(out, b",\"client_version\":", self.client_version.as_deref());
        opt_str(out, b",\"session\":", self.session.as_deref());
        opt_str(out, b",\"route_key\":", self.route_key.as_deref());
        out.extend_from_slice(b",\"method\":");
        json_str(out, &self.method);
        opt_str(out, b",\"tool\":", self.tool.as_deref());
        opt_str(out, b",\"prompt\":", self.prompt.as_deref());
        opt_str(out, b",\"resource\":", self.resource.as_deref());
        opt_str(
            out,
            b",\"arguments_sha256\":",
            self.arguments_sha256.as_deref(),
        );
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(self.outcome.as_str().as_bytes());
        out.push(b'"');
        if let Some(code) = self.error_code {
            out.extend_from_slice(b",\"error_code\":");
            json_int(out, code);
        }
        if let Some(by) = self.refused_by {
            out.extend_from_slice(b",\"refused_by\":\"");
            out.extend_from_slice(by.as_str().as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b",\"status\":");
        json_int(out, self.status);
        out.extend_from_slice(b",\"latency_ms\":");
        if serde_json::to_writer(&mut *out, &self.latency_ms).is_err() {
            out.extend_from_slice(b"null");
        }
        if let Some(n) = self.bytes_in {
            out.extend_from_slice(b",\"bytes_in\":");
            json_int(out, n);
        }
        if let Some(n) = self.bytes_out {
            out.extend_from_slice(b",\"bytes_out\":");
            json_int(out, n);
        }
        out.push(b'}');
    }
}

/// `,"name":"value"` when there is a value.
fn opt_str(out: &mut Vec<u8>, name: &[u8], value: Option<&str>) {
    if let Some(v) = value {
        out.extend_from_slice(name);
        json_str(out, v);
    }
}

/// An integer as JSON.
fn json_int(out: &mut Vec<u8>, n: impl Into<i128>) {
    let n: i128 = n.into();
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// A string as JSON, escaped as `serde_json` does: `"` and `\\`, the
/// control characters (short forms where JSON has them, else `\u00XX`).
fn json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        // nothing to escape (the usual case)
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        if short == 0 {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(short);
        }
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

/// How a request ended.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The backend (or the transport) answered with a result.
    #[default]
    Answered,
    /// The answer was a JSON-RPC error (`error_code` says which).
    Error,
    /// A `tools/call` answered with a result whose `isError` is true.
    ToolError,
    /// A layer refused it before the backend saw it.
    Refused,
    /// The server failed (5xx, or a service error).
    Failed,
}

impl Outcome {
    /// The name in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Error => "error",
            Self::ToolError => "tool_error",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// The layer that refused a request.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RefusedBy {
    /// The Origin guard (403 for a foreign `Origin`).
    Origin,
    /// Authentication (401).
    Auth,
    /// Per-tool scopes (403 `insufficient_scope`).
    Scopes,
    /// A rate limit (429).
    RateLimit,
    /// A size limit (413).
    Size,
    /// Any other refusal of the request itself (400, 404, 405, 415…).
    Request,
}

impl RefusedBy {
    /// The name in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Auth => "auth",
            Self::Scopes => "scopes",
            Self::RateLimit => "rate_limit",
            Self::Size => "size",
            Self::Request => "request",
        }
    }
}

/// The client name and version of each live session, learnt from its
/// `initialize`, so every record of the session names its client. Bounded:
/// at [`MAX_SESSIONS`] entries the table starts over (later records of the
/// sessions it forgot have no client name).
#[derive(Default)]
pub(crate) struct ClientNames(Mutex<HashMap<String, Known>>);

/// What is kept of a session: its fingerprint (computed once, at its
/// `initialize`) and its client.
#[derive(Debug)]
pub(crate) struct Known {
    fingerprint: String,
    client: ClientInfo,
}

impl std::fmt::Debug for ClientNames {
    // the keys are session ids: bearer credentials, never printed
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientNames")
            .field("sessions", &self.table().len())
            .finish()
    }
}

/// A client's `clientInfo` name and version.
type ClientInfo = (Option<String>, Option<String>);

/// How many sessions' client names are kept.
const MAX_SESSIONS: usize = 65_536;

impl ClientNames {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers the client of the session `id` (from its `initialize`).
    pub(crate) fn remember(&self, id: &str, info: ClientInfo) {
        let mut table = self.table();
        if table.len() >= MAX_SESSIONS {
            table.clear();
        }
        let fingerprint = session_fingerprint(id);
        table.insert(
            id.to_owned(),
            Known {
                fingerprint,
                client: info,
            },
        );
    }

    /// Fills `session`, `client_name` and `client_version` of `rec` for the
    /// session `id`: from the table when its `initialize` was seen, else
    /// only the fingerprint, computed.
    pub(super) fn fill(&self, id: &str, rec: &mut AuditRecord) {
        if let Some(known) = self.table().get(id) {
            rec.session = Some(known.fingerprint.clone());
            rec.client_name.clone_from(&known.client.0);
            rec.client_version.clone_from(&known.client.1);
            return;
        }
        rec.session = Some(session_fingerprint(id));
    }

    fn forget(&self, id: &str) {
        self.table().remove(id);
    }
}

/// What the inner capture point saw, shared with the outer layer through
/// the request extensions.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// True once the request got past authentication and inspection.
    pub(crate) reached: bool,
    pub(crate) record: AuditRecord,
}

/// The per-request slot the outer layer puts in the request extensions and
/// the capture point fills.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditSlot(pub(crate) Arc<Mutex<Captured>>);

impl AuditSlot {
    /// Fills the slot from the parsed request and the principal.
    pub(crate) fn capture(
        &self,
        req: &http::request::Parts,
        clients: &ClientNames,
        hash_arguments: bool,
    ) {
        let mcp = req.extensions.get::<McpRequest>();
        let principal = req.extensions.get::<Principal>();
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.reached = true;
        let rec = &mut seen.record;
        if let Some(p) = principal {
            rec.subject = Some(p.subject().to_owned());
            rec.auth_key_id = p.key_id().map(str::to_owned);
        }
        // the session of a request with no parsed body (a GET stream, a DELETE)
        let header_session = req
            .headers
            .get(HEADER_SESSION_ID)
            .and_then(|v| v.to_str().ok());
        let session = mcp.and_then(McpRequest::session_id).or(header_session);
        if let Some(id) = session {
            rec.route_key = route_key_of(id).map(str::to_owned);
            if req.method == http::Method::DELETE {
                rec.session = Some(session_fingerprint(id));
                clients.forget(id);
            } else {
                clients.fill(id, rec);
            }
        }
        let Some(mcp) = mcp else { return };
        rec.method = match mcp.kind() {
            MessageKind::Batch => "batch",
            _ => mcp.method().map_or("response", labels::method),
        }
        .to_owned();
        rec.request_id = mcp.id().cloned();
        rec.bytes_in = u64::try_from(mcp.body().len()).ok();
        rec.tool = mcp.tool_name().map(labels::tool);
        rec.prompt = mcp.prompt_name().map(labels::tool);
        rec.resource = mcp.resource_uri().map(labels::tool);
        if let [message] = mcp.messages() {
            let params = message.params();
            if mcp.is_initialize() {
                let info = params.and_then(|p| p.get("clientInfo"));
                rec.client_name = bounded_str(info.and_then(|i| i.get("name")));
                rec.client_version = bounded_str(info.and_then(|i| i.get("version")));
            }
            if hash_arguments && rec.tool.is_some() {
                rec.arguments_sha256 = Some(arguments_sha256(message));
            }
        }
    }
}

/// A client-chosen string, kept only when short and printable.
fn bounded_str(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?;
    (s.len() <= 64 && s.chars().all(|c| !c.is_control())).then(|| s.to_owned())
}

/// SHA-256 of the canonical (sorted keys, no spaces) `params.arguments`.
pub(crate) fn arguments_sha256(message: &Message) -> String {
    let args = message
        .params()
        .and_then(|p| p.get("arguments"))
        .cloned()
        .unwrap_or(Value::Null);
    // serde_json's map is a BTreeMap here (no `preserve_order`), so the
    // serialization of a `Value` has its keys sorted at every depth.
    let canonical = serde_json::to_vec(&args).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The outcome and the refusing layer, from the status and whether the
/// request reached the capture point (inside authentication and inspection).
pub(crate) fn classify(status: u16, reached: bool) -> (Outcome, Option<RefusedBy>) {
    let refused = |by| (Outcome::Refused, Some(by));
    match status {
        500.. => (Outcome::Failed, None),
        401 => refused(RefusedBy::Auth),
        413 => refused(RefusedBy::Size),
        429 => refused(RefusedBy::RateLimit),
        // Past authentication and inspection, only the scope layer answers
        // 403; before them, only the Origin guard does.
        403 if reached => refused(RefusedBy::Scopes),
        403 => refused(RefusedBy::Origin),
        400..=499 => refused(RefusedBy::Request),
        _ => (Outcome::Answered, None),
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-12-04T18:21:43.512Z`.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    // years past 9999 (or before 0) do not fit four digits
    let year = u64::try_from(y).unwrap_or(0).min(9999);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, u64::from(m));
    put(8, 2, u64::from(d));
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    put(20, 3, u64::from(since.subsec_millis()));
    std::str::from_utf8(&out).unwrap_or_default().to_owned()
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the
/// well-known era arithmetic: 400-year eras of 146 097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
