//! The official SDKs' OAuth clients through the whole flow.

use std::{path::PathBuf, process::Command};

use serde_json::Value;
use tests::{binaries::node, clients_dir, python};

use crate::{REDIRECT, Setup, UPSTREAM_SECRET, setup, setup_with_env};

/// Runs tests/clients/py_oauth.py against the MCP endpoint at `path`; its JSON report.
fn python_oauth(s: &Setup, path: &str, extra: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(clients_dir().join("py_oauth.py"))
        .args(["--url", &s.bastion.url(path), "--login", "alice"])
        .args(["--probe-url", &s.bastion.url("/mcp")])
        .args(["--redirect-uri", REDIRECT])
        .args(extra)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "py_oauth failed: {}\n--- mcp-bastion ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.bastion.logs()
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["whoami"], "alice", "{report}");
    assert_eq!(report["refreshed"], true, "{report}");
    assert_eq!(report["revoked_status"], 401, "{report}");
    // the login went through the provider and mcp-bastion's consent page
    let pages = report["pages"].to_string();
    assert!(pages.contains("POST /interaction/"), "{pages}");
    assert!(pages.contains("POST /oauth/consent -> 303"), "{pages}");
    // no secret of the flow reached the logs
    let logs = s.bastion.logs();
    assert!(!logs.contains(UPSTREAM_SECRET));
    let secrets = report["secrets"]
        .as_array()
        .expect("the secrets of the flow");
    assert!(secrets.len() >= 5, "{report}");
    for secret in secrets {
        let secret = secret.as_str().expect("a string");
        assert!(
            !logs.contains(secret),
            "a secret of the flow is in the logs"
        );
    }
    report
}

#[test]
fn python_sdk_registers_logs_in_through_the_identity_provider_refreshes_and_is_revoked() {
    // every log line the example writes, so that the secrets check sees them all
    let s = setup_with_env(&[], &[("RUST_LOG", "trace")]);
    let report = python_oauth(&s, "/mcp", &[]);
    assert_eq!(report["metadata_document"], false, "{report}");
}

#[test]
fn python_sdk_logs_in_and_calls_over_legacy_sse() {
    let s = setup(&[]);
    let report = python_oauth(&s, "/sse", &["--transport", "sse"]);
    assert_eq!(report["whoami"], "alice", "{report}");
}

/// Runs tests/clients/ts_oauth.mjs against the MCP endpoint at `path`; its JSON report.
fn typescript_oauth(s: &Setup, path: &str, extra: &[&str]) -> Value {
    let out = Command::new(node())
        .arg(clients_dir().join("ts_oauth.mjs"))
        .args(["--url", &s.bastion.url(path), "--login", "alice"])
        .args(["--probe-url", &s.bastion.url("/mcp")])
        .args(["--redirect-uri", REDIRECT])
        .args(extra)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "ts_oauth failed: {}\n--- mcp-bastion ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.bastion.logs()
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["whoami"], "alice", "{report}");
    assert_eq!(report["refreshed"], true, "{report}");
    assert_eq!(report["revoked_status"], 401, "{report}");
    assert!(
        report["pages"]
            .to_string()
            .contains("POST /oauth/consent -> 303"),
        "{report}"
    );
    report
}

#[test]
fn typescript_sdk_registers_logs_in_refreshes_and_is_revoked() {
    let s = setup(&[]);
    let report = typescript_oauth(&s, "/mcp", &[]);
    assert_eq!(report["metadata_document"], false, "{report}");
}

#[test]
fn typescript_sdk_logs_in_and_calls_over_legacy_sse() {
    let s = setup(&[]);
    typescript_oauth(&s, "/sse", &["--transport", "sse"]);
}

/// A self-signed end-entity certificate (`CA:FALSE`: rustls refuses a CA certificate as a
/// server's) for 127.0.0.1, in a fresh directory: (cert, key).
fn leaf_certificate() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("mcp-bastion-oauth-cimd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[test]
fn python_sdk_logs_in_with_a_client_id_metadata_document() {
    let (cert, key) = leaf_certificate();
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    // the document is on loopback, which only this test switch lets the fetch reach
    let s = setup(&["--cimd-allow-loopback", "--cimd-ca-file", cert]);
    let report = python_oauth(&s, "/mcp", &["--serve-cimd", cert, key]);
    assert_eq!(report["metadata_document"], true, "{report}");
    assert!(
        report["client_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("https://127.0.0.1:"))
    );
}

#[test]
fn typescript_sdk_logs_in_with_a_client_id_metadata_document() {
    let (cert, key) = leaf_certificate();
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let s = setup(&["--cimd-allow-loopback", "--cimd-ca-file", cert]);
    let report = typescript_oauth(&s, "/mcp", &["--cimd-cert", cert, "--cimd-key", key]);
    assert_eq!(report["metadata_document"], true, "{report}");
}
