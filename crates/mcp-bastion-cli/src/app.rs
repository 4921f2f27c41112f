//! The router: every server's transports behind the layers of one
//! [`McpStack`], in the order it fixes (see its docs), with the operator
//! routes beside them.

use std::{collections::BTreeSet, time::Duration};

use axum::{Router, http::StatusCode, routing::get};
use mcp_bastion::{
    audit::McpAuditLayer,
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
/// `audit` is given), and `/healthz`, `/readyz` outside it.
pub(crate) fn app(
    config: &Config,
    parts: Vec<ServerParts>,
    auth: &auth::AuthLayers,
    audit: Option<McpAuditLayer>,
) -> Result<(Router, servers::Servers), String> {
    let general = &config.general;
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
    let origins = session::origins(&config.session, *general.listen.get())?;
    let (cors, origin_guard) = session::browser_layers(&config.session, origins);
    let mut stack = McpStack::new();
    if let Some(audit) = audit {
        stack = stack.audit(audit);
    }
    let stack = stack
        .cors(cors)
        .origin_guard(origin_guard)
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
    Ok((router, mounted))
}
