//! `mcp-bastion --tls-cert --tls-key`: HTTPS straight from the proxy, with a certificate made at
//! test time, and the official SDK clients trusting it.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{path::PathBuf, process::Command};

use tests::{ClientRun, Sdk, Server, Transport, everything_stdio};

/// A self-signed certificate for `localhost` and `127.0.0.1`: (dir, cert, key).
fn self_signed() -> (PathBuf, PathBuf, PathBuf) {
    let dir = tests::scratch_dir("tls");
    let (cert, key) = tests::certs::self_signed(&dir);
    (dir, cert, key)
}

#[test]
fn both_sdks_run_their_scenario_over_https() {
    let (dir, cert, key) = self_signed();
    let server = Server::bastion(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &everything_stdio(),
    );
    assert!(
        server.base_url().starts_with("https://"),
        "{}",
        server.base_url()
    );
    let cert_path = cert.display().to_string();
    ClientRun::against(Sdk::TypeScript, Transport::Streamable, &server, "")
        .env("NODE_EXTRA_CA_CERTS", &cert_path)
        .run_ok(&server);
    ClientRun::against(Sdk::Python, Transport::Sse, &server, "")
        .env("SSL_CERT_FILE", &cert_path)
        .run_ok(&server);
    // plain HTTP on the TLS port gets no MCP answer
    let plain = server.base_url().replace("https://", "http://");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(format!("{plain}/healthz"))
        .output();
    if let Ok(out) = out {
        assert_ne!(
            String::from_utf8_lossy(&out.stdout),
            "200",
            "plain HTTP was served"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_certificate_file_is_refused_at_start_with_its_name() {
    let dir = tests::scratch_dir("badtls");
    let cert = dir.join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let cert = cert.to_str().unwrap();
    let err = tests::refused_start(&["--tls-cert", cert, "--tls-key", cert, "--", "true"], &[]);
    assert!(
        err.contains(&format!("--tls-cert {cert}: no PEM certificate")),
        "{err}"
    );
    // a certificate with a key that is not its own
    let (good_cert, _) = tests::certs::self_signed(&dir.join("a"));
    let (_, other_key) = tests::certs::self_signed(&dir.join("b"));
    let err = tests::refused_start(
        &[
            "--tls-cert",
            good_cert.to_str().unwrap(),
            "--tls-key",
            other_key.to_str().unwrap(),
            "--",
            "true",
        ],
        &[],
    );
    assert!(err.contains("the key is not the certificate's"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
