//! Label values bounded against client-chosen names.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};

use crate::inspect::McpRequest;

/// How many distinct tool names become labels; later ones are `other`.
pub const MAX_TOOL_LABELS: usize = 256;

/// How many distinct client names (of 2026-07-28 requests) become labels;
/// later ones are `other`.
pub const MAX_CLIENT_LABELS: usize = 64;

/// The methods of MCP's vocabulary that get their own label.
const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
];

/// `method` itself when MCP defines it, else `other`.
pub(crate) fn method(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The tool name as a label, or `other` (see the module docs).
pub(crate) fn tool(name: &str) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    bounded(&SEEN, MAX_TOOL_LABELS, name)
}

/// The client name of a 2026-07-28 request (`clientInfo.name` in its
/// `_meta`) as a label, bounded like tool names: unusual or long names and
/// every name after [`MAX_CLIENT_LABELS`] distinct ones are `other`.
pub(crate) fn client(name: &str) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    bounded(&SEEN, MAX_CLIENT_LABELS, name)
}

/// The `clientInfo.name` a sessionless request carries in its `_meta`, as a
/// bounded label; `None` for a request without one (handshake-era requests
/// name their client once, at `initialize`).
pub(crate) fn client_of(req: &McpRequest) -> Option<String> {
    req.meta_client_name().map(client)
}

/// `name` when it is plain and either already seen or one of the first
/// `max` names seen in `set`, else `other`.
fn bounded(set: &OnceLock<Mutex<HashSet<String>>>, max: usize, name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    if !plain {
        return "other".into();
    }
    let mut seen = set
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if seen.contains(name) {
        return name.to_owned();
    }
    if seen.len() >= max {
        return "other".into();
    }
    seen.insert(name.to_owned());
    name.to_owned()
}
