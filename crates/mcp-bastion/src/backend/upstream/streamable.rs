//! The Streamable HTTP side of one connection (revisions 2025-03-26 to
//! 2025-11-25): every client message is one POST; answers come back as JSON
//! or as an SSE stream; server-initiated messages also come on a GET stream
//! opened after `initialize`; DELETE ends the upstream session.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use http::{HeaderValue, StatusCode};
use tokio::task::JoinSet;

use super::{
    TARGET,
    events::{
        BodyKind, EventStream, MAX_JSON_BYTES, body_kind, event_message, event_retry,
        json_messages, sse_events,
    },
    failure::UpstreamFailure,
    remote_session::{RemoteSession, SHORT_TIMEOUT, cancellation},
};
use crate::{
    jsonrpc::{ErrorObject, Message, RequestId, Response},
    protocol::HEADER_SESSION_ID,
};

/// Reconnection delay of the GET stream when the upstream names none.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// GET stream attempts in a row that deliver nothing before giving up.
const MAX_GET_FAILURES: u32 = 3;

/// What became of a message sent to a Streamable HTTP upstream.
pub(crate) enum Sent {
    /// Handled (answered, or failed with an error to the client).
    Done,
    /// The `initialize` POST got a 4xx that suggests a legacy SSE server;
    /// the message was not answered.
    Fallback {
        /// The message to hand to the legacy transport.
        message: Message,
        /// The error to answer with if the legacy transport fails too.
        failure: UpstreamFailure,
    },
}

/// One connection's Streamable HTTP state.
pub(crate) struct StreamableSession {
    shared: Arc<RemoteSession>,
    /// Whether a 4xx on `initialize` may mean a legacy server.
    may_fall_back: bool,
    initialized: bool,
}

impl StreamableSession {
    pub(crate) fn new(shared: Arc<RemoteSession>, may_fall_back: bool) -> Self {
        Self {
            shared,
            may_fall_back,
            initialized: false,
        }
    }

    /// Sends one client message. `initialize` is handled inline (the next
    /// message must carry the session id it yields); other requests run as
    /// tasks so that a long tool call does not hold up the session;
    /// notifications and responses are POSTed inline, in order.
    pub(crate) async fn send(&mut self, message: Message, tasks: &mut JoinSet<()>) -> Sent {
        match message {
            Message::Request(ref r) if r.method == "initialize" => {
                self.initialize(message, tasks).await
            }
            Message::Request(ref r) => {
                let id = r.id.clone();
                let expected = self.shared.expect(id.clone());
                let shared = Arc::clone(&self.shared);
                tasks.spawn(async move {
                    let exchange = post(&shared, &message);
                    let outcome = shared
                        .run_request(&id, expected, async { exchange.await.map(drop) })
                        .await;
                    if outcome == Err(UpstreamFailure::Timeout) {
                        notify(&shared, &cancellation(&id)).await;
                    }
                });
                Sent::Done
            }
            Message::Notification(_) | Message::Response(_) => {
                notify(&self.shared, &message).await;
                Sent::Done
            }
        }
    }

    async fn initialize(&mut self, message: Message, tasks: &mut JoinSet<()>) -> Sent {
        let Some(id) = message.id().cloned() else {
            return Sent::Done;
        };
        let _answered = self.shared.expect(id.clone());
        let fall_back = self.may_fall_back && !self.initialized;
        let mut negotiated = None;
        let exchange = async {
            let response = send_post(&self.shared, &message).await?;
            let status = response.status();
            if fall_back && status.is_client_error() && !refuses_credentials(status) {
                let failure = status_failure(response, &id).await;
                return Err(InitError::Fallback(failure));
            }
            let response = check_status(&self.shared, response, Some(&id)).await?;
            let session_id = response.headers().get(HEADER_SESSION_ID).cloned();
            let observe = |m: &Message| {
                if let Message::Response(Response {
                    id: Some(got),
                    outcome: Ok(result),
                }) = m
                    && got == &id
                {
                    negotiated = result
                        .get("protocolVersion")
                        .and_then(|v| v.as_str())
                        .and_then(|v| HeaderValue::from_str(v).ok());
                }
            };
            read_reply(&self.shared, response, Some(&id), observe).await?;
            Ok(session_id)
        };
        let outcome = match self.shared.request_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .unwrap_or(Err(InitError::Failed(UpstreamFailure::Timeout))),
            None => exchange.await,
        };
        let session_id = match outcome {
            Ok(session_id) => session_id,
            Err(InitError::Fallback(failure)) => {
                self.shared.forget(&id);
                return Sent::Fallback { message, failure };
            }
            Err(InitError::Failed(failure)) => {
                self.shared.fail(&id, &failure).await;
                return Sent::Done;
            }
        };
        if self.shared.is_pending(&id) {
            self.shared.fail(&id, &UpstreamFailure::Broken).await;
            return Sent::Done;
        }
        let Some(version) = negotiated else {
            // An error result: no session to keep.
            return Sent::Done;
        };
        self.shared.set_session_headers(|h| {
            h.session_id = session_id;
            h.protocol_version = Some(version);
        });
        self.initialized = true;
        tracing::debug!(target: TARGET, "upstream session initialized");
        tasks.spawn(listen(Arc::clone(&self.shared)));
        Sent::Done
    }

    /// Ends the upstream session with DELETE (when it has an id). 405 and
    /// 404 are fine: the server does not let clients end sessions, or has
    /// already forgotten it.
    pub(crate) async fn close(self) {
        let headers = self.shared.session_headers();
        if headers.session_id.is_none() {
            return;
        }
        let request = self.shared.outbound.delete(&headers).await.send();
        match tokio::time::timeout(SHORT_TIMEOUT, request).await {
            Ok(Ok(response)) => {
                tracing::debug!(target: TARGET, status = %response.status(), "upstream session deleted");
            }
            Ok(Err(error)) => {
                tracing::debug!(target: TARGET, error = %error.without_url(), "DELETE of the upstream session failed");
            }
            Err(_) => tracing::debug!(target: TARGET, "DELETE of the upstream session timed out"),
        }
    }
}

