//! The legacy HTTP+SSE side of one connection (2024-11-05): GET the
//! configured URL for the event stream, whose first `endpoint` event names
//! where to POST; every answer comes as a `message` event on that one
//! stream. When the stream ends, the connection ends.

use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::Url;
use tokio::task::JoinSet;

use super::{
    TARGET,
    events::{BodyKind, EventStream, body_kind, event_message, sse_events},
    failure::UpstreamFailure,
    outbound::{SessionHeaders, redacted, same_origin},
    remote_session::{RemoteSession, SHORT_TIMEOUT, cancellation},
};
use crate::jsonrpc::Message;

/// One connection's legacy SSE state: unopened until the first message.
pub(crate) struct LegacySession {
    shared: Arc<RemoteSession>,
    endpoint: Option<Arc<Url>>,
}

impl LegacySession {
    pub(crate) fn new(shared: Arc<RemoteSession>) -> Self {
        Self {
            shared,
            endpoint: None,
        }
    }

    /// Whether the stream is open.
    pub(crate) fn is_open(&self) -> bool {
        self.endpoint.is_some()
    }

    /// Sends one client message, opening the stream first if need be. When
    /// the stream cannot be opened, a request is answered with `failure`
    /// (the error that made the caller try this transport) or, without one,
    /// with why the stream failed.
    pub(crate) async fn send(
        &mut self,
        message: Message,
        tasks: &mut JoinSet<()>,
        failure: Option<UpstreamFailure>,
    ) {
        let endpoint = match &self.endpoint {
            Some(endpoint) => Arc::clone(endpoint),
            None => match self.open(tasks).await {
                Ok(endpoint) => {
                    tracing::debug!(target: TARGET, endpoint = %redacted(&endpoint), "upstream legacy SSE stream open");
                    let endpoint = Arc::new(endpoint);
                    self.endpoint = Some(Arc::clone(&endpoint));
                    endpoint
                }
                Err(why) => {
                    tracing::warn!(target: TARGET, failure = %why, "cannot open the upstream SSE stream");
                    if let Some(id) = message.id().filter(|_| message.is_request()) {
                        self.shared.expect(id.clone());
                        self.shared.fail(id, &failure.unwrap_or(why)).await;
                    }
                    return;
                }
            },
        };
        match message {
            Message::Request(ref r) => {
                let id = r.id.clone();
                let expected = self.shared.expect(id.clone());
                let shared = Arc::clone(&self.shared);
                tasks.spawn(async move {
                    let exchange = post(&shared, &endpoint, &message);
                    let outcome = shared.run_request(&id, expected, exchange).await;
                    if outcome == Err(UpstreamFailure::Timeout) {
                        notify(&shared, &endpoint, &cancellation(&id)).await;
                    }
                });
            }
            Message::Notification(_) | Message::Response(_) => {
                notify(&self.shared, &endpoint, &message).await;
            }
        }
    }

    /// GETs the stream, waits for its `endpoint` event, and starts the task
    /// that relays its `message` events.
    async fn open(&self, tasks: &mut JoinSet<()>) -> Result<Url, UpstreamFailure> {
        let outbound = &self.shared.outbound;
        let url = outbound.url().clone();
        let limit = self.shared.request_timeout.unwrap_or(SHORT_TIMEOUT);
        let opening = async {
            let response = outbound
                .get_stream(&url, &SessionHeaders::default(), None)
                .await
                .send()
                .await
                .map_err(|e| UpstreamFailure::from_request_error(e, "upstream SSE GET"))?;
            if !response.status().is_success() {
                return Err(UpstreamFailure::Status(response.status().as_u16()));
            }
            if body_kind(response.headers()) != BodyKind::EventStream {
                return Err(UpstreamFailure::Protocol(
                    "the SSE URL did not answer with an event stream",
                ));
            }
            let mut events = sse_events(response);
            let endpoint = endpoint_event(&mut events).await?;
            Ok((endpoint, events))
        };
        let (endpoint, events) = tokio::time::timeout(limit, opening)
            .await
            .unwrap_or(Err(UpstreamFailure::Timeout))?;
        let endpoint = url
            .join(endpoint.trim())
            .map_err(|_| UpstreamFailure::Protocol("an endpoint event that is not a URI"))?;
        if !same_origin(&url, &endpoint) {
            // The operator's credentials go to the configured origin only.
            return Err(UpstreamFailure::Protocol("an endpoint on another origin"));
        }
        tasks.spawn(relay_stream(Arc::clone(&self.shared), events));
        Ok(endpoint)
    }
}

/// The data of the first `endpoint` event.
async fn endpoint_event(events: &mut EventStream) -> Result<String, UpstreamFailure> {
    while let Some(event) = events.next().await {
        let event = event?;
        if event.event.as_deref() == Some("endpoint")
            && let Some(data) = event.data
        {
            return Ok(data);
        }
    }
    Err(UpstreamFailure::Protocol(
        "the stream ended before its endpoint event",
    ))
}

/// Relays the stream's messages; its end is the end of the connection.
async fn relay_stream(shared: Arc<RemoteSession>, mut events: EventStream) {
    while let Some(Ok(event)) = events.next().await {
        if let Some(message) = event_message(&event) {
            shared.relay(message).await;
        }
    }
    tracing::info!(target: TARGET, "the upstream SSE stream ended; ending the connection");
    shared.gone.cancel();
}

/// POSTs one message to the endpoint; any 2xx is success (the answer comes
/// on the stream).
async fn post(
    shared: &RemoteSession,
    endpoint: &Url,
    message: &Message,
) -> Result<(), UpstreamFailure> {
    let response = shared
        .outbound
        .post(endpoint, &SessionHeaders::default(), message)
        .await
        .send()
        .await
        .map_err(|e| UpstreamFailure::from_request_error(e, "upstream POST"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        tracing::debug!(target: TARGET, %status, "upstream refused a message");
        Err(UpstreamFailure::Status(status.as_u16()))
    }
}

/// POSTs a notification or a response, bounded; failures are logged.
async fn notify(shared: &RemoteSession, endpoint: &Url, message: &Message) {
    let outcome = tokio::time::timeout(SHORT_TIMEOUT, post(shared, endpoint, message))
        .await
        .unwrap_or(Err(UpstreamFailure::Timeout));
    if let Err(failure) = outcome {
        tracing::warn!(target: TARGET, method = message.method().unwrap_or("(response)"), %failure, "upstream did not take a message");
    }
}
