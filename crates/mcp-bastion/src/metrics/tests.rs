#![allow(clippy::unwrap_used, reason = "tests")]

use super::labels;

#[test]
fn client_chosen_names_are_bounded_before_they_become_labels() {
    assert_eq!(labels::method("tools/call"), "tools/call");
    assert_eq!(labels::method("made/up/method"), "other");
    assert_eq!(labels::tool("echo"), "echo");
    assert_eq!(labels::tool(&"x".repeat(65)), "other");
    assert_eq!(labels::tool("drop table;"), "other");
    assert_eq!(labels::tool(""), "other");
    // after MAX_TOOL_LABELS distinct names, new ones share one label
    for i in 0..super::MAX_TOOL_LABELS {
        let _ = labels::tool(&format!("flood_{i}"));
    }
    assert_eq!(labels::tool("one_more_new_tool"), "other");
    assert_eq!(
        labels::tool("echo"),
        "echo",
        "names seen before keep theirs"
    );
}

#[test]
fn client_names_of_sessionless_requests_are_bounded_like_tool_names() {
    use crate::inspect::McpRequest;
    use crate::protocol::{META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION};

    let parse = |meta: serde_json::Value| {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}});
        let mut headers = http::HeaderMap::new();
        headers.insert("mcp-method", http::HeaderValue::from_static("tools/list"));
        McpRequest::parse(&headers, None, body.to_string().into()).unwrap()
    };
    let with_name = |name: &str| {
        parse(serde_json::json!({
            META_PROTOCOL_VERSION: "2026-07-28",
            META_CLIENT_CAPABILITIES: {},
            META_CLIENT_INFO: {"name": name, "version": "1"},
        }))
    };
    assert_eq!(
        labels::client_of(&with_name("claude-code")).as_deref(),
        Some("claude-code")
    );
    assert_eq!(
        labels::client_of(&with_name("a b\nc")).as_deref(),
        Some("other")
    );
    assert_eq!(
        labels::client_of(&parse(
            serde_json::json!({META_PROTOCOL_VERSION: "2026-07-28"})
        )),
        None,
        "no clientInfo, no label"
    );
    for i in 0..super::MAX_CLIENT_LABELS {
        let _ = labels::client(&format!("client_{i}"));
    }
    assert_eq!(labels::client("one_more_client").as_str(), "other");
    assert_eq!(
        labels::client("claude-code"),
        "claude-code",
        "names seen before keep theirs"
    );
}
