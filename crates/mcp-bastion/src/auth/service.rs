use std::task::{Context, Poll};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::{Method, Request, header, request::Parts};
use http_body::Body as HttpBody;
use tower::Service;

use super::{
    AuthError, AuthRejection, Credential, InvalidToken,
    layer::{AuthConfig, MetadataUrl},
    sse_rewrite::{RewriteSse, SseEvent},
};
use crate::{backend::BoxFuture, principal::Principal};

const TARGET: &str = "mcp_bastion::auth";

/// The service built by [`McpAuthLayer`](super::McpAuthLayer).
#[derive(Clone)]
pub struct McpAuth<S> {
    pub(super) inner: S,
    pub(super) config: std::sync::Arc<AuthConfig>,
}

impl<S> std::fmt::Debug for McpAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpAuth").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for McpAuth<S>
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = std::sync::Arc::clone(&self.config);
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            // CORS preflights carry no credentials by design: never challenge them.
            if is_preflight(&parts) {
                let res = inner.call(Request::from_parts(parts, body)).await?;
                return Ok(res.map(Body::new));
            }
            let reject = |parts: &Parts, error: AuthError| AuthRejection {
                error,
                resource_metadata: metadata_url(&config.metadata_url, parts),
                id: None,
            };
            let credential = match config.sources.extract(&parts) {
                Ok(c) => c,
                Err(e) => {
                    return Ok(axum::response::IntoResponse::into_response(reject(
                        &parts, e,
                    )));
                }
            };
            let outcome = config
                .authenticator
                .authenticate(&parts, credential.as_ref())
                .await;
            let principal = match outcome {
                Ok(Some(p)) => p,
                Ok(None) => {
                    let e = if credential.is_some() {
                        AuthError::InvalidToken(InvalidToken::Unrecognized)
                    } else {
                        AuthError::Missing
                    };
                    return Ok(axum::response::IntoResponse::into_response(reject(
                        &parts, e,
                    )));
                }
                Err(e) => {
                    if matches!(e, AuthError::Unavailable(_)) {
                        tracing::warn!(target: TARGET, reason = %e, "authentication could not be decided");
                    }
                    return Ok(axum::response::IntoResponse::into_response(reject(
                        &parts, e,
                    )));
                }
            };
            tracing::debug!(target: TARGET, subject = %principal.subject(), key_id = ?principal.key_id(), "authenticated");
            #[cfg(feature = "stdio")]
            if let Some(map) = &config.principal_env {
                map.apply(&principal, &mut parts.extensions);
            }
            let query_param = credential
                .as_ref()
                .and_then(|c| c.from_query().map(|n| (n.to_owned(), c.clone())));
            let is_get = parts.method == Method::GET;
            parts.extensions.insert::<Principal>(principal);
            let res = inner.call(Request::from_parts(parts, body)).await?;
            match query_param {
                Some((name, cred)) if is_get && is_event_stream(&res) => {
                    Ok(carry_query_credential(res, name, cred))
                }
                _ => Ok(res.map(Body::new)),
            }
        })
    }
}

fn is_preflight(parts: &Parts) -> bool {
    parts.method == Method::OPTIONS
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn is_event_stream<T>(res: &http::Response<T>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

pub(crate) fn metadata_url(config: &MetadataUrl, parts: &Parts) -> Option<String> {
    match config {
        MetadataUrl::None => None,
        MetadataUrl::Fixed(url) => Some(url.clone()),
        MetadataUrl::FromHost(path) => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                })?;
            Some(format!("http://{host}{path}"))
        }
    }
}

/// The legacy SSE transport tells the client where to POST in its first
/// `endpoint` event. A client that authenticated with a query parameter
/// (because it cannot send headers) gets that parameter appended there, or
/// its POSTs would arrive without a credential.
fn carry_query_credential<T>(res: http::Response<T>, name: String, cred: Credential) -> Response
where
    T: HttpBody<Data = Bytes> + Send + 'static,
    T::Error: Into<axum::BoxError>,
{
    let mut done = false;
    let rewrite = Box::new(move |block: &[u8]| {
        if done {
            return None;
        }
        let mut ev = SseEvent::parse(block)?;
        if ev.event.as_deref() != Some("endpoint") {
            return None;
        }
        done = true;
        let data = ev.data.take().unwrap_or_default();
        let sep = if data.contains('?') { '&' } else { '?' };
        let pair: String = form_urlencoded::Serializer::new(String::new())
            .append_pair(&name, cred.secret())
            .finish();
        ev.data = Some(format!("{data}{sep}{pair}"));
        Some(ev.encode())
    });
    res.map(|b| Body::new(RewriteSse::new(b, rewrite)))
}
