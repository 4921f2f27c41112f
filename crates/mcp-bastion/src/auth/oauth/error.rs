//! The errors of the authorization server: configuration errors, the JSON
//! errors of the token, registration and revocation endpoints (RFC 6749
//! §5.2), and the pages shown when an error cannot safely be redirected.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::page;

/// A configuration that cannot make an authorization server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthConfigError {
    /// The issuer is missing or not an absolute http(s) URL without query
    /// or fragment.
    #[error("the OAuth issuer must be an absolute https URL without query or fragment")]
    Issuer,
    /// The resource is missing or not an absolute http(s) URL.
    #[error("the OAuth resource must be an absolute URL (this server's MCP endpoint)")]
    Resource,
    /// No upstream identity provider.
    #[error("the OAuth server needs an upstream identity provider")]
    NoUpstream,
    /// Nobody may log in: no allowed subject, email domain, group, GitHub
    /// organisation or team, and not `allow_any_user`.
    #[error(
        "no user may log in: allow subjects, email domains, groups, GitHub organisations or teams, or any user explicitly"
    )]
    NoUsersAllowed,
    /// The signing key is not a P-256 private key.
    #[error("the signing key is not a P-256 private key in PEM (PKCS#8 or SEC1)")]
    SigningKey,
    /// The signing key file cannot be read or written.
    #[error("the signing key file cannot be read or written: {0}")]
    SigningKeyFile(std::io::ErrorKind),
    /// A redirect URI (of a static client or the allowlist) is not a URL.
    #[error("a redirect URI is not an absolute URL: {0}")]
    RedirectUri(String),
    /// GitHub organisations or teams are allowed, but the upstream is not
    /// GitHub.
    #[error("GitHub organisation or team allowlists need the GitHub upstream")]
    GitHubOnly,
    /// A GitHub team that is not `org/team-slug`.
    #[error("a GitHub team must be written org/team-slug: {0}")]
    GitHubTeam(String),
    /// The HTTP client for the upstream or CIMD fetches could not be built
    /// (a root certificate that is not PEM, say).
    #[error("the HTTP client could not be built (is every root certificate PEM?)")]
    HttpClient,
    /// A shared store (Redis) without a secrets key: a key generated per
    /// process could not open the upstream tokens another replica sealed.
    #[error(
        "a shared OAuth store needs a secrets key for the upstream tokens (--oauth-secrets-key-env)"
    )]
    SecretsKeyRequired,
}

/// A token, registration or revocation error: status and RFC 6749 JSON.
#[derive(Debug, Clone)]
pub(crate) struct EndpointError {
    status: StatusCode,
    code: &'static str,
    description: &'static str,
}

impl EndpointError {
    pub(crate) fn new(code: &'static str, description: &'static str) -> Self {
        let status = match code {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code,
            description,
        }
    }

    pub(crate) fn invalid_grant(description: &'static str) -> Self {
        Self::new("invalid_grant", description)
    }

    pub(crate) fn invalid_request(description: &'static str) -> Self {
        Self::new("invalid_request", description)
    }

    pub(crate) fn unavailable() -> Self {
        Self::new("temporarily_unavailable", "the store is unavailable")
    }
}

impl IntoResponse for EndpointError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(json!({"error": self.code, "error_description": self.description})),
        )
            .into_response();
        no_store(&mut res);
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="oauth""#),
            );
        }
        res
    }
}

/// An error shown to the user as a page: never a redirect, because the
/// client or its redirect URI is not trusted (or the user was refused).
#[derive(Debug, Clone)]
pub(crate) struct ErrorPage {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: &'static str,
}

impl ErrorPage {
    pub(crate) fn bad_request(title: &'static str, detail: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title,
            detail,
        }
    }

    pub(crate) fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Temporarily unavailable",
            detail: "The authorization server cannot reach its store or the identity provider. Try again later.",
        }
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        page::render(self.status, self.title, &page::paragraph(self.detail))
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(res: &mut Response) {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}
