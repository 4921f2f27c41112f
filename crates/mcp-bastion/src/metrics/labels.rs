//! Label values bounded against client-chosen names.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};

/// How many distinct tool names become labels; later ones are `other`.
pub const MAX_TOOL_LABELS: usize = 256;

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
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    if !plain {
        return "other".into();
    }
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if seen.contains(name) {
        return name.to_owned();
    }
    if seen.len() >= MAX_TOOL_LABELS {
        return "other".into();
    }
    seen.insert(name.to_owned());
    name.to_owned()
}
