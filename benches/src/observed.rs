//! The observers of the `full-stack-observed` target (issue 21): the audit
//! log written to a file and the trace spans exported over OTLP/HTTP, set
//! up in the `bench-server` process the way the `mcp-bastion` binary sets
//! them up with `--audit-log PATH --otlp-endpoint URL`.
//!
//! - [`McpAuditLayer`] over an [`AuditWriter`] of the default queue
//!   capacity, appending to a file;
//! - a global tracing subscriber with only `mcp_bastion::otel::layer` (which
//!   exports `INFO` and above, as in the binary) over an `SdkTracerProvider` with a
//!   batch exporter (its own thread), HTTP/protobuf to `{base}/v1/traces`
//!   through `reqwest` on the Tokio runtime, as the binary sends it.
//!
//! [`Observed::shutdown`] exports what is still queued (the server calls it
//! on `SIGTERM`, so every span of a run reaches the sink) and says on stderr
//! how many audit records the queue dropped.

use std::{
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    time::Duration,
};

use bytes::Bytes;
use mcp_bastion::audit::{AuditSink, AuditWriter, DEFAULT_QUEUE_CAPACITY, McpAuditLayer};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _};

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running observers of one `bench-server full-stack-observed`.
#[derive(Debug)]
pub struct Observed {
    provider: SdkTracerProvider,
    audit: McpAuditLayer,
    audit_log: PathBuf,
}

impl Observed {
    /// Opens the audit log at `audit_log` (appending), or in a new
    /// directory under the system's temp dir when `None`, and installs the
    /// exporting subscriber as this process's global default, sending to
    /// the OTLP/HTTP base URL `otlp` (`/v1/traces` is added unless it is
    /// there). Call it once, on the Tokio runtime that serves.
    pub fn start(otlp: &str, audit_log: Option<&Path>) -> Result<Self, String> {
        let audit_log = match audit_log {
            Some(path) => path.to_owned(),
            None => {
                let dir = std::env::temp_dir().join(format!("bench-audit-{}", std::process::id()));
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                dir.join("audit.jsonl")
            }
        };
        let writer = AuditWriter::open(AuditSink::File(audit_log.clone()), DEFAULT_QUEUE_CAPACITY)
            .map_err(|e| format!("audit log {}: {e}", audit_log.display()))?;
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("OTLP HTTP client: {e}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(OnTokio {
                client,
                runtime: tokio::runtime::Handle::current(),
            })
            .with_endpoint(traces_url(otlp))
            .build()
            .map_err(|e| format!("OTLP exporter: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("bench-server")
                    .build(),
            )
            .build();
        // exports INFO and above, as in the binary
        let layer = mcp_bastion::otel::layer(provider.tracer("mcp-bastion"));
        tracing_subscriber::registry()
            .with(layer)
            .try_init()
            .map_err(|e| format!("tracing subscriber: {e}"))?;
        Ok(Self {
            provider,
            audit: McpAuditLayer::new(writer),
            audit_log,
        })
    }

    /// The audit layer to mount (see `servers::full_stack_observed`).
    pub fn audit(&self) -> &McpAuditLayer {
        &self.audit
    }

    /// Where the audit records go.
    pub fn audit_log(&self) -> &Path {
        &self.audit_log
    }

    /// Exports the spans still queued and stops the exporter; reports on
    /// stderr how many audit records were dropped (queue full).
    pub async fn shutdown(self) {
        let dropped = self.audit.writer().dropped();
        let provider = self.provider;
        // blocks until the batch thread has exported, which needs the
        // runtime's other threads to send: off the async ones
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("bench-server: flushing spans: {e}"),
            Err(e) => eprintln!("bench-server: flushing spans: {e}"),
        }
        eprintln!("bench-server: audit records dropped: {dropped}");
    }
}

/// The traces URL under an OTLP/HTTP base URL.
fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The exporter's HTTP client: `reqwest`, each export a task on the Tokio
/// runtime (the batch processor's thread has no runtime of its own).
#[derive(Debug)]
struct OnTokio {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl HttpClient for OnTokio {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let mut out = Response::builder().status(response.status());
            if let Some(headers) = out.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(out.body(body)?)
        });
        Box::pin(async move { sent.await.map_err(|e| Box::new(e) as HttpError)? })
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/v1/traces"),
            "http://127.0.0.1:4318/v1/traces"
        );
    }
}
