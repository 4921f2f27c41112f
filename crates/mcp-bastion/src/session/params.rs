//! [`SessionParams`]: what a session captured when it opened, and its axum
//! extractor.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::Arc,
};

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::{StatusCode, request::Parts};

use crate::jsonrpc::{ErrorObject, codes, http_error};

/// Words that make a parameter name sensitive even when it was not declared
/// so: a name containing one of them (ignoring ASCII case) is redacted. Err on
/// the side of hiding: `api_key`, `github_token`, `auth` all match.
pub const SENSITIVE_NAME_WORDS: &[&str] = &[
    "auth",
    "token",
    "secret",
    "password",
    "passwd",
    "key",
    "credential",
    "cookie",
    "signature",
];

/// The parameters a session captured on the request that opened it
/// (allowlisted query parameters and mapped headers), available on every
/// later request of that session.
///
/// [`SessionLayer`](super::SessionLayer) inserts it into the request
/// extensions. Handlers take it as an extractor; rmcp tools read it from the
/// `http::request::Parts` extension:
///
/// ```
/// use axum::{Router, routing::get};
/// use mcp_bastion::session::SessionParams;
///
/// async fn service(params: SessionParams) -> String {
///     params.get_or("service", "default").to_owned()
/// }
/// let app: Router = Router::new().route("/svc", get(service));
/// ```
///
/// `Debug` prints sensitive values (declared sensitive, or whose name
/// contains one of [`SENSITIVE_NAME_WORDS`]) as `<redacted>`:
///
/// ```
/// use mcp_bastion::session::SessionParams;
///
/// let p = SessionParams::new([("service", "billing"), ("auth", "k-123")]);
/// assert_eq!(p.get("service"), Some("billing"));
/// assert_eq!(p.get_or("region", "eu"), "eu");
/// let shown = format!("{p:?}");
/// assert!(shown.contains("billing") && !shown.contains("k-123"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SessionParams {
    /// Shared: every message of a session carries a copy of its extensions
    /// to an in-process backend, and a copy is then a reference count.
    values: Arc<BTreeMap<String, String>>,
    sensitive: Arc<BTreeSet<String>>,
}

impl SessionParams {
    /// Parameters with these values; none declared sensitive beyond the
    /// built-in [`SENSITIVE_NAME_WORDS`].
    pub fn new<I, K, V>(values: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            values: Arc::new(
                values
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            sensitive: Arc::default(),
        }
    }

    pub(crate) fn from_parts(
        values: Arc<BTreeMap<String, String>>,
        sensitive: Arc<BTreeSet<String>>,
    ) -> Self {
        Self { values, sensitive }
    }

    /// Declares more names sensitive (compared ignoring ASCII case).
    pub fn with_sensitive<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set = Arc::make_mut(&mut self.sensitive);
        set.extend(names.into_iter().map(|n| n.as_ref().to_ascii_lowercase()));
        self
    }

    /// The value of a captured parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of a captured parameter, or `default`.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// Every captured parameter, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many parameters were captured.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether `name`'s value must never be logged.
    pub fn is_sensitive(&self, name: &str) -> bool {
        is_sensitive_name(name, &self.sensitive)
    }
}

/// Sensitive: declared (lowercased in `declared`) or containing a word of
/// [`SENSITIVE_NAME_WORDS`].
pub(crate) fn is_sensitive_name(name: &str, declared: &BTreeSet<String>) -> bool {
    let lower = name.to_ascii_lowercase();
    declared.contains(&lower) || SENSITIVE_NAME_WORDS.iter().any(|w| lower.contains(w))
}

impl fmt::Debug for SessionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in self.values.iter() {
            if self.is_sensitive(k) {
                map.entry(k, &"<redacted>");
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

/// The rejection of the [`SessionParams`] extractor: no
/// [`SessionLayer`](super::SessionLayer) ran before the handler, a server
/// configuration error (500).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MissingSessionParams;

impl fmt::Display for MissingSessionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no SessionParams in the request: mount SessionLayer before this handler")
    }
}

impl std::error::Error for MissingSessionParams {}

impl IntoResponse for MissingSessionParams {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            ErrorObject::new(codes::INTERNAL_ERROR, "sessions are not configured"),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionParams {
    type Rejection = MissingSessionParams;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SessionParams>()
            .cloned()
            .ok_or(MissingSessionParams)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for SessionParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<SessionParams>().cloned())
    }
}
