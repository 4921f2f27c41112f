//! Multi-round-trip input (revision 2026-07-28, SEP-2322) for handshake-era
//! backends.
//!
//! A 2025-era backend asks its client for input with requests of its own
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`) while it
//! serves a call. A 2026-07-28 client has no channel for them: instead, the
//! answer to its `tools/call`, `prompts/get` or `resources/read` is an
//! `InputRequiredResult`
//!
//! ```json
//! {"resultType": "input_required",
//!  "inputRequests": {"elicitation/create": {"method": "elicitation/create", "params": {}}},
//!  "requestState": "a.<base64url>"}
//! ```
//!
//! and the client retries the same method with the same params plus
//! `inputResponses` (`{"elicitation/create": <ElicitResult>}`) and the
//! `requestState` it got. Between the two, the backend connection stays open
//! with the call pending: it is *parked* here, in a table bounded in size and
//! in time ([`InputBridge`]), under a random handle. The retry takes it out,
//! answers the backend's pending request with the client's result, and is
//! relayed from then on like a fresh request (the backend may ask again).
//!
//! `requestState` is opaque to the client and checked here ([`StateCodec`]):
//! the replica's route key and `.` (so that nginx routes the retry to the
//! replica that holds the call, as it routes session ids), then base64url of
//! a version byte, an expiry, the handle and a digest of the principal,
//! followed by an HMAC-SHA256 over the route key and those bytes. A token
//! that is malformed, tampered with, expired, minted for another principal,
//! or whose call is no longer parked is refused with `-32602` and `400`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::Link;
use crate::{
    jsonrpc::{self, ErrorObject, RequestId, codes},
    principal::Principal,
};

type HmacSha256 = Hmac<Sha256>;

/// The client methods whose result may be an `InputRequiredResult`.
pub(crate) const INPUT_METHODS: &[&str] = &["tools/call", "prompts/get", "resources/read"];

/// The backend requests that become an `inputRequests` entry (when the
/// client declared the capability each needs).
pub(crate) const INPUT_REQUESTS: &[&str] =
    &["elicitation/create", "sampling/createMessage", "roots/list"];

/// How long a parked call waits for the client's retry by default.
pub const DEFAULT_PENDING_INPUT_TTL: Duration = Duration::from_secs(300);

/// How many calls may wait for their client's input at once by default.
pub const DEFAULT_MAX_PENDING_INPUTS: usize = 1024;

const VERSION: u8 = 1;
const HANDLE_LEN: usize = 16;
const DIGEST_LEN: usize = 16;
const TAG_LEN: usize = 32;
const BODY_LEN: usize = 1 + 8 + HANDLE_LEN + DIGEST_LEN;

/// The handle a parked call is kept under.
pub(crate) type Handle = [u8; HANDLE_LEN];

/// A principal as a `requestState` binds it: a keyed digest of its subject
/// (or of "anonymous").
pub(crate) type PrincipalDigest = [u8; DIGEST_LEN];

/// Why a `requestState` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateError {
    /// Not a token this gateway mints (bad shape, bad base64, bad version).
    Malformed,
    /// The integrity tag does not match: changed, or minted under another key.
    Tampered,
    /// Past its expiry.
    Expired,
    /// Minted for another principal.
    OtherPrincipal,
    /// Well formed and valid, but its call is no longer parked here (taken
    /// by an earlier retry, expired from the table, or another replica's).
    Unknown,
}

impl StateError {
    fn reason(self) -> &'static str {
        match self {
            StateError::Malformed => "requestState is malformed",
            StateError::Tampered => "requestState failed its integrity check",
            StateError::Expired => "requestState has expired",
            StateError::OtherPrincipal => "requestState belongs to another principal",
            StateError::Unknown => "requestState names no pending call on this server",
        }
    }

    /// The `-32602` (Invalid params) error the client gets.
    pub(crate) fn to_error(self) -> ErrorObject {
        ErrorObject::new(
            codes::INVALID_PARAMS,
            format!("Invalid params: {}", self.reason()),
        )
        .with_data(json!({ "reason": "invalid_request_state" }))
    }
}

