//! Certificates made at test time with the `openssl` command line: self-signed ones, and a
//! private CA with a server and a client certificate.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A self-signed EC certificate for `localhost` and `127.0.0.1`, written into `dir` as
/// `cert.pem` and `key.pem`; returns their paths. Panics with openssl's message on failure.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    make(dir, &[])
}

/// [`self_signed`], marked `CA:FALSE`: what a client built on rustls (webpki) accepts as a
/// trusted server certificate, which refuses a CA certificate used as a server's.
pub fn self_signed_end_entity(dir: &Path) -> (PathBuf, PathBuf) {
    make(dir, &["-addext", "basicConstraints=critical,CA:FALSE"])
}

fn make(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
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
        .args(extra)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| panic!("openssl (run .ci/deps/openssl.sh): {e}"));
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A private CA and two certificates it issued, as PEM files in one directory: what a collector
/// behind an internal CA (and a mesh doing mTLS) uses.
pub struct PrivateCa {
    /// The CA's certificate (`ca.pem`): the bundle a client trusts.
    pub ca: PathBuf,
    /// A server certificate for `localhost` and `127.0.0.1` (`server.pem`, `CA:FALSE`,
    /// `serverAuth`).
    pub server_cert: PathBuf,
    /// Its key (`server-key.pem`).
    pub server_key: PathBuf,
    /// A client certificate (`client.pem`, `clientAuth`), for mTLS.
    pub client_cert: PathBuf,
    /// Its key (`client-key.pem`).
    pub client_key: PathBuf,
}

/// Makes a [`PrivateCa`] in `dir` with the `openssl` command line (EC P-256, valid one day).
/// Panics with openssl's message on failure.
pub fn private_ca(dir: &Path) -> PrivateCa {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let ca = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    openssl(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=mcp-bastion test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    let issue = |name: &str, serial: &str, usage: &str| {
        let (cert, key, csr, ext) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}-key.pem")),
            dir.join(format!("{name}.csr")),
            dir.join(format!("{name}.ext")),
        );
        openssl(
            Command::new("openssl")
                .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes"])
                .args(["-subj", &format!("/CN={name}")])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        );
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage={usage}\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", ext.display()));
        openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "1", "-set_serial", serial])
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&cert),
        );
        (cert, key)
    };
    let (server_cert, server_key) = issue("server", "2", "serverAuth");
    let (client_cert, client_key) = issue("client", "3", "clientAuth");
    PrivateCa {
        ca,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

fn openssl(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("openssl (run .ci/deps/openssl.sh): {e}"));
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
