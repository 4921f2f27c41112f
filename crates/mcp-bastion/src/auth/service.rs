use std::task::{Context, Poll};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::{Method, Request, header, request::Parts};
use http_body::Body as HttpBody;
use tower::Service;

use super::{
    AuthError, AuthRejection, Credential, InvalidToken,
    future::ResponseFuture,
    layer::{AuthConfig, MetadataUrl},
    sse_rewrite::{RewriteSse, SseEvent},
};
use crate::{
    decided::{Decided, take_ready},
    principal::Principal,
};

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
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        // CORS preflights carry no credentials by design: never challenge them.
        if is_preflight(&parts) {
            let future = self.inner.call(Request::from_parts(parts, body));
            return Decided::inner(future, None).into();
        }
        let credential = match self.config.sources.extract(&parts) {
            Ok(c) => c,
            Err(e) => return Decided::ready(reject(&self.config, &parts, e)).into(),
        };
        // A verdict known at once (a static key, a token verified moments
        // ago) passes the request on with no future of this layer's own.
        if let Some(outcome) = self
            .config
            .authenticator
            .authenticate_now(&parts, credential.as_ref())
        {
            return match admit(&mut parts, credential, outcome) {
                Ok(carry) => {
                    let future = self.inner.call(Request::from_parts(parts, body));
                    Decided::inner(future, carry).into()
                }
                Err(e) => Decided::ready(reject(&self.config, &parts, e)).into(),
            };
        }
        let mut inner = take_ready(&mut self.inner);
        let config = std::sync::Arc::clone(&self.config);
        Decided::boxed(async move {
            let outcome = config
                .authenticator
                .authenticate(&parts, credential.as_ref())
                .await;
            match admit(&mut parts, credential, outcome) {
                Ok(carry) => {
                    let res = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(finish(res, carry))
                }
                Err(e) => Ok(reject(&config, &parts, e)),
            }
        })
        .into()
    }
}

/// A credential sent as a query parameter on the legacy SSE `GET`: the
/// stream's `endpoint` event must carry it on (see [`carry_query_credential`]).
pub(super) struct QueryCredential {
    name: String,
    credential: Credential,
}

/// The one place an authenticator's answer becomes the request's fate: the
/// principal inserted, or the error to challenge with.
fn admit(
    parts: &mut Parts,
    credential: Option<Credential>,
    outcome: super::AuthResult,
) -> Result<Option<QueryCredential>, AuthError> {
    let principal = match outcome {
        Ok(Some(p)) => p,
        Ok(None) => {
            let e = if credential.is_some() {
                AuthError::InvalidToken(InvalidToken::Unrecognized)
            } else {
                AuthError::Missing
            };
            return Err(e);
        }
        Err(e) => {
            if matches!(e, AuthError::Unavailable(_)) {
                tracing::warn!(target: TARGET, reason = %e, "authentication could not be decided");
            }
            return Err(e);
        }
    };
    tracing::debug!(target: TARGET, subject = %principal.subject(), key_id = ?principal.key_id(), "authenticated");
    parts.extensions.insert::<Principal>(principal);
    let carry = credential
        .filter(|_| parts.method == Method::GET)
        .and_then(|c| {
            let name = c.from_query()?.to_owned();
            Some(QueryCredential {
                name,
                credential: c,
            })
        });
    Ok(carry)
}

/// The challenge for a refused request.
fn reject(config: &AuthConfig, parts: &Parts, error: AuthError) -> Response {
    axum::response::IntoResponse::into_response(AuthRejection {
        error,
        resource_metadata: metadata_url(&config.metadata_url, parts),
        id: None,
    })
}

/// The inner service's response, with a query credential carried into the
/// legacy SSE stream's `endpoint` event.
pub(super) fn finish<T>(res: http::Response<T>, carry: Option<QueryCredential>) -> Response
where
    T: HttpBody<Data = Bytes> + Send + 'static,
    T::Error: Into<axum::BoxError>,
{
    match carry {
        Some(q) if is_event_stream(&res) => carry_query_credential(res, q.name, q.credential),
        _ => res.map(Body::new),
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
