//! The router: every server's transports behind the layers, in the order of
//! ARCHITECTURE.md.

use std::time::Duration;

use axum::{Router, http::StatusCode, routing::get};
use mcp_bastion::{
    backend::DynBackend,
    inspect::McpInspectLayer,
    metrics::McpMetricsLayer,
    session::SessionLayer,
    trace::McpTraceLayer,
    transport::{Sse, StreamableHttp},
};
use mcp_bastion_cli::config::Config;
use tower::ServiceBuilder;

use crate::{auth, ratelimit, servers, session};

/// One server to mount: its name (`None` for the default) and backend, and
/// its session layer.
pub(crate) struct ServerParts {
    pub(crate) name: Option<String>,
    pub(crate) backend: DynBackend,
    pub(crate) sessions: SessionLayer,
}

/// The router, in the layer order of ARCHITECTURE.md (each `.layer` wraps
/// the ones before it): CORS (preflights answered before anything else), the
/// Origin guard, authentication, the body parsed once, tracing and metrics
/// (which see the parsed request and the principal, and count refusals by
/// the layers inside), per-tool scopes, rate limits, then each server's
/// session layer and transports: the default server at `/mcp` and `/sse`,
/// each named one under `/servers/<name>/`.
pub(crate) fn app(
    config: &Config,
    parts: Vec<ServerParts>,
    auth: &auth::AuthLayers,
) -> Result<(Router, servers::Servers), String> {
    let general = &config.general;
    let keepalive_secs = *general.keepalive_secs.get();
    let keepalive = (keepalive_secs > 0).then(|| Duration::from_secs(keepalive_secs));
    let route_key = general.route_key.as_ref().map(|k| k.get().0.clone());
    let mut mounted = servers::Servers::default();
    let mut mcp = Router::new();
    for ServerParts {
        name,
        backend,
        sessions,
    } in parts
    {
        let mut streamable = StreamableHttp::new(backend.clone())
            .json_response(general.json_response)
            .sessionless(general.sessionless)
            .keepalive(keepalive)
            .session_idle_timeout(config.session.session_idle_timeout.0);
        let mut sse = Sse::new(backend.clone()).keepalive(keepalive);
        let mut sessions = sessions;
        if let Some(key) = &route_key {
            streamable = streamable.route_key(key.clone());
            sse = sse.route_key(key.clone());
            sessions = sessions.replica_id(key.clone());
        }
        let sessions = sessions.closer(streamable.clone()).closer(sse.clone());
        let server: Router = Router::new()
            .route_service("/mcp", streamable.clone())
            .merge(sse.clone().into_router())
            .layer(sessions);
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
    let origins = session::origins(&config.session, *general.listen.get())?;
    let (cors, origin_guard) = session::browser_layers(&config.session, origins);
    let ready = mounted.clone();
    // Each stack is applied with one `Router::layer`: that call boxes what it
    // is given into a route of its own, so layering one layer at a time
    // would add a boxed clone and a route future per layer to every request.
    let mcp = mcp.layer(
        ServiceBuilder::new()
            .option_layer(auth.authentication())
            .layer(McpInspectLayer::new().max_body_bytes(*general.max_body_bytes.get()))
            .layer(McpTraceLayer::new())
            .layer(McpMetricsLayer::new())
            .option_layer(auth.authorization())
            .layer(ratelimit::layer(&config.rate_limit)),
    );
    let mcp = auth
        .with_metadata(mcp)
        .layer(ServiceBuilder::new().layer(cors).layer(origin_guard))
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
    Ok((router, mounted))
}
