//! Graceful shutdown: the signals that start it, and the drain that lets
//! work in flight finish before sessions and children end.

use std::{sync::OnceLock, time::Duration};

use crate::servers::Servers;

/// Completes on Ctrl-C, or on SIGTERM on Unix.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Reopens the audit log on every SIGHUP (after logrotate renamed it), for
/// as long as the process runs. Nothing to do off Unix.
pub(crate) fn reopen_on_sighup(writer: mcp_bastion::audit::AuditWriter) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reopening the audit log");
                        writer.reopen();
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: the audit log will not be reopened")
            }
        }
    }
    #[cfg(not(unix))]
    drop(writer);
}

/// How long a graceful shutdown leaves the last answers to reach their
/// clients before it ends the sessions.
const SETTLE: Duration = Duration::from_millis(300);

/// What must still run when the drain gives up on open connections and
/// exits the process: the span exporter's flush (set by `start`).
static BEFORE_FORCED_EXIT: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Runs `hook` before a forced exit (connections still open after the
/// shutdown timeout), which skips the normal end of `main`. Set once.
pub(crate) fn before_forced_exit(hook: impl Fn() + Send + Sync + 'static) {
    let _ = BEFORE_FORCED_EXIT.set(Box::new(hook));
}

/// Graceful shutdown, after the signal (when [`Servers::start_draining`]
/// was called): no new sessions (503, and `/readyz` not ready) while
/// requests in flight finish (up to `timeout`; their sessions are still
/// served on the connections already open, so clients can answer a server's
/// request or cancel), then sessions close once the requests inside them are
/// answered (their SSE streams end) and children are ended. When this
/// returns, the open connections close once idle; a second `timeout` bounds
/// them.
pub(crate) async fn drain(servers: Servers, timeout: Duration) {
    let in_flight = || servers.in_flight_requests();
    tracing::info!(
        in_flight = in_flight(),
        "shutting down: no new sessions; waiting for requests in flight"
    );
    let deadline = tokio::time::Instant::now() + timeout;
    while in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let left = in_flight();
    if left > 0 {
        tracing::warn!(
            left,
            "shutdown timeout reached with requests in flight; ending them"
        );
    } else {
        // The last answers are routed but may still be on their way out: let
        // clients read them before their other streams (GET) end, which some
        // SDKs treat as a failure of the whole session. Requests that come in
        // meanwhile (on connections still open) are waited for by the close.
        let left_time = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(SETTLE.min(left_time)).await;
    }
    tracing::info!("closing sessions and ending children");
    servers.close_sessions_when_idle(deadline).await;
    let _ = tokio::time::timeout(timeout, servers.shutdown()).await;
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        tracing::warn!("connections still open after the shutdown timeout; exiting");
        // the hook blocks (the exporter's batch thread does the work)
        let _ = tokio::task::spawn_blocking(|| {
            if let Some(hook) = BEFORE_FORCED_EXIT.get() {
                hook();
            }
        })
        .await;
        std::process::exit(0);
    });
}
