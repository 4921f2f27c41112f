//! The production deployment of docs/deployment.md, end to end: a real nginx with the shipped
//! configuration (`deploy/nginx/mcp-bastion.conf`) in front of two `mcp-bastion` replicas, each
//! with its own route key, and real Python and TypeScript SDK clients on both transports, at the
//! root and under the `/k/demo/` path prefix.
//!
//! Every request after the first of a session must reach the replica that owns the session, or
//! that replica's sibling answers 404 and the client fails; so a client that completes its whole
//! scenario (and sees 404 only after it ended its session) proves the routing. Both replicas must
//! have owned sessions.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeSet;

use tests::{ClientRun, Sdk, Server, Transport, everything_stdio, nginx::Nginx, workspace_dir};

fn replica(key: &str) -> Server {
    Server::bastion(
        &["--session-mode", "per-session", "--route-key", key],
        &everything_stdio(),
    )
}

/// The shipped configuration with the test's own addresses and a certificate made for it (whose
/// path it returns); the port nginx serves TLS on is `tls_port`.
fn shipped_conf_tls(a: &Server, b: &Server, tls_port: u16) -> (String, String) {
    let conf = std::fs::read_to_string(workspace_dir().join("deploy/nginx/mcp-bastion.conf"))
        .expect("deploy/nginx/mcp-bastion.conf");
    let dir = std::env::temp_dir().join(format!(
        "mcp-bastion-nginx-tls-{}-{tls_port}",
        std::process::id()
    ));
    let (cert, key) = tests::certs::self_signed(&dir);
    let host = |s: &Server| s.base_url().trim_start_matches("http://").to_owned();
    let conf = conf
        .replace("127.0.0.1:8080", "{{LISTEN}}")
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{tls_port}"))
        .replace(
            "/etc/nginx/tls/mcp-bastion.crt",
            &cert.display().to_string(),
        )
        .replace("/etc/nginx/tls/mcp-bastion.key", &key.display().to_string())
        .replace("127.0.0.1:8081", &host(a))
        .replace("127.0.0.1:8082", &host(b));
    (conf, cert.display().to_string())
}

/// [`shipped_conf_tls`] on a free TLS port.
fn shipped_conf(a: &Server, b: &Server) -> String {
    shipped_conf_tls(a, b, tests::nginx::free_port()).0
}

#[test]
fn two_replicas_behind_nginx_route_every_session_to_its_owner() {
    let a = replica("a");
    let b = replica("b");
    let nginx = Nginx::start(&shipped_conf(&a, &b));
    let mut keys = BTreeSet::new();
    let runs = [
        (Sdk::Python, Transport::Streamable, ""),
        (Sdk::TypeScript, Transport::Streamable, ""),
        (Sdk::Python, Transport::Sse, "/k/demo"),
        (Sdk::TypeScript, Transport::Sse, "/k/demo"),
        (Sdk::Python, Transport::Streamable, "/k/demo"),
        (Sdk::TypeScript, Transport::Sse, ""),
    ];
    for (sdk, transport, prefix) in runs {
        let url = nginx.url(&format!("{prefix}{}", transport.endpoint()));
        let outcome = ClientRun::new(sdk, transport, url)
            .strict_session_end(true)
            .run();
        let ok = outcome.success();
        let summary = outcome.summary().unwrap_or_default();
        assert!(
            ok && summary["ok"] == true,
            "{sdk:?} {transport:?} at {prefix:?} failed:\n{}\n{}\n--- nginx ---\n{}\n--- replica a ---\n{}\n--- replica b ---\n{}",
            outcome.stdout,
            outcome.stderr,
            nginx.error_log(),
            a.logs(),
            b.logs()
        );
        let sid = summary["sessionId"].as_str().unwrap_or_default().to_owned();
        let key = sid.split_once('.').map(|(k, _)| k.to_owned());
        assert!(
            matches!(key.as_deref(), Some("a" | "b")),
            "session id {sid:?} carries no route key"
        );
        keys.extend(key);
    }
    assert_eq!(
        keys,
        BTreeSet::from(["a".to_owned(), "b".to_owned()]),
        "both replicas owned sessions"
    );
}

