//! The router: every server's transports behind the layers of one
//! [`McpStack`], in the order it fixes (see its docs), with the operator
//! routes beside them.

use std::{collections::BTreeSet, time::Duration};

use axum::{Router, http::StatusCode, routing::get};
use mcp_bastion::{
    audit::McpAuditLayer,
    auth::oauth::OAuthServer,
    backend::DynBackend,
    inspect::McpInspectLayer,
    metrics::McpMetricsLayer,
    session::SessionLayer,
    stack::McpStack,
    transport::{Sse, StreamableHttp},
};
use mcp_bastion_cli::config::Config;

use crate::{auth, ratelimit, servers, session};

/// One server to mount: its name (`None` for the default) and backend, and
/// its session layer.
pub(crate) struct ServerParts {
    pub(crate) name: Option<String>,
    pub(crate) backend: DynBackend,
    pub(crate) sessions: SessionLayer,
}

/// The router: each server's transports behind its own session layer (the
/// default server at `/mcp` and `/sse`, each named one under
/// `/servers/<name>/`), all of them behind one [`McpStack`] (lingering
/// close, CORS, the Origin guard, authentication, the body parsed once,
/// tracing, metrics, per-tool scopes, rate limits; the audit log when
/// `audit` is given), and `/healthz`, `/readyz` outside it. With `oauth`,
/// its endpoints are beside them, outside authentication, inside CORS and
/// the Origin guard (see [`oauth_routes`]).
pub(crate) fn app(
    config: &Config,
    parts: Vec<ServerParts>,
    auth: &auth::AuthLayers,
    oauth: Option<&OAuthServer>,
    audit: Option<McpAuditLayer>,
) -> Result<(Router, servers::Servers), String> {
    let general = &config.general;
    if general.sessionless {
        tracing::warn!(
            "`sessionless` is deprecated and has no effect: revision 2026-07-28 is served by default (`no-2026` turns it off)"
        );
    }
    let keepalive_secs = *general.keepalive_secs.get();
    let keepalive = (keepalive_secs > 0).then(|| Duration::from_secs(keepalive_secs));
    let route_key = general.route_key.as_ref().map(|k| k.get().0.clone());
    let mut mounted = servers::Servers::default();
    let mut captured = BTreeSet::new();
    let mut mcp = Router::new();
    for ServerParts {
        name,
        backend,
        sessions,
    } in parts
    {
        let mut streamable = StreamableHttp::new(backend.clone())
            .json_response(general.json_response)
            .sessionless(!general.no_2026)
            .keepalive(keepalive)
            .session_idle_timeout(config.session.session_idle_timeout.0)
            .sessionless_idle_timeout(config.session.sessionless_idle_timeout.0)
            .sessionless_max_links_per_principal(
                *config.session.sessionless_max_links_per_principal.get(),
            )
            .sessionless_max_links(*config.session.sessionless_max_links.get());
        let mut sse = Sse::new(backend.clone()).keepalive(keepalive);
        let mut sessions = sessions;
        if let Some(key) = &route_key {
            streamable = streamable.route_key(key.clone());
            sse = sse.route_key(key.clone());
            sessions = sessions.replica_id(key.clone());
        }
        captured.extend(sessions.captured_params().map(str::to_owned));
        let server = McpStack::new()
            .sessions(sessions)
            .endpoints(streamable.clone(), sse.clone());
        mcp = match &name {
            None => mcp.merge(server),
            Some(name) => {
                if config.default_alias.as_deref() == Some(name.as_str()) {
                    mcp = mcp.merge(server.clone());
                }
                mcp.nest(&format!("/servers/{name}"), server)
            }
        };
        mounted.0.push(servers::Mounted {
            name,
            streamable,
            sse,
            backend,
        });
    }
    let mut origins = session::origins(&config.session, *general.listen.get())?;
    if let Some(oauth) = oauth {
        // the consent page posts from the issuer's own origin
        origins = origins
            .allow(origin_of(oauth.issuer()))
            .map_err(|e| format!("--oauth-issuer: {e}"))?;
    }
    let (cors, origin_guard) = session::browser_layers(&config.session, origins);
    let mut stack = McpStack::new();
    if let Some(audit) = audit {
        stack = stack.audit(audit);
    }
    let stack = stack
        .cors(cors.clone())
        .origin_guard(origin_guard.clone())
        .inspect(McpInspectLayer::new().max_body_bytes(*general.max_body_bytes.get()))
        .metrics(McpMetricsLayer::new())
        .rate_limit(ratelimit::layer(&config.rate_limit));
    let stack = auth.onto(stack, captured);
    let ready = mounted.clone();
    let mcp = stack
        .wrap(mcp)
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready.readiness().await {
                        Ok(()) => (StatusCode::OK, "ready".to_owned()),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
                    }
                }
            }),
        );
    let prefix = general.prefix();
    let router = if prefix.is_empty() {
        mcp
    } else {
        Router::new().nest(prefix, mcp)
    };
    let router = match oauth {
        Some(oauth) => router.merge(oauth_routes(oauth, auth, prefix, cors, origin_guard)),
        None => router,
    };
    Ok((router, mounted))
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..]
        .find('/')
        .map_or(url, |i| &url[..after_scheme + i])
}

/// The authorization server's routes (their paths are under the issuer's
/// path, which is the `--path-prefix`, and the RFC 8414 documents are at the
/// host's root), behind the same CORS layer and Origin guard as the MCP
/// endpoints. Under a path prefix, the RFC 9728 document is also served at
/// the root form its URL has (`/.well-known/oauth-protected-resource/<prefix>`).
fn oauth_routes(
    oauth: &OAuthServer,
    auth: &auth::AuthLayers,
    prefix: &str,
    cors: mcp_bastion::cors::McpCorsLayer,
    origin_guard: mcp_bastion::cors::OriginGuardLayer,
) -> Router {
    let mut routes = oauth.router();
    if !prefix.is_empty()
        && let Some(md) = auth.metadata()
    {
        routes = routes.merge(md.clone().router(""));
    }
    routes
        .layer(axum::middleware::from_fn(log_oauth_request))
        .layer(origin_guard)
        .layer(cors)
}

/// One debug line per authorization-server request: method, path and
/// status. Never the query or the body: codes, states and tokens travel
/// there.
async fn log_oauth_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    tracing::debug!(target: "mcp_bastion::oauth", %method, path, status = res.status().as_u16(), "authorization server request");
    res
}
