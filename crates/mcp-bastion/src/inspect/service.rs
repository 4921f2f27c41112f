use std::task::{Context, Poll};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{Method, Request, header};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::Service;

use super::{InspectRejection, McpRequest};
use crate::boxed::BoxFuture;

/// The service built by [`McpInspectLayer`](super::McpInspectLayer).
#[derive(Debug, Clone)]
pub struct McpInspect<S> {
    pub(super) inner: S,
    pub(super) max_body_bytes: usize,
}

impl<S, B, ResBody> Service<Request<B>> for McpInspect<S>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
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
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.max_body_bytes;
        Box::pin(async move {
            if req.method() != Method::POST {
                let res = inner.call(req.map(Body::new)).await?;
                return Ok(res.map(Body::new));
            }
            let (mut parts, body) = req.into_parts();
            let mcp = match read_and_parse(&parts, body, limit).await {
                Ok(mcp) => mcp,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            let bytes = mcp.body().clone();
            parts.extensions.insert(mcp);
            let res = inner
                .call(Request::from_parts(parts, Body::from(bytes)))
                .await?;
            Ok(res.map(Body::new))
        })
    }
}

/// Reads a POST body (bounded) and parses it: the one place bodies are read.
pub(crate) async fn read_and_parse<B>(
    parts: &http::request::Parts,
    body: B,
    limit: usize,
) -> Result<McpRequest, InspectRejection>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if !is_json(parts.headers.get(header::CONTENT_TYPE)) {
        return Err(InspectRejection::UnsupportedMediaType);
    }
    // A declared length over the limit is refused before reading anything.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(InspectRejection::PayloadTooLarge { limit });
    }
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                InspectRejection::PayloadTooLarge { limit }
            } else {
                InspectRejection::BodyRead
            }
        })?
        .to_bytes();
    McpRequest::parse(&parts.headers, parts.uri.query(), bytes)
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(value: Option<&http::HeaderValue>) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}
