use std::{
    collections::BTreeMap,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri, request::Parts};
use http_body::Body as HttpBody;
use tower::Service;

use super::{
    SessionFuture, SessionParams, SessionRecord, StoreError,
    body::{ActivityGuard, SessionBody},
    registry::{Shared, TARGET, unix_ms},
    rejection::SessionRejection,
    session_fingerprint, validate_session_id,
};
use crate::{
    decided::{AfterResponse, Decided, take_ready},
    principal::Principal,
    protocol::HEADER_SESSION_ID,
};

/// The service built by [`SessionLayer`](super::SessionLayer).
///
/// A request of an existing session is decided in `call` when the store
/// answers at once ([`SessionStore::get_now`](super::SessionStore::get_now),
/// as [`MemorySessionStore`](super::MemorySessionStore) does): the inner
/// service is called there, and the [`SessionFuture`] only finishes the
/// response. Opening requests, and stores that must be awaited (Redis), go
/// through a boxed future.
#[derive(Clone)]
pub struct SessionService<S> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = SessionFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(id) = session_id_of(req.headers(), req.uri()) else {
            let inner = take_ready(&mut self.inner);
            return Decided::boxed(open_session(Arc::clone(&self.shared), inner, req)).into();
        };
        if validate_session_id(&id).is_err() {
            return Decided::ready(SessionRejection::MalformedId.into_response()).into();
        }
        // The fast path: a store that answers at once lets `call` decide.
        let Some(read) = self.shared.store.get_now(&id) else {
            let inner = take_ready(&mut self.inner);
            return Decided::boxed(continue_session(Arc::clone(&self.shared), inner, req, id))
                .into();
        };
        let admitted = match admit(&self.shared, id, read, principal_of(&req)) {
            Ok(admitted) => admitted,
            Err(rejection) => return Decided::ready(rejection.into_response()).into(),
        };
        if let Some(now_ms) = admitted.touch_at {
            let ttl = self.shared.config.record_ttl();
            let Some(result) = self.shared.store.touch_now(admitted.id(), now_ms, ttl) else {
                let inner = take_ready(&mut self.inner);
                return Decided::boxed(proceed(inner, req, admitted)).into();
            };
            touched(result);
        }
        let after = admitted.enter(&mut req);
        Decided::inner(self.inner.call(req), after).into()
    }
}

/// The session a request names: `Mcp-Session-Id`, or the legacy SSE message
/// endpoint's `session_id` / `sessionId` query parameter.
fn session_id_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(v) = headers.get(HEADER_SESSION_ID) {
        // Not visible ASCII is not a session id: the lossy copy keeps it
        // invalid for `validate_session_id` to refuse.
        return Some(match v.to_str() {
            Ok(id) => id.to_owned(),
            Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        });
    }
    // Only the one value is decoded and copied, not every pair of the query.
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "session_id" || k == "sessionId")
        .map(|(_, v)| v.into_owned())
}

/// The subject of the request's [`Principal`], if authentication ran.
fn principal_of<B>(req: &Request<B>) -> Option<&str> {
    req.extensions().get::<Principal>().map(Principal::subject)
}

/// Whether a request without a session id may open one: the legacy `GET
/// /sse`, or a POSTed `initialize` (any POST when no inspect layer ran).
fn may_open_session(parts: &Parts) -> bool {
    #[cfg(feature = "inspect")]
    if parts.method == Method::POST
        && let Some(mcp) = parts.extensions.get::<crate::inspect::McpRequest>()
    {
        return mcp.is_initialize();
    }
    matches!(parts.method, Method::GET | Method::POST)
}

fn wrap<ResBody>(res: http::Response<ResBody>, guard: Option<ActivityGuard>) -> Response
where
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    res.map(|b| Body::new(SessionBody::new(b, guard)))
}

async fn open_session<S, B, ResBody>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<B>,
) -> Result<Response, S::Error>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let principal = parts
        .extensions
        .get::<Principal>()
        .map(|p| p.subject().to_owned());
    let values = Arc::new(shared.config.capture(&parts));
    parts.extensions.insert(SessionParams::from_parts(
        Arc::clone(&values),
        Arc::clone(&shared.config.sensitive),
    ));
    if may_open_session(&parts)
        && let Err(rejection) = shared.make_room(principal.as_deref())
    {
        return Ok(rejection.into_response());
    }
    let legacy_stream = parts.method == Method::GET;
    let res = inner.call(Request::from_parts(parts, body)).await?;
    let new_id = res
        .status()
        .is_success()
        .then(|| res.headers().get(HEADER_SESSION_ID))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .filter(|id| validate_session_id(id).is_ok())
        .map(str::to_owned);
    let Some(id) = new_id else {
        return Ok(wrap(res, None));
    };
    if let Err(rejection) = shared.register(&id, principal, values).await {
        return Ok(rejection.into_response());
    }
    let guard = ActivityGuard {
        shared,
        id,
        ends_session: legacy_stream,
    };
    Ok(wrap(res, Some(guard)))
}

/// A request of an existing session, with a store that must be awaited:
/// the same steps as the fast path in [`SessionService::call`]. `id` is
/// valid already.
async fn continue_session<S, B, ResBody>(
    shared: Arc<Shared>,
    inner: S,
    req: Request<B>,
    id: String,
) -> Result<Response, S::Error>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    let read = shared.store.get(&id).await;
    match admit(&shared, id, read, principal_of(&req)) {
        Ok(admitted) => proceed(inner, req, admitted).await,
        Err(rejection) => Ok(rejection.into_response()),
    }
}

