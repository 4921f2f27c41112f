//! [`ApiKeys`]: static API keys, kept as SHA-256 digests and compared in
//! constant time.

use std::{fmt, path::Path};

use http::request::Parts;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthResult, Authenticator, Credential};
use crate::{boxed::BoxFuture, principal::Principal};

/// Static API keys, each mapped to a [`Principal`].
///
/// Only the SHA-256 digest of each key is kept; a presented key is hashed
/// and compared with every digest in constant time (no early exit), so
/// neither timing nor a memory dump gives the keys away. An unknown key is
/// `Ok(None)` (another authenticator may know it); the layer answers
/// `invalid_token` when nobody does.
///
/// ```
/// use mcp_bastion::auth::ApiKeys;
/// use mcp_bastion::principal::Principal;
///
/// let keys = ApiKeys::new()
///     .key("sk-live-123", Principal::new("alice").with_scopes(["tools:read"]));
/// assert_eq!(keys.len(), 1);
/// assert!(!format!("{keys:?}").contains("sk-live-123"));
/// ```
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], Principal)>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field(
                "subjects",
                &self
                    .keys
                    .iter()
                    .map(|(_, p)| p.subject())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One entry of an API keys file (JSON array, or TOML `[[keys]]`):
/// `{"key": "…" | "sha256": "hex…", "subject": "…", "scopes": [...], "env": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    subject: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
}

/// Why an API keys file was refused. Never contains a key.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeysError {
    /// The file could not be read.
    #[error("cannot read API keys file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JSON array of entries.
    #[error(
        "API keys file {path} is not a JSON array of {{key|sha256, subject, scopes, env}} (at line {line})"
    )]
    Parse {
        /// The path.
        path: String,
        /// Where parsing failed.
        line: usize,
    },
    /// An entry has neither or both of `key` and `sha256`, or a bad digest.
    #[error(
        "API keys file {path}: entry {index} needs exactly one of `key` or `sha256` (64 hex digits)"
    )]
    Entry {
        /// The path.
        path: String,
        /// The entry's position.
        index: usize,
    },
}

pub(crate) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl ApiKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key for `principal`. The principal's key id defaults to the
    /// first 8 hex digits of the key's digest (never the key).
    pub fn key(self, key: impl AsRef<str>, principal: Principal) -> Self {
        self.digest(digest(key.as_ref()), principal)
    }

    /// Adds a key by its SHA-256 digest.
    pub fn digest(mut self, digest: [u8; 32], principal: Principal) -> Self {
        let principal = if principal.key_id().is_none() {
            let id: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            principal.with_key_id(format!("sha256:{id}"))
        } else {
            principal
        };
        self.keys.push((digest, principal));
        self
    }

    /// Loads keys from a JSON file: an array of
    /// `{"key" | "sha256", "subject", "id"?, "scopes"?, "env"?}`.
    ///
    /// # Errors
    ///
    /// [`ApiKeysError`] when the file is unreadable or malformed; the error
    /// never quotes the file's content.
    pub fn from_file(mut self, path: impl AsRef<Path>) -> Result<Self, ApiKeysError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ApiKeysError::Read {
            path: shown.clone(),
            source,
        })?;
        let entries: Vec<KeyEntry> =
            serde_json::from_str(&text).map_err(|e| ApiKeysError::Parse {
                path: shown.clone(),
                line: e.line(),
            })?;
        for (index, e) in entries.into_iter().enumerate() {
            let bad = || ApiKeysError::Entry {
                path: shown.clone(),
                index,
            };
            let digest = match (&e.key, &e.sha256) {
                (Some(k), None) if !k.is_empty() => digest(k),
                (None, Some(hex)) => parse_hex32(hex).ok_or_else(bad)?,
                _ => return Err(bad()),
            };
            let mut p = Principal::new(e.subject)
                .with_scopes(e.scopes)
                .with_env(e.env);
            if let Some(id) = e.id {
                p = p.with_key_id(id);
            }
            self = self.digest(digest, p);
        }
        Ok(self)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The principal for a key, comparing against every digest.
    pub fn lookup(&self, key: &str) -> Option<&Principal> {
        let d = digest(key);
        let mut found = None;
        for (k, p) in &self.keys {
            if bool::from(k.ct_eq(&d)) {
                found = Some(p);
            }
        }
        found
    }
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Authenticator for ApiKeys {
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        credential: Option<&'a Credential>,
    ) -> BoxFuture<'a, AuthResult> {
        let found = self.authenticate_now(parts, credential);
        Box::pin(async move { found.unwrap_or(Ok(None)) })
    }

    fn authenticate_now(
        &self,
        _parts: &Parts,
        credential: Option<&Credential>,
    ) -> Option<AuthResult> {
        Some(Ok(credential.and_then(|c| self.lookup(c.secret()).cloned())))
    }
}
