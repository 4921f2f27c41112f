//! Serves one in-process benchmark target over HTTP:
//! `bench-server <axum-echo|bastion|bastion-no-events|full-stack|full-stack-oauth|rmcp> [--listen 127.0.0.1:0]`.
//! Prints `bench-server listening on http://ADDR` to stderr once bound.

use std::{net::SocketAddr, process::ExitCode};

use benches::servers::{self, ServerKind};
use clap::Parser;

/// Serve one in-process benchmark target.
#[derive(Debug, Parser)]
#[command(name = "bench-server")]
struct Cli {
    /// axum-echo, bastion, bastion-no-events, full-stack, full-stack-oauth or rmcp.
    kind: ServerKind,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
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
    match servers::serve(cli.kind, listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-server: {e}");
            ExitCode::from(1)
        }
    }
}
