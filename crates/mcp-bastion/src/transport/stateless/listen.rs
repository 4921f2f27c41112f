//! `subscriptions/listen` (2026-07-28, SEP-2575) bridged to a handshake-era
//! backend.
//!
//! A 2026-07-28 client has no GET stream: it POSTs `subscriptions/listen`
//! with the notifications it wants (`toolsListChanged`,
//! `promptsListChanged`, `resourcesListChanged`, `resourceSubscriptions`),
//! and the response stream is the subscription. The bridge serves it over a
//! dedicated backend connection (never pooled: it lives as long as the
//! stream):
//!
//! 1. connect and `initialize` the backend, as for any sessionless request;
//! 2. send `resources/subscribe` for each requested URI, when the backend
//!    declares `resources.subscribe`;
//! 3. answer with an SSE stream whose first event is
//!    `notifications/subscriptions/acknowledged`, carrying the honored
//!    subset of the request: a list-change kind only when the backend
//!    declares `listChanged` for it, the URIs the backend accepted;
//! 4. relay the backend's notifications of the honored kinds (and
//!    `notifications/resources/updated` of honored URIs only), each with
//!    the subscription id (the listen request's JSON-RPC id) in
//!    `_meta["io.modelcontextprotocol/subscriptionId"]`, as the ack;
//! 5. when the client closes the stream, close the backend connection (a
//!    per-session child exits). When the backend goes away the stream ends
//!    without a result (the client re-listens); when the gateway shuts down
//!    it ends gracefully with the `SubscriptionsListenResult`.
//!
//! Each stream counts against the pool's limits
//! ([`Pool::listen_slot`]); over them the request gets `429` with
//! `-32603` ("Subscription limit reached").

use std::{collections::BTreeSet, sync::Arc};

use axum::response::Response;
use bytes::Bytes;
use http::{StatusCode, request::Parts};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{
    Call, End, Link, LinkError, META_CLIENT_CAPABILITIES, TARGET, backend_context, event,
    pool::{Pool, PoolKey, Pooled},
};
use crate::{
    backend::Backend,
    jsonrpc::{self, ErrorObject, Message, Notification, RequestId, codes, http_error},
    transport::{config::TransportConfig, sse_codec::SseBody},
};

/// The `_meta` key every frame of a listen stream carries.
pub(crate) const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
const ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
const RESOURCE_UPDATED: &str = "notifications/resources/updated";

/// The list-change kinds: the filter's flag, the capability that declares
/// it, and its notification.
const LIST_CHANGES: &[(&str, &str, &str)] = &[
    (
        "toolsListChanged",
        "tools",
        "notifications/tools/list_changed",
    ),
    (
        "promptsListChanged",
        "prompts",
        "notifications/prompts/list_changed",
    ),
    (
        "resourcesListChanged",
        "resources",
        "notifications/resources/list_changed",
    ),
];

/// What a listen stream relays.
#[derive(Debug, Default, PartialEq)]
struct Honored {
    /// Notification methods of the honored list-change kinds.
    list_changes: BTreeSet<&'static str>,
    /// Filter flags of the honored kinds (for the ack).
    flags: Vec<&'static str>,
    /// Resource URIs the backend accepted a subscription to.
    uris: BTreeSet<String>,
}