/// Mints and checks `requestState` tokens under one HMAC-SHA256 key.
#[derive(Clone)]
pub(crate) struct StateCodec {
    key: [u8; 32],
}

/// What a `requestState` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claims {
    pub(crate) handle: Handle,
    pub(crate) principal: PrincipalDigest,
    /// Seconds since the Unix epoch.
    pub(crate) expires: u64,
}

impl StateCodec {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// A codec under a random key held only by this process.
    pub(crate) fn random() -> Self {
        Self::new(rand::random())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail
        <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// The digest a token binds for `principal` (`None`: anonymous).
    pub(crate) fn principal_digest(&self, principal: Option<&Principal>) -> PrincipalDigest {
        let mut mac = self.mac();
        match principal {
            Some(p) => {
                mac.update(b"mcp-bastion/request-state/principal:");
                mac.update(p.subject().as_bytes());
            }
            None => mac.update(b"mcp-bastion/request-state/anonymous"),
        }
        let mut out = [0u8; DIGEST_LEN];
        out.copy_from_slice(&mac.finalize().into_bytes()[..DIGEST_LEN]);
        out
    }

    fn tag(&self, route_key: &str, body: &[u8]) -> hmac::digest::Output<HmacSha256> {
        let mut mac = self.mac();
        mac.update(route_key.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes()
    }

    /// `<route key>.<base64url(body ‖ tag)>`, or without the route key and
    /// its dot when there is none.
    pub(crate) fn seal(&self, route_key: Option<&str>, claims: &Claims) -> String {
        let mut raw = Vec::with_capacity(BODY_LEN + TAG_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&claims.expires.to_be_bytes());
        raw.extend_from_slice(&claims.handle);
        raw.extend_from_slice(&claims.principal);
        let tag = self.tag(route_key.unwrap_or(""), &raw);
        raw.extend_from_slice(&tag);
        let encoded = URL_SAFE_NO_PAD.encode(raw);
        match route_key {
            Some(key) => format!("{key}.{encoded}"),
            None => encoded,
        }
    }

    /// Checks `token` for `principal` at `now` (seconds since the Unix
    /// epoch) and returns its claims.
    pub(crate) fn open(
        &self,
        token: &str,
        principal: &PrincipalDigest,
        now: u64,
    ) -> Result<Claims, StateError> {
        let (route_key, encoded) = token.rsplit_once('.').unwrap_or(("", token));
        let raw = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| StateError::Malformed)?;
        if raw.len() != BODY_LEN + TAG_LEN || raw[0] != VERSION {
            return Err(StateError::Malformed);
        }
        let (body, tag) = raw.split_at(BODY_LEN);
        let mut mac = self.mac();
        mac.update(route_key.as_bytes());
        mac.update(b".");
        mac.update(body);
        // constant-time comparison
        mac.verify_slice(tag).map_err(|_| StateError::Tampered)?;
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&body[1..9]);
        let mut handle = [0u8; HANDLE_LEN];
        handle.copy_from_slice(&body[9..9 + HANDLE_LEN]);
        let mut bound = [0u8; DIGEST_LEN];
        bound.copy_from_slice(&body[9 + HANDLE_LEN..]);
        let claims = Claims {
            handle,
            principal: bound,
            expires: u64::from_be_bytes(expires),
        };
        if now >= claims.expires {
            return Err(StateError::Expired);
        }
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&bound[..], &principal[..])) {
            return Err(StateError::OtherPrincipal);
        }
        Ok(claims)
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The call a 2026-07-28 request made on a backend link.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The id the backend knows the call by (the first request's id).
    pub(crate) backend_id: RequestId,
    /// The id of the client request being answered now (the latest retry).
    pub(crate) client_id: RequestId,
    pub(crate) method: String,
    /// `name` (tools, prompts) or `uri` (resources) of the call.
    pub(crate) target: Option<String>,
    pub(crate) principal: PrincipalDigest,
}

impl Call {
    /// Whether the client's method can receive an `InputRequiredResult`.
    pub(crate) fn takes_input(&self) -> bool {
        INPUT_METHODS.contains(&self.method.as_str())
    }
}

