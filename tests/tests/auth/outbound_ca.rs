//! `--outbound-ca`: the key set of `--jwt-jwks-url` served over https by a private CA's
//! certificate (tests/clients/https_files.py). Trusting the CA, the binary fetches the keys and a
//! token they verify is served (official Python SDK); without it the same token is refused and
//! nothing is served. The OAuth identity provider behind a private CA is in
//! tests/tests/oauth_binary/outbound_ca.rs.

use std::path::Path;

use tests::{certs, clients_dir, python, refused_start, scratch_dir};

use crate::support::*;

/// The PEM file's path as an argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The status of an `initialize` with `token` at the binary's `/mcp`.
fn initialize_status(server: &Server, token: &str) -> u16 {
    let url = server.url("/mcp");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "outbound-ca-test", "version": "1"}}
            }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

#[test]
fn jwt_keys_behind_a_private_ca_are_fetched_when_outbound_ca_trusts_it() {
    let key = rsa_key("outbound-ca-rsa", Algorithm::RS256);
    let dir = scratch_dir("outbound-ca-jwks");
    let pki = certs::private_ca(&dir.join("pki"));
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("jwks.json"),
        json!({"keys": [key.jwk.clone()]}).to_string(),
    )
    .unwrap();
    let files = Server::spawn(
        "https-files",
        Path::new(&python()),
        &[
            clients_dir().join("https_files.py").display().to_string(),
            "--dir".into(),
            docs.display().to_string(),
            "--tls-cert".into(),
            pki.server_cert.display().to_string(),
            "--tls-key".into(),
            pki.server_key.display().to_string(),
        ],
    );
    let jwks_url = files.url("/jwks.json");
    assert!(jwks_url.starts_with("https://"), "{jwks_url}");
    let jwt_args = [
        "--jwt-jwks-url",
        &jwks_url,
        "--jwt-issuer",
        "https://issuer.test",
        "--jwt-audience",
        AUD,
    ];
    let token = sign(&key, &claims("https://issuer.test", "ca-user"));

    let mut trusting = jwt_args.to_vec();
    trusting.extend(["--outbound-ca", arg(&pki.ca)]);
    let trusted = bastion(&trusting);
    let header = format!("Authorization: Bearer {token}");
    assert_echo(&echo_with_headers(
        Sdk::Python,
        Transport::Streamable,
        &trusted,
        &[&header],
    ));

    // the same key set and token, without the CA: the keys cannot be fetched, nothing is served
    let untrusted = bastion(&jwt_args);
    let status = initialize_status(&untrusted, &token);
    assert!(
        matches!(status, 401 | 503),
        "without --outbound-ca: {status}\n{}",
        untrusted.logs()
    );
    // and the trusted one still serves
    assert_eq!(
        initialize_status(&trusted, &token),
        200,
        "{}",
        trusted.logs()
    );
    assert!(
        !trusted.logs().contains(&token) && !untrusted.logs().contains(&token),
        "a token was logged"
    );
}

#[test]
fn an_outbound_ca_file_that_holds_no_certificate_stops_the_start_naming_the_flag() {
    let dir = scratch_dir("outbound-ca-bad");
    let bad = dir.join("not-a-ca.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let bad_path = bad.to_str().unwrap();
    let err = refused_start(
        &[
            "--allow-unauthenticated",
            "--outbound-ca",
            bad_path,
            "--",
            "true",
        ],
        &[],
    );
    assert!(
        err.contains(&format!("--outbound-ca {}", bad.display()))
            && err.contains("no PEM certificate"),
        "{err}"
    );
    assert!(
        !err.contains("c2VjcmV0"),
        "the file's content is shown: {err}"
    );
    let err = refused_start(
        &[
            "--allow-unauthenticated",
            "--outbound-ca",
            "/nonexistent/ca.pem",
            "--",
            "true",
        ],
        &[],
    );
    assert!(
        err.contains("--outbound-ca /nonexistent/ca.pem: cannot read it"),
        "{err}"
    );
}
