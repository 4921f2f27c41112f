//! The embedded default is safe: with no authentication configured the proxy generates an API
//! key, prints it once with a ready URL and header, and requires it; it refuses a non-loopback
//! address unless told `--allow-unauthenticated`.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;

use tests::{ClientRun, Sdk, Server, Transport, bastion_bin, everything_stdio};

fn args(extra: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    all.push("--".into());
    all.extend(everything_stdio());
    all
}

#[test]
fn without_auth_configured_a_generated_key_is_printed_once_and_required() {
    let server = Server::spawn(
        "mcp-bastion",
        &bastion_bin(),
        &args(&["--listen", "127.0.0.1:0"]),
    );
    let logs = server.logs();
    let key = logs
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("mcpb_"))
        .unwrap_or_else(|| panic!("no generated key in:\n{logs}"))
        .to_owned();
    assert!(
        logs.contains(&format!("with header  Authorization: Bearer {key}")),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("{}/mcp", server.base_url())),
        "{logs}"
    );

    // without the key: 401 with a challenge; with it: the whole scenario
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-X", "POST", "-H", "content-type: application/json"])
        .args(["-H", "accept: application/json, text/event-stream"])
        .args(["-d", r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#])
        .arg(server.url("/mcp"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "401");
    ClientRun::against(Sdk::Python, Transport::Streamable, &server, "")
        .arg("--header")
        .arg(format!("Authorization: Bearer {key}"))
        .run_ok(&server);
    ClientRun::against(Sdk::TypeScript, Transport::Sse, &server, "")
        .arg("--header")
        .arg(format!("Authorization: Bearer {key}"))
        .run_ok(&server);
    // printed once (the two lines of the banner), never logged afterwards
    assert_eq!(server.logs().matches(&key).count(), 2, "{}", server.logs());
}

#[test]
fn a_non_loopback_address_without_auth_is_refused_unless_allowed() {
    let out = Command::new(bastion_bin())
        .args(args(&["--listen", "0.0.0.0:0"]))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("without authentication") && err.contains("--allow-unauthenticated"),
        "{err}"
    );

    let server = Server::spawn(
        "mcp-bastion",
        &bastion_bin(),
        &args(&["--listen", "0.0.0.0:0", "--allow-unauthenticated"]),
    );
    assert!(
        server.logs().contains("WITHOUT authentication"),
        "a warning is logged: {}",
        server.logs()
    );
}
