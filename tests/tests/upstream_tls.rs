//! `--upstream https://…` to an upstream whose certificate a private CA issued, and which asks
//! for a client certificate (mutual TLS): `--upstream-ca`, `--upstream-client-cert`,
//! `--upstream-client-key`.
//!
//! The upstream is the official Python SDK's server (`tests/clients/py_2026_server.py`) served
//! by uvicorn over TLS with certificates made at test time by `openssl`, requiring a client
//! certificate. The official Python SDK client calls its `echo` tool through the binary; the
//! binary's `/readyz` (which reaches the upstream with `OPTIONS`) tells whether the TLS
//! connection to the upstream can be made.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use tests::{Server, certs, clients_dir, python, upstream::py_2026_server_with};

struct Pki {
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A server certificate for 127.0.0.1 and a client certificate, each its own (private) CA, in a
/// directory of the calling test's own.
fn pki() -> Pki {
    let dir = tests::scratch_dir("upstream-tls");
    let (server_cert, server_key) = certs::self_signed_end_entity(&dir.join("server"));
    let (client_cert, client_key) = certs::self_signed_end_entity(&dir.join("client"));
    Pki {
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_upstream_behind_a_private_ca_with_mutual_tls_is_served() {
    let pki = pki();
    let upstream = py_2026_server_with(&[
        "--tls-cert",
        path(&pki.server_cert),
        "--tls-key",
        path(&pki.server_key),
        "--client-ca",
        path(&pki.client_cert),
    ]);
    let url = format!("{}/mcp", upstream.base_url());
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let both = Server::bastion_args_with_env(
        &[
            "--upstream",
            &url,
            "--upstream-ca",
            path(&pki.server_cert),
            "--upstream-client-cert",
            path(&pki.client_cert),
            "--upstream-client-key",
            path(&pki.client_key),
        ],
        &[],
    );
    assert!(both.is_ready(), "{}", both.logs());
    let out = Command::new(python())
        .arg(clients_dir().join("py_call.py"))
        .args(["--url", &format!("{}/mcp", both.base_url())])
        .args(["--transport", "streamable", "--tool", "echo"])
        .args(["--arguments", r#"{"text": "over mutual TLS"}"#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("echo: over mutual TLS"),
        "{stdout}\n{}\n--- proxy ---\n{}\n--- upstream ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        both.logs(),
        upstream.logs()
    );

    // without the CA the upstream's certificate is not trusted
    let untrusted = Server::bastion_args_with_env(
        &[
            "--upstream",
            &url,
            "--upstream-client-cert",
            path(&pki.client_cert),
            "--upstream-client-key",
            path(&pki.client_key),
        ],
        &[],
    );
    assert!(!untrusted.is_ready());
    // without the client certificate the upstream refuses the connection
    let anonymous = Server::bastion_args_with_env(
        &["--upstream", &url, "--upstream-ca", path(&pki.server_cert)],
        &[],
    );
    assert!(!anonymous.is_ready());
    // and the trusted one is still served
    assert!(both.is_ready());
}

#[test]
fn unreadable_or_half_given_tls_files_are_refused_at_start_naming_the_flag() {
    let pki = pki();
    let refused = |args: &[&str]| {
        tests::refused_start(
            &[&["--upstream", "https://127.0.0.1:9/mcp"], args].concat(),
            &[],
        )
    };
    let err = refused(&["--upstream-ca", "/nonexistent/ca.pem"]);
    assert!(err.contains("--upstream-ca /nonexistent/ca.pem"), "{err}");
    let err = refused(&["--upstream-client-cert", path(&pki.client_cert)]);
    assert!(
        err.contains("--upstream-client-cert") && err.contains("needs `upstream-client-key`"),
        "{err}"
    );
    // a key given as the certificate: refused, and the key's text is not shown
    let key_text = std::fs::read_to_string(&pki.client_key).unwrap();
    let key_body: String = key_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let err = refused(&[
        "--upstream-client-cert",
        path(&pki.client_key),
        "--upstream-client-key",
        path(&pki.client_key),
    ]);
    assert!(
        err.contains(&format!("--upstream-client-cert {}", path(&pki.client_key)))
            && err.contains("no PEM certificate"),
        "{err}"
    );
    assert!(!err.contains(&key_body[..20]), "{err}");
    // a certificate and a key each well formed but not a pair: said so at start (reqwest alone
    // says only "builder error"), and the key's text is not shown
    let err = refused(&[
        "--upstream-client-cert",
        path(&pki.server_cert),
        "--upstream-client-key",
        path(&pki.client_key),
    ]);
    assert!(
        err.contains(&format!(
            "--upstream-client-cert {} and --upstream-client-key {}: the key is not the certificate's",
            path(&pki.server_cert),
            path(&pki.client_key)
        )),
        "{err}"
    );
    // a CA file that holds no certificate: named with the flag, before any connection
    let err = refused(&["--upstream-ca", path(&pki.client_key)]);
    assert!(
        err.contains(&format!("--upstream-ca {}", path(&pki.client_key)))
            && err.contains("no PEM certificate"),
        "{err}"
    );
    assert!(!err.contains(&key_body[..20]), "{err}");
}