/// The `name` or `uri` a request of `method` names.
pub(crate) fn target_of(method: &str, params: Option<&Value>) -> Option<String> {
    let field = if method == "resources/read" {
        "uri"
    } else {
        "name"
    };
    params?.get(field)?.as_str().map(str::to_owned)
}

/// A call waiting for its client's input.
struct Parked {
    link: Link,
    call: Call,
    /// The backend's own request waiting for the client's result.
    pending: RequestId,
    /// The `inputRequests` / `inputResponses` key of that request.
    key: String,
}

/// The parked calls of one transport, and the codec of their tokens.
pub(crate) struct InputBridge {
    codec: StateCodec,
    ttl: Duration,
    capacity: usize,
    parked: Mutex<HashMap<Handle, Parked>>,
}

impl std::fmt::Debug for InputBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputBridge")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("parked", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for InputBridge {
    fn default() -> Self {
        Self::new(
            StateCodec::random(),
            DEFAULT_PENDING_INPUT_TTL,
            DEFAULT_MAX_PENDING_INPUTS,
        )
    }
}

/// A resumed call: its link, with the backend's pending request answered.
pub(crate) struct Resumed {
    pub(crate) link: Link,
    pub(crate) call: Call,
}

impl InputBridge {
    pub(crate) fn new(codec: StateCodec, ttl: Duration, capacity: usize) -> Self {
        Self {
            codec,
            ttl,
            capacity,
            parked: Mutex::new(HashMap::new()),
        }
    }

    /// The same settings with another TTL (and an empty table).
    pub(crate) fn with_ttl(&self, ttl: Duration) -> Self {
        Self::new(self.codec.clone(), ttl, self.capacity)
    }

    /// The same settings with another capacity (and an empty table).
    pub(crate) fn with_capacity(&self, capacity: usize) -> Self {
        Self::new(self.codec.clone(), self.ttl, capacity)
    }

    /// The same settings with another key (and an empty table).
    pub(crate) fn with_key(&self, key: [u8; 32]) -> Self {
        Self::new(StateCodec::new(key), self.ttl, self.capacity)
    }

    /// The principal digest tokens bind for `principal`.
    pub(crate) fn principal_digest(&self, principal: Option<&Principal>) -> PrincipalDigest {
        self.codec.principal_digest(principal)
    }

