//! Serves one in-process benchmark target over HTTP:
//! `bench-server <axum-echo|bastion|bastion-no-events|full-stack|full-stack-oauth|rmcp|echo-2026> [--listen 127.0.0.1:0]`,
//! or `bench-server full-stack-observed --otlp http://127.0.0.1:PORT [--audit-log PATH]`.
//! Prints `bench-server listening on http://ADDR` to stderr once bound.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use benches::servers::{self, ServerKind, ServerOptions};
use clap::Parser;

/// Serve one in-process benchmark target.
#[derive(Debug, Parser)]
#[command(name = "bench-server")]
struct Cli {
    /// axum-echo, bastion, bastion-no-events, full-stack, full-stack-oauth,
    /// full-stack-observed, rmcp or echo-2026.
    kind: ServerKind,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// full-stack-observed: the OTLP/HTTP base URL spans are exported to
    /// (`/v1/traces` is added).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp: Option<String>,
    /// full-stack-observed: the audit log file (appended to); default: a new
    /// directory under the system's temp dir.
    #[arg(long)]
    audit_log: Option<PathBuf>,
}

/// The same allocator as the `mcp-bastion` binary, for every target served here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let listener = match tokio::net::TcpListener::bind(cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench-server: cannot listen on {}: {e}", cli.listen);
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("bench-server listening on http://{addr}"),
        Err(e) => eprintln!("bench-server: {e}"),
    }
    let options = ServerOptions {
        otlp: cli.otlp,
        audit_log: cli.audit_log,
    };
    match servers::serve(cli.kind, listener, &options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-server: {e}");
            ExitCode::from(1)
        }
    }
}
