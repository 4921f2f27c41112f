//! An OTLP/HTTP receiver that keeps nothing: [`OtlpSink`] answers every
//! `POST /v1/traces` with 200 and an empty `ExportTraceServiceResponse`
//! (zero bytes of protobuf), and counts the exports and their bytes, so the
//! `full-stack-observed` target really exports and the harness can say how
//! much arrived.
//!
//! It runs on a thread of its own with a one-thread Tokio runtime, outside
//! the measured process tree and whatever runtime its owner runs.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use axum::{Router, body::Bytes, extract::DefaultBodyLimit, routing::post};
use tokio::sync::oneshot;

/// What an [`OtlpSink`] has received so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// `POST /v1/traces` requests answered.
    pub exports: u64,
    /// Their body bytes (protobuf, uncompressed).
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct Counts {
    exports: AtomicU64,
    bytes: AtomicU64,
}

/// A running receiver; stopped when dropped.
#[derive(Debug)]
pub struct OtlpSink {
    addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpSink {
    /// Starts a receiver on a free loopback port.
    pub fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let counts = Arc::new(Counts::default());
        let app = Router::new()
            .route(
                "/v1/traces",
                post({
                    let counts = counts.clone();
                    move |body: Bytes| async move {
                        counts.exports.fetch_add(1, Ordering::Relaxed);
                        counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                        ([(http::header::CONTENT_TYPE, "application/x-protobuf")], "")
                    }
                }),
            )
            .layer(DefaultBodyLimit::disable());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("otlp-sink".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            addr,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The base URL to give an exporter (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What arrived so far.
    pub fn received(&self) -> Received {
        Received {
            exports: self.counts.exports.load(Ordering::Relaxed),
            bytes: self.counts.bytes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
