//! What can go wrong between the proxy and the upstream, and the JSON-RPC
//! error each failure becomes for the client.
//!
//! Client-facing messages name the kind of failure and the HTTP status, never
//! the upstream URL, headers or body text: the client need not learn the
//! proxy's internal topology. Logs carry the detail (without credentials).

use serde_json::json;

use crate::jsonrpc::{ErrorObject, codes};

/// One failed exchange with the upstream.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum UpstreamFailure {
    /// No connection could be made (refused, DNS, TLS, connect timeout).
    #[error("cannot connect to the upstream MCP server")]
    Connect,
    /// The request or its answer did not complete in time.
    #[error("the upstream MCP server did not answer in time")]
    Timeout,
    /// The upstream answered with an HTTP error status and no usable
    /// JSON-RPC error.
    #[error("the upstream MCP server answered HTTP {0}")]
    Status(u16),
    /// The upstream no longer knows the session (HTTP 404 on a session).
    #[error("the upstream MCP session ended")]
    SessionGone,
    /// The answer was not what the protocol allows.
    #[error("the upstream MCP server sent an invalid answer: {0}")]
    Protocol(&'static str),
    /// The connection broke while an answer was expected.
    #[error("the connection to the upstream MCP server broke")]
    Broken,
    /// The upstream refused the message with an HTTP error status and a
    /// JSON-RPC error body: that error is what the client gets.
    #[error("the upstream MCP server refused the request: {}", .0.message)]
    Rejected(ErrorObject),
}

impl UpstreamFailure {
    /// Classifies a `reqwest` error.
    pub(crate) fn from_reqwest(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            UpstreamFailure::Timeout
        } else if error.is_connect() {
            UpstreamFailure::Connect
        } else {
            UpstreamFailure::Broken
        }
    }

    /// Classifies a failed request and logs it (without its URL, whose query
    /// string could hold a credential).
    pub(crate) fn from_request_error(error: reqwest::Error, what: &'static str) -> Self {
        let failure = Self::from_reqwest(&error);
        tracing::debug!(target: super::TARGET, error = %error.without_url(), "{what} failed");
        failure
    }

    /// The JSON-RPC error the client receives for its request.
    ///
    /// | failure | code | `data` |
    /// |---|---|---|
    /// | connect, broken, invalid answer, session ended | `INTERNAL_ERROR` (-32603) | `{"upstream": "<kind>"}` |
    /// | HTTP error status | `INTERNAL_ERROR` (-32603) | `{"upstream": "status", "status": 503}` |
    /// | timeout | `REQUEST_TIMEOUT` (-32003) | `{"upstream": "timeout"}` |
    /// | refused with a JSON-RPC error | the upstream's own error | the upstream's |
    pub(crate) fn to_error_object(&self) -> ErrorObject {
        if let UpstreamFailure::Rejected(error) = self {
            return error.clone();
        }
        let (code, kind) = match self {
            UpstreamFailure::Connect => (codes::INTERNAL_ERROR, "connect"),
            UpstreamFailure::Timeout => (codes::REQUEST_TIMEOUT, "timeout"),
            UpstreamFailure::Status(_) => (codes::INTERNAL_ERROR, "status"),
            UpstreamFailure::SessionGone => (codes::INTERNAL_ERROR, "session_gone"),
            UpstreamFailure::Protocol(_) => (codes::INTERNAL_ERROR, "protocol"),
            UpstreamFailure::Broken | UpstreamFailure::Rejected(_) => {
                (codes::INTERNAL_ERROR, "broken")
            }
        };
        let mut data = json!({ "upstream": kind });
        if let UpstreamFailure::Status(status) = self {
            data["status"] = json!(status);
        }
        ErrorObject::new(code, format!("Upstream error: {self}")).with_data(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_is_a_json_rpc_error_that_names_its_kind() {
        let refused = UpstreamFailure::Connect.to_error_object();
        assert_eq!(refused.code, codes::INTERNAL_ERROR);
        assert_eq!(
            refused.message,
            "Upstream error: cannot connect to the upstream MCP server"
        );
        assert_eq!(refused.data, Some(json!({"upstream": "connect"})));

        let status = UpstreamFailure::Status(503).to_error_object();
        assert_eq!(
            status.data,
            Some(json!({"upstream": "status", "status": 503}))
        );
        assert!(status.message.contains("HTTP 503"));

        assert_eq!(
            UpstreamFailure::Timeout.to_error_object().code,
            codes::REQUEST_TIMEOUT
        );
    }
}
