//! The official SDKs' OAuth clients through the whole flow against the binary.

use tests::{
    Sdk, everything_stdio,
    oauth::{OAuthBastion, SCENARIO_PROFILE, assert_oauth_scenario, sdk_oauth},
};

use crate::assert_flow;

/// One binary (Client ID Metadata Documents on loopback allowed, with a certificate made here
/// trusted), and `sdk` through three flows: dynamic registration over Streamable HTTP, the same
/// over legacy SSE, and a metadata document served by the script over Streamable HTTP; each runs
/// the full server-everything scenario on its authenticated session before the refresh.
fn three_flows(sdk: Sdk) {
    let dir = std::env::temp_dir().join(format!(
        "mcp-bastion-oauth-binary-{}-{sdk:?}",
        std::process::id()
    ));
    let (cert, key) = tests::certs::self_signed_end_entity(&dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let s = OAuthBastion::start(
        &["--oauth-cimd-allow-loopback", "--oauth-cimd-ca-file", cert],
        &[],
        "",
        Some(&everything_stdio()),
    );
    let b = &s.bastion;
    let run = |path: &str, extra: &[&str]| {
        let args = [&["--profile", SCENARIO_PROFILE], extra].concat();
        sdk_oauth(sdk, &b.url(path), &b.url("/mcp"), &args)
            .unwrap_or_else(|e| panic!("{e}\n--- mcp-bastion ---\n{}", b.logs()))
    };
    let report = run("/mcp", &[]);
    assert_flow(&report, "");
    assert_oauth_scenario(&report);
    assert_eq!(report["metadata_document"], false, "{report}");
    let report = run("/sse", &["--transport", "sse"]);
    assert_flow(&report, "");
    assert_oauth_scenario(&report);
    let report = run("/mcp", &["--cimd-cert", cert, "--cimd-key", key]);
    assert_flow(&report, "");
    assert_oauth_scenario(&report);
    assert_eq!(report["metadata_document"], true, "{report}");
    assert!(
        report["client_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("https://127.0.0.1:")),
        "{report}"
    );
    // the tests-only switch is named at the start
    assert!(
        b.transcript().contains("oauth-cimd-allow-loopback"),
        "no warning about the tests-only switch"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn python_sdk_registers_or_uses_a_metadata_document_logs_in_calls_refreshes_and_is_revoked() {
    three_flows(Sdk::Python);
}

#[test]
fn typescript_sdk_registers_or_uses_a_metadata_document_logs_in_calls_refreshes_and_is_revoked() {
    three_flows(Sdk::TypeScript);
}

#[test]
fn one_login_serves_named_servers_under_a_path_prefix() {
    let dir = std::env::temp_dir().join(format!(
        "mcp-bastion-oauth-binary-prefix-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let command: Vec<String> = everything_stdio()
        .iter()
        .map(|c| format!("{c:?}"))
        .collect();
    let config = dir.join("servers.toml");
    std::fs::write(
        &config,
        format!(
            "[servers.one]\ncommand = [{0}]\n\n[servers.two]\ncommand = [{0}]\n",
            command.join(", ")
        ),
    )
    .unwrap();
    let s = OAuthBastion::start(&["--config", config.to_str().unwrap()], &[], "/k/abc", None);
    let b = &s.bastion;
    // the resource is the issuer, a prefix of every server's URL
    let report = sdk_oauth(
        Sdk::Python,
        &b.url("/k/abc/servers/two/mcp"),
        &b.url("/k/abc/servers/one/mcp"),
        &["--profile", SCENARIO_PROFILE],
    )
    .unwrap_or_else(|e| panic!("{e}\n--- mcp-bastion ---\n{}", b.logs()));
    assert_flow(&report, "/k/abc");
    assert_oauth_scenario(&report);
    let report = sdk_oauth(
        Sdk::Python,
        &b.url("/k/abc/servers/one/sse"),
        &b.url("/k/abc/servers/two/mcp"),
        &["--transport", "sse", "--profile", SCENARIO_PROFILE],
    )
    .unwrap_or_else(|e| panic!("{e}\n--- mcp-bastion ---\n{}", b.logs()));
    assert_flow(&report, "/k/abc");
    assert_oauth_scenario(&report);
    let _ = std::fs::remove_dir_all(dir);
}
