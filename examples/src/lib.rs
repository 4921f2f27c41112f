//! Runnable examples live in `examples/examples/`; this library holds what
//! they all do the same way: logging, and serving a router the way a
//! production server should (see [`serve`]).

use std::net::SocketAddr;

use axum::{Router, serve::ListenerExt};

/// Logs to stderr, filtered by `RUST_LOG` (default `info,rmcp=warn`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rmcp=warn".into()),
        )
        .init();
}

/// Serves `app` on `listen` until Ctrl-C or SIGTERM, printing
/// `mcp-bastion listening on http://ADDR` once bound, with the two settings
/// every MCP server over HTTP wants:
///
/// - `TCP_NODELAY` on every accepted socket: an SSE reply goes out in
///   several small writes, and without it Nagle's algorithm and delayed
///   ACKs add about 40 ms to each request;
/// - the peer address as `ConnectInfo<SocketAddr>`, which rate limits keyed
///   by client IP (and `TrustedProxies`) read.
///
/// # Errors
///
/// When the address cannot be bound, or the server fails.
pub async fn serve(listen: SocketAddr, app: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    eprintln!("mcp-bastion listening on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
}

/// Ctrl-C, or SIGTERM on Unix (what `kill` and container runtimes send).
async fn shutdown_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
