//! A real OTLP/HTTP trace receiver: `tests/clients/otlp_receiver.py`, which decodes what arrives
//! at `/v1/traces` with the official `opentelemetry-proto` package and writes each span as a JSON
//! line (`trace_id`, `span_id`, `parent_span_id`, `name`, `kind`, `status`, `attributes`,
//! `events`, the resource's `service`); or, started with [`Receiver::start_grpc`], the same over
//! OTLP/gRPC; [`Receiver::start_tls`] serves either over TLS (optionally requiring a client
//! certificate).
#![allow(
    clippy::unwrap_used,
    reason = "test fixtures: a failure is a test failure"
)]

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{Server, certs::PrivateCa, clients_dir, python};

/// The receiver process, writing spans to a file in a fresh temporary directory; stopped on
/// drop.
pub struct Receiver {
    server: Server,
    out: PathBuf,
}

impl Receiver {
    /// Starts it (OTLP/HTTP, protobuf); `tag` names its directory.
    pub fn start(tag: &str) -> Receiver {
        Receiver::start_with(tag, &[])
    }

    /// Starts it as an OTLP/gRPC receiver (`grpcio`).
    pub fn start_grpc(tag: &str) -> Receiver {
        Receiver::start_with(tag, &["--grpc"])
    }

    /// Starts it serving TLS with the server certificate of `ca` (OTLP/gRPC when `grpc`, else
    /// OTLP/HTTP); with `mtls` it also requires a client certificate issued by that CA.
    /// [`Receiver::endpoint`] is then an `https://` URL.
    pub fn start_tls(tag: &str, grpc: bool, ca: &PrivateCa, mtls: bool) -> Receiver {
        let mut extra = vec![
            "--tls".to_owned(),
            ca.server_cert.display().to_string(),
            ca.server_key.display().to_string(),
        ];
        if mtls {
            extra.extend(["--client-ca".to_owned(), ca.ca.display().to_string()]);
        }
        if grpc {
            extra.push("--grpc".to_owned());
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Receiver::start_with(tag, &extra)
    }

    fn start_with(tag: &str, extra: &[&str]) -> Receiver {
        let dir =
            std::env::temp_dir().join(format!("mcp-bastion-otlp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("spans.jsonl");
        let script = clients_dir().join("otlp_receiver.py");
        let server = Server::spawn(
            "otlp-receiver",
            Path::new(&python()),
            &[script.display().to_string(), out.display().to_string()]
                .into_iter()
                .chain(extra.iter().map(|a| (*a).to_owned()))
                .collect::<Vec<_>>(),
        );
        Receiver { server, out }
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS): the value of `--otlp-endpoint`.
    pub fn endpoint(&self) -> String {
        self.server.base_url().to_owned()
    }

    /// Everything received so far, as written (for searching).
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The spans, once `enough` holds of them (or after 30 s, a hang guard: the caller's
    /// assertions then say what is missing).
    pub fn wait_until(&self, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if enough(&spans) || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The spans, once one matching `what` has arrived.
    pub fn wait_for(&self, what: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait_until(|spans| spans.iter().any(&what))
    }
}
