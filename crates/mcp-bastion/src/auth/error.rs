//! [`AuthError`]: why authentication failed, with the RFC 6750 challenge and
//! JSON-RPC error body it answers with.

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::challenge::Challenge;
use crate::jsonrpc::{ErrorObject, RequestId, codes, http_error};

/// Why a presented token is not accepted: the `error_description` of the
/// `invalid_token` challenge. Never carries the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidToken {
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `aud` does not name this resource.
    WrongAudience,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// The `kid` names no key in the key set.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// Not a well-formed token (bad base64, bad JSON, wrong number of parts).
    Malformed,
    /// The header's `alg` is not allowed (`none`, or not in the allowlist,
    /// or not the family of the key).
    AlgorithmNotAllowed,
    /// A claim this server requires is missing (`exp`, `aud`…).
    MissingClaim,
    /// No authenticator knows this credential (an unknown API key).
    Unrecognized,
    /// The authorization server says the token is not active or not valid.
    Rejected,
}

impl InvalidToken {
    /// The `error_description`: a fixed phrase, safe to send and to log.
    pub fn description(self) -> &'static str {
        match self {
            InvalidToken::Expired => "the token has expired",
            InvalidToken::NotYetValid => "the token is not valid yet",
            InvalidToken::WrongAudience => "the token is meant for another audience",
            InvalidToken::WrongIssuer => "the token has the wrong issuer",
            InvalidToken::UnknownKey => "the token is signed with an unknown key",
            InvalidToken::BadSignature => "the token signature is invalid",
            InvalidToken::Malformed => "the token is malformed",
            InvalidToken::AlgorithmNotAllowed => "the token algorithm is not allowed",
            InvalidToken::MissingClaim => "the token lacks a required claim",
            InvalidToken::Unrecognized => "the credential is not recognized",
            InvalidToken::Rejected => "the token was rejected by the authorization server",
        }
    }
}

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// Why a request was not authenticated or not authorized. Its
/// [`IntoResponse`] writes the status, the `WWW-Authenticate` challenge and
/// a JSON-RPC error body.
///
/// | variant | status | challenge |
/// |---|---|---|
/// | `Missing` | 401 | `Bearer resource_metadata="…"` |
/// | `InvalidToken` | 401 | `… error="invalid_token", error_description="…"` |
/// | `InvalidRequest` | 401 | `… error="invalid_request", error_description="…"` |
/// | `InsufficientScope` | 403 | `… error="insufficient_scope", scope="…"` |
/// | `Unavailable` | 503 | none: the server could not decide |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential was presented.
    #[error("authentication required")]
    Missing,
    /// A credential was presented and refused.
    #[error("invalid token: {0}")]
    InvalidToken(InvalidToken),
    /// The request carries credentials in a way this server refuses (a token
    /// in the query string when query tokens are off, several credentials,
    /// an oversized header).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Authenticated, but the scopes granted do not cover the request.
    #[error("insufficient scope: {}", .0.join(" "))]
    InsufficientScope(Vec<String>),
    /// A remote authorization service could not be reached or answered
    /// nonsense: the request is neither accepted nor refused.
    #[error("authentication service unavailable: {0}")]
    Unavailable(&'static str),
}

impl AuthError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            // invalid_request is a credential the server refuses to read (in
            // the query, or twice): a challenge, so that clients re-authenticate
            AuthError::Missing | AuthError::InvalidToken(_) | AuthError::InvalidRequest(_) => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The challenge for this error, `None` for 503.
    pub fn challenge(&self, resource_metadata: Option<&str>) -> Option<Challenge> {
        let mut c = Challenge::bearer();
        if let Some(url) = resource_metadata {
            c = c.param("resource_metadata", url);
        }
        match self {
            AuthError::Missing => {}
            AuthError::InvalidToken(why) => {
                c = c
                    .param("error", "invalid_token")
                    .param("error_description", why.description());
            }
            AuthError::InvalidRequest(why) => {
                c = c
                    .param("error", "invalid_request")
                    .param("error_description", why);
            }
            AuthError::InsufficientScope(scopes) => {
                c = c
                    .param("error", "insufficient_scope")
                    .param("scope", &scopes.join(" "))
                    .param(
                        "error_description",
                        "the request needs scopes that were not granted",
                    );
            }
            AuthError::Unavailable(_) => return None,
        }
        Some(c)
    }

    /// The response: status, challenge and JSON-RPC error body (echoing `id`).
    pub fn to_response(&self, resource_metadata: Option<&str>, id: Option<RequestId>) -> Response {
        let (code, message) = match self {
            AuthError::Unavailable(_) => (codes::INTERNAL_ERROR, self.to_string()),
            _ => (codes::UNAUTHORIZED, self.to_string()),
        };
        let mut error = ErrorObject::new(code, message);
        if let AuthError::InsufficientScope(scopes) = self {
            error = error.with_data(serde_json::json!({ "requiredScopes": scopes }));
        }
        let mut res = http_error(self.status(), id, error);
        if let Some(challenge) = self.challenge(resource_metadata)
            && let Ok(v) = HeaderValue::from_str(&challenge.to_string())
        {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if matches!(self, AuthError::Unavailable(_)) {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res
    }
}

impl AuthError {
    /// A short stable label for metrics and logs: `missing`, `expired`,
    /// `not_yet_valid`, `wrong_audience`, `wrong_issuer`, `unknown_key`,
    /// `bad_signature`, `malformed`, `algorithm_not_allowed`,
    /// `missing_claim`, `unrecognized`, `rejected`, `invalid_request`,
    /// `insufficient_scope`, `unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::InvalidToken(why) => match why {
                InvalidToken::Expired => "expired",
                InvalidToken::NotYetValid => "not_yet_valid",
                InvalidToken::WrongAudience => "wrong_audience",
                InvalidToken::WrongIssuer => "wrong_issuer",
                InvalidToken::UnknownKey => "unknown_key",
                InvalidToken::BadSignature => "bad_signature",
                InvalidToken::Malformed => "malformed",
                InvalidToken::AlgorithmNotAllowed => "algorithm_not_allowed",
                InvalidToken::MissingClaim => "missing_claim",
                InvalidToken::Unrecognized => "unrecognized",
                InvalidToken::Rejected => "rejected",
            },
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InsufficientScope(_) => "insufficient_scope",
            AuthError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<InvalidToken> for AuthError {
    fn from(why: InvalidToken) -> Self {
        AuthError::InvalidToken(why)
    }
}

/// An [`AuthError`] with the context the response needs: the
/// `resource_metadata` URL of the challenge and the request id to echo.
#[derive(Debug, Clone)]
pub struct AuthRejection {
    /// What went wrong.
    pub error: AuthError,
    /// The RFC 9728 metadata URL for the challenge.
    pub resource_metadata: Option<String>,
    /// The JSON-RPC request id, when known.
    pub id: Option<RequestId>,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        tracing::debug!(target: "mcp_bastion::auth", status = %self.error.status(), reason = %self.error, "request rejected");
        #[cfg(feature = "metrics")]
        metrics::counter!("mcp_auth_failures_total", "reason" => self.error.reason()).increment(1);
        self.error
            .to_response(self.resource_metadata.as_deref(), self.id)
    }
}
