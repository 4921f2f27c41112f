//! The PEM files the binary is given, read and checked in one place: the
//! listener's certificate and key (`--tls-cert`, `--tls-key`), the CA bundles
//! its outbound clients trust (`--outbound-ca`, `--upstream-ca`, the
//! `OTEL_EXPORTER_OTLP_*CERTIFICATE` variables) and the client certificates
//! they show (`--upstream-client-cert`/`-key`, the OTLP client variables).
//!
//! Each file is read and checked once, at start, before anything is built
//! with it: reqwest, tonic and rustls would take some malformed files
//! silently, or fail only at the first connection, with messages that name
//! no file (reqwest's is "builder error"). An error names where the path came
//! from (the flag or the variable) and the path, and says what is wrong;
//! never any of the file's content (a key is a secret, and a PEM parser's
//! own message can quote the text).

use std::{fmt, path::PathBuf, sync::Arc};

use tokio_rustls::rustls::{
    self, RootCertStore,
    pki_types::{
        CertificateDer, PrivateKeyDer,
        pem::{self, PemObject},
    },
};

/// A PEM file and the option that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PemFile {
    origin: Origin,
    path: PathBuf,
}

/// Where a path came from, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// An option (flag, `MCP_BASTION_*` variable or file key alike), shown
    /// as its flag: `--upstream-ca`.
    Flag(&'static str),
    /// A variable of another specification (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    Variable(&'static str),
}

impl PemFile {
    /// The file of an option, named in errors by its flag (`--upstream-ca`).
    pub(crate) fn flag(flag: &'static str, path: impl Into<PathBuf>) -> Self {
        Self {
            origin: Origin::Flag(flag),
            path: path.into(),
        }
    }

    /// The file of an environment variable, named in errors as `VAR=path`.
    pub(crate) fn variable(var: &'static str, path: impl Into<PathBuf>) -> Self {
        Self {
            origin: Origin::Variable(var),
            path: path.into(),
        }
    }

    /// The file's bytes.
    fn read(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.path).map_err(|e| format!("{self}: cannot read it: {e}"))
    }
}

impl fmt::Display for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.origin {
            Origin::Flag(flag) => write!(f, "{flag} {}", self.path.display()),
            Origin::Variable(var) => write!(f, "{var}={}", self.path.display()),
        }
    }
}

/// A bundle of CA certificates, each checked to be usable as a trust anchor.
pub(crate) struct CaBundle {
    /// The file's PEM text (what tonic and the library's builders take).
    pub(crate) pem: Vec<u8>,
    /// Its certificates.
    pub(crate) certs: Vec<CertificateDer<'static>>,
}

impl CaBundle {
    /// Reads and checks `file`: at least one certificate, each one rustls
    /// accepts as a root.
    pub(crate) fn load(file: &PemFile) -> Result<Self, String> {
        let pem = file.read()?;
        let certs = certificates(file, &pem)?;
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            roots
                .add(cert.clone())
                .map_err(|e| format!("{file}: certificate {} is not a usable CA: {e}", i + 1))?;
        }
        Ok(Self { pem, certs })
    }

    /// The certificates as reqwest takes them.
    pub(crate) fn reqwest_certificates(&self) -> Vec<reqwest::Certificate> {
        self.certs
            .iter()
            // a certificate rustls has parsed is one reqwest takes
            .filter_map(|der| reqwest::Certificate::from_der(der).ok())
            .collect()
    }
}

/// A client certificate chain and its key, checked to be a pair rustls can
/// sign with. (No `Debug`: it holds a private key.)
pub(crate) struct ClientIdentity {
    /// The chain's PEM text (leaf first).
    pub(crate) cert: Vec<u8>,
    /// The key's PEM text.
    pub(crate) key: Vec<u8>,
    /// Both were read from one file (`cert` holds the key too).
    one_file: bool,
}

