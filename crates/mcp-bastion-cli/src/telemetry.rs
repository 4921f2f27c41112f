//! OpenTelemetry trace export (`--otlp-endpoint`, `--otlp-protocol` and the
//! standard `OTEL_*` variables), built into the binary with feature `otel`
//! (on by default).
//!
//! Export is on when an endpoint is given: the flag (a base URL, to which
//! `/v1/traces` is added for HTTP/protobuf), else
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL). Without one nothing is built
//! and nothing changes. `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn it off. The protocol is the flag's,
//! else `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`,
//! else HTTP/protobuf. `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
//! name the resource (service name `mcp-bastion` by default);
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_TRACES_SAMPLER` and `OTEL_BSP_*` are read by the OpenTelemetry SDK.
//!
//! Spans go through a batch processor (its own thread); the HTTP exporter
//! sends with the proxy's `reqwest` client on the Tokio runtime. On shutdown
//! [`Telemetry::shutdown`] flushes what is queued.

use mcp_bastion_cli::config::options::{GeneralConfig, OtlpProtocol};

/// Where and how spans are exported, resolved from the options and the
/// environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportSettings {
    /// The endpoint to give the exporter (`None`: the SDK reads the
    /// `OTEL_EXPORTER_OTLP_*ENDPOINT` variables itself).
    pub(crate) endpoint: Option<String>,
    /// The protocol.
    pub(crate) protocol: OtlpProtocol,
}

/// Resolves the export settings; `None` when nothing is to be exported.
/// `var` reads an environment variable.
pub(crate) fn settings(
    general: &GeneralConfig,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<ExportSettings>, String> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
    {
        return Ok(None);
    }
    let protocol = match &general.otlp_protocol {
        Some(p) => *p.get(),
        None => match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
            .map(str::trim)
        {
            None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some("grpc") => OtlpProtocol::Grpc,
            Some(other) => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={other}: this build exports grpc or http/protobuf"
                ));
            }
        },
    };
    let endpoint = match &general.otlp_endpoint {
        Some(url) => Some(signal_url(&url.get().0, protocol)),
        None if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
            || set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() =>
        {
            None
        }
        None => return Ok(None),
    };
    if protocol == OtlpProtocol::Grpc
        && endpoint
            .as_deref()
            .is_some_and(|e| e.trim_start().to_ascii_lowercase().starts_with("https:"))
    {
        return Err(
            "--otlp-endpoint https://…: gRPC export is plaintext in this build; \
                    use --otlp-protocol http-protobuf for a TLS collector"
                .into(),
        );
    }
    Ok(Some(ExportSettings { endpoint, protocol }))
}

/// The traces URL of a base endpoint: HTTP/protobuf posts to `/v1/traces`
/// under it (unless it already ends so); gRPC takes it as it is.
fn signal_url(base: &str, protocol: OtlpProtocol) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf if base.trim_end_matches('/').ends_with("/v1/traces") => {
            base.to_owned()
        }
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
    }
}

/// The running exporter (nothing when export is off).
pub(crate) struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

/// The tracing layer that exports spans, boxed for the subscriber.
pub(crate) type ExportLayer =
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

impl Telemetry {
    /// Builds the exporter `settings` describe (on the current Tokio
    /// runtime) and the layer to install; `Ok((nothing, None))` without
    /// settings.
    pub(crate) fn start(
        settings: Option<ExportSettings>,
    ) -> Result<(Telemetry, Option<ExportLayer>), String> {
        let Some(settings) = settings else {
            return Ok((Telemetry::off(), None));
        };
        #[cfg(feature = "otel")]
        {
            let (provider, layer) = export::start(settings)?;
            Ok((
                Telemetry {
                    provider: Some(provider),
                },
                Some(layer),
            ))
        }
        #[cfg(not(feature = "otel"))]
        {
            drop(settings);
            Err(
                "OTLP export (--otlp-endpoint, OTEL_EXPORTER_OTLP_ENDPOINT) needs a build \
                 with feature `otel`"
                    .into(),
            )
        }
    }

    fn off() -> Telemetry {
        Telemetry {
            #[cfg(feature = "otel")]
            provider: None,
        }
    }

    /// Exports what is still queued and stops the exporter.
    pub(crate) async fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider {
            // blocks until the batch thread has exported, which needs the
            // runtime's other threads: off the async ones
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                eprintln!("mcp-bastion: flushing trace spans at shutdown failed: {e}");
            }
        }
    }
}

#[cfg(feature = "otel")]
mod export {
    use std::{future::Future, pin::Pin, time::Duration};

    use bytes::Bytes;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_http::{HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
    use tracing_subscriber::Layer;

    use super::{ExportLayer, ExportSettings, OtlpProtocol};

    /// How long one export may take (the SDK's default).
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    pub(super) fn start(
        settings: ExportSettings,
    ) -> Result<(SdkTracerProvider, ExportLayer), String> {
        let exporter = match settings.protocol {
            OtlpProtocol::Grpc => {
                let builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
                match settings.endpoint {
                    Some(url) => builder.with_endpoint(url).build(),
                    None => builder.build(),
                }
            }
            OtlpProtocol::HttpProtobuf => {
                let client = reqwest::Client::builder()
                    .timeout(EXPORT_TIMEOUT)
                    .build()
                    .map_err(|e| format!("OTLP HTTP client: {e}"))?;
                let builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_http_client(ReqwestOnTokio {
                        client,
                        runtime: tokio::runtime::Handle::current(),
                    });
                match settings.endpoint {
                    Some(url) => builder.with_endpoint(url).build(),
                    None => builder.build(),
                }
            }
        }
        .map_err(|e| format!("OTLP exporter: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build();
        // exports INFO and above, whatever MCP_BASTION_LOG says
        let layer = mcp_bastion::otel::layer(provider.tracer("mcp-bastion")).boxed();
        Ok((provider, layer))
    }

    /// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, else service name
    /// `mcp-bastion`; and the version.
    fn resource() -> Resource {
        let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
            || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
                v.split(',')
                    .any(|kv| kv.trim().starts_with("service.name="))
            });
        let builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ));
        if named {
            builder.build()
        } else {
            builder.with_service_name("mcp-bastion").build()
        }
    }

    /// The OTLP/HTTP client: the proxy's `reqwest`, each export run as a
    /// task on the Tokio runtime (the batch processor's thread has none).
    #[derive(Debug)]
    struct ReqwestOnTokio {
        client: reqwest::Client,
        runtime: tokio::runtime::Handle,
    }

    impl HttpClient for ReqwestOnTokio {
        fn send_bytes<'a, 'b>(
            &'a self,
            request: Request<Bytes>,
        ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
        where
            'a: 'b,
            Self: 'b,
        {
            let client = self.client.clone();
            let task = self.runtime.spawn(async move {
                let request = reqwest::Request::try_from(request)?;
                let response = client.execute(request).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                let mut out = Response::new(body);
                *out.status_mut() = status;
                *out.headers_mut() = headers;
                Ok::<_, HttpError>(out)
            });
            Box::pin(async move { task.await.map_err(|e| Box::new(e) as HttpError)? })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::collections::HashMap;

    use mcp_bastion_cli::config::{
        options::{OtlpEndpoint, OtlpProtocol},
        value::Parsed,
    };

    use super::*;

    fn general(endpoint: Option<&str>, protocol: Option<OtlpProtocol>) -> GeneralConfig {
        GeneralConfig {
            otlp_endpoint: endpoint.map(|e| Parsed::known(e, OtlpEndpoint(e.to_owned()))),
            otlp_protocol: protocol.map(|p| Parsed::known("p", p)),
            ..GeneralConfig::default()
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        let map: HashMap<_, _> = vars.iter().copied().collect();
        move |k| map.get(k).map(|v| (*v).to_owned())
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert_eq!(settings(&general(None, None), env(&[])).unwrap(), None);
        assert_eq!(
            settings(
                &general(None, Some(OtlpProtocol::Grpc)),
                env(&[("OTEL_SERVICE_NAME", "x")])
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn the_flag_is_a_base_url_and_the_protocol_defaults_from_the_environment() {
        let s = settings(&general(Some("http://c:4318"), None), env(&[])).unwrap();
        assert_eq!(
            s,
            Some(ExportSettings {
                endpoint: Some("http://c:4318/v1/traces".into()),
                protocol: OtlpProtocol::HttpProtobuf
            })
        );
        let s = settings(
            &general(Some("http://c:4317"), None),
            env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.protocol, OtlpProtocol::Grpc);
        assert_eq!(s.endpoint.as_deref(), Some("http://c:4317"));
        let s = settings(
            &general(Some("http://c/v1/traces"), Some(OtlpProtocol::HttpProtobuf)),
            env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(s.endpoint.as_deref(), Some("http://c/v1/traces"));
    }

    #[test]
    fn the_standard_variables_turn_export_on_and_off() {
        let s = settings(
            &general(None, None),
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, None, "the SDK resolves the variable itself");
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(
                settings(&general(Some("http://c:4318"), None), env(&[off])).unwrap(),
                None
            );
        }
        assert!(
            settings(
                &general(Some("http://c:4318"), None),
                env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])
            )
            .is_err()
        );
        assert!(
            settings(
                &general(Some("https://c:4317"), Some(OtlpProtocol::Grpc)),
                env(&[])
            )
            .is_err(),
            "gRPC is plaintext only"
        );
    }

    #[cfg(feature = "otel")]
    #[tokio::test]
    async fn both_exporters_build() {
        for (url, protocol) in [
            ("http://127.0.0.1:4317", OtlpProtocol::Grpc),
            ("http://127.0.0.1:4318", OtlpProtocol::HttpProtobuf),
        ] {
            let s = settings(&general(Some(url), Some(protocol)), env(&[]))
                .unwrap()
                .unwrap();
            let (telemetry, layer) = Telemetry::start(Some(s)).unwrap();
            assert!(layer.is_some());
            telemetry.shutdown().await;
        }
    }
}
