//! `--outbound-ca`: the identity provider (oidc-provider) served over https with a certificate a
//! private CA issued. Trusting the CA, the binary discovers the provider, exchanges the code and
//! verifies the ID token, and both SDKs' users log in (their played browsers trust the CA through
//! `SSL_CERT_FILE` / `NODE_EXTRA_CA_CERTS`); without it the login cannot start (the binary cannot
//! discover the provider: `503` to the browser, and a warning naming the cause in its log).

use tests::{
    Sdk, certs, everything_stdio,
    oauth::{OAuthBastion, sdk_oauth_with_env},
    scratch_dir,
};

use super::assert_flow;

fn arg(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn an_identity_provider_behind_a_private_ca_is_trusted_through_outbound_ca() {
    let pki = certs::private_ca(&scratch_dir("outbound-ca-idp"));
    let idp_tls = [
        "--tls-cert",
        arg(&pki.server_cert),
        "--tls-key",
        arg(&pki.server_key),
    ];
    let browser_trust = [
        ("SSL_CERT_FILE", arg(&pki.ca)),
        ("NODE_EXTRA_CA_CERTS", arg(&pki.ca)),
    ];
    let s = OAuthBastion::start_with_idp(
        &idp_tls,
        &["--outbound-ca", arg(&pki.ca)],
        &[],
        "",
        Some(&everything_stdio()),
    );
    assert!(
        s.idp.server.base_url().starts_with("https://"),
        "{}",
        s.idp.server.base_url()
    );
    let b = &s.bastion;
    for sdk in [Sdk::Python, Sdk::TypeScript] {
        let report = sdk_oauth_with_env(sdk, &b.url("/mcp"), &b.url("/mcp"), &[], &browser_trust)
            .unwrap_or_else(|e| panic!("{sdk:?}: {e}\n--- mcp-bastion ---\n{}", b.logs()));
        assert_flow(&report, "");
    }

    // the same provider, without the CA: the login cannot complete
    let untrusting =
        OAuthBastion::start_with_idp(&idp_tls, &[], &[], "", Some(&everything_stdio()));
    let u = &untrusting.bastion;
    let refused = sdk_oauth_with_env(
        Sdk::Python,
        &u.url("/mcp"),
        &u.url("/mcp"),
        &[],
        &browser_trust,
    );
    assert!(
        refused.is_err(),
        "logged in without trusting the CA: {refused:?}"
    );
    // and the operator is told why
    let logs = u.logs();
    assert!(
        logs.contains("identity provider request failed")
            && logs.contains("discovery")
            && logs.contains("certificate"),
        "{logs}"
    );
    // no secret of either provider's flows reached the binaries' logs
    for (server, idp) in [(b, &s.idp), (u, &untrusting.idp)] {
        let logs = server.transcript();
        for secret in idp.secrets() {
            assert!(!logs.contains(&secret), "a secret of the flow was logged");
        }
    }
}
