//! JSON-RPC 2.0 messages as MCP uses them, the error codes mcp-bastion answers
//! with, and the error bodies every layer writes.
//!
//! A [`Message`] is one JSON-RPC object: a [`Request`], a [`Notification`] or a
//! [`Response`]. Parameters and results stay [`serde_json::Value`]s: mcp-bastion
//! routes and guards messages, it does not interpret every MCP method.
//!
//! ```
//! use mcp_bastion::jsonrpc::{Message, RequestId};
//!
//! let msg = Message::from_slice(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#).unwrap();
//! let Message::Request(req) = msg else { panic!("a request") };
//! assert_eq!(req.id, RequestId::Number(7));
//! assert_eq!(req.method, "tools/list");
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The JSON-RPC error codes mcp-bastion uses. Values are stable: clients may
/// match on them.
pub mod codes {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i32 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i32 = -32602;
    /// Internal error (also: the backend failed or went away).
    pub const INTERNAL_ERROR: i32 = -32603;
    /// Authentication required or failed (paired with HTTP 401/403).
    pub const UNAUTHORIZED: i32 = -32001;
    /// The session is unknown, ended, or belongs to someone else (HTTP 404).
    pub const SESSION_NOT_FOUND: i32 = -32002;
    /// The request was rejected by a rate limit (HTTP 429); `data.retryAfterSeconds` says when to retry.
    pub const RATE_LIMITED: i32 = -32029;
    /// The backend did not answer in time.
    pub const REQUEST_TIMEOUT: i32 = -32003;
    /// Generic transport-level rejection (bad headers, wrong method...).
    pub const BAD_REQUEST: i32 = -32000;
    /// `Mcp-Method` / `Mcp-Name` headers disagree with the body (2026-07-28).
    pub const HEADER_MISMATCH: i32 = -32020;
    /// The request needs a client capability the client did not declare
    /// in `_meta` (2026-07-28, HTTP 400).
    pub const MISSING_CLIENT_CAPABILITY: i32 = -32021;
    /// The `MCP-Protocol-Version` is not supported (2026-07-28).
    pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;
}

/// A JSON-RPC request id: a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id.
    Number(i64),
    /// A string id.
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for RequestId {
    fn from(n: i64) -> Self {
        RequestId::Number(n)
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId::String(s.to_owned())
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// One of [`codes`] or a peer's own code.
    pub code: i32,
    /// A short, human-readable description. Never contains secrets.
    pub message: String,
    /// Extra structured information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error with a code and a message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorObject {}

/// A request: expects a response with the same id.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id the response must echo.
    pub id: RequestId,
    /// The method name, e.g. `tools/call`.
    pub method: String,
    /// Parameters, if any.
    pub params: Option<Value>,
}

/// A notification: no id, no response.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The method name, e.g. `notifications/progress`.
    pub method: String,
    /// Parameters, if any.
    pub params: Option<Value>,
}

/// A response to a request: a result or an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the request answered. `None` only for errors about a request
    /// whose id could not be read (JSON-RPC `"id": null`).
    pub id: Option<RequestId>,
    /// The outcome.
    pub outcome: Result<Value, ErrorObject>,
}

impl Response {
    /// A successful response.
    pub fn result(id: RequestId, result: Value) -> Self {
        Self {
            id: Some(id),
            outcome: Ok(result),
        }
    }

    /// An error response.
    pub fn error(id: Option<RequestId>, error: ErrorObject) -> Self {
        Self {
            id,
            outcome: Err(error),
        }
    }

    /// The answer to a backend's own request where no client can take it:
    /// `{}` for `ping`, `-32601` with `refusal` for any other method.
    #[cfg(any(feature = "stdio", feature = "streamable-http"))]
    pub(crate) fn ping_or_refuse(request: Request, refusal: &str) -> Self {
        if request.method == "ping" {
            Self::result(request.id, Value::Object(Map::new()))
        } else {
            Self::error(
                Some(request.id),
                ErrorObject::new(codes::METHOD_NOT_FOUND, refusal),
            )
        }
    }
}

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A response (result or error).
    Response(Response),
}

/// Why a JSON value is not a JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not JSON.
    #[error("parse error: {0}")]
    Parse(String),
    /// The JSON is not a JSON-RPC 2.0 message.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

impl MessageError {
    /// The JSON-RPC error object for this failure.
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            MessageError::Parse(_) => {
                ErrorObject::new(codes::PARSE_ERROR, "Parse error: invalid JSON")
            }
            MessageError::Invalid(why) => {
                ErrorObject::new(codes::INVALID_REQUEST, format!("Invalid request: {why}"))
            }
        }
    }
}

