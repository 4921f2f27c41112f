//! Multi-round-trip input (revision 2026-07-28) through the bridge: the official Python SDK's
//! `mcp.client.client.Client` (`tests/clients/py_mrtr.py`) drives the binary (`--sessionless`) in
//! front of server-everything over stdio in per-session mode.
//!
//! - the client negotiates 2026-07-28 (`server/discover`), and the capabilities it declares reach
//!   the backend: server-everything lists its elicitation and sampling tools, which it registers
//!   only for a client that declared them;
//! - `trigger-elicitation-request` and `trigger-sampling-request` return an InputRequiredResult,
//!   the SDK's callbacks answer, the retry completes the parked backend call, and the results show
//!   the callbacks' answers;
//! - a `requestState` changed by one character is refused with `-32602`;
//! - a `requestState` of one principal is refused to another (`-32602`, 400), and one without a
//!   pending call behind it too.
#![allow(clippy::unwrap_used, reason = "tests")]

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tests::{Server, everything_stdio, script_report};

const V2026: &str = "2026-07-28";

#[test]
fn the_python_sdk_answers_elicitation_and_sampling_through_the_bridge() {
    let server = Server::bastion(
        &["--session-mode", "per-session", "--sessionless"],
        &everything_stdio(),
    );
    let url = server.url("/mcp");
    let report = script_report(
        "py_mrtr.py",
        &["--url", &url, "--steps", "elicitation,sampling,tampered"],
    );
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["protocolVersion"], V2026, "{report}");
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"trigger-elicitation-request")
            && tools.contains(&"trigger-sampling-request"),
        "the backend did not see the declared capabilities: {tools:?}"
    );

    let elicitation = &report["elicitation"];
    assert_eq!(elicitation["is_error"], false, "{report}");
    assert_eq!(
        elicitation["asked"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    let text = elicitation["text"].as_str().unwrap();
    assert!(text.contains("\"action\": \"accept\""), "{text}");
    assert!(text.contains("Name: elicited-"), "{text}");

    let sampling = &report["sampling"];
    assert_eq!(sampling["is_error"], false, "{report}");
    assert_eq!(sampling["asked"].as_array().unwrap().len(), 1, "{report}");
    let text = sampling["text"].as_str().unwrap();
    assert!(text.contains("sampled-"), "{text}");
    assert!(text.contains("mcp-bastion-test-model"), "{text}");

    let tampered = &report["tampered"];
    assert_eq!(tampered["accepted"], false, "{report}");
    assert_eq!(tampered["code"], -32602, "{report}");
}

/// POSTs a 2026-07-28 `tools/call` of `trigger-elicitation-request` with `extra` params, as
/// `bearer`: its status and JSON-RPC answer.
async fn elicit(http: &Client, server: &Server, bearer: &str, extra: Value) -> (StatusCode, Value) {
    let url = server.url("/mcp");
    let res = tests::raw2026::elicitation_call(http, &url, 9, "mrtr-raw", extra)
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    tests::sse::answer(res).await
}

#[test]
fn a_request_state_is_bound_to_its_principal_and_its_pending_call() {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-mrtr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.json");
    let entries = json!([
        {"key": "k-mrtr-alice-41d2", "subject": "alice", "id": "alice-key"},
        {"key": "k-mrtr-bob-0b7e", "subject": "bob", "id": "bob-key"},
    ]);
    std::fs::write(&keys, entries.to_string()).unwrap();
    let server = Server::bastion(
        &[
            "--session-mode",
            "per-session",
            "--sessionless",
            "--route-key",
            "r1",
            "--api-keys-file",
            keys.to_str().unwrap(),
        ],
        &everything_stdio(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = Client::new();
        let (status, first) = elicit(&http, &server, "k-mrtr-alice-41d2", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let result = &first["result"];
        assert_eq!(result["resultType"], "input_required", "{first}");
        let state = result["requestState"].as_str().unwrap().to_owned();
        assert!(state.starts_with("r1."), "{state}");
        let (key, request) = result["inputRequests"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        assert_eq!(request["method"], "elicitation/create", "{first}");
        let retry = json!({
            "requestState": state,
            "inputResponses": {key.clone(): {"action": "accept", "content": {"name": "alice-answer", "check": true}}},
        });

        // bob cannot complete alice's call
        let (status, refused) = elicit(&http, &server, "k-mrtr-bob-0b7e", retry.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["id"], 9, "{refused}");
        assert_eq!(refused["error"]["code"], -32602, "{refused}");

        // alice can, once
        let (status, done) = elicit(&http, &server, "k-mrtr-alice-41d2", retry.clone()).await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(done["result"]["resultType"], "complete", "{done}");
        let text = done["result"]["content"].to_string();
        assert!(text.contains("alice-answer"), "{done}");

        // the call is no longer pending: the same state again is refused
        let (status, again) = elicit(&http, &server, "k-mrtr-alice-41d2", retry).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
        assert_eq!(again["error"]["code"], -32602, "{again}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
