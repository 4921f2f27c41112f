//! [`RemoteSession`]: our session at the remote MCP server, as the tasks of
//! one backend connection share it: the way back to the client, the
//! requests still owed an answer, the remote session's headers
//! (`Mcp-Session-Id`, protocol version), and the signal that the remote side
//! is gone. (The client's session with us is the transport's
//! `TransportSession` and the session layer's record: other things.)
//!
//! Every client request is answered exactly once: by the upstream's response
//! (relayed), or by one JSON-RPC error from [`RemoteSession::fail`]. Whichever comes
//! first removes the request from the pending table; the other is dropped. A
//! request the client cancels is removed too, and its exchange stopped: the
//! client expects no answer to it.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{TARGET, failure::UpstreamFailure, outbound::Outbound, outbound::SessionHeaders};
use crate::jsonrpc::{Message, Notification, RequestId, Response};

/// How long a notification or response POST, or a DELETE, may take.
pub(crate) const SHORT_TIMEOUT: Duration = Duration::from_secs(30);

/// The state one connection's tasks share.
pub(crate) struct RemoteSession {
    pub(crate) outbound: Arc<Outbound>,
    pub(crate) request_timeout: Option<Duration>,
    /// Fired when the upstream session or stream is gone: the connection ends.
    pub(crate) gone: CancellationToken,
    to_client: mpsc::Sender<Message>,
    pending: Mutex<HashMap<RequestId, Waiter>>,
    headers: RwLock<SessionHeaders>,
}