impl Honored {
    /// The acknowledged filter.
    fn filter(&self) -> Value {
        let mut filter = Map::new();
        for flag in &self.flags {
            filter.insert((*flag).to_owned(), Value::Bool(true));
        }
        if !self.uris.is_empty() {
            filter.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(filter)
    }

    /// Whether `n` is within the honored filter.
    fn admits(&self, n: &Notification) -> bool {
        if n.method == RESOURCE_UPDATED {
            return n
                .params
                .as_ref()
                .and_then(|p| p.get("uri"))
                .and_then(Value::as_str)
                .is_some_and(|uri| self.uris.contains(uri));
        }
        self.list_changes.contains(n.method.as_str())
    }
}

/// The list-change kinds requested in `filter` that the backend's
/// `capabilities` declare.
fn honored_list_changes(filter: &Map<String, Value>, capabilities: &Value) -> Honored {
    let mut honored = Honored::default();
    for (flag, capability, method) in LIST_CHANGES {
        let requested = filter.get(*flag).and_then(Value::as_bool) == Some(true);
        let declared = capabilities
            .get(*capability)
            .and_then(|c| c.get("listChanged"))
            .and_then(Value::as_bool)
            == Some(true);
        if requested && declared {
            honored.flags.push(flag);
            honored.list_changes.insert(method);
        }
    }
    honored
}

/// Tags a notification with the subscription id.
fn tagged(mut n: Notification, subscription: &Value) -> Notification {
    let mut params = match n.params.take() {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert(META_SUBSCRIPTION_ID.into(), subscription.clone());
    }
    n.params = Some(Value::Object(params));
    n
}

fn id_value(id: &RequestId) -> Value {
    serde_json::to_value(id).unwrap_or(Value::Null)
}

/// Serves one `subscriptions/listen` request (the 2026-07-28 rules already
/// checked).
pub(super) async fn serve<B: Backend>(
    backend: &B,
    pool: &Arc<Pool>,
    config: &TransportConfig,
    parts: Parts,
    request: jsonrpc::Request,
    meta: Map<String, Value>,
) -> Response {
    let id = request.id;
    let Some(filter) = request
        .params
        .as_ref()
        .and_then(|p| p.get("notifications"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return http_error(
            StatusCode::BAD_REQUEST,
            Some(id),
            ErrorObject::new(
                codes::INVALID_PARAMS,
                "Invalid params: subscriptions/listen needs a notifications filter object",
            ),
        );
    };
    let declared = meta
        .get(META_CLIENT_CAPABILITIES)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let client_info = meta
        .get(super::META_CLIENT_INFO)
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({ "name": "mcp-client", "version": "0" }));
    let key = PoolKey::of(&parts.extensions, &declared);
    let Some(slot) = pool.listen_slot(key) else {
        return http_error(
            StatusCode::TOO_MANY_REQUESTS,
            Some(id),
            ErrorObject::new(codes::INTERNAL_ERROR, "Subscription limit reached"),
        );
    };
    let conn = match backend.connect(backend_context(parts.extensions)).await {
        Ok(conn) => conn,
        Err(e) => return LinkError::Unavailable(e).with_id(id),
    };
    let mut link = Link::new(Pooled::detached(conn), None, declared);
    let init = match link.initialize(client_info).await {
        Ok(init) => init,
        Err(e) => return e.with_id(id),
    };
    let capabilities = init.get("capabilities").cloned().unwrap_or(Value::Null);
    let mut honored = honored_list_changes(&filter, &capabilities);
    let subscribable = capabilities
        .get("resources")
        .and_then(|r| r.get("subscribe"))
        .and_then(Value::as_bool)
        == Some(true);
    let requested_uris = filter
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
        .map(|uris| uris.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    if subscribable {
        for (n, uri) in requested_uris.into_iter().enumerate() {
            let sub_id = RequestId::String(format!("mcp-bastion/subscribe/{n}"));
            let subscribe = Message::Request(jsonrpc::Request {
                id: sub_id.clone(),
                method: "resources/subscribe".into(),
                params: Some(json!({ "uri": uri })),
            });
            if link.send(subscribe).await.is_err() {
                return LinkError::Closed.with_id(id);
            }
            let call = Call {
                backend_id: sub_id.clone(),
                client_id: sub_id,
                method: "resources/subscribe".into(),
                target: None,
                principal: Default::default(),
            };
            match link.until_end(&call, None).await {
                Some(End::Response(r)) if r.outcome.is_ok() => {
                    honored.uris.insert(uri.to_owned());
                }
                Some(_) => {
                    tracing::debug!(target: TARGET, "backend refused a resource subscription of a listen stream");
                }
                None => return LinkError::Closed.with_id(id),
            }
        }
    }

    let subscription = id_value(&id);
    let ack = Notification {
        method: ACKNOWLEDGED.into(),
        params: Some(json!({
            "notifications": honored.filter(),
            "_meta": { META_SUBSCRIPTION_ID: subscription },
        })),
    };
    let (tx, rx) = mpsc::channel(64);
    let closing = pool.closing();
    tokio::spawn(async move {
        let _slot = slot;
        relay(link, &honored, &subscription, &tx, &closing).await;
    });
    tracing::debug!(target: TARGET, "subscriptions/listen stream opened");
    SseBody::new(
        [event(&Message::Notification(ack))].into(),
        rx,
        config.keepalive,
        None,
    )
    .into_response()
}

/// Relays the backend's notifications the stream honors until the client
/// closes it (or the backend, or the gateway); dropping `link` at the end
/// closes the backend connection.
async fn relay(
    mut link: Link,
    honored: &Honored,
    subscription: &Value,
    tx: &mpsc::Sender<Bytes>,
    closing: &tokio_util::sync::CancellationToken,
) {
    loop {
        let next = tokio::select! {
            m = link.conn.incoming.recv() => m,
            () = tx.closed() => {
                tracing::debug!(target: TARGET, "client closed a subscriptions/listen stream");
                return;
            }
            () = closing.cancelled() => {
                // graceful end: the result, tagged like every frame
                let result = json!({ "_meta": { META_SUBSCRIPTION_ID: subscription }, "resultType": "complete" });
                let id = serde_json::from_value(subscription.clone()).unwrap_or(RequestId::Number(0));
                let _ = tx.send(event(&Message::Response(jsonrpc::Response::result(id, result)))).await;
                return;
            }
        };
        let Some(message) = next else {
            tracing::debug!(target: TARGET, "backend closed under a subscriptions/listen stream");
            return;
        };
        match message {
            Message::Notification(n) if honored.admits(&n) => {
                let n = tagged(n, subscription);
                if tx.send(event(&Message::Notification(n))).await.is_err() {
                    return;
                }
            }
            Message::Request(r) => {
                let answer = jsonrpc::Response::ping_or_refuse(
                    r,
                    "a subscriptions/listen stream cannot carry server requests",
                );
                if link.send(Message::Response(answer)).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn only_requested_kinds_the_backend_declares_are_honored() {
        let filter = map(json!({
            "toolsListChanged": true,
            "promptsListChanged": true,
            "resourcesListChanged": false,
        }));
        let caps = json!({
            "tools": {"listChanged": true},
            "prompts": {},
            "resources": {"listChanged": true, "subscribe": true},
        });
        let honored = honored_list_changes(&filter, &caps);
        assert_eq!(honored.filter(), json!({"toolsListChanged": true}));
        let tools = Notification {
            method: "notifications/tools/list_changed".into(),
            params: None,
        };
        assert!(honored.admits(&tools));
        let prompts = Notification {
            method: "notifications/prompts/list_changed".into(),
            params: None,
        };
        assert!(!honored.admits(&prompts));
        let log = Notification {
            method: "notifications/message".into(),
            params: Some(json!({"level": "info", "data": "x"})),
        };
        assert!(!honored.admits(&log));
    }

    #[test]
    fn resource_updates_are_relayed_for_subscribed_uris_only() {
        let mut honored = Honored::default();
        honored
            .uris
            .insert("demo://resource/static/document/architecture.md".into());
        let update = |uri: &str| Notification {
            method: RESOURCE_UPDATED.into(),
            params: Some(json!({"uri": uri})),
        };
        assert!(honored.admits(&update("demo://resource/static/document/architecture.md")));
        assert!(!honored.admits(&update("demo://resource/other")));
        assert_eq!(
            honored.filter(),
            json!({"resourceSubscriptions": ["demo://resource/static/document/architecture.md"]})
        );
    }

    #[test]
    fn every_relayed_notification_carries_the_subscription_id() {
        let sub = json!("listen-1");
        let n = tagged(
            Notification {
                method: RESOURCE_UPDATED.into(),
                params: Some(json!({"uri": "a://b", "_meta": {"other": 1}})),
            },
            &sub,
        );
        let params = n.params.unwrap();
        assert_eq!(params["_meta"][META_SUBSCRIPTION_ID], sub);
        assert_eq!(params["_meta"]["other"], 1);
        assert_eq!(params["uri"], "a://b");
        let bare = tagged(
            Notification {
                method: "notifications/tools/list_changed".into(),
                params: None,
            },
            &json!(7),
        );
        assert_eq!(bare.params.unwrap()["_meta"][META_SUBSCRIPTION_ID], 7);
    }
}