enum InitError {
    Fallback(UpstreamFailure),
    Failed(UpstreamFailure),
}

impl From<UpstreamFailure> for InitError {
    fn from(failure: UpstreamFailure) -> Self {
        InitError::Failed(failure)
    }
}

/// 401, 403 and 429 say the endpoint exists and refused us: no fallback.
fn refuses_credentials(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    )
}

/// POSTs `message` with the session's headers.
async fn send_post(
    shared: &RemoteSession,
    message: &Message,
) -> Result<reqwest::Response, UpstreamFailure> {
    let headers = shared.session_headers();
    let url = shared.outbound.url().clone();
    shared
        .outbound
        .post(&url, &headers, message)
        .await
        .send()
        .await
        .map_err(|e| UpstreamFailure::from_request_error(e, "upstream POST"))
}

/// POSTs a request and relays its answer. `Ok` once the body is read.
async fn post(shared: &RemoteSession, message: &Message) -> Result<(), UpstreamFailure> {
    let id = message.id().cloned();
    let response = send_post(shared, message).await?;
    let response = check_status(shared, response, id.as_ref()).await?;
    read_reply(shared, response, id.as_ref(), |_| {}).await
}

/// POSTs a notification or a response, bounded by [`SHORT_TIMEOUT`]; a
/// failure is logged (nobody waits for an answer).
async fn notify(shared: &RemoteSession, message: &Message) {
    let attempt = async {
        let response = send_post(shared, message).await?;
        check_status(shared, response, None).await.map(drop)
    };
    let outcome = tokio::time::timeout(SHORT_TIMEOUT, attempt)
        .await
        .unwrap_or(Err(UpstreamFailure::Timeout));
    if let Err(failure) = outcome {
        tracing::warn!(target: TARGET, method = message.method().unwrap_or("(response)"), %failure, "upstream did not take a message");
    }
}

/// Turns an error status into a failure. A 404 on a session means the
/// upstream forgot it: the connection ends.
async fn check_status(
    shared: &RemoteSession,
    response: reqwest::Response,
    id: Option<&RequestId>,
) -> Result<reqwest::Response, UpstreamFailure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == StatusCode::NOT_FOUND && shared.session_headers().session_id.is_some() {
        tracing::info!(target: TARGET, "the upstream session is gone (HTTP 404); ending the connection");
        shared.gone.cancel();
        return Err(UpstreamFailure::SessionGone);
    }
    Err(match id {
        Some(id) => status_failure(response, id).await,
        None => UpstreamFailure::Status(status.as_u16()),
    })
}

/// The failure for an error status: the upstream's own JSON-RPC error when
/// its body is one (for this request or for no id), else the bare status.
async fn status_failure(response: reqwest::Response, id: &RequestId) -> UpstreamFailure {
    let status = response.status().as_u16();
    tracing::debug!(target: TARGET, status, "upstream answered an error status");
    if body_kind(response.headers()) != BodyKind::Json {
        return UpstreamFailure::Status(status);
    }
    let error: Option<ErrorObject> = json_messages(response, 64 * 1024)
        .await
        .ok()
        .and_then(|messages| messages.into_iter().next())
        .and_then(|message| match message {
            Message::Response(Response {
                id: got,
                outcome: Err(error),
            }) if got.is_none() || got.as_ref() == Some(id) => Some(error),
            _ => None,
        });
    error.map_or(UpstreamFailure::Status(status), UpstreamFailure::Rejected)
}

