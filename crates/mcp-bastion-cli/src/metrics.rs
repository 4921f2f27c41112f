//! Prometheus metrics: the recorder, and the `/metrics` route (on the main
//! listener, or alone on `--metrics-listen ADDR`).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use mcp_bastion::metrics::SESSIONS_OPEN;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// What `/metrics` renders.
#[derive(Clone)]
pub(crate) struct Scrape {
    handle: PrometheusHandle,
    sessions: Arc<dyn Fn() -> [(&'static str, usize); 2] + Send + Sync>,
}

/// How often the recorder's histogram samples are drained.
const UPKEEP: Duration = Duration::from_secs(5);

impl Scrape {
    /// Installs the process-wide Prometheus recorder. Call once, before any
    /// metric is recorded.
    /// The open-session gauges count the sessions of every server.
    pub(crate) fn install(servers: crate::servers::Servers) -> Result<Self, String> {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
        // Histogram samples pile up in the recorder until something drains
        // them: without this, a proxy nobody scrapes grows by every request
        // (~60 bytes per session measured by tests/tests/load.rs).
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP);
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(Self {
            handle,
            sessions: Arc::new(move || {
                let (streamable, sse) = servers.session_counts();
                [("streamable-http", streamable), ("sse", sse)]
            }),
        })
    }

    fn render(&self) -> String {
        for (transport, n) in (self.sessions)() {
            metrics::gauge!(SESSIONS_OPEN, "transport" => transport).set(n as f64);
        }
        self.handle.render()
    }

    /// `GET /metrics`.
    pub(crate) fn router(&self) -> Router {
        let this = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let body = this.render();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
                }
            }),
        )
    }

    /// Serves `/metrics` alone on `addr` until the process ends.
    pub(crate) async fn serve_alone(&self, addr: SocketAddr) -> Result<SocketAddr, String> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on --metrics-listen {addr}: {e}"))?;
        let local = listener.local_addr().unwrap_or(addr);
        let router = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("metrics listener failed: {e}");
            }
        });
        Ok(local)
    }
}
