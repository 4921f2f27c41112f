//! Clients that vanish mid-stream leak nothing: after 1,000 responses dropped half-read, the open
//! SSE stream, session and child counts the proxy reports on `/metrics` return to where they were.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{Server, everything_stdio};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// The value of the sample of exactly this series (labels included); panics if it is absent, so
/// that a missing metric cannot pass for a zero.
fn gauge(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} sample in:\n{text}"))
}

async fn metrics(http: &reqwest::Client, server: &Server) -> String {
    http.get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[test]
fn a_thousand_clients_hanging_up_mid_stream_leave_no_stream_session_or_child_behind() {
    let server = Server::bastion(&["--session-mode", "shared"], &everything_stdio());
    let url = server.url("/mcp");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let http = reqwest::Client::new();
            let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"leak","version":"0"}}});
            let res = http
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .body(init.to_string())
                .send()
                .await
                .unwrap();
            let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
            let _ = res.text().await;
            let before = metrics(&http, &server).await;
            let streams_before = gauge(&before, "mcp_sse_streams_open");
            let children_before = gauge(&before, "mcp_backend_children");
            assert_eq!(children_before, 1.0, "{before}");

            // 1,000 slow calls, each response dropped after its first bytes, 50 at a time
            for batch in 0..20 {
                let mut tasks = Vec::new();
                for i in 0..50 {
                    let (http, url, sid) = (http.clone(), url.clone(), sid.clone());
                    tasks.push(tokio::spawn(async move {
                        let call = json!({"jsonrpc":"2.0","id": batch * 50 + i,"method":"tools/call",
                            "params":{"name":"trigger-long-running-operation",
                            "arguments":{"duration":1,"steps":2},"_meta":{"progressToken": batch * 50 + i}}});
                        let mut res = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("accept", ACCEPT_BOTH)
                            .header("mcp-session-id", &sid)
                            .header("mcp-protocol-version", "2025-11-25")
                            .body(call.to_string())
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(res.status(), 200);
                        let _ = res.chunk().await;
                        // hang up mid-stream
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            }

            // the proxy notices every hang-up; the session itself stays open and working
            let deadline = Instant::now() + Duration::from_secs(30);
            let after = loop {
                let text = metrics(&http, &server).await;
                if gauge(&text, "mcp_sse_streams_open") <= streams_before || Instant::now() > deadline {
                    break text;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert_eq!(
                gauge(&after, "mcp_sse_streams_open"),
                streams_before,
                "open SSE streams after 1,000 hang-ups:\n{after}"
            );
            assert_eq!(gauge(&after, "mcp_backend_children"), children_before, "{after}");
            assert_eq!(
                gauge(&after, "mcp_sessions_open{transport=\"streamable-http\"}"),
                1.0,
                "{after}"
            );
            let ping = http
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .header("mcp-session-id", &sid)
                .header("mcp-protocol-version", "2025-11-25")
                .body(json!({"jsonrpc":"2.0","id":"last","method":"ping"}).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(ping.status(), 200);
            let body = ping.text().await.unwrap();
            assert!(body.contains("\"result\""), "{body}");
        });
}
