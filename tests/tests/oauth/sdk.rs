//! The official SDKs' OAuth clients through the whole flow.

use std::process::Command;

use serde_json::Value;
use tests::{Sdk, binaries::node, clients_dir, python};

use crate::{REDIRECT, Setup, UPSTREAM_SECRET, setup, setup_with_env};

/// Runs an SDK's OAuth client script (tests/clients/py_oauth.py, ts_oauth.mjs) against the MCP
/// endpoint at `path`, checks its report (logged in as alice through the provider and the consent
/// page, refreshed, revoked, no secret of the flow in the server's logs) and returns it.
fn sdk_oauth(sdk: Sdk, s: &Setup, path: &str, extra: &[&str]) -> Value {
    sdk_oauth_expecting(sdk, s, path, extra, "alice", "POST /interaction/")
}

/// [`sdk_oauth`] for a login as alice whose subject is `subject`, through a provider whose login
/// form is posted as `provider_login` (`POST <path>` in the browser's pages).
pub(crate) fn sdk_oauth_expecting(
    sdk: Sdk,
    s: &Setup,
    path: &str,
    extra: &[&str],
    subject: &str,
    provider_login: &str,
) -> Value {
    let (program, script) = match sdk {
        Sdk::Python => (python(), "py_oauth.py"),
        Sdk::TypeScript => (node(), "ts_oauth.mjs"),
    };
    let out = Command::new(program)
        .arg(clients_dir().join(script))
        .args(["--url", &s.bastion.url(path), "--login", "alice"])
        .args(["--expect-subject", subject])
        .args(["--probe-url", &s.bastion.url("/mcp")])
        .args(["--redirect-uri", REDIRECT])
        .args(extra)
        .output()
        .expect("the client runs");
    assert!(
        out.status.success(),
        "{script} failed: {}\n--- mcp-bastion ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.bastion.logs()
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["whoami"], subject, "{report}");
    assert_eq!(report["refreshed"], true, "{report}");
    assert_eq!(report["revoked_status"], 401, "{report}");
    // the login went through the provider and mcp-bastion's consent page
    let pages = report["pages"].to_string();
    assert!(pages.contains(provider_login), "{pages}");
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
    let report = sdk_oauth(Sdk::Python, &s, "/mcp", &[]);
    assert_eq!(report["metadata_document"], false, "{report}");
}

#[test]
fn python_sdk_logs_in_and_calls_over_legacy_sse() {
    let s = setup(&[]);
    let report = sdk_oauth(Sdk::Python, &s, "/sse", &["--transport", "sse"]);
    assert_eq!(report["whoami"], "alice", "{report}");
}

#[test]
fn typescript_sdk_registers_logs_in_refreshes_and_is_revoked() {
    let s = setup_with_env(&[], &[("RUST_LOG", "trace")]);
    let report = sdk_oauth(Sdk::TypeScript, &s, "/mcp", &[]);
    assert_eq!(report["metadata_document"], false, "{report}");
}

#[test]
fn typescript_sdk_logs_in_and_calls_over_legacy_sse() {
    let s = setup(&[]);
    sdk_oauth(Sdk::TypeScript, &s, "/sse", &["--transport", "sse"]);
}

/// An SDK logs in with a Client ID Metadata Document that its script serves over https on
/// loopback, with a certificate made here that the example is told to trust.
fn with_metadata_document(sdk: Sdk) {
    let dir = std::env::temp_dir().join(format!(
        "mcp-bastion-oauth-cimd-{}-{sdk:?}",
        std::process::id()
    ));
    let (cert, key) = tests::certs::self_signed_end_entity(&dir);
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    // the document is on loopback, which only this test switch lets the fetch reach
    let s = setup(&["--cimd-allow-loopback", "--cimd-ca-file", cert]);
    let report = sdk_oauth(sdk, &s, "/mcp", &["--cimd-cert", cert, "--cimd-key", key]);
    assert_eq!(report["metadata_document"], true, "{report}");
    assert!(
        report["client_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("https://127.0.0.1:")),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn python_sdk_logs_in_with_a_client_id_metadata_document() {
    with_metadata_document(Sdk::Python);
}

#[test]
fn typescript_sdk_logs_in_with_a_client_id_metadata_document() {
    with_metadata_document(Sdk::TypeScript);
}
