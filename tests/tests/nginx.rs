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

/// The shipped configuration with the test's own addresses.
fn shipped_conf(a: &Server, b: &Server) -> String {
    let conf = std::fs::read_to_string(workspace_dir().join("deploy/nginx/mcp-bastion.conf"))
        .expect("deploy/nginx/mcp-bastion.conf");
    let host = |s: &Server| s.base_url().trim_start_matches("http://").to_owned();
    conf.replace("127.0.0.1:8080", "{{LISTEN}}")
        .replace("127.0.0.1:8081", &host(a))
        .replace("127.0.0.1:8082", &host(b))
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
