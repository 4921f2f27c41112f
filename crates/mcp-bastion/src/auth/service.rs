use std::task::{Context, Poll};

use axum::response::Response;
use bytes::Bytes;
use http::{Method, Request, header, request::Parts};
use http_body::Body as HttpBody;
use tower::Service;

use super::{
    AuthError, AuthRejection, Credential, InvalidToken,
    future::Admitted,
    future::ResponseFuture,
    layer::{AuthConfig, MetadataUrl},
};
use crate::{
    decided::{AfterResponse, Decided, take_ready},
    principal::Principal,
    protocol::EndpointQuery,
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
            return Decided::inner(future, Admitted).into();
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
                Ok(()) => {
                    let future = self.inner.call(Request::from_parts(parts, body));
                    Decided::inner(future, Admitted).into()
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
                Ok(()) => {
                    let res = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(Admitted.finish(res))
                }
                Err(e) => Ok(reject(&config, &parts, e)),
            }
        })
        .into()
    }
}

/// The one place an authenticator's answer becomes the request's fate: the
/// principal inserted (and, for a `GET` authenticated from the query, the
/// parameter a legacy SSE `endpoint` URI must carry), or the error to
/// challenge with.
fn admit(
    parts: &mut Parts,
    credential: Option<Credential>,
    outcome: super::AuthResult,
) -> Result<(), AuthError> {
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
    // A client that cannot send headers posts to the legacy SSE endpoint URI
    // as given: that URI must carry the credential on.
    if parts.method == Method::GET
        && let Some(c) = &credential
        && let Some(name) = c.from_query()
    {
        let carried = parts
            .extensions
            .remove::<EndpointQuery>()
            .unwrap_or_default()
            .with(name, c.secret());
        parts.extensions.insert(carried);
    }
    Ok(())
}

/// The challenge for a refused request.
fn reject(config: &AuthConfig, parts: &Parts, error: AuthError) -> Response {
    axum::response::IntoResponse::into_response(AuthRejection {
        error,
        resource_metadata: metadata_url(&config.metadata_url, parts),
        id: None,
    })
}

fn is_preflight(parts: &Parts) -> bool {
    parts.method == Method::OPTIONS
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
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
