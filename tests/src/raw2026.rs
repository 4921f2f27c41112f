//! 2026-07-28 requests built by hand (no SDK), for tests that need to shape one field at a time.

use serde_json::{Value, json};

/// Revision 2026-07-28.
pub const V2026: &str = "2026-07-28";

/// A 2026-07-28 POST to `url` of `tools/call` `trigger-elicitation-request` (server-everything's
/// elicitation tool) with id `id`, the client named `client` declaring elicitation, and `extra`
/// (an object) merged into the params (e.g. `inputResponses`, `requestState`). Headers set:
/// content type, Accept, `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`.
pub fn elicitation_call(
    http: &reqwest::Client,
    url: &str,
    id: u64,
    client: &str,
    extra: Value,
) -> reqwest::RequestBuilder {
    let mut params = json!({
        "name": "trigger-elicitation-request",
        "arguments": {},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": V2026,
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
            "io.modelcontextprotocol/clientInfo": {"name": client, "version": "0"},
        },
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            params[k] = v;
        }
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    http.post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", V2026)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "trigger-elicitation-request")
        .body(body.to_string())
}
