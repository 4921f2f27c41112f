//! Encryption at rest of the user's upstream tokens: [`SecretsKey`] and the
//! sealed form the records keep.
//!
//! The identity provider's access and refresh tokens of a login are sealed
//! with XChaCha20-Poly1305 (a random 192-bit nonce per sealing, so random
//! nonces never repeat in practice) the moment they arrive, with the id of
//! the grant they will belong to as associated data: a ciphertext copied
//! into another grant's record does not open. The same sealed value travels
//! through the consent request, the code and the grant; only the token
//! manager opens it, when a backend needs the token.
//!
//! A value that does not open (tampered, or sealed under another key) is
//! treated as absent, and logged without any value.

use std::fmt;

use base64::Engine as _;
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use serde::{Deserialize, Serialize};

use super::upstream::UpstreamTokens;

/// The 32-byte key that seals the users' upstream tokens at rest.
///
/// Given by the operator (the CLI reads it from the variable named by
/// `--oauth-secrets-key-env`) as 64 hex digits or as base64 (standard or
/// URL-safe alphabet, padding optional) of 32 bytes: `openssl rand -hex 32`
/// or `openssl rand -base64 32` make one. Without one, a
/// [`MemoryStore`](super::MemoryStore) server generates a key per process
/// (its records die with it anyway); a shared store refuses to build (every
/// replica must open what another sealed). `Debug` never shows the key.
///
/// ```
/// use mcp_bastion::auth::oauth::SecretsKey;
///
/// let hex = SecretsKey::parse(&"ab".repeat(32)).unwrap();
/// let b64 = SecretsKey::parse("q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=").unwrap();
/// assert_eq!(format!("{hex:?}"), "SecretsKey(..)");
/// # let _ = b64;
/// assert!(SecretsKey::parse("too short").is_err());
/// ```
#[derive(Clone)]
pub struct SecretsKey([u8; 32]);

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

/// A secrets key that is neither 64 hex digits nor base64 of 32 bytes.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the secrets key must be 32 bytes: 64 hex digits or base64 (`openssl rand -base64 32`)")]
pub struct SecretsKeyError;

impl SecretsKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// A key written as 64 hex digits or as base64 of 32 bytes (surrounding
    /// whitespace ignored).
    ///
    /// # Errors
    ///
    /// [`SecretsKeyError`] for anything else; the error never contains the
    /// input.
    pub fn parse(text: &str) -> Result<Self, SecretsKeyError> {
        let text = text.trim();
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut key = [0u8; 32];
            for (i, byte) in key.iter_mut().enumerate() {
                *byte =
                    u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| SecretsKeyError)?;
            }
            return Ok(Self(key));
        }
        let unpadded = text.trim_end_matches('=');
        let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(unpadded)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
            .map_err(|_| SecretsKeyError)?;
        let key: [u8; 32] = decoded.try_into().map_err(|_| SecretsKeyError)?;
        Ok(Self(key))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Seals `tokens` for the grant `grant_id`.
    pub(crate) fn seal(&self, grant_id: &str, tokens: &UpstreamTokens) -> Sealed {
        let Ok(plain) = serde_json::to_vec(tokens) else {
            return Sealed::default();
        };
        let nonce: [u8; 24] = rand::random();
        let Ok(ct) = self.cipher().encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plain,
                aad: grant_id.as_bytes(),
            },
        ) else {
            return Sealed::default();
        };
        let mut out = Vec::with_capacity(nonce.len() + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Sealed(format!(
            "{VERSION}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Opens what [`seal`](Self::seal) made for `grant_id`: `None` when
    /// there is nothing, or when it does not open (logged, without values).
    pub(crate) fn open(&self, grant_id: &str, sealed: &Sealed) -> Option<UpstreamTokens> {
        if sealed.0.is_empty() {
            return None;
        }
        let opened = sealed
            .0
            .strip_prefix(VERSION)
            .and_then(|b| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(b)
                    .ok()
            })
            .filter(|raw| raw.len() > 24)
            .and_then(|raw| {
                let (nonce, ct) = raw.split_at(24);
                let nonce: [u8; 24] = nonce.try_into().ok()?;
                self.cipher()
                    .decrypt(
                        &XNonce::from(nonce),
                        Payload {
                            msg: ct,
                            aad: grant_id.as_bytes(),
                        },
                    )
                    .ok()
            })
            .and_then(|plain| serde_json::from_slice(&plain).ok());
        if opened.is_none() {
            tracing::warn!(
                target: "mcp_bastion::auth::oauth",
                "a grant's upstream tokens do not open (tampered, or sealed under another secrets key); treated as absent"
            );
        }
        opened
    }
}

/// The format tag of a sealed value (nonce ‖ ciphertext, base64url).
const VERSION: &str = "v1.";

/// Upstream tokens as the records keep them: sealed under the
/// [`SecretsKey`] with the grant id as associated data; empty when there
/// are none. Opaque to everything but the key.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Sealed(String);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(..)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn tokens() -> UpstreamTokens {
        UpstreamTokens {
            access_token: "idp-access-secret".into(),
            refresh_token: Some("idp-refresh-secret".into()),
            expires_at: Some(1_900_000_000),
        }
    }

    #[test]
    fn sealed_tokens_open_only_for_their_grant_and_key() {
        let key = SecretsKey::generate();
        let sealed = key.seal("grant-a", &tokens());
        let json = serde_json::to_string(&sealed).unwrap();
        assert!(!json.contains("idp-access-secret") && !json.contains("idp-refresh-secret"));
        assert_eq!(
            key.open("grant-a", &sealed).unwrap().access_token,
            "idp-access-secret"
        );
        // moved to another grant, or read with another key: absent
        assert!(key.open("grant-b", &sealed).is_none());
        assert!(SecretsKey::generate().open("grant-a", &sealed).is_none());
        // two sealings of the same tokens differ (a fresh nonce each)
        assert_ne!(key.seal("grant-a", &tokens()), sealed);
        assert!(key.open("grant-a", &Sealed::default()).is_none());
    }

    #[test]
    fn a_tampered_ciphertext_is_absent() {
        let key = SecretsKey::generate();
        let Sealed(text) = key.seal("g", &tokens());
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.strip_prefix(VERSION).unwrap())
            .unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = Sealed(format!(
            "{VERSION}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw)
        ));
        assert!(key.open("g", &tampered).is_none());
        assert!(key.open("g", &Sealed("v1.!!".into())).is_none());
        assert!(key.open("g", &Sealed("v9.AAAA".into())).is_none());
    }

    #[test]
    fn keys_parse_from_hex_or_base64_of_32_bytes() {
        let bytes = [0xabu8; 32];
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        for text in [
            "ab".repeat(32),
            "AB".repeat(32),
            b64.clone(),
            b64.trim_end_matches('=').to_owned(),
            format!(" {b64}\n"),
        ] {
            assert_eq!(SecretsKey::parse(&text).unwrap().0, bytes, "{text}");
        }
        assert_eq!(SecretsKey::parse(&url).unwrap().0, [0xfbu8; 32]);
        for bad in [
            String::new(),
            "ab".repeat(31),
            "zz".repeat(32),
            base64::engine::general_purpose::STANDARD.encode([1u8; 16]),
            base64::engine::general_purpose::STANDARD.encode([1u8; 33]),
        ] {
            assert!(SecretsKey::parse(&bad).is_err(), "{bad}");
        }
        assert!(!SecretsKeyError.to_string().contains("abab"));
    }
}