impl Message {
    /// Parses one message from bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, MessageError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| MessageError::Parse(e.to_string()))?;
        Self::from_value(value)
    }

    /// Interprets a JSON value as a message.
    pub fn from_value(value: Value) -> Result<Self, MessageError> {
        let Value::Object(mut obj) = value else {
            return Err(MessageError::Invalid("a message must be a JSON object"));
        };
        match obj.get("jsonrpc") {
            Some(Value::String(v)) if v == "2.0" => {}
            _ => return Err(MessageError::Invalid("\"jsonrpc\" must be \"2.0\"")),
        }
        let id = match obj.remove("id") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(n) => Some(Some(RequestId::Number(n))),
                None => {
                    return Err(MessageError::Invalid(
                        "\"id\" must be an integer or a string",
                    ));
                }
            },
            Some(Value::String(s)) => Some(Some(RequestId::String(s))),
            Some(_) => {
                return Err(MessageError::Invalid(
                    "\"id\" must be an integer or a string",
                ));
            }
        };
        let params = obj.remove("params");
        if let Some(p) = &params
            && !(p.is_object() || p.is_array())
        {
            return Err(MessageError::Invalid(
                "\"params\" must be an object or an array",
            ));
        }
        match obj.remove("method") {
            Some(Value::String(method)) => match id {
                None => Ok(Message::Notification(Notification { method, params })),
                Some(Some(id)) => Ok(Message::Request(Request { id, method, params })),
                Some(None) => Err(MessageError::Invalid("a request id must not be null")),
            },
            Some(_) => Err(MessageError::Invalid("\"method\" must be a string")),
            None => {
                let id = id.ok_or(MessageError::Invalid("a response needs an \"id\""))?;
                let result = obj.remove("result");
                let error = obj.remove("error");
                let outcome = match (result, error) {
                    (Some(r), None) => Ok(r),
                    (None, Some(e)) => Err(serde_json::from_value::<ErrorObject>(e)
                        .map_err(|_| MessageError::Invalid("malformed \"error\" object"))?),
                    _ => {
                        return Err(MessageError::Invalid(
                            "a message needs \"method\", or exactly one of \"result\" and \"error\"",
                        ));
                    }
                };
                Ok(Message::Response(Response { id, outcome }))
            }
        }
    }

    /// The message as a JSON value.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::with_capacity(4);
        obj.insert("jsonrpc".into(), Value::String("2.0".into()));
        match self {
            Message::Request(r) => {
                obj.insert("id".into(), id_value(Some(&r.id)));
                obj.insert("method".into(), Value::String(r.method.clone()));
                if let Some(p) = &r.params {
                    obj.insert("params".into(), p.clone());
                }
            }
            Message::Notification(n) => {
                obj.insert("method".into(), Value::String(n.method.clone()));
                if let Some(p) = &n.params {
                    obj.insert("params".into(), p.clone());
                }
            }
            Message::Response(r) => {
                obj.insert("id".into(), id_value(r.id.as_ref()));
                match &r.outcome {
                    Ok(v) => obj.insert("result".into(), v.clone()),
                    Err(e) => obj.insert(
                        "error".into(),
                        serde_json::to_value(e).unwrap_or(Value::Null),
                    ),
                };
            }
        }
        Value::Object(obj)
    }

    /// The message serialized as compact JSON (no trailing newline).
    pub fn to_json(&self) -> String {
        // Serializing a message cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_else(|_| self.to_value().to_string())
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(&r.method),
            Message::Notification(n) => Some(&n.method),
            Message::Response(_) => None,
        }
    }

    /// The id of a request or response.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            Message::Request(r) => Some(&r.id),
            Message::Response(r) => r.id.as_ref(),
            Message::Notification(_) => None,
        }
    }

    /// The parameters of a request or notification.
    pub fn params(&self) -> Option<&Value> {
        match self {
            Message::Request(r) => r.params.as_ref(),
            Message::Notification(n) => n.params.as_ref(),
            Message::Response(_) => None,
        }
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self, Message::Request(_))
    }
}

fn id_value(id: Option<&RequestId>) -> Value {
    match id {
        Some(RequestId::Number(n)) => Value::from(*n),
        Some(RequestId::String(s)) => Value::String(s.clone()),
        None => Value::Null,
    }
}

