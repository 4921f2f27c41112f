//! mcp-bastion's own OAuth authorization server through the binary, black-box, with real parts:
//! the `mcp-bastion` binary started with `--oauth-*` flags in front of server-everything over
//! stdio (one child per session, the subject in its environment by `--principal-env`), a real
//! identity provider (`oidc-provider`), the official Python and TypeScript SDKs' OAuth clients,
//! and a browser played with reqwest (harness: `tests::oauth`).
//!
//! `sdk`: the SDKs' whole flows (dynamic registration and Client ID Metadata Documents, over
//! Streamable HTTP and legacy SSE, refresh, revocation), also for named servers under a path
//! prefix; `static_client`: `--oauth-client` and the TOML `[[oauth-client]]` table with a secret
//! digest, played by the browser; `replicas`: two binaries sharing Redis
//! (`--oauth-store redis`) and one key file as one authorization server; `rotation`:
//! `--oauth-signing-key-previous-file` through restarts; `github`: GitHub as the identity provider
//! (a stand-in) with an organisation-and-team allowlist; `dcr_bounds`: the registration limit and
//! the expiry of unused registered clients; `outbound_ca`: an identity provider behind a private CA
//! (`--outbound-ca`); `refusals`: what `check-config` and the start refuse. The TRACE secrets sweep of a whole flow through the binary is beside the other
//! sweeps, in `tests/tests/auth/sweep.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dcr_bounds;
mod github;
mod outbound_ca;
mod refusals;
mod replicas;
mod rotation;
mod sdk;
mod static_client;

use serde_json::Value;

/// Asserts what every SDK report must show: logged in as alice through the provider and
/// mcp-bastion's consent page (under `prefix`), refreshed, revoked.
fn assert_flow(report: &Value, prefix: &str) {
    assert_eq!(report["whoami"], "alice", "{report}");
    assert_eq!(report["refreshed"], true, "{report}");
    assert_eq!(report["revoked_status"], 401, "{report}");
    let pages = report["pages"].to_string();
    assert!(pages.contains("POST /interaction/"), "{pages}");
    assert!(
        pages.contains(&format!("POST {prefix}/oauth/consent -> 303")),
        "{pages}"
    );
}
