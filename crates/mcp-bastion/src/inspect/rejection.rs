use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::jsonrpc::{ErrorObject, MessageError, RequestId, codes, http_error};

/// Why [`McpInspect`](super::McpInspect) refused a request. Each variant
/// answers with its own status and a JSON-RPC error body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InspectRejection {
    /// POST body without `Content-Type: application/json` (415).
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// Body over the configured limit (413).
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body could not be read (400).
    #[error("failed to read the request body")]
    BodyRead,
    /// The body is not JSON, or not JSON-RPC (400).
    #[error("{0}")]
    Message(MessageError),
    /// An empty batch, or a batch where the revision forbids batches (400).
    #[error("{0}")]
    InvalidBatch(&'static str),
    /// `MCP-Protocol-Version` names a revision mcp-bastion does not speak (400).
    #[error("unsupported MCP-Protocol-Version")]
    UnsupportedProtocolVersion {
        /// The revision the header named (echoed in the error's `data`).
        requested: String,
        /// Whether the body is a sessionless (2026-07-28-style) request, one
        /// that carries its version in `_meta`: the error then lists the
        /// sessionless revisions, else the handshake ones.
        sessionless: bool,
        /// The request id, when the body had one.
        id: Option<RequestId>,
    },
    /// `Mcp-Method` or `Mcp-Name` disagrees with the body (400).
    #[error("{header} header does not match the request body")]
    HeaderMismatch {
        /// The header that disagrees.
        header: &'static str,
        /// The request id, when the body had one.
        id: Option<RequestId>,
    },
}

impl InspectRejection {
    /// The HTTP status of this rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            InspectRejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InspectRejection::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON-RPC error object of this rejection.
    pub fn error_object(&self) -> ErrorObject {
        match self {
            InspectRejection::Message(e) => e.to_error_object(),
            InspectRejection::UnsupportedProtocolVersion {
                requested,
                sessionless,
                ..
            } => crate::protocol::unsupported_version_error(
                requested,
                &crate::protocol::versions_for_era(*sessionless),
            ),
            InspectRejection::HeaderMismatch { header, .. } => ErrorObject::new(
                codes::HEADER_MISMATCH,
                format!("{header} header does not match the request body"),
            ),
            other => ErrorObject::new(codes::INVALID_REQUEST, other.to_string()),
        }
    }

    fn id(&self) -> Option<RequestId> {
        match self {
            InspectRejection::HeaderMismatch { id, .. }
            | InspectRejection::UnsupportedProtocolVersion { id, .. } => id.clone(),
            _ => None,
        }
    }
}

impl IntoResponse for InspectRejection {
    fn into_response(self) -> Response {
        tracing::debug!(target: "mcp_bastion::inspect", status = %self.status(), reason = %self, "request rejected");
        http_error(self.status(), self.id(), self.error_object())
    }
}
