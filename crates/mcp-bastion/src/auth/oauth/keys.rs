//! [`SigningKey`]: the ES256 key that signs mcp-bastion's access tokens, its
//! public half as a JWK Set, and the access-token claims.
//!
//! Rotation: the server signs with one current key and also verifies (and
//! publishes) the previous keys it is given
//! ([`previous_signing_key`](super::OAuthServerBuilder::previous_signing_key)),
//! each token by the key its `kid` names. A previous key is kept until the
//! tokens it signed have expired (the token TTL after it stopped signing),
//! then removed from the configuration: its tokens are refused from then on.

use std::fmt;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use p256::{
    SecretKey,
    elliptic_curve::sec1::ToEncodedPoint as _,
    pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::OAuthConfigError;

/// An ES256 (P-256) signing key with its key id (the RFC 7638 thumbprint of
/// its public JWK). Its `Debug` shows the key id only.
///
/// ```
/// use mcp_bastion::auth::oauth::SigningKey;
///
/// let key = SigningKey::generate();
/// let pem = key.to_pkcs8_pem();
/// let again = SigningKey::from_pem(pem.as_bytes()).unwrap();
/// assert_eq!(key.kid(), again.kid());
/// assert_eq!(key.jwks()["keys"][0]["alg"], "ES256");
/// ```
#[derive(Clone)]
pub struct SigningKey {
    secret: SecretKey,
    encoding: EncodingKey,
    kid: String,
    x: String,
    y: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key. Tokens it signs stop verifying when the process
    /// ends unless the key is persisted ([`to_pkcs8_pem`](Self::to_pkcs8_pem)).
    pub fn generate() -> Self {
        loop {
            let bytes: [u8; 32] = rand::random();
            // a 32-byte string is a valid scalar except with probability ~2^-32
            if let Ok(secret) = SecretKey::from_slice(&bytes)
                && let Ok(key) = Self::from_secret(secret)
            {
                return key;
            }
        }
    }

    /// A key from a PEM file: PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1
    /// (`BEGIN EC PRIVATE KEY`), curve P-256.
    ///
    /// # Errors
    ///
    /// [`OAuthConfigError::SigningKey`] when the PEM is not a P-256 private key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, OAuthConfigError> {
        let text = std::str::from_utf8(pem).map_err(|_| OAuthConfigError::SigningKey)?;
        let secret = SecretKey::from_pkcs8_pem(text)
            .or_else(|_| SecretKey::from_sec1_pem(text))
            .map_err(|_| OAuthConfigError::SigningKey)?;
        Self::from_secret(secret)
    }

    /// The key in the PEM file at `path`; when there is no such file, a
    /// generated key, written there first (PKCS#8, readable by the owner
    /// only on Unix) so that tokens survive a restart.
    ///
    /// # Errors
    ///
    /// The file cannot be read or written ([`OAuthConfigError::SigningKeyFile`]),
    /// or holds no P-256 key ([`OAuthConfigError::SigningKey`]).
    pub fn load_or_generate(path: &std::path::Path) -> Result<Self, OAuthConfigError> {
        match std::fs::read(path) {
            Ok(pem) => Self::from_pem(&pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(path, key.to_pkcs8_pem().as_bytes())
                    .map_err(|e| OAuthConfigError::SigningKeyFile(e.kind()))?;
                Ok(key)
            }
            Err(e) => Err(OAuthConfigError::SigningKeyFile(e.kind())),
        }
    }

    fn from_secret(secret: SecretKey) -> Result<Self, OAuthConfigError> {
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| OAuthConfigError::SigningKey)?;
        let encoding =
            EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| OAuthConfigError::SigningKey)?;
        let point = secret.public_key().to_encoded_point(false);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(OAuthConfigError::SigningKey);
        };
        let (x, y) = (b64.encode(x), b64.encode(y));
        // RFC 7638: the required members in lexicographic order, no spaces
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = b64.encode(Sha256::digest(canonical.as_bytes()));
        Ok(Self {
            secret,
            encoding,
            kid,
            x,
            y,
        })
    }

    /// The private key as PKCS#8 PEM, to persist a generated key. Handle it
    /// as a secret.
    pub fn to_pkcs8_pem(&self) -> String {
        self.secret
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .unwrap_or_default()
    }

    /// The key id (`kid`) in token headers and the JWK Set.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK Set document of this key alone.
    pub fn jwks(&self) -> Value {
        jwks([self])
    }

    /// The public key as a JWK (`kty` `EC`, `crv` `P-256`, `alg` `ES256`,
    /// `use` `sig`, `kid`).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    /// The public key, for a [`JwtAuthenticator`](crate::auth::JwtAuthenticator).
    pub fn decoding_key(&self) -> DecodingKey {
        // x and y are our own base64url encodings of a valid point
        DecodingKey::from_ec_components(&self.x, &self.y)
            .unwrap_or_else(|_| DecodingKey::from_secret(&[]))
    }

    /// Signs claims as a compact JWT (`alg: ES256`, `typ: at+jwt`, `kid`).
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Option<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &self.encoding).ok()
    }
}

/// The JWK Set of `keys` (served at the `jwks_uri`: the current key and the
/// previous ones still live).
pub(crate) fn jwks<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Value {
    json!({"keys": keys.into_iter().map(SigningKey::jwk).collect::<Vec<_>>()})
}

/// Creates `path` (never replacing a file) with `bytes`, mode 0600 on Unix.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// The claims of an access token (RFC 9068's shape).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// The grant the token was issued under (revocation finds it by this).
    pub grant_id: String,
}
