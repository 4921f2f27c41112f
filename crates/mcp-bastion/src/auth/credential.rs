//! [`Credential`]: the one secret a request presents, found in the
//! `Authorization: Bearer` header, an API-key header, or (opt-in) a query
//! parameter, before any body is read.

use std::fmt;

use http::{HeaderName, request::Parts};

use super::{AuthError, InvalidToken};

/// Query parameter names that existing MCP clients and proxies use for keys
/// and tokens. Only names enabled with
/// [`CredentialSources::query_params`] are read; the others are still
/// recognised so that a token sent there is refused instead of ignored.
pub const KNOWN_QUERY_PARAMS: &[&str] = &[
    "apiKey",
    "api_key",
    "auth_key",
    "auth",
    "access_token",
    "token",
    "key",
];

/// Why a request with a credential-like query parameter that is configured
/// neither as a credential nor as session data is refused, and the two ways
/// out.
pub const QUERY_CREDENTIAL_REFUSED: &str = "credentials in the query string are not accepted: \
     to authenticate with this parameter, enable it as a credential (--api-key-query-param NAME, \
     CredentialSources::query_params); to pass it to the backend as session data, capture it \
     (--capture-param NAME, SessionLayer::capture_param)";

/// The longest credential accepted (a big JWT is a few KiB): anything longer
/// is refused before any parsing or hashing.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

/// Where a credential came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer …`.
    Bearer,
    /// An API-key header (`X-API-Key` by default).
    Header(HeaderName),
    /// An enabled query parameter.
    Query(String),
}

/// A secret presented by the caller. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    secret: String,
    source: CredentialSource,
}

impl Credential {
    /// A credential (for tests and custom extraction).
    pub fn new(secret: impl Into<String>, source: CredentialSource) -> Self {
        Self {
            secret: secret.into(),
            source,
        }
    }

    /// The secret itself. Never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Where it came from.
    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// Whether it came from the query string.
    pub fn from_query(&self) -> Option<&str> {
        match &self.source {
            CredentialSource::Query(name) => Some(name),
            _ => None,
        }
    }

    /// Whether it has the shape of a JWS compact serialization (or claims
    /// to: `eyJ` is the base64url of `{"`).
    pub fn looks_like_jwt(&self) -> bool {
        self.secret.contains('.') || self.secret.starts_with("eyJ")
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("source", &self.source)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Which places of a request may carry a credential.
///
/// ```
/// use mcp_bastion::auth::CredentialSources;
///
/// let sources = CredentialSources::new().query_params(["auth", "apiKey"]);
/// let req = http::Request::get("/sse?auth=k3y").body(()).unwrap();
/// let (parts, ()) = req.into_parts();
/// let cred = sources.extract(&parts).unwrap().unwrap();
/// assert_eq!(cred.secret(), "k3y");
/// ```
#[derive(Debug, Clone)]
pub struct CredentialSources {
    headers: Vec<HeaderName>,
    query: Vec<String>,
    session_params: Vec<String>,
}

impl Default for CredentialSources {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialSources {
    /// `Authorization: Bearer` and `X-API-Key`; no query parameters.
    pub fn new() -> Self {
        Self {
            headers: vec![HeaderName::from_static("x-api-key")],
            query: Vec::new(),
            session_params: Vec::new(),
        }
    }

    /// Replaces the API-key headers (`Authorization: Bearer` is always read).
    pub fn headers<I: IntoIterator<Item = HeaderName>>(mut self, names: I) -> Self {
        self.headers = names.into_iter().collect();
        self
    }

    /// Enables credentials in these query parameters (for clients that cannot
    /// send headers). Off by default: URLs end up in logs and histories.
    pub fn query_params<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.query = names.into_iter().map(Into::into).collect();
        self
    }

    /// The enabled query parameter names.
    pub fn enabled_query_params(&self) -> &[String] {
        &self.query
    }

    /// Declares these query parameters session data for the backend (what a
    /// [`SessionLayer`](crate::session::SessionLayer) captures), not
    /// credentials: a request may carry them whatever their name, even one of
    /// [`KNOWN_QUERY_PARAMS`] such as `token` or `auth`. A name enabled as a
    /// credential with [`query_params`](Self::query_params) stays a
    /// credential; configure a name as one or the other (the `mcp-bastion`
    /// binary refuses both at startup).
    ///
    /// ```
    /// use mcp_bastion::auth::CredentialSources;
    ///
    /// let sources = CredentialSources::new().session_params(["token"]);
    /// let req = http::Request::get("/sse?token=ghp_x").body(()).unwrap();
    /// assert!(sources.extract(&req.into_parts().0).unwrap().is_none());
    /// ```
    pub fn session_params<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.session_params
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// The query parameters declared session data.
    pub fn declared_session_params(&self) -> &[String] {
        &self.session_params
    }

    /// Finds the request's credential: `Ok(None)` when there is none.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidRequest`] for a token in a query parameter that is
    /// not enabled, for credentials in more than one place that disagree, or
    /// for an `Authorization` header of another scheme only; and
    /// `InvalidToken(Malformed)` for a credential over
    /// [`MAX_CREDENTIAL_BYTES`] or one that is not visible ASCII.
    pub fn extract(&self, parts: &Parts) -> Result<Option<Credential>, AuthError> {
        let mut found: Option<Credential> = None;
        let mut offer = |c: Credential| -> Result<(), AuthError> {
            if c.secret.len() > MAX_CREDENTIAL_BYTES {
                return Err(InvalidToken::Malformed.into());
            }
            match &found {
                Some(prev) if prev.secret != c.secret => Err(AuthError::InvalidRequest(
                    "the request carries more than one credential",
                )),
                Some(_) => Ok(()),
                None => {
                    found = Some(c);
                    Ok(())
                }
            }
        };
        for value in parts.headers.get_all(http::header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| InvalidToken::Malformed)?;
            let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
            if scheme.eq_ignore_ascii_case("bearer") {
                let token = token.trim();
                if token.is_empty() {
                    return Err(InvalidToken::Malformed.into());
                }
                offer(Credential::new(token, CredentialSource::Bearer))?;
            }
        }
        for name in &self.headers {
            for value in parts.headers.get_all(name) {
                let value = value.to_str().map_err(|_| InvalidToken::Malformed)?.trim();
                if value.is_empty() {
                    return Err(InvalidToken::Malformed.into());
                }
                offer(Credential::new(
                    value,
                    CredentialSource::Header(name.clone()),
                ))?;
            }
        }
        if let Some(query) = parts.uri.query() {
            // Pairs are decoded in place; only a credential is copied out.
            for (name, value) in form_urlencoded::parse(query.as_bytes()) {
                if self.query.iter().any(|q| *q == name) {
                    if value.is_empty() {
                        continue;
                    }
                    if !value.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(InvalidToken::Malformed.into());
                    }
                    offer(Credential::new(
                        value.into_owned(),
                        CredentialSource::Query(name.into_owned()),
                    ))?;
                } else if KNOWN_QUERY_PARAMS.contains(&&*name)
                    && !value.is_empty()
                    && !self.session_params.iter().any(|p| *p == name)
                {
                    // most likely a configuration the operator has not
                    // finished: said where operators look, with the two ways
                    // out and the parameter's name (never its value)
                    tracing::info!(
                        target: "mcp_bastion::auth",
                        param = %name,
                        "request refused: {QUERY_CREDENTIAL_REFUSED}"
                    );
                    return Err(AuthError::InvalidRequest(QUERY_CREDENTIAL_REFUSED));
                }
            }
        }
        Ok(found)
    }
}
