//! [`McpStack`]: every layer of this crate, composed in the one order that is
//! safe, as one tower [`Layer`] or as a ready [`Router`] with both transports.
//!
//! ```
//! use mcp_bastion::{
//!     auth::{ApiKeys, McpAuthLayer},
//!     backend::stdio::StdioBackend,
//!     principal::Principal,
//!     ratelimit::{McpRateLimitLayer, RateLimitPolicy},
//!     stack::McpStack,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = StdioBackend::builder("npx")
//!     .args(["-y", "@modelcontextprotocol/server-everything"])
//!     .build()?;
//! let keys = ApiKeys::new().key("s3cret", Principal::new("alice"));
//! let app: axum::Router = McpStack::new()
//!     .auth(McpAuthLayer::new(keys))
//!     .rate_limit(McpRateLimitLayer::new(
//!         RateLimitPolicy::new().default_limit("100/min".parse()?),
//!     ))
//!     .serve(backend); // /mcp (Streamable HTTP), /sse and /messages (legacy SSE)
//! # Ok(())
//! # }
//! ```
//!
//! The order, outermost first, and why it is fixed:
//!
//! | layer | set with | why here |
//! |---|---|---|
//! | lingering close | on by default; [`lingering_close`](McpStack::lingering_close) | an answer sent before the body is read (any refusal below) must reach a client that is still sending |
//! | CORS | [`browser`](McpStack::browser), [`cors`](McpStack::cors) | a preflight carries no credentials: answered before authentication could refuse it |
//! | audit | [`audit`](McpStack::audit) | one record per request: outside every layer that refuses (Origin, auth, size, scopes, rate limit), so it sees each refusal and its status |
//! | Origin guard | [`browser`](McpStack::browser), [`origin_guard`](McpStack::origin_guard) | a foreign `Origin` is refused (403) before anything else runs |
//! | authentication | [`auth`](McpStack::auth) | headers and query only: an unauthenticated client never makes the server buffer a body |
//! | inspect | on by default; [`inspect`](McpStack::inspect) | the body is read once, bounded, and parsed into `McpRequest` for every layer below |
//! | audit capture | with [`audit`](McpStack::audit) | copies the parsed method, tool and id and the principal into the audit record; a refusal after it is the scopes' or the rate limit's |
//! | trace | on by default; [`without_trace`](McpStack::without_trace) | one span per request, with the parsed method and the principal |
//! | metrics | [`metrics`](McpStack::metrics) | counts and times everything below, refusals included |
//! | scopes | [`scopes`](McpStack::scopes) | per-tool authorization needs the principal and the parsed tool name |
//! | rate limit | [`rate_limit`](McpStack::rate_limit) | keys on the principal, the session or the IP; limits by method and tool |
//! | sessions | [`sessions`](McpStack::sessions) | parameter capture and principal binding, at the transport's HTTP boundary |
//!
//! Two ways to mount it:
//!
//! - As one [`Layer`] in front of any service, for example rmcp's own
//!   `StreamableHttpService` or a router of your own:
//!   `Router::new().route_service("/mcp", svc).layer(stack)`. This is a
//!   single `Router::layer` call, which matters: each such call boxes what it
//!   wraps into a route, so stacking the layers one call at a time adds a
//!   boxed clone and a route future per layer to every request. The RFC 9728
//!   metadata routes are not part of a layer; merge
//!   [`metadata_router`](McpStack::metadata_router) beside it.
//! - As a [`Router`] serving both transports over one backend:
//!   [`serve`](McpStack::serve), or [`router`](McpStack::router) with
//!   transports you configured yourself. The session layer is wired to end
//!   the transports' sessions, and the metadata routes sit outside
//!   authentication, inside CORS. For several backends under one stack (what
//!   the `mcp-bastion` binary does with `[servers.<name>]`), build each one's
//!   routes with [`endpoints`](McpStack::endpoints), nest them, and
//!   [`wrap`](McpStack::wrap) the result.
//!
//! Each layer stays usable on its own (`Router::layer(McpAuthLayer::new(..))`);
//! the stack only spares you the order.

use axum::Router;
use tower::{
    Layer, ServiceBuilder,
    layer::util::{Identity, Stack},
    util::Either,
};

use crate::{
    audit::{AuditCaptureLayer, McpAuditLayer},
    auth::{McpAuthLayer, McpScopeLayer, ProtectedResourceMetadata},
    backend::Backend,
    cors::{AllowedOrigins, McpCors, McpCorsLayer, OriginGuardLayer},
    inspect::McpInspectLayer,
    linger::{LingerLimits, LingeringCloseLayer},
    metrics::McpMetricsLayer,
    ratelimit::McpRateLimitLayer,
    session::SessionLayer,
    trace::McpTraceLayer,
    transport::{Sse, StreamableHttp},
};

/// A layer that may be absent: tower's `option_layer` shape.
type Opt<L> = Either<L, Identity>;

