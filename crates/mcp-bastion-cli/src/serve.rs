//! The accept loop: one for plain HTTP and TLS, with the limits that keep a
//! slow or hostile client from holding the server.
//!
//! | Client behaviour | Limit | Outcome |
//! |---|---|---|
//! | connects and sends nothing, or sends its headers a byte at a time (slowloris) | `--header-read-timeout` | connection closed |
//! | starts a TLS handshake and stalls | `--header-read-timeout` | connection closed |
//! | sends headers larger than `--max-header-bytes` | `--max-header-bytes` | `431 Request Header Fields Too Large`, connection closed |
//! | declares a body and never finishes it | `--body-read-timeout` | `408 Request Timeout` with a JSON-RPC error, connection closed |
//!
//! The body is read (by the inspection layer) before a session is looked up
//! or a backend is called, so a stalled body holds neither a session nor a
//! child's request. Each connection gets `TCP_NODELAY` and its peer address
//! as [`ConnectInfo<SocketAddr>`] (for the rate limits' client IP).
//!
//! Shutdown is graceful. A replica behind a load balancer (one with a route
//! key) closes its listener at the signal, the order a load balancer
//! understands: its next connection attempt fails, and it tries another
//! replica, while the connections already open keep serving their sessions
//! during the drain. A lone server keeps accepting during the drain, since
//! its clients have nowhere else to go and a call in flight may need a new
//! connection to finish (a client answering the server's request). When the
//! drain is done, idle connections close and requests in flight finish.
//!
//! Connections speak HTTP/1.1 (plain and over TLS).

use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo, response::Response};
use clap::Args;
use http::{HeaderValue, StatusCode, header};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use mcp_bastion::jsonrpc::{ErrorObject, codes, http_error};
use mcp_bastion_cli::config::{ServeConfig, options::MIN_HEADER_BYTES};
use serde::Serialize;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    time::{Instant, Sleep},
};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};
use tower::ServiceExt;

/// Connection limits against slow and hostile clients, as given.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Connections")]
#[serde(rename_all = "kebab-case")]
pub(crate) struct ServeFlags {
    /// Seconds a client gets to send a request's headers (and, with TLS, to
    /// finish its handshake) after connecting or after its previous answer;
    /// a connection that sends nothing is closed after this long (0: no
    /// limit) [default: 10].
    #[arg(long, value_name = "SECS")]
    pub(crate) header_read_timeout: Option<String>,

    /// Seconds a client gets to send a whole request body, counted from the
    /// end of its headers; a later body gets `408` and the connection is
    /// closed (0: no limit) [default: 30].
    #[arg(long, value_name = "SECS")]
    pub(crate) body_read_timeout: Option<String>,

    /// Largest request head (request line and headers) in bytes; a larger
    /// one gets `431` (at least 8192) [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_header_bytes: Option<String>,
}

/// The HTTP/1.1 connection settings of these limits.
fn http1(limits: &ServeConfig) -> hyper::server::conn::http1::Builder {
    let max_header_bytes = limits.max_header_bytes.get().0;
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout())
        .max_header_size(max_header_bytes)
        // the read buffer holds the head; bodies stream through it
        .max_buf_size(max_header_bytes.max(MIN_HEADER_BYTES));
    http1
}

