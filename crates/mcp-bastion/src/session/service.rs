use std::{
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{Method, Request, request::Parts};
use http_body::Body as HttpBody;
use tower::Service;

use super::{
    SessionParams,
    body::{ActivityGuard, SessionBody},
    layer::short_hash,
    registry::{Shared, TARGET, unix_ms},
    rejection::SessionRejection,
    validate_session_id,
};
use crate::{backend::BoxFuture, principal::Principal, protocol::HEADER_SESSION_ID};

/// The service built by [`SessionLayer`](super::SessionLayer).
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
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Keep the service that was driven to readiness; leave a clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let principal = parts
                .extensions
                .get::<Principal>()
                .map(|p| p.subject().to_owned());
            match session_id_of(&parts) {
                Some(id) => continue_session(shared, inner, parts, body, id, principal).await,
                None => open_session(shared, inner, parts, body, principal).await,
            }
        })
    }
}

/// The session a request names: `Mcp-Session-Id`, or the legacy SSE message
/// endpoint's `session_id` / `sessionId` query parameter.
fn session_id_of(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(HEADER_SESSION_ID) {
        // Not visible ASCII is not a session id: the lossy copy keeps it
        // invalid for `validate_session_id` to refuse.
        return Some(match v.to_str() {
            Ok(id) => id.to_owned(),
            Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        });
    }
    // Only the one value is decoded and copied, not every pair of the query.
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "session_id" || k == "sessionId")
        .map(|(_, v)| v.into_owned())
}

/// Whether a request without a session id may open one: the legacy `GET
/// /sse`, or a POSTed `initialize` (any POST when no inspect layer ran).
fn may_open_session(parts: &Parts) -> bool {
    match parts.method {
        Method::GET => true,
        Method::POST => {
            #[cfg(feature = "inspect")]
            if let Some(mcp) = parts.extensions.get::<crate::inspect::McpRequest>() {
                return mcp.is_initialize();
            }
            true
        }
        _ => false,
    }
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
    mut parts: Parts,
    body: B,
    principal: Option<String>,
) -> Result<Response, S::Error>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    let values = Arc::new(shared.config.capture(&parts));
    #[cfg(feature = "stdio")]
    if !shared.config.env.is_empty() {
        let env = parts
            .extensions
            .get_or_insert_default::<crate::backend::stdio::ChildEnv>();
        for (param, var) in &shared.config.env {
            if let Some(value) = values.get(param) {
                env.0.insert(var.clone(), value.clone());
            }
        }
    }
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

async fn continue_session<S, B, ResBody>(
    shared: Arc<Shared>,
    mut inner: S,
    mut parts: Parts,
    body: B,
    id: String,
    principal: Option<String>,
) -> Result<Response, S::Error>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    if validate_session_id(&id).is_err() {
        return Ok(SessionRejection::MalformedId.into_response());
    }
    let record = match shared.store.get(&id).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            tracing::debug!(target: TARGET, session = %short_hash(&id), "unknown or ended session");
            return Ok(SessionRejection::NotFound.into_response());
        }
        Err(e) => {
            tracing::error!(target: TARGET, error = %e, "session store failed");
            return Ok(SessionRejection::StoreUnavailable.into_response());
        }
    };
    if record.principal != principal {
        tracing::warn!(
            target: TARGET,
            session = %short_hash(&id),
            owner = ?record.principal,
            presented_by = ?principal,
            "a session was presented by another principal than the one that opened it; answered as unknown"
        );
        return Ok(SessionRejection::NotFound.into_response());
    }
    // The activity starts now: a long request is not idleness.
    if !shared.begin_unless_expired(&record) {
        tracing::info!(target: TARGET, session = %short_hash(&id), "ending a session: idle timeout or maximum lifetime reached");
        shared.end(&id);
        return Ok(SessionRejection::NotFound.into_response());
    }
    let guard = ActivityGuard {
        shared: Arc::clone(&shared),
        id: id.clone(),
        ends_session: false,
    };
    let now_ms = unix_ms();
    if shared.needs_touch(&record, now_ms)
        && let Err(e) = shared
            .store
            .touch(&id, now_ms, shared.config.record_ttl())
            .await
    {
        tracing::warn!(target: TARGET, error = %e, "cannot refresh a session record");
    }
    parts.extensions.insert(SessionParams::from_parts(
        record.params,
        Arc::clone(&shared.config.sensitive),
    ));
    let delete = parts.method == Method::DELETE;
    let res = inner.call(Request::from_parts(parts, body)).await?;
    // The transport ended it: forget it too. A 404 from a replica that does
    // not own the session (a misrouted request) says nothing about the owner.
    let ended = (res.status() == http::StatusCode::NOT_FOUND && shared.owns(&id))
        || (delete && res.status().is_success());
    if ended {
        shared.forget(&id);
    }
    Ok(wrap(res, Some(guard)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn parts(uri: &str, header: Option<&str>) -> Parts {
        let mut req = Request::post(uri);
        if let Some(h) = header {
            req = req.header(HEADER_SESSION_ID, h);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_session_id_comes_from_the_header_then_either_query_name() {
        assert_eq!(
            session_id_of(&parts("/message?session_id=q", Some("h"))).as_deref(),
            Some("h")
        );
        assert_eq!(
            session_id_of(&parts("/message?a=1&session_id=ab%2Dc", None)).as_deref(),
            Some("ab-c")
        );
        assert_eq!(
            session_id_of(&parts("/message?sessionId=xyz&session_id=later", None)).as_deref(),
            Some("xyz")
        );
        assert_eq!(session_id_of(&parts("/message?service=x", None)), None);
        assert_eq!(session_id_of(&parts("/mcp", None)), None);
    }
}