/// Relays a successful POST's body. With `expect`, an SSE body is read until
/// that response has passed (the stream ends there anyway); a stream that
/// ends before it, after events with ids, is resumed with GET and
/// `Last-Event-ID` (2025-11-25 lets servers close a request's stream early).
/// A body that ends without the response is a broken answer unless the
/// status was 202 (the response then comes on the GET stream).
async fn read_reply(
    shared: &RemoteSession,
    response: reqwest::Response,
    expect: Option<&RequestId>,
    mut observe: impl FnMut(&Message),
) -> Result<(), UpstreamFailure> {
    let accepted = response.status() == StatusCode::ACCEPTED;
    match body_kind(response.headers()) {
        BodyKind::Json => {
            for message in json_messages(response, MAX_JSON_BYTES).await? {
                observe(&message);
                shared.relay(message).await;
            }
        }
        BodyKind::EventStream => {
            let mut cursor = Cursor::default();
            let mut events = sse_events(response);
            let mut quiet_resumptions = 0;
            loop {
                let delivered =
                    read_events(shared, &mut events, expect, &mut observe, &mut cursor).await;
                let Some(id) = expect.filter(|id| shared.is_pending(id)) else {
                    break;
                };
                quiet_resumptions = if delivered { 0 } else { quiet_resumptions + 1 };
                let Some(last) = cursor.last_event_id.clone() else {
                    break;
                };
                if quiet_resumptions > MAX_GET_FAILURES {
                    break;
                }
                tracing::debug!(target: TARGET, request = %id, "resuming a request's stream");
                tokio::time::sleep(cursor.retry).await;
                let url = shared.outbound.url().clone();
                let response = shared
                    .outbound
                    .get_stream(&url, &shared.session_headers(), Some(&last))
                    .await
                    .send()
                    .await
                    .map_err(|e| {
                        UpstreamFailure::from_request_error(e, "upstream stream resumption")
                    })?;
                let response = check_status(shared, response, None).await?;
                if body_kind(response.headers()) != BodyKind::EventStream {
                    break;
                }
                events = sse_events(response);
            }
        }
        BodyKind::Other => {}
    }
    match expect {
        Some(id) if !accepted && shared.is_pending(id) => Err(UpstreamFailure::Protocol(
            "the answer ended without the response",
        )),
        _ => Ok(()),
    }
}

/// Where a stream got to: its last event id and the reconnection delay.
struct Cursor {
    last_event_id: Option<String>,
    retry: Duration,
}

impl Default for Cursor {
    fn default() -> Self {
        Self {
            last_event_id: None,
            retry: DEFAULT_RETRY,
        }
    }
}

/// Relays a stream's messages until it ends, breaks, or (with `expect`)
/// that response has passed. Returns whether any event arrived.
async fn read_events(
    shared: &RemoteSession,
    events: &mut EventStream,
    expect: Option<&RequestId>,
    observe: &mut impl FnMut(&Message),
    cursor: &mut Cursor,
) -> bool {
    let mut delivered = false;
    while let Some(Ok(event)) = events.next().await {
        delivered = true;
        if let Some(id) = &event.id {
            cursor.last_event_id = Some(id.clone());
        }
        if let Some(delay) = event_retry(&event) {
            cursor.retry = delay;
        }
        let Some(message) = event_message(&event) else {
            continue;
        };
        observe(&message);
        shared.relay(message).await;
        if expect.is_some_and(|id| !shared.is_pending(id)) {
            break;
        }
    }
    delivered
}

/// The GET stream: server-initiated messages not tied to a request. 405
/// means the upstream offers none; a stream that ends is reopened (with
/// `Last-Event-ID`) after the upstream's `retry` delay, until it fails
/// [`MAX_GET_FAILURES`] times in a row.
async fn listen(shared: Arc<RemoteSession>) {
    let url = shared.outbound.url().clone();
    let mut cursor = Cursor::default();
    let mut failures = 0;
    loop {
        let headers = shared.session_headers();
        let request = shared
            .outbound
            .get_stream(&url, &headers, cursor.last_event_id.as_deref())
            .await
            .send();
        let mut delivered = false;
        match request.await {
            Err(error) => {
                tracing::debug!(target: TARGET, error = %error.without_url(), "upstream GET stream failed");
            }
            Ok(response) if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
                tracing::debug!(target: TARGET, "the upstream offers no GET stream (405)");
                return;
            }
            Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                tracing::info!(target: TARGET, "the upstream session is gone (GET 404); ending the connection");
                shared.gone.cancel();
                return;
            }
            Ok(response) if !response.status().is_success() => {
                tracing::debug!(target: TARGET, status = %response.status(), "upstream GET stream refused");
            }
            Ok(response) if body_kind(response.headers()) != BodyKind::EventStream => {
                tracing::debug!(target: TARGET, "upstream GET answer is not an event stream");
                return;
            }
            Ok(response) => {
                let mut events = sse_events(response);
                delivered = read_events(&shared, &mut events, None, &mut |_| {}, &mut cursor).await;
            }
        }
        failures = if delivered { 0 } else { failures + 1 };
        if failures >= MAX_GET_FAILURES {
            tracing::warn!(target: TARGET, "giving up on the upstream GET stream");
            return;
        }
        tokio::time::sleep(cursor.retry).await;
    }
}
