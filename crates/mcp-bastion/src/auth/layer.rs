use std::sync::Arc;

use tower::Layer;

use super::{Authenticator, CredentialSources, DynAuthenticator, McpAuth};

/// Where the challenge's `resource_metadata` URL comes from.
#[derive(Debug, Clone)]
pub(crate) enum MetadataUrl {
    /// No `resource_metadata` parameter.
    None,
    /// A fixed absolute URL.
    Fixed(String),
    /// `http://<Host>` + this path, for servers that do not know their
    /// public URL (the `Host` header only shapes the caller's own answer).
    FromHost(String),
}

#[derive(Clone)]
pub(crate) struct AuthConfig {
    pub authenticator: DynAuthenticator,
    pub sources: CredentialSources,
    pub metadata_url: MetadataUrl,
}

/// Authenticates every request with an [`Authenticator`]. See the
/// [module docs](super).
#[derive(Clone)]
pub struct McpAuthLayer {
    pub(crate) config: Arc<AuthConfig>,
}

impl std::fmt::Debug for McpAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpAuthLayer")
            .field("sources", &self.config.sources)
            .field("metadata_url", &self.config.metadata_url)
            .finish_non_exhaustive()
    }
}

impl McpAuthLayer {
    /// A layer that authenticates with `authenticator`, reading credentials
    /// from `Authorization: Bearer` and `X-API-Key` (no query parameters).
    pub fn new(authenticator: impl Authenticator) -> Self {
        Self::from_shared(Arc::new(authenticator))
    }

    /// Like [`new`](Self::new), for a shared authenticator.
    pub fn from_shared(authenticator: DynAuthenticator) -> Self {
        Self {
            config: Arc::new(AuthConfig {
                authenticator,
                sources: CredentialSources::new(),
                metadata_url: MetadataUrl::None,
            }),
        }
    }

    /// Where credentials are read from (headers, opt-in query parameters).
    pub fn credentials(mut self, sources: CredentialSources) -> Self {
        Arc::make_mut(&mut self.config).sources = sources;
        self
    }

    /// Declares these query parameters session data, not credentials (see
    /// [`CredentialSources::session_params`]). `McpStack` passes the
    /// parameters its session layer captures.
    pub fn session_params<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let config = Arc::make_mut(&mut self.config);
        config.sources = config.sources.clone().session_params(names);
        self
    }

    /// The RFC 9728 metadata URL sent in every challenge
    /// (`resource_metadata="…"`).
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).metadata_url = MetadataUrl::Fixed(url.into());
        self
    }

    /// Builds the metadata URL from the request's `Host` header and `path`
    /// (e.g. `/.well-known/oauth-protected-resource/mcp`), for servers that
    /// do not know their public URL.
    pub fn resource_metadata_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).metadata_url = MetadataUrl::FromHost(path.into());
        self
    }
}

impl<S> Layer<S> for McpAuthLayer {
    type Service = McpAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpAuth {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}