impl Serialize for Message {
    /// Writes the members in the order `to_value` gives them (serde_json's
    /// map sorts its keys), without building a [`Value`] first: the same
    /// bytes, no copy of the message tree.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        const VERSION: &str = "2.0";
        match self {
            Message::Request(r) => {
                let mut map =
                    serializer.serialize_map(Some(3 + usize::from(r.params.is_some())))?;
                map.serialize_entry("id", &r.id)?;
                map.serialize_entry("jsonrpc", VERSION)?;
                map.serialize_entry("method", &r.method)?;
                if let Some(p) = &r.params {
                    map.serialize_entry("params", p)?;
                }
                map.end()
            }
            Message::Notification(n) => {
                let mut map =
                    serializer.serialize_map(Some(2 + usize::from(n.params.is_some())))?;
                map.serialize_entry("jsonrpc", VERSION)?;
                map.serialize_entry("method", &n.method)?;
                if let Some(p) = &n.params {
                    map.serialize_entry("params", p)?;
                }
                map.end()
            }
            Message::Response(r) => {
                let mut map = serializer.serialize_map(Some(3))?;
                match &r.outcome {
                    Ok(v) => {
                        map.serialize_entry("id", &r.id)?;
                        map.serialize_entry("jsonrpc", VERSION)?;
                        map.serialize_entry("result", v)?;
                    }
                    Err(e) => {
                        // Through a `Value`, so the error's members are
                        // sorted as before too (errors are rare).
                        let e = serde_json::to_value(e).unwrap_or(Value::Null);
                        map.serialize_entry("error", &e)?;
                        map.serialize_entry("id", &r.id)?;
                        map.serialize_entry("jsonrpc", VERSION)?;
                    }
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Message::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// The JSON body of an error response: `{"jsonrpc":"2.0","id":…,"error":{…}}`.
pub fn error_body(id: Option<RequestId>, error: ErrorObject) -> String {
    Message::Response(Response::error(id, error)).to_json()
}

/// An HTTP response carrying a JSON-RPC error body: the shape every
/// rejection in mcp-bastion takes.
///
/// ```
/// use http::StatusCode;
/// use mcp_bastion::jsonrpc::{codes, http_error, ErrorObject};
///
/// let res = http_error(StatusCode::BAD_REQUEST, None, ErrorObject::new(codes::PARSE_ERROR, "Parse error"));
/// assert_eq!(res.status(), StatusCode::BAD_REQUEST);
/// assert_eq!(res.headers()["content-type"], "application/json");
/// ```
pub fn http_error(
    status: http::StatusCode,
    id: Option<RequestId>,
    error: ErrorObject,
) -> http::Response<axum::body::Body> {
    let mut res = http::Response::new(axum::body::Body::from(error_body(id, error)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_backend_ping_is_answered_and_its_other_requests_refused() {
        let request = |method: &str| Request {
            id: RequestId::Number(5),
            method: method.into(),
            params: None,
        };
        let pong = Response::ping_or_refuse(request("ping"), "no client here");
        assert_eq!(pong, Response::result(RequestId::Number(5), json!({})));
        let refused = Response::ping_or_refuse(request("sampling/createMessage"), "no client here");
        assert_eq!(refused.id, Some(RequestId::Number(5)));
        let error = refused.outcome.unwrap_err();
        assert_eq!(error.code, codes::METHOD_NOT_FOUND);
        assert_eq!(error.message, "no client here");
    }

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let r = Message::from_value(json!({"jsonrpc":"2.0","id":"a","method":"ping"})).unwrap();
        assert!(matches!(r, Message::Request(Request { ref method, .. }) if method == "ping"));
        let n = Message::from_value(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .unwrap();
        assert!(matches!(n, Message::Notification(_)));
        let ok = Message::from_value(json!({"jsonrpc":"2.0","id":1,"result":{}})).unwrap();
        assert!(matches!(
            ok,
            Message::Response(Response { outcome: Ok(_), .. })
        ));
        let err = Message::from_value(
            json!({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}),
        )
        .unwrap();
        assert!(
            matches!(err, Message::Response(Response { outcome: Err(ref e), .. }) if e.code == -32601)
        );
    }

    #[test]
    fn rejects_what_is_not_json_rpc() {
        assert!(matches!(
            Message::from_slice(b"{"),
            Err(MessageError::Parse(_))
        ));
        for bad in [
            json!([]),
            json!({"id":1,"method":"x"}),
            json!({"jsonrpc":"1.0","id":1,"method":"x"}),
            json!({"jsonrpc":"2.0","id":1.5,"method":"x"}),
            json!({"jsonrpc":"2.0","id":null,"method":"x"}),
            json!({"jsonrpc":"2.0","id":1,"method":7}),
            json!({"jsonrpc":"2.0","id":1,"method":"x","params":3}),
            json!({"jsonrpc":"2.0","id":1}),
            json!({"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":""}}),
        ] {
            assert!(
                matches!(
                    Message::from_value(bad.clone()),
                    Err(MessageError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn round_trips_through_json() {
        for v in [
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}),
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}),
            json!({"jsonrpc":"2.0","id":"x","result":{"a":[1,2]}}),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}),
        ] {
            let m = Message::from_value(v.clone()).unwrap();
            assert_eq!(m.to_value(), v);
        }
    }

    #[test]
    fn to_json_writes_the_bytes_of_to_value_without_building_it() {
        for v in [
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"z":1,"a":"\n\u{1}é"}}}),
            json!({"jsonrpc":"2.0","id":"x","method":"ping"}),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1.5}}),
            json!({"jsonrpc":"2.0","id":"x","result":{"a":[1,2],"b":null}}),
            json!({"jsonrpc":"2.0","id":-7,"result":{}}),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}),
            json!({"jsonrpc":"2.0","id":9,"error":{"message":"m","code":1,"data":{"y":2,"x":[3]}}}),
        ] {
            let m = Message::from_value(v.clone()).unwrap();
            assert_eq!(m.to_json(), m.to_value().to_string());
            assert_eq!(serde_json::to_value(&m).unwrap(), v);
        }
    }
}
