//! Multi-round-trip input (2026-07-28) behind the shipped nginx configuration: two replicas
//! (`--sessionless`, per-session server-everything, route keys `a` and `b`) each hold the backend
//! calls that wait for their clients' input, and nginx routes a retry on the route key that
//! starts its `requestState` (read from the body, see the configuration's mirror).
//!
//! A replica cannot complete a call the other holds (the other's `requestState` fails its
//! integrity check there, and the call is not in its table), so a retry that completes proves it
//! reached the replica that holds the call. Raw HTTP first, so that the test sees both replicas
//! hold calls (new requests alternate between them) and completes each through nginx; then the
//! official Python SDK's `Client` runs elicitation and sampling through nginx twice.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tests::{Server, everything_stdio, nginx::Nginx, script_report};

use super::shipped_conf;

const V2026: &str = "2026-07-28";

fn sessionless_replica(key: &str) -> Server {
    Server::bastion(
        &[
            "--session-mode",
            "per-session",
            "--sessionless",
            "--route-key",
            key,
        ],
        &everything_stdio(),
    )
}

/// POSTs a 2026-07-28 `tools/call` of `trigger-elicitation-request` with `extra` params to `url`:
/// its status and JSON-RPC answer.
async fn elicit(http: &reqwest::Client, url: &str, id: u64, extra: Value) -> (u16, Value) {
    let res = tests::raw2026::elicitation_call(http, url, id, "mrtr-nginx", extra)
        .send()
        .await
        .unwrap();
    let (status, message) = tests::sse::answer(res).await;
    (status.as_u16(), message)
}

#[test]
fn a_retry_with_a_request_state_reaches_the_replica_that_holds_the_call() {
    let a = sessionless_replica("a");
    let b = sessionless_replica("b");
    let nginx = Nginx::start(&shipped_conf(&a, &b));
    let url = nginx.url("/mcp");
    let logs = || {
        format!(
            "--- nginx ---\n{}\n--- replica a ---\n{}\n--- replica b ---\n{}",
            nginx.error_log(),
            a.logs(),
            b.logs()
        )
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        // first rounds until each replica holds two calls (new requests alternate)
        let mut held: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for id in 1..=20 {
            let (status, first) = elicit(&http, &url, id, json!({})).await;
            assert_eq!(status, 200, "{first}\n{}", logs());
            let result = &first["result"];
            assert_eq!(result["resultType"], "input_required", "{first}");
            let state = result["requestState"].as_str().unwrap().to_owned();
            let key = result["inputRequests"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone();
            let (route, _) = state.split_once('.').unwrap();
            held.entry(route.to_owned()).or_default().push((state, key));
            if held.len() == 2 && held.values().all(|calls| calls.len() >= 2) {
                break;
            }
        }
        assert_eq!(
            held.iter()
                .map(|(route, calls)| (route.as_str(), calls.len().min(2)))
                .collect::<Vec<_>>(),
            [("a", 2), ("b", 2)],
            "both replicas hold two calls"
        );
        // each retry, sent to nginx, completes on the replica its state names: two retries for
        // one replica in a row, so that balancing alone (which alternates) could not do it
        let retries = held
            .into_iter()
            .flat_map(|(route, calls)| calls.into_iter().take(2).map(move |c| (route.clone(), c)));
        for (n, (route, (state, key))) in retries.enumerate() {
            let answer = format!("answer-{n}-for-{route}");
            let retry = json!({
                "requestState": state,
                "inputResponses": {key: {"action": "accept", "content": {"name": answer, "check": true}}},
            });
            let (status, done) = elicit(&http, &url, 50, retry).await;
            assert_eq!(status, 200, "{done}\n{}", logs());
            assert_eq!(done["id"], 50, "{done}");
            assert_eq!(done["result"]["resultType"], "complete", "{done}");
            assert!(
                done["result"]["content"].to_string().contains(&answer),
                "{done}"
            );
        }
    });

    // the official Python SDK, through nginx: two rounds of each kind
    let report = script_report(
        "py_mrtr.py",
        &[
            "--url",
            &url,
            "--steps",
            "elicitation,sampling,elicitation,sampling",
        ],
    );
    assert_eq!(report["ok"], true, "{report}\n{}", logs());
    assert_eq!(report["protocolVersion"], V2026, "{report}");
    assert_eq!(report["elicitation"]["is_error"], false, "{report}");
    assert_eq!(report["sampling"]["is_error"], false, "{report}");
    assert!(
        report["sampling"]["text"]
            .as_str()
            .unwrap()
            .contains("sampled-"),
        "{report}"
    );
}
