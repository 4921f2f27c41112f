//! Per-tool scopes and the principal's environment, through the binary with the Python SDK.

use crate::support::*;

#[test]
fn scope_admin_tool_python_streamable_sse_responses() {
    admin_tool_needs_tools_admin(false, Transport::Streamable);
}

#[test]
fn scope_admin_tool_python_streamable_json_responses() {
    admin_tool_needs_tools_admin(true, Transport::Streamable);
}

#[test]
fn scope_admin_tool_python_legacy_sse() {
    admin_tool_needs_tools_admin(false, Transport::Sse);
}

#[test]
fn scope_refusal_is_an_http_403_insufficient_scope_challenge_through_the_binary() {
    let server = scope_server(true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let post = |body: Value, sid: Option<String>| {
            let mut req = http
                .post(server.url("/mcp"))
                .header("x-api-key", "sk-user")
                .header("accept", "application/json, text/event-stream")
                .json(&body);
            if let Some(sid) = sid {
                req = req
                    .header("mcp-session-id", sid)
                    .header("mcp-protocol-version", "2025-06-18");
            }
            req.send()
        };
        let init = post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"}}}),
            None,
        )
        .await
        .unwrap();
        assert_eq!(init.status(), 200);
        let sid = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let res = post(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "get-sum", "arguments": {"a": 1, "b": 2}}}),
            Some(sid.clone()),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 403);
        let c = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(c.starts_with("Bearer "), "{c}");
        assert!(c.contains(r#"error="insufficient_scope""#), "{c}");
        assert!(c.contains(r#"scope="tools:admin""#), "{c}");
        assert!(c.contains("resource_metadata="), "{c}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["id"], 7, "the JSON-RPC error echoes the request id: {body}");
        assert_eq!(body["error"]["code"], -32001);
        // the session still works for what the caller may do
        let res = post(
            json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "still here"}}}),
            Some(sid),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("still here"));
    });
}

#[test]
fn principal_env_reaches_each_users_per_session_child() {
    let file = keys_file(
        "env",
        json!([
            {"key": "sk-alice", "subject": "alice", "env": {"GITHUB_TOKEN": "ghp_alice_token"}},
            {"key": "sk-bob", "subject": "bob", "env": {"GITHUB_TOKEN": "ghp_bob_token"}}
        ]),
    );
    let file = file.display().to_string();
    let server = bastion(&[
        "--api-keys-file",
        &file,
        "--principal-env",
        "MCP_USER=subject",
        "--principal-env",
        "GITHUB_TOKEN=env:GITHUB_TOKEN",
    ]);
    for (key, user, token, other, transport) in [
        (
            "sk-alice",
            "alice",
            "ghp_alice_token",
            "ghp_bob_token",
            Transport::Streamable,
        ),
        (
            "sk-bob",
            "bob",
            "ghp_bob_token",
            "ghp_alice_token",
            Transport::Sse,
        ),
    ] {
        {
            let out = py_tool(&server, transport, key, Some(("get-env", json!({}))));
            let text = out["call"]["text"].as_str().unwrap_or_default();
            let env: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert_eq!(env["MCP_USER"], user, "{transport:?}: {out}");
            assert_eq!(env["GITHUB_TOKEN"], token, "{transport:?}: {out}");
            assert!(!text.contains(other));
        }
    }
}

#[test]
fn principal_env_refuses_reserved_names_at_startup() {
    let out = std::process::Command::new(tests::bastion_bin())
        .args([
            "--api-key",
            KEY,
            "--principal-env",
            "LD_PRELOAD=subject",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LD_PRELOAD"), "{stderr}");
}
