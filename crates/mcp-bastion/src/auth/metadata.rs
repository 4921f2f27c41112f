//! RFC 9728 OAuth 2.0 Protected Resource Metadata, served at
//! `/.well-known/oauth-protected-resource` and its path-suffixed form, never
//! behind authentication (clients read it to learn how to authenticate).

use axum::{
    Json, Router, extract::OriginalUri, http::HeaderMap, response::IntoResponse, routing::get,
};
use serde::Serialize;
use serde_json::Value;

/// The well-known path prefix of RFC 9728.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// The metadata document.
///
/// ```
/// use mcp_bastion::auth::ProtectedResourceMetadata;
///
/// let md = ProtectedResourceMetadata::new()
///     .resource("https://mcp.example.com/mcp")
///     .authorization_server("https://auth.example.com")
///     .scopes(["tools:read", "tools:admin"]);
/// assert_eq!(md.metadata_url().as_deref(), Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp"));
/// let json = md.document(None);
/// assert_eq!(json["bearer_methods_supported"], serde_json::json!(["header"]));
/// ```
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProtectedResourceMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
}

impl ProtectedResourceMetadata {
    /// An empty document (bearer tokens in the `Authorization` header).
    pub fn new() -> Self {
        Self {
            bearer_methods_supported: vec!["header".into()],
            ..Self::default()
        }
    }

    /// The resource identifier: this server's MCP endpoint URL. Without it,
    /// the document names `http://<Host><path>` of each request.
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource = Some(url.into());
        self
    }

    /// An authorization server (issuer URL); repeatable.
    pub fn authorization_server(mut self, url: impl Into<String>) -> Self {
        self.authorization_servers.push(url.into());
        self
    }

    /// The scopes this resource understands.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_supported
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Adds a bearer method (`query` when query tokens are enabled).
    pub fn bearer_method(mut self, method: impl Into<String>) -> Self {
        let m = method.into();
        if !self.bearer_methods_supported.contains(&m) {
            self.bearer_methods_supported.push(m);
        }
        self
    }

    /// A human-readable name.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// The configured resource URL.
    pub fn resource_url(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The metadata URL for the configured resource: the well-known path
    /// inserted between its origin and its path (RFC 9728 §3.1).
    pub fn metadata_url(&self) -> Option<String> {
        let resource = self.resource.as_deref()?;
        let (origin, path) = split_origin(resource)?;
        Some(format!(
            "{origin}{WELL_KNOWN_PATH}{}",
            path.trim_end_matches('/')
        ))
    }

    /// The document as JSON; `host_resource` fills `resource` when none is
    /// configured.
    pub fn document(&self, host_resource: Option<String>) -> Value {
        let mut doc = self.clone();
        if doc.resource.is_none() {
            doc.resource = host_resource;
        }
        serde_json::to_value(doc).unwrap_or(Value::Null)
    }

    /// A router serving the document at the well-known path and at the
    /// path-suffixed form for `endpoint_path` (e.g. `/mcp`). Merge it
    /// outside authentication.
    pub fn router<S: Clone + Send + Sync + 'static>(self, endpoint_path: &str) -> Router<S> {
        let suffix = endpoint_path.trim_end_matches('/').to_owned();
        let mut router = Router::new();
        let mut paths = vec![WELL_KNOWN_PATH.to_owned()];
        if !suffix.is_empty() {
            paths.push(format!("{WELL_KNOWN_PATH}{suffix}"));
        }
        if let Some(path) = self
            .resource
            .as_deref()
            .and_then(split_origin)
            .map(|(_, p)| p.trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty())
        {
            let p = format!("{WELL_KNOWN_PATH}{path}");
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        for path in paths {
            let md = self.clone();
            let suffix = suffix.clone();
            router = router.route(
                &path,
                get(move |OriginalUri(uri): OriginalUri, headers: HeaderMap| {
                    let md = md.clone();
                    let suffix = suffix.clone();
                    async move {
                        // nested under a prefix (`/k/abc/.well-known/…`), the resource is under it too
                        let path = uri.path();
                        let prefix = path.find(WELL_KNOWN_PATH).map_or("", |i| &path[..i]);
                        let host = headers
                            .get(http::header::HOST)
                            .and_then(|v| v.to_str().ok())
                            .filter(|h| {
                                h.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                            })
                            .map(|h| format!("http://{h}{prefix}{suffix}"));
                        let mut res = Json(md.document(host)).into_response();
                        res.headers_mut().insert(
                            http::header::CACHE_CONTROL,
                            http::HeaderValue::from_static("max-age=300"),
                        );
                        res.headers_mut().insert(
                            http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                            http::HeaderValue::from_static("*"),
                        );
                        res
                    }
                }),
            );
        }
        router
    }
}

/// `("https://host:port", "/path")` of an absolute http(s) URL.
fn split_origin(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let scheme_len = url.len() - rest.len();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = &url[..scheme_len + end];
    let path = &rest[end..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    Some((origin, path))
}
