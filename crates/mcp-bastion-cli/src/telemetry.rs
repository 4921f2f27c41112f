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
//! TLS, for both protocols (an `https://` endpoint): the server is checked
//! against Mozilla's roots (the `webpki-roots` that reqwest carries), or
//! against the PEM bundle of `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` /
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` instead (a private CA); a client
//! certificate is presented when `OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE`
//! and `OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY` name one (mTLS). The signal's
//! variable wins over the general one, each on its own. The SDK does not read
//! these; we do, here only, and check the files at start: a missing,
//! unreadable or malformed file, a key that does not match its certificate,
//! or one of the pair without the other stops the start with an error naming
//! the variable and the path (never the content). For gRPC,
//! `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE` is the SDK's: it only decides the
//! scheme of an endpoint variable given without one (`collector:4317`).
//!
//! Spans go through a batch processor (its own thread); the HTTP exporter
//! sends with the proxy's `reqwest` client on the Tokio runtime. On shutdown
//! [`Telemetry::shutdown`] flushes what is queued.

use mcp_bastion_cli::config::options::{GeneralConfig, OtlpProtocol};

use crate::pem::PemFile;

/// Where and how spans are exported, resolved from the options and the
/// environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportSettings {
    /// The endpoint to give the exporter (`None`: the SDK reads the
    /// `OTEL_EXPORTER_OTLP_*ENDPOINT` variables itself).
    pub(crate) endpoint: Option<String>,
    /// The protocol.
    pub(crate) protocol: OtlpProtocol,
    /// The PEM files for TLS to the collector.
    pub(crate) tls: TlsFiles,
}

/// The PEM files of the TLS variables (paths only: they are read and checked
/// when the exporter is built).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// The CA bundle the collector's certificate is checked against, instead
    /// of the built-in roots.
    pub(crate) ca: Option<PemFile>,
    /// The client certificate (chain) and its key, for mTLS.
    pub(crate) client: Option<ClientFiles>,
}

/// A client certificate and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientFiles {
    /// The certificate chain, leaf first.
    pub(crate) cert: PemFile,
    /// The private key.
    pub(crate) key: PemFile,
}

/// `(signal-specific, general)` names of the TLS variables.
const CERTIFICATE: (&str, &str) = (
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
);
const CLIENT_CERTIFICATE: (&str, &str) = (
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
);
const CLIENT_KEY: (&str, &str) = (
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
);

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
    let tls = tls_files(&set)?;
    Ok(Some(ExportSettings {
        endpoint,
        protocol,
        tls,
    }))
}

/// The TLS variables: for each, the signal-specific one, else the general
/// one. A client certificate and its key come together or not at all.
fn tls_files(set: &impl Fn(&str) -> Option<String>) -> Result<TlsFiles, String> {
    let file = |(signal, general): (&'static str, &'static str)| {
        [signal, general]
            .into_iter()
            .find_map(|var| set(var).map(|path| PemFile::variable(var, path)))
    };
    let client = match (file(CLIENT_CERTIFICATE), file(CLIENT_KEY)) {
        (Some(cert), Some(key)) => Some(ClientFiles { cert, key }),
        (None, None) => None,
        (Some(cert), None) => {
            return Err(format!(
                "{cert}: a client certificate needs its private key in {} (or {})",
                CLIENT_KEY.1, CLIENT_KEY.0
            ));
        }
        (None, Some(key)) => {
            return Err(format!(
                "{key}: a client key needs its certificate in {} (or {})",
                CLIENT_CERTIFICATE.1, CLIENT_CERTIFICATE.0
            ));
        }
    };
    Ok(TlsFiles {
        ca: file(CERTIFICATE),
        client,
    })
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

    /// A function that exports what is queued, for an exit that skips
    /// [`Telemetry::shutdown`] (`None` when nothing is exported).
    pub(crate) fn flusher(&self) -> Option<impl Fn() + Send + Sync + 'static> {
        #[cfg(feature = "otel")]
        {
            self.provider.clone().map(|provider| {
                move || {
                    if let Err(e) = provider.force_flush() {
                        eprintln!("mcp-bastion: flushing trace spans at exit failed: {e}");
                    }
                }
            })
        }
        #[cfg(not(feature = "otel"))]
        {
            None::<fn()>
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
    use opentelemetry_otlp::{
        Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
        tonic_types::transport::{Certificate, ClientTlsConfig, Identity},
    };
    use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
    use tracing_subscriber::Layer;

    use super::{ExportLayer, ExportSettings, OtlpProtocol, TlsFiles};
    use crate::pem::{CaBundle, ClientIdentity};

    /// The files of [`TlsFiles`], read and checked before anything is built
    /// with them. (No `Debug`: it holds a private key.)
    struct Material {
        /// The CA bundle, replacing the built-in roots.
        ca: Option<CaBundle>,
        /// The client identity, for mTLS.
        client: Option<ClientIdentity>,
    }

    impl Material {
        fn load(files: &TlsFiles) -> Result<Self, String> {
            Ok(Self {
                ca: files.ca.as_ref().map(CaBundle::load).transpose()?,
                client: files
                    .client
                    .as_ref()
                    .map(|pair| ClientIdentity::load(&pair.cert, &pair.key))
                    .transpose()?,
            })
        }
    }

    /// How long one export may take (the SDK's default).
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    pub(super) fn start(
        settings: ExportSettings,
    ) -> Result<(SdkTracerProvider, ExportLayer), String> {
        let material = Material::load(&settings.tls)?;
        let exporter = match settings.protocol {
            OtlpProtocol::Grpc => {
                let builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_tls_config(grpc_tls(&material));
                match settings.endpoint {
                    Some(url) => builder.with_endpoint(url).build(),
                    None => builder.build(),
                }
            }
            OtlpProtocol::HttpProtobuf => {
                let client = http_client(&material, &settings.tls)?;
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
            .with_batch_exporter(mcp_bastion::otel::ReportingExporter::new(exporter))
            .with_resource(resource())
            .build();
        // exports INFO and above, whatever MCP_BASTION_LOG says
        let layer = mcp_bastion::otel::layer(provider.tracer("mcp-bastion")).boxed();
        Ok((provider, layer))
    }

    /// The gRPC channel's TLS (used for an `https` endpoint only; tonic
    /// speaks h2c to an `http` one): the CA bundle, else Mozilla's roots;
    /// and the client identity.
    fn grpc_tls(material: &Material) -> ClientTlsConfig {
        let tls = match &material.ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        match &material.client {
            Some(id) => tls.identity(Identity::from_pem(&id.cert, &id.key)),
            None => tls,
        }
    }

    /// The OTLP/HTTP client: the CA bundle instead of the built-in roots,
    /// and the client identity.
    fn http_client(material: &Material, files: &TlsFiles) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder().timeout(EXPORT_TIMEOUT);
        if let Some(ca) = &material.ca {
            builder = builder.tls_built_in_root_certs(false);
            for cert in ca.reqwest_certificates() {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(id), Some(pair)) = (&material.client, &files.client) {
            // reqwest's messages name no part of the key
            let identity = reqwest::Identity::from_pem(&id.combined())
                .map_err(|e| format!("{} and {}: {e}", pair.cert, pair.key))?;
            builder = builder.identity(identity);
        }
        builder
            .build()
            .map_err(|e| format!("OTLP HTTP client: {e}"))
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
                protocol: OtlpProtocol::HttpProtobuf,
                tls: TlsFiles::default(),
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
    }

    #[test]
    fn an_https_endpoint_is_accepted_for_both_protocols() {
        for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
            let s = settings(&general(Some("https://c:4317"), Some(protocol)), env(&[]))
                .unwrap()
                .unwrap();
            assert!(s.endpoint.unwrap().starts_with("https://c:4317"));
            assert_eq!(s.tls, TlsFiles::default());
        }
    }

    fn pem_file(var: &'static str, path: &str) -> PemFile {
        PemFile::variable(var, path)
    }

    #[test]
    fn the_signal_specific_tls_variable_wins_each_on_its_own() {
        let s = settings(
            &general(Some("https://c:4318"), None),
            env(&[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/general/ca.pem"),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces/ca.pem"),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    "/general/client.pem",
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/general/client-key.pem"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                    "/traces/client-key.pem",
                ),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.tls,
            TlsFiles {
                ca: Some(pem_file(
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                    "/traces/ca.pem"
                )),
                client: Some(ClientFiles {
                    cert: pem_file(
                        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                        "/general/client.pem"
                    ),
                    key: pem_file(
                        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                        "/traces/client-key.pem"
                    ),
                }),
            }
        );
        // the general ones alone; an empty value is unset
        let s = settings(
            &general(Some("https://c:4318"), None),
            env(&[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/general/ca.pem"),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", " "),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.tls.ca,
            Some(pem_file(
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "/general/ca.pem"
            ))
        );
        assert_eq!(s.tls.client, None);
    }

    #[test]
    fn a_client_certificate_and_its_key_come_together() {
        let e = settings(
            &general(Some("https://c:4318"), None),
            env(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "/c.pem")]),
        )
        .unwrap_err();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE=/c.pem")
                && e.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
            "{e}"
        );
        let e = settings(
            &general(Some("https://c:4318"), None),
            env(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")]),
        )
        .unwrap_err();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY=/k.pem")
                && e.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
            "{e}"
        );
        // not looked at when nothing is exported
        assert_eq!(
            settings(
                &general(None, None),
                env(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")])
            )
            .unwrap(),
            None
        );
    }

    /// A file in a fresh directory of this test process.
    #[cfg(feature = "otel")]
    fn write(name: &str, text: &str) -> String {
        let dir =
            std::env::temp_dir().join(format!("mcp-bastion-telemetry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// What starting an HTTPS exporter with the variables `vars` says.
    #[cfg(feature = "otel")]
    fn start_error(vars: &[(&str, &str)]) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let s = settings(&general(Some("https://127.0.0.1:9"), None), env(vars))
            .unwrap()
            .unwrap();
        match Telemetry::start(Some(s)) {
            Ok(_) => panic!("{vars:?} started"),
            Err(e) => e,
        }
    }

    #[cfg(feature = "otel")]
    #[test]
    fn bad_pem_files_are_refused_naming_the_variable_and_the_path_never_the_content() {
        const SECRET: &str = "c2VjcmV0LWtleS1tYXRlcmlhbA";
        let missing = std::env::temp_dir().join("mcp-bastion-no-such-dir/ca.pem");
        let missing = missing.display().to_string();
        let e = start_error(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", &missing)]);
        assert!(
            e.contains(&format!(
                "OTEL_EXPORTER_OTLP_CERTIFICATE={missing}: cannot read it"
            )),
            "{e}"
        );

        let empty = write("empty.pem", "just text\n");
        let e = start_error(&[("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &empty)]);
        assert!(
            e.contains(&format!(
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE={empty}: no PEM certificate"
            )),
            "{e}"
        );

        let cut = write(
            "cut.pem",
            &format!("-----BEGIN CERTIFICATE-----\n{SECRET}\n"),
        );
        let e = start_error(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", &cut)]);
        assert!(e.contains(&cut) && e.contains("not valid PEM"), "{e}");
        assert!(!e.contains(SECRET), "{e}");

        // PEM, but not an X.509 certificate
        let junk = write(
            "junk.pem",
            &format!("-----BEGIN CERTIFICATE-----\n{SECRET}\n-----END CERTIFICATE-----\n"),
        );
        let e = start_error(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", &junk)]);
        assert!(e.contains(&junk) && e.contains("certificate 1"), "{e}");

        // a key file with no key, then one whose key is malformed: the key's variable and
        // path, not its text
        let bad_key = write(
            "bad-key.pem",
            &format!("-----BEGIN PRIVATE KEY-----\n{SECRET}!\n-----END PRIVATE KEY-----\n"),
        );
        for key in [empty.as_str(), bad_key.as_str()] {
            let e = start_error(&[
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &junk),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key),
            ]);
            assert!(
                e.contains(&format!("OTEL_EXPORTER_OTLP_CLIENT_KEY={key}: ")),
                "{e}"
            );
            assert!(!e.contains(SECRET), "{e}");
        }
    }

    #[cfg(feature = "otel")]
    #[tokio::test]
    async fn both_exporters_build() {
        for (url, protocol) in [
            ("http://127.0.0.1:4317", OtlpProtocol::Grpc),
            ("http://127.0.0.1:4318", OtlpProtocol::HttpProtobuf),
            ("https://127.0.0.1:4317", OtlpProtocol::Grpc),
            ("https://127.0.0.1:4318", OtlpProtocol::HttpProtobuf),
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
