use std::{
    collections::BTreeSet,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{Method, Request, header};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Limited};
use tower::{Layer, Service};

use super::{
    ScopePolicy,
    filter::filter_tools,
    sse_filter::{FilteredSse, Rewrite},
};
use crate::{
    auth::{AuthError, AuthRejection, layer::MetadataUrl, service::metadata_url},
    boxed::BoxFuture,
    inspect::McpRequest,
    jsonrpc::{ErrorObject, codes, http_error},
    principal::Principal,
};

/// The largest JSON `tools/list` answer the filter reads (16 MiB).
const MAX_FILTERED_BODY: usize = 16 * 1024 * 1024;

/// Per-tool authorization: mount it **inside**
/// [`McpInspectLayer`](crate::inspect::McpInspectLayer) (it reads
/// [`McpRequest`], never the body) and inside
/// [`McpAuthLayer`](crate::auth::McpAuthLayer) (it reads
/// [`Principal`]). See the [`auth`](crate::auth) module docs.
#[derive(Debug, Clone)]
pub struct McpScopeLayer {
    policy: Arc<ScopePolicy>,
    metadata_url: MetadataUrl,
}

impl McpScopeLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: ScopePolicy) -> Self {
        Self {
            policy: Arc::new(policy),
            metadata_url: MetadataUrl::None,
        }
    }

    /// The RFC 9728 metadata URL for the 403 challenge.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.metadata_url = MetadataUrl::Fixed(url.into());
        self
    }

    /// The metadata URL from the `Host` header and `path`.
    pub fn resource_metadata_path(mut self, path: impl Into<String>) -> Self {
        self.metadata_url = MetadataUrl::FromHost(path.into());
        self
    }
}

impl<S> Layer<S> for McpScopeLayer {
    type Service = McpScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpScope {
            inner,
            policy: Arc::clone(&self.policy),
            metadata_url: self.metadata_url.clone(),
        }
    }
}

/// The service built by [`McpScopeLayer`].
#[derive(Debug, Clone)]
pub struct McpScope<S> {
    inner: S,
    policy: Arc<ScopePolicy>,
    metadata_url: MetadataUrl,
}

impl<S, B, ResBody> Service<Request<B>> for McpScope<S>
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
        let policy = Arc::clone(&self.policy);
        let metadata = self.metadata_url.clone();
        Box::pin(async move {
            let principal = req.extensions().get::<Principal>().cloned();
            let granted: BTreeSet<String> = principal
                .as_ref()
                .map(|p| p.scopes().clone())
                .unwrap_or_default();
            let mut lists_tools = req.method() == Method::GET;
            if let Some(mcp) = req.extensions().get::<McpRequest>() {
                let mut need = BTreeSet::new();
                let mut refused = false;
                for msg in mcp.messages() {
                    let missing = policy.missing(msg, principal.as_ref());
                    if !missing.is_empty() {
                        refused = true;
                    }
                    need.extend(policy.required(msg));
                    lists_tools |= msg.method() == Some("tools/list");
                }
                if refused {
                    let (parts, _) = req.into_parts();
                    tracing::debug!(target: "mcp_bastion::auth", subject = ?principal.as_ref().map(Principal::subject), "insufficient scope");
                    let rejection = AuthRejection {
                        error: AuthError::InsufficientScope(need.into_iter().collect()),
                        resource_metadata: metadata_url(&metadata, &parts),
                        id: mcp_id(&parts),
                    };
                    return Ok(rejection.into_response());
                }
            } else if req.method() == Method::POST {
                tracing::error!(target: "mcp_bastion::auth", "McpScopeLayer found no McpRequest: mount McpInspectLayer outside it");
                return Ok(http_error(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    ErrorObject::new(codes::INTERNAL_ERROR, "authorization is misconfigured"),
                ));
            }
            let res = inner.call(req).await?;
            if !lists_tools {
                return Ok(res.map(Body::new));
            }
            Ok(filter_response(res, policy, granted).await)
        })
    }
}

fn mcp_id(parts: &http::request::Parts) -> Option<crate::jsonrpc::RequestId> {
    parts
        .extensions
        .get::<McpRequest>()
        .and_then(|m| m.id().cloned())
}

async fn filter_response<T>(
    res: http::Response<T>,
    policy: Arc<ScopePolicy>,
    granted: BTreeSet<String>,
) -> Response
where
    T: HttpBody<Data = Bytes> + Send + 'static,
    T::Error: Into<axum::BoxError>,
{
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        let rewrite: Rewrite = Box::new(move |data: &str| {
            let mut value: serde_json::Value = serde_json::from_str(data).ok()?;
            filter_tools(&mut value, &policy, &granted).then(|| value.to_string())
        });
        return res.map(|b| Body::new(FilteredSse::new(Body::new(b), rewrite)));
    }
    if !content_type.starts_with("application/json") {
        return res.map(Body::new);
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match Limited::new(body, MAX_FILTERED_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return http_error(
                http::StatusCode::BAD_GATEWAY,
                None,
                ErrorObject::new(
                    codes::INTERNAL_ERROR,
                    "the tools/list answer could not be read",
                ),
            );
        }
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if !filter_tools(&mut value, &policy, &granted) {
        return Response::from_parts(parts, Body::from(bytes));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(value.to_string()))
}