    /// Number of parked calls.
    pub(crate) fn len(&self) -> usize {
        self.table().len()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Handle, Parked>> {
        // a panic while holding the lock leaves the map consistent
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Parks `link` with `call` pending on the backend's `request`, and
    /// returns the client's answer: an `InputRequiredResult` whose
    /// `requestState` names it, or an error when the table is full.
    pub(crate) async fn park(
        self: &Arc<Self>,
        route_key: Option<&str>,
        mut link: Link,
        call: Call,
        request: jsonrpc::Request,
    ) -> jsonrpc::Response {
        let handle: Handle = rand::random();
        let key = request.method.clone();
        let mut input = Map::new();
        input.insert("method".into(), Value::String(request.method.clone()));
        if let Some(params) = request.params {
            input.insert("params".into(), params);
        }
        let claims = Claims {
            handle,
            principal: call.principal,
            expires: unix_now().saturating_add(self.ttl.as_secs().max(1)),
        };
        let state = self.codec.seal(route_key, &claims);
        let client_id = call.client_id.clone();
        link.suspend();
        let refused = {
            let mut table = self.table();
            if table.len() >= self.capacity {
                Some(link)
            } else {
                table.insert(
                    handle,
                    Parked {
                        link,
                        call,
                        pending: request.id.clone(),
                        key: key.clone(),
                    },
                );
                None
            }
        };
        if let Some(mut link) = refused {
            tracing::warn!(target: super::TARGET, capacity = self.capacity, "too many calls wait for client input: refusing one");
            let _ = link
                .send(jsonrpc::Message::Response(jsonrpc::Response::error(
                    Some(request.id),
                    ErrorObject::new(codes::INTERNAL_ERROR, "client input unavailable"),
                )))
                .await;
            return jsonrpc::Response::error(
                Some(client_id),
                ErrorObject::new(
                    codes::INTERNAL_ERROR,
                    "Too many calls are waiting for client input; retry later",
                ),
            );
        }
        self.expire_later(handle);
        tracing::debug!(target: super::TARGET, method = %key, "backend call parked for client input");
        let mut requests = Map::new();
        requests.insert(key, Value::Object(input));
        jsonrpc::Response::result(
            client_id,
            json!({
                "resultType": "input_required",
                "inputRequests": requests,
                "requestState": state,
            }),
        )
    }

    fn expire_later(self: &Arc<Self>, handle: Handle) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let ttl = self.ttl;
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            if let Some(bridge) = weak.upgrade() {
                let expired = bridge.table().remove(&handle);
                if expired.is_some() {
                    tracing::debug!(target: super::TARGET, "a parked call expired: its backend connection closes");
                }
                drop(expired);
            }
        });
    }

    /// Takes the call a retry's `params` name out of the table, answers the
    /// backend's pending request with the client's input response, and
    /// returns it for relaying with the retry's `client_id`.
    pub(crate) async fn resume(
        &self,
        method: &str,
        params: &Value,
        principal: &PrincipalDigest,
        client_id: RequestId,
    ) -> Result<Resumed, ErrorObject> {
        let token = params
            .get("requestState")
            .and_then(Value::as_str)
            .ok_or_else(|| StateError::Malformed.to_error())?;
        let claims = self
            .codec
            .open(token, principal, unix_now())
            .map_err(StateError::to_error)?;
        let target = target_of(method, Some(params));
        let responses = params.get("inputResponses").and_then(Value::as_object);
        let (parked, answer) = {
            let mut table = self.table();
            let Some(parked) = table.get(&claims.handle) else {
                return Err(StateError::Unknown.to_error());
            };
            if parked.call.method != method || parked.call.target != target {
                return Err(ErrorObject::new(
                    codes::INVALID_PARAMS,
                    "Invalid params: requestState belongs to another request (method, name or uri differ)",
                )
                .with_data(json!({ "reason": "invalid_request_state" })));
            }
            let Some(answer) = responses.and_then(|r| r.get(&parked.key)).cloned() else {
                return Err(ErrorObject::new(
                    codes::INVALID_PARAMS,
                    format!(
                        "Invalid params: inputResponses must answer {:?}",
                        parked.key
                    ),
                ));
            };
            match table.remove(&claims.handle) {
                Some(parked) => (parked, answer),
                None => return Err(StateError::Unknown.to_error()),
            }
        };
        let Parked {
            mut link,
            mut call,
            pending,
            ..
        } = parked;
        let answer = match answer {
            Value::Object(mut result) => {
                // a 2026-07-28 marker the handshake-era backend does not know
                result.remove("resultType");
                Value::Object(result)
            }
            other => other,
        };
        // the call goes on inside the retry: a backend call span of the retry
        link.trace_resumed(&call, Some(params));
        if link
            .send(jsonrpc::Message::Response(jsonrpc::Response::result(
                pending, answer,
            )))
            .await
            .is_err()
        {
            return Err(ErrorObject::new(
                codes::INTERNAL_ERROR,
                "MCP backend closed",
            ));
        }
        call.client_id = client_id;
        Ok(Resumed { link, call })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(codec: &StateCodec, subject: Option<&str>, expires: u64) -> Claims {
        let principal = subject.map(Principal::new);
        Claims {
            handle: [7; HANDLE_LEN],
            principal: codec.principal_digest(principal.as_ref()),
            expires,
        }
    }

    #[test]
    fn a_request_state_round_trips_and_starts_with_the_route_key() {
        let codec = StateCodec::random();
        let c = claims(&codec, Some("alice"), 1_000);
        let token = codec.seal(Some("a"), &c);
        assert!(token.starts_with("a."), "{token}");
        assert!(!token[2..].contains('.'), "{token}");
        assert_eq!(codec.open(&token, &c.principal, 999), Ok(c));
        // without a route key: no prefix, still valid
        let bare = codec.seal(None, &c);
        assert!(!bare.contains('.'), "{bare}");
        assert_eq!(codec.open(&bare, &c.principal, 10), Ok(c));
        // anonymous has its own digest
        let anon = claims(&codec, None, 1_000);
        assert_ne!(anon.principal, c.principal);
        let token = codec.seal(Some("b"), &anon);
        assert_eq!(codec.open(&token, &anon.principal, 10), Ok(anon));
    }

    #[test]
    fn a_tampered_request_state_is_refused() {
        let codec = StateCodec::random();
        let c = claims(&codec, Some("alice"), 1_000);
        let token = codec.seal(Some("a"), &c);
        // every single-character change of the payload
        let (prefix, payload) = token.split_at(2);
        for i in 0..payload.len() {
            let mut bytes = payload.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = format!("{prefix}{}", String::from_utf8(bytes).unwrap());
            let err = codec.open(&changed, &c.principal, 10).unwrap_err();
            assert!(
                matches!(err, StateError::Tampered | StateError::Malformed),
                "{changed}: {err:?}"
            );
        }
        // another route key (the tag covers it)
        let moved = format!("b{}", &token[1..]);
        assert_eq!(
            codec.open(&moved, &c.principal, 10),
            Err(StateError::Tampered)
        );
        // another process's key
        let other = StateCodec::random();
        assert_eq!(
            other.open(&token, &c.principal, 10),
            Err(StateError::Tampered)
        );
        // garbage
        for junk in ["", ".", "a.", "a.!!!", "a.AAAA", "x.y.z"] {
            assert!(codec.open(junk, &c.principal, 10).is_err(), "{junk}");
        }
    }

    #[test]
    fn an_expired_request_state_is_refused() {
        let codec = StateCodec::random();
        let c = claims(&codec, Some("alice"), 1_000);
        let token = codec.seal(Some("a"), &c);
        assert_eq!(
            codec.open(&token, &c.principal, 1_000),
            Err(StateError::Expired)
        );
        assert_eq!(
            codec.open(&token, &c.principal, 5_000),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn a_request_state_of_another_principal_is_refused() {
        let codec = StateCodec::random();
        let c = claims(&codec, Some("alice"), 1_000);
        let token = codec.seal(Some("a"), &c);
        let bob = codec.principal_digest(Some(&Principal::new("bob")));
        assert_eq!(
            codec.open(&token, &bob, 10),
            Err(StateError::OtherPrincipal)
        );
        let anonymous = codec.principal_digest(None);
        assert_eq!(
            codec.open(&token, &anonymous, 10),
            Err(StateError::OtherPrincipal)
        );
    }

    /// A parked link over a fake backend: the bridge, the backend's ends of the
    /// connection, the sessions that count requests in flight, and the
    /// client's `InputRequiredResult`.
    async fn parked_call(
        bridge: &Arc<InputBridge>,
    ) -> (
        tokio::sync::mpsc::Receiver<jsonrpc::Message>,
        tokio::sync::mpsc::Sender<jsonrpc::Message>,
        Arc<crate::transport::session_table::TransportSessions>,
        jsonrpc::Response,
    ) {
        let (to_backend, from_client) = tokio::sync::mpsc::channel(8);
        let (to_client, from_backend) = tokio::sync::mpsc::channel(8);
        let conn = crate::backend::Connection::new(
            to_backend,
            from_backend,
            tokio_util::sync::CancellationToken::new(),
        );
        let sessions = Arc::new(crate::transport::session_table::TransportSessions::new(
            None,
        ));
        let link = Link::new(
            crate::transport::stateless::Pooled::detached(conn),
            Some(sessions.track_request()),
            Map::new(),
        );
        let call = Call {
            backend_id: RequestId::Number(1),
            client_id: RequestId::Number(1),
            method: "tools/call".into(),
            target: Some("ask".into()),
            principal: bridge.principal_digest(None),
        };
        let request = jsonrpc::Request {
            id: RequestId::Number(77),
            method: "elicitation/create".into(),
            params: Some(json!({"message": "name?", "requestedSchema": {"type": "object"}})),
        };
        let answer = bridge.park(Some("a"), link, call, request).await;
        (from_client, to_client, sessions, answer)
    }

    #[tokio::test]
    async fn a_parked_call_is_resumed_once_by_its_retry() {
        let bridge = Arc::new(InputBridge::default());
        let (mut from_client, _to_client, sessions, answer) = parked_call(&bridge).await;
        let result = answer.outcome.unwrap();
        assert_eq!(result["resultType"], "input_required");
        assert_eq!(
            result["inputRequests"]["elicitation/create"]["params"]["message"],
            "name?"
        );
        let state = result["requestState"].as_str().unwrap().to_owned();
        assert!(state.starts_with("a."), "{state}");
        assert_eq!(bridge.len(), 1);
        // a parked call is not a request in flight (a shutdown does not wait for it)
        assert_eq!(sessions.in_flight(), 0);

        let anonymous = bridge.principal_digest(None);
        let retry = |name: &str, responses: Value| json!({"name": name, "requestState": state, "inputResponses": responses});
        let accept = json!({"elicitation/create": {"action": "accept", "content": {"n": 1}, "resultType": "complete"}});
        let refusal = async |params: Value, principal: &PrincipalDigest, id: i64| {
            bridge
                .resume("tools/call", &params, principal, RequestId::Number(id))
                .await
                .err()
                .unwrap()
        };
        // another tool, or no answer for the request: refused, still parked
        let err = refusal(retry("other", accept.clone()), &anonymous, 2).await;
        assert_eq!(err.code, codes::INVALID_PARAMS);
        let err = refusal(retry("ask", json!({})), &anonymous, 2).await;
        assert_eq!(err.code, codes::INVALID_PARAMS);
        // another principal: refused
        let bob = bridge.principal_digest(Some(&Principal::new("bob")));
        let err = refusal(retry("ask", accept.clone()), &bob, 2).await;
        assert_eq!(err.code, codes::INVALID_PARAMS);
        assert_eq!(bridge.len(), 1);

        let resumed = bridge
            .resume(
                "tools/call",
                &retry("ask", accept.clone()),
                &anonymous,
                RequestId::Number(2),
            )
            .await
            .ok()
            .unwrap();
        assert_eq!(resumed.call.client_id, RequestId::Number(2));
        assert_eq!(resumed.call.backend_id, RequestId::Number(1));
        assert_eq!(bridge.len(), 0);
        // the backend got the client's result for its own request, without the 2026 marker
        let jsonrpc::Message::Response(sent) = from_client.recv().await.unwrap() else {
            panic!("the backend got no response");
        };
        assert_eq!(sent.id, Some(RequestId::Number(77)));
        assert_eq!(
            sent.outcome.unwrap(),
            json!({"action": "accept", "content": {"n": 1}})
        );
        // once only
        let err = refusal(retry("ask", accept), &anonymous, 3).await;
        assert_eq!(err.message, StateError::Unknown.to_error().message);
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_call_expires_and_its_backend_connection_closes() {
        let bridge = Arc::new(InputBridge::default().with_ttl(Duration::from_secs(60)));
        let (_from_client, to_client, _sessions, _answer) = parked_call(&bridge).await;
        assert_eq!(bridge.len(), 1);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(bridge.len(), 0);
        // the link was dropped: its connection is closed for the backend
        to_client.closed().await;
    }

    #[tokio::test]
    async fn a_full_table_refuses_to_park() {
        let bridge = Arc::new(InputBridge::default().with_capacity(1));
        let (_a, _a_tx, _s, first) = parked_call(&bridge).await;
        assert!(first.outcome.is_ok());
        let (mut from_client, _b_tx, _s2, second) = parked_call(&bridge).await;
        assert_eq!(second.outcome.unwrap_err().code, codes::INTERNAL_ERROR);
        assert_eq!(bridge.len(), 1);
        // the backend's request got an error
        let jsonrpc::Message::Response(sent) = from_client.recv().await.unwrap() else {
            panic!("the backend got no response");
        };
        assert!(sent.outcome.is_err());
    }

    #[test]
    fn refusals_are_invalid_params() {
        for err in [
            StateError::Malformed,
            StateError::Tampered,
            StateError::Expired,
            StateError::OtherPrincipal,
            StateError::Unknown,
        ] {
            let obj = err.to_error();
            assert_eq!(obj.code, codes::INVALID_PARAMS);
            assert_eq!(
                super::super::rules::status_of(&obj),
                http::StatusCode::BAD_REQUEST
            );
        }
    }
}