impl RemoteSession {
    pub(crate) fn new(
        outbound: Arc<Outbound>,
        request_timeout: Option<Duration>,
        to_client: mpsc::Sender<Message>,
    ) -> Self {
        Self {
            outbound,
            request_timeout,
            gone: CancellationToken::new(),
            to_client,
            pending: Mutex::new(HashMap::new()),
            headers: RwLock::new(SessionHeaders::default()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, Waiter>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The upstream session's headers as of now.
    pub(crate) fn session_headers(&self) -> SessionHeaders {
        self.headers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Updates the upstream session's headers.
    pub(crate) fn set_session_headers(&self, f: impl FnOnce(&mut SessionHeaders)) {
        f(&mut self.headers.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Records that the client waits for an answer to `id`.
    pub(crate) fn expect(&self, id: RequestId) -> Expected {
        let (answered_tx, answered) = oneshot::channel();
        let cancelled = CancellationToken::new();
        let waiter = Waiter {
            answered: answered_tx,
            cancelled: cancelled.clone(),
        };
        self.pending().insert(id, waiter);
        Expected {
            answered,
            cancelled,
        }
    }

    /// The client cancelled `id`: stop its exchange; it gets no answer.
    pub(crate) fn cancel(&self, id: &RequestId) {
        if let Some(waiter) = self.pending().remove(id) {
            waiter.cancelled.cancel();
        }
    }

    /// Stops waiting for `id` without answering it (the message is handed
    /// to another transport).
    pub(crate) fn forget(&self, id: &RequestId) {
        self.pending().remove(id);
    }

    /// Whether `id` still waits for its answer.
    pub(crate) fn is_pending(&self, id: &RequestId) -> bool {
        self.pending().contains_key(id)
    }

    /// Sends one upstream message to the client. A response answers its
    /// pending request; a response to nothing pending (late, after a timeout
    /// error, or never asked) is dropped.
    pub(crate) async fn relay(&self, message: Message) {
        if let Message::Response(Response { id, .. }) = &message {
            let waiter = id.as_ref().and_then(|id| self.pending().remove(id));
            let Some(waiter) = waiter else {
                tracing::debug!(target: TARGET, "dropped an upstream response that answers no pending request");
                return;
            };
            let _ = self.to_client.send(message).await;
            let _ = waiter.answered.send(());
            return;
        }
        let _ = self.to_client.send(message).await;
    }

    /// Answers `id` with the error for `failure`, unless it has been
    /// answered already.
    pub(crate) async fn fail(&self, id: &RequestId, failure: &UpstreamFailure) {
        if self.pending().remove(id).is_none() {
            return;
        }
        tracing::debug!(target: TARGET, request = %id, %failure, "answering a request with an upstream error");
        let error = Response::error(Some(id.clone()), failure.to_error_object());
        let _ = self.to_client.send(Message::Response(error)).await;
    }

    /// Runs one client request to its answer: `exchange` sends it and relays
    /// what comes back; then, if the response has not passed by yet (it may
    /// come on another stream), waits for it. The whole is bounded by the
    /// request timeout. On failure the client gets an error for `id`, and
    /// the failure is returned (a timeout is then cancelled upstream by the
    /// caller). A request the client cancels ends at once, unanswered.
    pub(crate) async fn run_request(
        &self,
        id: &RequestId,
        expected: Expected,
        exchange: impl Future<Output = Result<(), UpstreamFailure>>,
    ) -> Result<(), UpstreamFailure> {
        let Expected {
            answered,
            cancelled,
        } = expected;
        let work = async {
            exchange.await?;
            answered.await.map_err(|_| UpstreamFailure::Broken)
        };
        let bounded = async {
            match self.request_timeout {
                Some(limit) => tokio::time::timeout(limit, work)
                    .await
                    .unwrap_or(Err(UpstreamFailure::Timeout)),
                None => work.await,
            }
        };
        let outcome = tokio::select! {
            () = cancelled.cancelled() => {
                tracing::debug!(target: TARGET, request = %id, "cancelled by the client");
                return Ok(());
            }
            outcome = bounded => outcome,
        };
        if let Err(failure) = &outcome {
            self.fail(id, failure).await;
        }
        outcome
    }
}

/// What [`RemoteSession::fail`] and [`RemoteSession::relay`] signal to a pending request.
struct Waiter {
    answered: oneshot::Sender<()>,
    cancelled: CancellationToken,
}

/// The waiting side of a pending request, for [`RemoteSession::run_request`].
pub(crate) struct Expected {
    answered: oneshot::Receiver<()>,
    cancelled: CancellationToken,
}

/// The request a client's `notifications/cancelled` names.
pub(crate) fn cancelled_request(message: &Message) -> Option<RequestId> {
    let Message::Notification(n) = message else {
        return None;
    };
    if n.method != "notifications/cancelled" {
        return None;
    }
    serde_json::from_value(n.params.as_ref()?.get("requestId")?.clone()).ok()
}

/// The `notifications/cancelled` sent upstream for a request that timed out.
pub(crate) fn cancellation(id: &RequestId) -> Message {
    let request_id = match id {
        RequestId::Number(n) => serde_json::Value::from(*n),
        RequestId::String(s) => serde_json::Value::from(s.clone()),
    };
    Message::Notification(Notification {
        method: "notifications/cancelled".into(),
        params: Some(serde_json::json!({ "requestId": request_id, "reason": "timeout" })),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::jsonrpc::codes;
    use serde_json::json;

    fn shared(timeout: Option<Duration>) -> (RemoteSession, mpsc::Receiver<Message>) {
        let outbound = Outbound::new(
            reqwest::Url::parse("http://127.0.0.1:1/mcp").unwrap(),
            http::HeaderMap::new(),
            Duration::from_secs(1),
            Default::default(),
        )
        .unwrap();
        let (tx, rx) = mpsc::channel(8);
        (RemoteSession::new(Arc::new(outbound), timeout, tx), rx)
    }

    fn result(id: i64) -> Message {
        Message::Response(Response::result(RequestId::Number(id), json!({})))
    }

    #[tokio::test]
    async fn each_request_is_answered_once_and_late_responses_are_dropped() {
        let (shared, mut rx) = shared(None);
        let id = RequestId::Number(1);
        let expected = shared.expect(id.clone());
        shared.fail(&id, &UpstreamFailure::Connect).await;
        shared.relay(result(1)).await;
        shared.fail(&id, &UpstreamFailure::Broken).await;
        let Message::Response(Response { outcome, .. }) = rx.recv().await.unwrap() else {
            panic!("an answer");
        };
        assert_eq!(
            outcome.unwrap_err().data,
            Some(json!({"upstream": "connect"}))
        );
        assert!(rx.try_recv().is_err(), "exactly one answer");
        assert!(
            expected.answered.await.is_err(),
            "the waiter learns it was failed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_outlives_its_timeout_gets_request_timeout() {
        let (shared, mut rx) = shared(Some(Duration::from_secs(5)));
        let id = RequestId::from("slow");
        let answered = shared.expect(id.clone());
        let outcome = shared.run_request(&id, answered, async { Ok(()) }).await;
        assert_eq!(outcome, Err(UpstreamFailure::Timeout));
        let Message::Response(Response { outcome, id: got }) = rx.recv().await.unwrap() else {
            panic!("an answer");
        };
        assert_eq!(got, Some(id.clone()));
        assert_eq!(outcome.unwrap_err().code, codes::REQUEST_TIMEOUT);
        assert_eq!(
            cancellation(&id).params().unwrap()["requestId"],
            json!("slow")
        );
    }

    #[tokio::test]
    async fn a_request_the_client_cancels_ends_unanswered() {
        let (shared, mut rx) = shared(Some(Duration::from_secs(5)));
        let id = RequestId::Number(4);
        let expected = shared.expect(id.clone());
        let cancel = Message::Notification(Notification {
            method: "notifications/cancelled".into(),
            params: Some(json!({"requestId": 4, "reason": "user"})),
        });
        assert_eq!(cancelled_request(&cancel), Some(id.clone()));
        let run = shared.run_request(&id, expected, std::future::pending());
        shared.cancel(&id);
        assert_eq!(run.await, Ok(()));
        shared.relay(result(4)).await;
        assert!(rx.try_recv().is_err(), "no answer to a cancelled request");
    }

    #[tokio::test]
    async fn a_relayed_response_completes_the_request() {
        let (shared, mut rx) = shared(Some(Duration::from_secs(5)));
        let id = RequestId::Number(2);
        let expected = shared.expect(id.clone());
        let outcome = shared
            .run_request(&id, expected, async {
                shared.relay(result(2)).await;
                Ok(())
            })
            .await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(rx.recv().await.unwrap().id(), Some(&id));
        assert!(!shared.is_pending(&id));
    }
}