/// Lingering close, CORS, the audit log, then the Origin guard (outermost
/// first).
type BrowserLayers = Stack<
    Opt<OriginGuardLayer>,
    Stack<Opt<McpAuditLayer>, Stack<Opt<McpCorsLayer>, Stack<Opt<LingeringCloseLayer>, Identity>>>,
>;

/// Authentication through rate limiting (outermost first), on top of `Inner`.
type McpLayers<Inner> = Stack<
    Opt<McpRateLimitLayer>,
    Stack<
        Opt<McpScopeLayer>,
        Stack<
            Opt<McpMetricsLayer>,
            Stack<
                Opt<McpTraceLayer>,
                Stack<
                    Opt<AuditCaptureLayer>,
                    Stack<Opt<McpInspectLayer>, Stack<Opt<McpAuthLayer>, Inner>>,
                >,
            >,
        >,
    >,
>;

/// Every layer: browser, MCP, then sessions innermost.
type AllLayers = Stack<Opt<SessionLayer>, McpLayers<BrowserLayers>>;

/// The layers of this crate in the safe order; see the [module docs](self).
///
/// Cheap to clone: every layer inside shares its configuration.
#[derive(Debug, Clone)]
pub struct McpStack {
    linger: Option<LingeringCloseLayer>,
    cors: Option<McpCorsLayer>,
    audit: Option<McpAuditLayer>,
    origin_guard: Option<OriginGuardLayer>,
    auth: Option<McpAuthLayer>,
    metadata: Option<ProtectedResourceMetadata>,
    inspect: Option<McpInspectLayer>,
    trace: Option<McpTraceLayer>,
    metrics: Option<McpMetricsLayer>,
    scopes: Option<McpScopeLayer>,
    rate_limit: Option<McpRateLimitLayer>,
    sessions: Option<SessionLayer>,
}

impl Default for McpStack {
    fn default() -> Self {
        Self::new()
    }
}

impl McpStack {
    /// Lingering close, the body inspected (default limits) and one trace
    /// span per request; every other layer off until set.
    pub fn new() -> Self {
        Self {
            linger: Some(LingeringCloseLayer::new(LingerLimits::default())),
            cors: None,
            audit: None,
            origin_guard: None,
            auth: None,
            metadata: None,
            inspect: Some(McpInspectLayer::new()),
            trace: Some(McpTraceLayer::new()),
            metrics: None,
            scopes: None,
            rate_limit: None,
            sessions: None,
        }
    }

    /// How long and how much of an unread request body is discarded after an
    /// early answer (see [`linger`](crate::linger)); `None` turns lingering
    /// close off.
    pub fn lingering_close(mut self, limits: Option<LingerLimits>) -> Self {
        self.linger = limits.map(LingeringCloseLayer::new);
        self
    }

    /// The MCP CORS preset and the Origin guard for `origins`: what a server
    /// that browsers may reach needs. Use [`cors`](Self::cors) and
    /// [`origin_guard`](Self::origin_guard) to configure either further.
    pub fn browser(self, origins: AllowedOrigins) -> Self {
        self.cors(McpCors::new(origins.clone()).into_layer())
            .origin_guard(OriginGuardLayer::new(origins))
    }

    /// The CORS layer (answers preflights before authentication).
    pub fn cors(mut self, layer: McpCorsLayer) -> Self {
        self.cors = Some(layer);
        self
    }

    /// The Origin guard (403 for a present `Origin` that is not allowed).
    pub fn origin_guard(mut self, layer: OriginGuardLayer) -> Self {
        self.origin_guard = Some(layer);
        self
    }

    /// The audit log: one record per request, refusals included (see
    /// [`audit`](crate::audit)). Its capture point goes inside inspection.
    pub fn audit(mut self, layer: McpAuditLayer) -> Self {
        self.audit = Some(layer);
        self
    }

    /// Authentication of every request.
    pub fn auth(mut self, layer: McpAuthLayer) -> Self {
        self.auth = Some(layer);
        self
    }