/// An admitted request, from its store write on: the touch (awaited), then
/// the inner service.
async fn proceed<S, B, ResBody>(
    mut inner: S,
    mut req: Request<B>,
    admitted: Admitted,
) -> Result<Response, S::Error>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    if let Some(now_ms) = admitted.touch_at {
        let shared = &admitted.guard.shared;
        let ttl = shared.config.record_ttl();
        touched(shared.store.touch(admitted.id(), now_ms, ttl).await);
    }
    let after = admitted.enter(&mut req);
    let res = inner.call(req).await?;
    Ok(after.finish(res))
}

/// A request of an existing session that may go on: its activity is
/// counted (the guard ends it), and its record's parameters are at hand.
struct Admitted {
    guard: ActivityGuard,
    params: Arc<BTreeMap<String, String>>,
    /// The time to write to the store as the session's last activity, when
    /// the record is older than the touch interval.
    touch_at: Option<u64>,
}

/// Decides a request that names session `id`, from the store's answer:
/// unknown, unreadable, presented by another principal, or expired (then
/// ended) is refused; otherwise the activity starts now, so a long request
/// is not idleness.
fn admit(
    shared: &Arc<Shared>,
    id: String,
    read: Result<Option<SessionRecord>, StoreError>,
    principal: Option<&str>,
) -> Result<Admitted, SessionRejection> {
    let record = match read {
        Ok(Some(record)) => record,
        Ok(None) => {
            tracing::debug!(target: TARGET, session = %session_fingerprint(&id), "unknown or ended session");
            return Err(SessionRejection::NotFound);
        }
        Err(e) => {
            tracing::error!(target: TARGET, error = %e, "session store failed");
            return Err(SessionRejection::StoreUnavailable);
        }
    };
    if record.principal.as_deref() != principal {
        tracing::warn!(
            target: TARGET,
            session = %session_fingerprint(&id),
            owner = ?record.principal,
            presented_by = ?principal,
            "a session was presented by another principal than the one that opened it; answered as unknown"
        );
        return Err(SessionRejection::NotFound);
    }
    if !shared.begin_unless_expired(&record) {
        tracing::info!(target: TARGET, session = %session_fingerprint(&id), "ending a session: idle timeout or maximum lifetime reached");
        shared.end(&id);
        return Err(SessionRejection::NotFound);
    }
    let now_ms = unix_ms();
    let touch_at = shared.needs_touch(&record, now_ms).then_some(now_ms);
    Ok(Admitted {
        guard: ActivityGuard {
            shared: Arc::clone(shared),
            id,
            ends_session: false,
        },
        params: record.params,
        touch_at,
    })
}

/// Logs a failed store write of a session's activity: the request goes on.
fn touched(result: Result<(), StoreError>) {
    if let Err(e) = result {
        tracing::warn!(target: TARGET, error = %e, "cannot refresh a session record");
    }
}

impl Admitted {
    fn id(&self) -> &str {
        &self.guard.id
    }

    /// Gives the request its session's parameters; what remains is the
    /// work after the response.
    fn enter<B>(self, req: &mut Request<B>) -> After {
        let sensitive = Arc::clone(&self.guard.shared.config.sensitive);
        req.extensions_mut()
            .insert(SessionParams::from_parts(self.params, sensitive));
        After {
            delete: req.method() == Method::DELETE,
            guard: self.guard,
        }
    }
}

/// What follows the inner service's response to a request of an existing
/// session.
pub(super) struct After {
    guard: ActivityGuard,
    delete: bool,
}

impl AfterResponse for After {
    /// Forgets the session if the transport ended it, and makes the response
    /// body carry the activity until it ends.
    fn finish<ResBody>(self, res: http::Response<ResBody>) -> Response
    where
        ResBody: HttpBody<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<axum::BoxError>,
    {
        let Self { guard, delete } = self;
        // The transport ended it: forget it too. A 404 from a replica that
        // does not own the session (a misrouted request) says nothing about
        // the owner.
        let status = res.status();
        let ended = (status == http::StatusCode::NOT_FOUND && guard.shared.owns(&guard.id))
            || (delete && status.is_success());
        if ended {
            guard.shared.forget(&guard.id);
        }
        wrap(res, Some(guard))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn id_of(uri: &str, header: Option<&str>) -> Option<String> {
        let mut req = Request::post(uri);
        if let Some(h) = header {
            req = req.header(HEADER_SESSION_ID, h);
        }
        let parts = req.body(()).unwrap().into_parts().0;
        session_id_of(&parts.headers, &parts.uri)
    }

    #[test]
    fn the_session_id_comes_from_the_header_then_either_query_name() {
        assert_eq!(
            id_of("/message?session_id=q", Some("h")).as_deref(),
            Some("h")
        );
        assert_eq!(
            id_of("/message?a=1&session_id=ab%2Dc", None).as_deref(),
            Some("ab-c")
        );
        assert_eq!(
            id_of("/message?sessionId=xyz&session_id=later", None).as_deref(),
            Some("xyz")
        );
        assert_eq!(id_of("/message?service=x", None), None);
        assert_eq!(id_of("/mcp", None), None);
    }
}
