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
//!   fails the client's request ([`missing_capability`], `-32021`, 400);
//! - a request's response stream carries only what belongs to that request
//!   ([`relayed_on_request`]): log messages only when the request opts in
//!   with `_meta` `io.modelcontextprotocol/logLevel` ([`log_threshold`], a
//!   value that is no log level is `-32602`, 400), and at or above that
//!   level; list changes and resource updates never (they go to
//!   `subscriptions/listen` streams).
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

/// The `_meta` key by which a 2026-07-28 request opts in to log messages
/// (`notifications/message`) at or above a level.
pub(crate) const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// The log levels (RFC 5424, as MCP names them), least severe first.
const LOG_LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Notifications 2026-07-28 delivers only on `subscriptions/listen` streams,
/// never on a request's response stream.
const LISTEN_ONLY: &[&str] = &[
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
    "notifications/resources/updated",
];

/// The least severe log level a request's `_meta` opts in to (an index
/// into the levels, least severe first); `None` when it does not opt in.
/// `-32602` when the value is not a log level.
pub(crate) fn log_threshold(meta: &Map<String, Value>) -> Result<Option<usize>, ErrorObject> {
    let Some(level) = meta.get(META_LOG_LEVEL) else {
        return Ok(None);
    };
    level
        .as_str()
        .and_then(|level| LOG_LEVELS.iter().position(|l| *l == level))
        .map(Some)
        .ok_or_else(|| {
            ErrorObject::new(
                codes::INVALID_PARAMS,
                format!("Invalid params: _meta.{META_LOG_LEVEL} must be a log level"),
            )
        })
}

/// Whether a notification the backend sent while serving a request goes out
/// on that request's response stream, for a request that opted in to log
/// messages from `log_threshold` up ([`log_threshold`]). A log message only
/// then, and only at or above that level (the server MUST NOT send any
/// otherwise); a list change or resource update never; anything else
/// (progress) always.
pub(crate) fn relayed_on_request(
    method: &str,
    params: Option<&Value>,
    log_threshold: Option<usize>,
) -> bool {
    if method == "notifications/message" {
        let level = params
            .and_then(|p| p.get("level"))
            .and_then(Value::as_str)
            .and_then(|level| LOG_LEVELS.iter().position(|l| *l == level));
        return matches!((level, log_threshold), (Some(level), Some(min)) if level >= min);
    }
    !LISTEN_ONLY.contains(&method)
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
    fn log_messages_go_out_only_when_the_request_opted_in_at_or_below_their_level() {
        let log = |level: &str| json!({"level": level, "data": "x"});
        let meta = |v: Value| json!({ META_LOG_LEVEL: v }).as_object().unwrap().clone();
        assert_eq!(log_threshold(&Map::new()).unwrap(), None);
        let warning = log_threshold(&meta(json!("warning"))).unwrap();
        assert!(warning.is_some());
        for bad in [json!("loud"), json!(3), json!(null)] {
            let err = log_threshold(&meta(bad)).unwrap_err();
            assert_eq!(err.code, codes::INVALID_PARAMS);
            assert_eq!(status_of(&err), StatusCode::BAD_REQUEST);
        }
        let relayed = |level: &str, threshold| {
            relayed_on_request("notifications/message", Some(&log(level)), threshold)
        };
        // no opt-in: no log message at all
        assert!(!relayed("emergency", None));
        assert!(relayed("warning", warning));
        assert!(relayed("emergency", warning));
        assert!(!relayed("info", warning));
        assert!(!relayed("debug", warning));
        assert!(!relayed_on_request("notifications/message", None, warning));
        assert!(!relayed_on_request(
            "notifications/message",
            Some(&log("loud")),
            warning
        ));
    }

    #[test]
    fn list_changes_stay_off_a_request_stream_and_progress_goes_on_it() {
        for method in LISTEN_ONLY {
            assert!(!relayed_on_request(method, None, Some(0)), "{method}");
        }
        let progress = json!({"progressToken": 1, "progress": 1});
        assert!(relayed_on_request(
            "notifications/progress",
            Some(&progress),
            None
        ));
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