    /// The RFC 9728 protected-resource metadata, served outside
    /// authentication by [`router`](Self::router) and [`wrap`](Self::wrap)
    /// (for the Streamable HTTP endpoint `/mcp`).
    pub fn resource_metadata(mut self, metadata: ProtectedResourceMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Replaces the default inspect layer (for example with another body
    /// limit).
    pub fn inspect(mut self, layer: McpInspectLayer) -> Self {
        self.inspect = Some(layer);
        self
    }

    /// Leaves the body unparsed by this stack. Only for a stack without
    /// scopes, rate limits or metrics, which read the parsed request; the
    /// transports then parse the body themselves.
    pub fn without_inspect(mut self) -> Self {
        self.inspect = None;
        self
    }

    /// No `mcp.request` span.
    pub fn without_trace(mut self) -> Self {
        self.trace = None;
        self
    }

    /// Request metrics through the `metrics` facade.
    pub fn metrics(mut self, layer: McpMetricsLayer) -> Self {
        self.metrics = Some(layer);
        self
    }

    /// Per-tool scopes (403 `insufficient_scope`; `tools/list` filtered).
    pub fn scopes(mut self, layer: McpScopeLayer) -> Self {
        self.scopes = Some(layer);
        self
    }

    /// Rate limits.
    pub fn rate_limit(mut self, layer: McpRateLimitLayer) -> Self {
        self.rate_limit = Some(layer);
        self
    }

    /// The session layer. [`router`](Self::router) and
    /// [`endpoints`](Self::endpoints) add both transports to its closers, so
    /// a session it ends (idle, lifetime, per-principal cap) ends in the
    /// transport too. Like every `SessionLayer` builder call, adding a closer
    /// makes a new layer: count live sessions on the transports
    /// (`StreamableHttp::session_count`), not on the layer given here.
    pub fn sessions(mut self, layer: SessionLayer) -> Self {
        self.sessions = Some(layer);
        self
    }

    /// The RFC 9728 metadata routes (the well-known path and its form for
    /// `/mcp`), when [`resource_metadata`](Self::resource_metadata) is set.
    /// Merge them outside authentication.
    pub fn metadata_router(&self) -> Option<Router> {
        self.metadata.clone().map(|md| md.router("/mcp"))
    }

    fn browser_layers(&self) -> ServiceBuilder<BrowserLayers> {
        ServiceBuilder::new()
            .option_layer(self.linger)
            .option_layer(self.cors.clone())
            .option_layer(self.audit.clone())
            .option_layer(self.origin_guard.clone())
    }

    /// The authentication layer, told which query parameters the session
    /// layer captures (session data, not credentials).
    fn auth_layer(&self) -> Option<McpAuthLayer> {
        let auth = self.auth.clone()?;
        Some(match &self.sessions {
            Some(sessions) => auth.session_params(sessions.captured_params()),
            None => auth,
        })
    }

    fn mcp_layers<L>(&self, outer: ServiceBuilder<L>) -> ServiceBuilder<McpLayers<L>> {
        outer
            .option_layer(self.auth_layer())
            .option_layer(self.inspect)
            .option_layer(self.audit.as_ref().map(McpAuditLayer::capture))
            .option_layer(self.trace)
            .option_layer(self.metrics)
            .option_layer(self.scopes.clone())
            .option_layer(self.rate_limit.clone())
    }

    /// `streamable` at `/mcp` and `sse` at `/sse` (its messages at its
    /// message path), behind the session layer only (wired to close both
    /// transports' sessions). For several backends under one stack:
    /// [`wrap`](Self::wrap) the router these are nested in.
    pub fn endpoints<B: Backend>(&self, streamable: StreamableHttp<B>, sse: Sse<B>) -> Router {
        self.endpoints_with(Router::new(), streamable, sse)
    }

    /// [`endpoints`](Self::endpoints) beside routes of your own (say, rmcp's
    /// `StreamableHttpService` at `/rmcp`), all behind the session layer.
    /// Closers for your routes' sessions go on the [`SessionLayer`] you give
    /// to [`sessions`](Self::sessions).
    pub fn endpoints_with<B: Backend>(
        &self,
        routes: Router,
        streamable: StreamableHttp<B>,
        sse: Sse<B>,
    ) -> Router {
        let routes = routes
            .route_service("/mcp", streamable.clone())
            .merge(sse.clone().into_router());
        match &self.sessions {
            Some(sessions) => routes.layer(sessions.clone().closer(streamable).closer(sse)),
            None => routes,
        }
    }

    /// `mcp` behind every layer but the session layer (which belongs to each
    /// backend's [`endpoints`](Self::endpoints)), with the metadata routes
    /// beside it outside authentication and inside CORS.
    pub fn wrap(&self, mcp: Router) -> Router {
        let mcp = mcp.layer(self.mcp_layers(ServiceBuilder::new()).into_inner());
        let mcp = match self.metadata_router() {
            Some(metadata) => mcp.merge(metadata),
            None => mcp,
        };
        mcp.layer(self.browser_layers().into_inner())
    }

    /// Both transports, as configured, behind the whole stack:
    /// [`wrap`](Self::wrap) of [`endpoints`](Self::endpoints).
    pub fn router<B: Backend>(&self, streamable: StreamableHttp<B>, sse: Sse<B>) -> Router {
        self.wrap(self.endpoints(streamable, sse))
    }

    /// Both transports with their defaults over `backend`: Streamable HTTP at
    /// `/mcp`, legacy SSE at `/sse` and `/messages`.
    pub fn serve<B: Backend + Clone>(&self, backend: B) -> Router {
        self.router(StreamableHttp::new(backend.clone()), Sse::new(backend))
    }

    fn all_layers(&self) -> ServiceBuilder<AllLayers> {
        self.mcp_layers(self.browser_layers())
            .option_layer(self.sessions.clone())
    }
}

/// The whole stack, sessions included, as one layer (no metadata routes: see
/// [`McpStack::metadata_router`]).
impl<S> Layer<S> for McpStack
where
    AllLayers: Layer<S>,
{
    type Service = <AllLayers as Layer<S>>::Service;

    fn layer(&self, inner: S) -> Self::Service {
        self.all_layers().into_inner().layer(inner)
    }
}

#[cfg(test)]
mod tests;
