//! A span exporter that says when exporting fails and when it works again.

use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SpanData, SpanExporter},
};

/// The counter of spans in batches the exporter failed to send.
pub const OTLP_SPANS_FAILED: &str = "mcp_otlp_spans_failed_total";

/// Longest an error's text is logged at (a collector's answer can be long).
const MAX_ERROR_CHARS: usize = 300;

/// How often a warning repeats while export keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Wraps a span exporter (the OTLP one, usually) so that a failing export
/// is not silent: the first failure is a warning naming the error, a
/// failure that goes on is warned about again at most once a minute with
/// the count of spans lost, and the first success after failures says how
/// many were lost. Spans in a failed batch are counted in
/// `mcp_otlp_spans_failed_total` ([`OTLP_SPANS_FAILED`], feature
/// `metrics`). What the inner
/// exporter returns is returned as it is.
///
/// ```
/// use mcp_bastion::otel::ReportingExporter;
/// use opentelemetry_sdk::trace::SdkTracerProvider;
///
/// # fn wrap<E: opentelemetry_sdk::trace::SpanExporter + 'static>(exporter: E) {
/// let provider = SdkTracerProvider::builder()
///     .with_batch_exporter(ReportingExporter::new(exporter))
///     .build();
/// # drop(provider);
/// # }
/// ```
pub struct ReportingExporter<E> {
    inner: E,
    failing: AtomicBool,
    /// Spans lost since export last worked.
    lost: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl<E> ReportingExporter<E> {
    /// Reports on `inner`'s exports.
    pub fn new(inner: E) -> Self {
        #[cfg(feature = "metrics")]
        metrics::counter!(OTLP_SPANS_FAILED).increment(0);
        Self {
            inner,
            failing: AtomicBool::new(false),
            lost: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        }
    }

    /// The wrapped exporter.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    fn failed(&self, spans: usize, error: &dyn fmt::Display) {
        let spans = spans as u64;
        #[cfg(feature = "metrics")]
        metrics::counter!(OTLP_SPANS_FAILED).increment(spans);
        let lost = self.lost.fetch_add(spans, Ordering::Relaxed) + spans;
        let first = !self.failing.swap(true, Ordering::Relaxed);
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if first || last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            let error: String = error.to_string().chars().take(MAX_ERROR_CHARS).collect();
            if first {
                tracing::warn!(%error, spans, "OTLP export failed: these spans are lost");
            } else {
                tracing::warn!(%error, lost, "OTLP export still failing");
            }
        }
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            let lost = self.lost.swap(0, Ordering::Relaxed);
            tracing::info!(lost, "OTLP export works again");
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for ReportingExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportingExporter")
            .field("inner", &self.inner)
            .field("failing", &self.failing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<E: SpanExporter> SpanExporter for ReportingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.succeeded(),
            Err(error) => self.failed(spans, error),
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::{Arc, atomic::AtomicUsize};

    use opentelemetry_sdk::error::OTelSdkError;

    use super::*;

    /// Fails the first `fail` exports, then succeeds.
    #[derive(Debug, Clone)]
    struct Flaky {
        fail: usize,
        calls: Arc<AtomicUsize>,
    }

    impl SpanExporter for Flaky {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            if self.calls.fetch_add(1, Ordering::Relaxed) < self.fail {
                Err(OTelSdkError::InternalFailure("connection refused".into()))
            } else {
                Ok(())
            }
        }
    }

    /// Captures what is logged, as text.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn failures_are_warned_about_once_and_recovery_says_what_was_lost() {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let calls = Arc::new(AtomicUsize::new(0));
        let exporter = ReportingExporter::new(Flaky {
            fail: 3,
            calls: calls.clone(),
        });
        let batch = |n: usize| vec![test_span(); n];
        for n in [2, 3, 4] {
            assert!(block_on(exporter.export(batch(n))).is_err(), "passed on");
        }
        assert!(block_on(exporter.export(batch(1))).is_ok());
        assert!(block_on(exporter.export(batch(1))).is_ok());
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "one warning, one recovery: {text}");
        assert!(
            lines[0].contains("WARN")
                && lines[0].contains("OTLP export failed")
                && lines[0].contains("connection refused")
                && lines[0].contains("spans=2"),
            "{text}"
        );
        assert!(
            lines[1].contains("INFO")
                && lines[1].contains("works again")
                && lines[1].contains("lost=9"),
            "{text}"
        );
        assert_eq!(calls.load(Ordering::Relaxed), 5);
    }

    fn test_span() -> SpanData {
        use opentelemetry::{
            InstrumentationScope,
            trace::{SpanContext, SpanId, SpanKind, Status},
        };
        use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "test".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }
}
