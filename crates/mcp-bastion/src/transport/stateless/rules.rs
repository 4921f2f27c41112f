//! The request rules of revision 2026-07-28 that the bridge enforces before
//! (or while) it forwards a sessionless request to a handshake-era backend.
//!
//! Each rule lives here once, returns the JSON-RPC error it answers with,
//! and says its HTTP status through [`status_of`]:
//!
//! - every request carries `_meta` with the protocol version and the client
//!   capabilities ([`required_meta`], `-32602`, 400);
//! - methods removed in 2026-07-28 are not found ([`removed_method`],
//!   `-32601`, 404), and so is a method the backend does not know;
//! - a backend request that needs a capability the client did not declare
//!   fails the client's request ([`missing_capability`], `-32021`, 400).
//!
//! The unsupported-version error, which the inspect layer and the transport
//! both answer, is [`unsupported_version_error`](crate::protocol::unsupported_version_error).

use http::StatusCode;
use serde_json::{Map, Value};

use crate::{
    jsonrpc::{ErrorObject, codes},
    protocol::{META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION},
};

/// Methods of the handshake revisions that 2026-07-28 removed: a sessionless
/// client that sends one gets `404` with `-32601`.
pub(crate) const REMOVED_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// The `_meta` every 2026-07-28 request must carry: its protocol version and
/// the capabilities the client declares (an object, possibly empty).
/// `-32602` (Invalid params) when either is missing.
pub(crate) fn required_meta(params: Option<&Value>) -> Result<&Map<String, Value>, ErrorObject> {
    let invalid = |what: &str| {
        ErrorObject::new(
            codes::INVALID_PARAMS,
            format!("Invalid params: a 2026-07-28 request must carry {what}"),
        )
    };
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("_meta"))?;
    if !meta
        .get(META_PROTOCOL_VERSION)
        .is_some_and(Value::is_string)
    {
        return Err(invalid(&format!("_meta.{META_PROTOCOL_VERSION}")));
    }
    if !meta
        .get(META_CLIENT_CAPABILITIES)
        .is_some_and(Value::is_object)
    {
        return Err(invalid(&format!("_meta.{META_CLIENT_CAPABILITIES}")));
    }
    Ok(meta)
}

/// `-32601` for a method 2026-07-28 removed, `None` for any other.
pub(crate) fn removed_method(method: &str) -> Option<ErrorObject> {
    REMOVED_METHODS.contains(&method).then(|| {
        ErrorObject::new(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method} was removed in revision 2026-07-28"),
        )
    })
}

/// The client capabilities a backend's own requests need: the only ones of
/// a 2026-07-28 request's `_meta` the backend is initialized with.
pub(crate) const BACKEND_CAPABILITIES: &[&str] = &["elicitation", "sampling", "roots"];

/// The client capability a backend's own request needs: sampling,
/// elicitation or roots. `None` for requests that need none (ping).
pub(crate) fn capability_needed_by(backend_method: &str) -> Option<&'static str> {
    match backend_method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// `-32021` when the backend, serving the client's request, sends a request
/// that needs a capability the client's `_meta` did not declare.
pub(crate) fn missing_capability(
    declared: &Map<String, Value>,
    backend_method: &str,
) -> Option<ErrorObject> {
    let needed = capability_needed_by(backend_method)?;
    (!declared.contains_key(needed)).then(|| {
        ErrorObject::new(
            codes::MISSING_CLIENT_CAPABILITY,
            format!("Missing required client capability: {needed}"),
        )
        .with_data(serde_json::json!({ "requiredCapabilities": { needed: {} } }))
    })
}

/// The HTTP status of a refusal by the rules above: 404 for a method not
/// found, 400 for the others.
pub(crate) fn status_of(error: &ErrorObject) -> StatusCode {
    match error.code {
        codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The HTTP status of an error response that came from the backend (or
/// from [`missing_capability`] while forwarding) before the reply started
/// streaming: 404 for a method the backend does not know, 400 for a missing
/// client capability, 200 for every other error, which belongs to the
/// request's own processing (a tool's invalid arguments, a resource not
/// found) and is answered as before.
pub(crate) fn status_of_response_error(error: &ErrorObject) -> StatusCode {
    match error.code {
        codes::METHOD_NOT_FOUND | codes::MISSING_CLIENT_CAPABILITY => status_of(error),
        _ => StatusCode::OK,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_request_without_meta_is_invalid_params() {
        for params in [
            None,
            Some(json!({})),
            Some(json!({"_meta": {META_CLIENT_CAPABILITIES: {}}})),
            Some(json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}})),
        ] {
            let err = required_meta(params.as_ref()).unwrap_err();
            assert_eq!(err.code, codes::INVALID_PARAMS, "{params:?}");
            assert_eq!(status_of(&err), StatusCode::BAD_REQUEST);
        }
        let ok =
            json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}}});
        assert!(required_meta(Some(&ok)).is_ok());
    }

    #[test]
    fn removed_methods_are_not_found() {
        for method in REMOVED_METHODS {
            let err = removed_method(method).unwrap();
            assert_eq!(err.code, codes::METHOD_NOT_FOUND);
            assert_eq!(status_of(&err), StatusCode::NOT_FOUND);
        }
        assert!(removed_method("tools/call").is_none());
        assert!(removed_method("server/discover").is_none());
    }

    #[test]
    fn a_backend_request_needing_an_undeclared_capability_is_missing_capability() {
        let declared = json!({"sampling": {}});
        let declared = declared.as_object().unwrap();
        let err = missing_capability(declared, "elicitation/create").unwrap();
        assert_eq!(err.code, codes::MISSING_CLIENT_CAPABILITY);
        assert_eq!(status_of(&err), StatusCode::BAD_REQUEST);
        assert!(missing_capability(declared, "roots/list").is_some());
        assert!(missing_capability(declared, "sampling/createMessage").is_none());
        assert!(missing_capability(declared, "ping").is_none());
    }

    #[test]
    fn an_unknown_method_is_404_and_other_backend_errors_keep_200() {
        let not_found = ErrorObject::new(codes::METHOD_NOT_FOUND, "Method not found");
        assert_eq!(status_of_response_error(&not_found), StatusCode::NOT_FOUND);
        let tool_error = ErrorObject::new(codes::INVALID_PARAMS, "bad arguments");
        assert_eq!(status_of_response_error(&tool_error), StatusCode::OK);
        let internal = ErrorObject::new(codes::INTERNAL_ERROR, "MCP backend closed");
        assert_eq!(status_of_response_error(&internal), StatusCode::OK);
    }
}
