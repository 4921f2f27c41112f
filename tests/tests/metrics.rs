//! `/metrics` scraped after real clients ran: the counters the run must have produced are there.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;

use tests::{ClientRun, Sdk, Server, Transport, clients_dir, everything_stdio, python};

fn scrape(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let res = reqwest::get(url).await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        res.text().await.unwrap()
    })
}

/// The value of the first sample whose line contains every one of `parts`.
fn sample(text: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_show_requests_by_method_tool_and_status_sessions_children_and_refusals() {
    let server = Server::bastion(
        &[
            "--session-mode",
            "per-session",
            "--tool-rate-limit",
            "get-sum=1/min",
        ],
        &everything_stdio(),
    );
    ClientRun::against(Sdk::Python, Transport::Streamable, &server, "").run_ok(&server);
    // the second get-sum call of the minute is refused
    for expect in ["ok", "error"] {
        let out = Command::new(python())
            .arg(clients_dir().join("py_call.py"))
            .args(["--url", &server.url("/mcp"), "--transport", "streamable"])
            .args(["--tool", "get-sum", "--arguments", r#"{"a": 1, "b": 2}"#])
            .args(["--expect", expect])
            .current_dir(clients_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = scrape(&server.url("/metrics"));
    let calls = sample(
        &text,
        &[
            "mcp_requests_total{",
            "method=\"tools/call\"",
            "tool=\"echo\"",
            "status=\"200\"",
        ],
    );
    assert!(calls.unwrap_or(0.0) >= 1.0, "echo calls:\n{text}");
    let init = sample(
        &text,
        &[
            "mcp_requests_total{",
            "method=\"initialize\"",
            "status=\"200\"",
        ],
    );
    assert!(
        init.unwrap_or(0.0) >= 3.0,
        "three sessions were opened:\n{text}"
    );
    let refused = sample(
        &text,
        &["mcp_requests_total{", "tool=\"get-sum\"", "status=\"429\""],
    );
    assert_eq!(refused, Some(1.0), "one refused get-sum:\n{text}");
    let limited = sample(&text, &["mcp_rate_limited_total{", "reason=\"rate\""]);
    assert_eq!(limited, Some(1.0), "{text}");
    assert!(
        sample(
            &text,
            &[
                "mcp_request_duration_seconds_count{",
                "method=\"tools/call\""
            ]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
    assert!(text.contains("mcp_backend_children"), "{text}");
    assert!(
        text.contains("mcp_sessions_open{transport=\"streamable-http\"}"),
        "{text}"
    );
}

#[test]
fn metrics_listen_serves_them_on_their_own_port_only() {
    let server = Server::bastion(&["--metrics-listen", "127.0.0.1:0"], &everything_stdio());
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("metrics on http://"))
        .unwrap_or_else(|| panic!("no metrics address in:\n{logs}"));
    let url = line[line.find("http://").unwrap()..].trim().to_owned();
    let text = scrape(&url);
    assert!(text.contains("mcp_sessions_open"), "{text}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let main = rt.block_on(async { reqwest::get(server.url("/metrics")).await.unwrap().status() });
    assert_eq!(main, 404, "the main listener does not serve /metrics then");
}

#[test]
fn auth_failures_are_counted_by_reason_and_metrics_need_credentials_on_the_main_listener() {
    let server = Server::bastion(&["--api-key", "k-metrics-test"], &everything_stdio());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        for auth in [None, Some("Bearer wrong-key")] {
            let mut req = http
                .post(server.url("/mcp"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let res = req
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 401);
        }
        let anonymous = http.get(server.url("/metrics")).send().await.unwrap();
        assert_eq!(
            anonymous.status(),
            401,
            "/metrics is behind auth on the main listener"
        );
        let text = http
            .get(server.url("/metrics"))
            .header("authorization", "Bearer k-metrics-test")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            sample(&text, &["mcp_auth_failures_total{", "reason=\"missing\""]).unwrap_or(0.0)
                >= 1.0,
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &["mcp_auth_failures_total{", "reason=\"unrecognized\""]
            ),
            Some(1.0),
            "{text}"
        );
        assert!(
            !text.contains("wrong-key") && !text.contains("k-metrics-test"),
            "{text}"
        );
    });
}