/// When [`serve`] stops accepting connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerClose {
    /// At the shutdown signal, before the drain (replicas behind a load
    /// balancer).
    AtSignal,
    /// After the drain (a lone server).
    AfterDrain,
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `drained` completes (it starts at the shutdown signal, `signalled`),
/// closing the listener when `close` says; then waits for the open
/// connections, whose streams the drain ends, to close.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    limits: &ServeConfig,
    (signalled, close): (impl Future<Output = ()> + Send, ListenerClose),
    drained: impl Future<Output = ()> + Send,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let http1 = Arc::new(http1(limits));
    let handshake_timeout = limits.header_read_timeout();
    let body_timeout = limits.body_read_timeout();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(signalled, drained);
    let mut signal_seen = false;
    let mut drain_done = false;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly
                    // rather than spin; open connections keep being served.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signalled, if !signal_seen => {
                signal_seen = true;
                if close == ListenerClose::AtSignal {
                    break;
                }
                continue;
            }
            () = &mut drained, if !drain_done => {
                drain_done = true;
                break;
            }
        };
        // SSE replies are several small writes: without this, Nagle and
        // delayed ACKs add ~40 ms per request.
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let http1 = http1.clone();
        let watcher = graceful.watcher();
        // Boxed: the connection task would otherwise hold the whole
        // request future (axum and every layer, several KB) inline for
        // the connection's life; boxed, it is freed once the response
        // head is produced, which matters for long-lived SSE streams.
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            Box::pin(handle(router.clone(), req, peer, body_timeout))
        });
        // One task shape per case: a plain connection's task does not
        // carry room for a TLS stream and its handshake.
        match acceptor.clone() {
            None => {
                tokio::spawn(async move {
                    let conn = http1.serve_connection(TokioIo::new(tcp), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let Some(stream) = handshake(acceptor, tcp, peer, handshake_timeout).await
                    else {
                        return;
                    };
                    let conn = http1.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
        }
    }
    // At the signal (not after the drain) for a replica: a connection attempt
    // is refused, so a load balancer sends it (and the session it would
    // open) elsewhere.
    drop(listener);
    if !drain_done {
        drained.await;
    }
    graceful.shutdown().await;
}

/// The TLS handshake, bounded by `timeout`; `None` (logged) when it fails.
async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    timeout: Option<Duration>,
) -> Option<impl AsyncRead + AsyncWrite + Unpin + use<>> {
    let accept = acceptor.accept(tcp);
    let result = match timeout {
        Some(timeout) => match tokio::time::timeout(timeout, accept).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return None;
            }
        },
        None => accept.await,
    };
    match result {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
    }
}

/// One request: the peer address as an extension, the body under its
/// deadline, and a `408` in place of whatever the router answered when the
/// deadline cut the body.
async fn handle(
    router: Router,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    body_timeout: Option<Duration>,
) -> Result<Response, std::convert::Infallible> {
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    let Some(timeout) = body_timeout.filter(|_| !body.is_end_stream()) else {
        return router
            .oneshot(hyper::Request::from_parts(parts, Body::new(body)))
            .await;
    };
    let expired = Arc::new(AtomicBool::new(false));
    let body = DeadlineBody {
        inner: body,
        deadline: Instant::now() + timeout,
        timer: None,
        timeout,
        expired: expired.clone(),
    };
    let res = router
        .oneshot(hyper::Request::from_parts(parts, Body::new(body)))
        .await;
    if expired.load(Ordering::Acquire) {
        tracing::debug!(%peer, ?timeout, "request body not received in time");
        return Ok(body_timeout_response(timeout));
    }
    res
}

/// `408` with a JSON-RPC error; the connection closes after it (the rest of
/// the body is never read).
fn body_timeout_response(timeout: Duration) -> Response {
    let mut res = http_error(
        StatusCode::REQUEST_TIMEOUT,
        None,
        ErrorObject::new(codes::INVALID_REQUEST, BodyTimeout(timeout).to_string()),
    );
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// The body of a request did not arrive within `--body-read-timeout`.
#[derive(Debug)]
struct BodyTimeout(Duration);

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request body not received within {} s", self.0.as_secs())
    }
}

impl StdError for BodyTimeout {}

/// A request body that fails with [`BodyTimeout`] (and says so through
/// `expired`) once `deadline` passes before its end.
struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    /// Armed the first time the body has nothing to give.
    timer: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    expired: Arc<AtomicBool>,
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.store(true, Ordering::Release);
                Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_limit_below_hypers_buffer_is_refused() {
        use mcp_bastion_cli::config::{options::HeaderBytes, value::Parsed};
        assert!(Parsed::<HeaderBytes>::parse("4096").is_err());
        assert!(Parsed::<HeaderBytes>::parse("lots").is_err());
        assert_eq!(
            Parsed::<HeaderBytes>::parse("65536").map(|b| b.0),
            Ok(65536)
        );
    }

    /// A body that gives one frame and then nothing, forever.
    struct Stalled(bool);

    impl HttpBody for Stalled {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data("{\"jsonrpc\"".into()))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_at_its_deadline_and_says_so() {
        let expired = Arc::new(AtomicBool::new(false));
        let mut body = DeadlineBody {
            inner: Stalled(false),
            deadline: Instant::now() + Duration::from_secs(2),
            timer: None,
            timeout: Duration::from_secs(2),
            expired: expired.clone(),
        };
        assert!(matches!(
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await,
            Some(Ok(_))
        ));
        assert!(!expired.load(Ordering::Acquire));
        let started = Instant::now();
        let err = match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Err(e)) => e,
            _ => panic!("a stalled body did not fail"),
        };
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert_eq!(err.to_string(), "request body not received within 2 s");
        assert!(expired.load(Ordering::Acquire));
    }
}