/// TLS terminates at nginx: both SDKs, trusting the test's certificate, run their scenario over
/// HTTPS to nginx and plain HTTP behind it.
#[test]
fn tls_terminates_at_nginx() {
    let a = replica("a");
    let b = replica("b");
    let tls_port = tests::nginx::free_port();
    let (conf, cert) = shipped_conf_tls(&a, &b, tls_port);
    let nginx = Nginx::start(&conf);
    for (sdk, transport, var) in [
        (
            Sdk::TypeScript,
            Transport::Streamable,
            "NODE_EXTRA_CA_CERTS",
        ),
        (Sdk::Python, Transport::Sse, "SSL_CERT_FILE"),
    ] {
        let url = format!(
            "https://127.0.0.1:{tls_port}/k/demo{}",
            transport.endpoint()
        );
        let outcome = ClientRun::new(sdk, transport, url)
            .strict_session_end(true)
            .env(var, &cert)
            .run();
        let summary = outcome.summary().unwrap_or_default();
        assert!(
            outcome.success() && summary["ok"] == true,
            "{sdk:?} {transport:?} over TLS failed:\n{}\n{}\n--- nginx ---\n{}",
            outcome.stdout,
            outcome.stderr,
            nginx.error_log()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// limits shared in Redis, client addresses forwarded by nginx, streaming, a replica going away

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tests::redis::Redis;

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// An HTTP client whose connections leave from `source` (any 127.0.0.0/8 address works on
/// loopback), so nginx sees that client address.
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn initialize(http: &reqwest::Client, url: &str) -> String {
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .body(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",
                "capabilities":{},"clientInfo":{"name":"raw","version":"0"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sid = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = res.text().await;
    let res = post(
        http,
        url,
        &sid,
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    sid
}

async fn post(http: &reqwest::Client, url: &str, sid: &str, body: Value) -> reqwest::Response {
    http.post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-11-25")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn get_sum(id: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}})
}

/// A session on the replica with route key `key` (new sessions alternate between replicas).
async fn session_on(http: &reqwest::Client, url: &str, key: &str) -> String {
    for _ in 0..10 {
        let sid = initialize(http, url).await;
        if sid.starts_with(&format!("{key}.")) {
            return sid;
        }
    }
    panic!("no session landed on replica {key}");
}

#[test]
fn through_nginx_limits_are_shared_keyed_on_the_forwarded_ip_streams_flow_and_a_lost_replica_yields_404()
 {
    let redis = Redis::start();
    let replica = |key: &str| {
        Server::bastion(
            &[
                "--session-mode",
                "shared",
                "--route-key",
                key,
                "--trusted-proxy",
                "127.0.0.1/32",
                "--redis-url",
                &redis.url(),
                "--rate-limit-key",
                "ip",
                "--tool-rate-limit",
                "get-sum=3/min",
            ],
            &everything_stdio(),
        )
    };
    let a = replica("a");
    let mut b = replica("b");
    let nginx = Nginx::start(&shipped_conf(&a, &b));
    let url = nginx.url("/mcp");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            // one client address: three calls on replica a, then the fourth, on replica b, is
            // refused, because both replicas count in the same Redis key
            let client2 = client_from("127.0.0.2");
            let on_a = session_on(&client2, &url, "a").await;
            for id in 1..=3 {
                let res = post(&client2, &url, &on_a, get_sum(id)).await;
                assert_eq!(res.status(), 200, "call {id}");
            }
            let on_b = session_on(&client2, &url, "b").await;
            let res = post(&client2, &url, &on_b, get_sum(4)).await;
            assert_eq!(res.status(), 429, "the limit is shared by both replicas");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], -32029, "{body}");

            // another client address has its own budget: the replicas key on the address nginx
            // forwarded, not on nginx's own
            let client3 = client_from("127.0.0.3");
            let sid = initialize(&client3, &url).await;
            let res = post(&client3, &url, &sid, get_sum(5)).await;
            assert_eq!(res.status(), 200, "127.0.0.3 is not 127.0.0.2");

            // progress reaches the client while the tool still runs: nothing buffers the stream
            let call = json!({"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{
                "name":"trigger-long-running-operation","arguments":{"duration":2,"steps":4},
                "_meta":{"progressToken":"p"}}});
            let mut res = post(&client3, &url, &sid, call).await;
            let (mut text, mut first_progress, mut result_at) = (String::new(), None, None);
            while let Some(chunk) = tokio::time::timeout(Duration::from_secs(15), res.chunk())
                .await
                .expect("the stream moves")
                .unwrap()
            {
                text.push_str(&String::from_utf8_lossy(&chunk));
                let events = tests::sse::json_messages(&text).await;
                if first_progress.is_none()
                    && events
                        .iter()
                        .any(|e| e["method"] == "notifications/progress")
                {
                    first_progress = Some(Instant::now());
                }
                if events.iter().any(|e| e["id"] == "slow") {
                    result_at = Some(Instant::now());
                    break;
                }
            }
            let (first, done) = (
                first_progress.expect("progress"),
                result_at.expect("result"),
            );
            assert!(
                done.duration_since(first) >= Duration::from_millis(800),
                "the first progress event arrived only {:?} before the result: buffered",
                done.duration_since(first)
            );

            // replica b goes away: its session is unknown (404, not 502) and a new one opens on a
            b.stop();
            let res = post(
                &client2,
                &url,
                &on_b,
                json!({"jsonrpc":"2.0","id":9,"method":"ping"}),
            )
            .await;
            assert_eq!(res.status(), 404, "a lost replica's session is unknown");
            let sid = initialize(&client2, &url).await;
            assert!(
                sid.starts_with("a."),
                "the new session is on the live replica: {sid}"
            );
            let res = post(
                &client2,
                &url,
                &sid,
                json!({"jsonrpc":"2.0","id":10,"method":"ping"}),
            )
            .await;
            assert_eq!(res.status(), 200);
        });
}

mod input;
mod restarts;
