//! [`SessionRejection`]: every answer the session layer gives by itself.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::jsonrpc::{ErrorObject, codes, http_error};

/// Why [`SessionLayer`](super::SessionLayer) answered a request itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The session is unknown, ended, expired, or was opened by another
    /// principal: all look the same to the client (404, `-32002`), which
    /// then initializes a new session.
    #[error("session not found")]
    NotFound,
    /// The session id is not 1..=128 visible ASCII characters (400).
    #[error("malformed session id")]
    MalformedId,
    /// The principal has as many sessions as it may (429).
    #[error("too many sessions for this principal (at most {max})")]
    TooManySessions {
        /// The configured maximum.
        max: usize,
    },
    /// The session store failed (503).
    #[error("session store unavailable")]
    StoreUnavailable,
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        let (status, error) = match &self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                ErrorObject::new(
                    codes::SESSION_NOT_FOUND,
                    "Session not found: it is unknown or has ended; initialize a new session",
                ),
            ),
            Self::MalformedId => (
                StatusCode::BAD_REQUEST,
                ErrorObject::new(codes::BAD_REQUEST, "Bad Request: malformed session id"),
            ),
            Self::TooManySessions { max } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorObject::new(
                    codes::BAD_REQUEST,
                    format!("Too many sessions: at most {max} per principal; end one first"),
                )
                .with_data(serde_json::json!({ "maxSessions": max })),
            ),
            Self::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorObject::new(codes::INTERNAL_ERROR, "Session store unavailable"),
            ),
        };
        http_error(status, None, error)
    }
}
