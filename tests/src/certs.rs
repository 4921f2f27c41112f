//! Self-signed certificates made at test time with the `openssl` command line.

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