impl ClientIdentity {
    /// Reads and checks the certificate chain of `cert` and the key of `key`
    /// (which may be the same file).
    pub(crate) fn load(cert: &PemFile, key: &PemFile) -> Result<Self, String> {
        let cert_pem = cert.read()?;
        let chain = certificates(cert, &cert_pem)?;
        let one_file = cert.path == key.path;
        let key_pem = if one_file {
            cert_pem.clone()
        } else {
            key.read()?
        };
        let der = private_key(key, &key_pem)?;
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(RootCertStore::empty())
        .with_client_auth_cert(chain, der)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("{cert} and {key}: the key is not the certificate's")
            }
            e => format!("{cert} and {key}: {e}"),
        })?;
        Ok(Self {
            cert: cert_pem,
            key: key_pem,
            one_file,
        })
    }

    /// The certificates and the key in one PEM text (what reqwest takes).
    pub(crate) fn combined(&self) -> Vec<u8> {
        if self.one_file {
            self.cert.clone()
        } else {
            [self.cert.as_slice(), b"\n", self.key.as_slice()].concat()
        }
    }
}

/// The certificates of `file`'s PEM text: at least one.
pub(crate) fn certificates(
    file: &PemFile,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{file}: {}", malformed(&e)))?;
    if certs.is_empty() {
        return Err(format!(
            "{file}: no PEM certificate (`BEGIN CERTIFICATE`) in the file"
        ));
    }
    Ok(certs)
}

/// The certificate chain in `file`.
pub(crate) fn certificate_chain(file: &PemFile) -> Result<Vec<CertificateDer<'static>>, String> {
    certificates(file, &file.read()?)
}

/// The private key in `file`.
pub(crate) fn private_key_file(file: &PemFile) -> Result<PrivateKeyDer<'static>, String> {
    private_key(file, &file.read()?)
}

/// The (first) private key of `file`'s PEM text.
fn private_key(file: &PemFile, pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        format!(
            "{file}: {}",
            match e {
                pem::Error::NoItemsFound => {
                    "no PEM private key in the file (PKCS#8 `PRIVATE KEY`, \
                     `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
                }
                _ => malformed(&e),
            }
        )
    })
}

/// What is wrong with a PEM text, without quoting any of it (the parser's own
/// messages can).
fn malformed(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "not valid PEM: a section has no end line",
        pem::Error::IllegalSectionStart { .. } => "not valid PEM: a malformed BEGIN line",
        pem::Error::Base64Decode(_) => "not valid PEM: a section is not valid base64",
        pem::Error::SectionTooLarge => "not valid PEM: a section is too large",
        _ => "not valid PEM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mcp-bastion-pem-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn errors_name_the_flag_or_the_variable_and_the_path_and_quote_nothing() {
        let missing = PemFile::flag("--upstream-ca", "/nonexistent/ca.pem");
        let err = CaBundle::load(&missing).err().unwrap();
        assert!(
            err.starts_with("--upstream-ca /nonexistent/ca.pem: cannot read it"),
            "{err}"
        );

        let text = "-----BEGIN CERTIFICATE-----\nc2VjcmV0IHRleHQ*\n-----END CERTIFICATE-----\n";
        let path = write("bad-base64.pem", text);
        let file = PemFile::variable("OTEL_EXPORTER_OTLP_CERTIFICATE", &path);
        let err = CaBundle::load(&file).err().unwrap();
        assert_eq!(
            err,
            format!(
                "OTEL_EXPORTER_OTLP_CERTIFICATE={}: not valid PEM: a section is not valid base64",
                path.display()
            )
        );

        let path = write("empty.pem", "# nothing here\n");
        let err = certificate_chain(&PemFile::flag("--tls-cert", &path))
            .err()
            .unwrap();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = private_key_file(&PemFile::flag("--tls-key", &path))
            .err()
            .unwrap();
        assert!(
            err.starts_with("--tls-key ") && err.contains("no PEM private key"),
            "{err}"
        );
    }
}
