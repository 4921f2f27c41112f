//! A fast stdio MCP echo server (rmcp over stdin/stdout, one `echo` tool):
//! the backend of every proxy the harness compares.

use std::{fs::File, os::fd::AsFd};

use bench_echo_server::EchoServer;
use rmcp::ServiceExt;
use tokio::net::unix::pipe;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One session per process: a single-threaded runtime is all it needs,
    // and keeps per-session children small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Every proxy starts it with pipes: read and write them through
        // epoll. `rmcp::transport::stdio()` reads stdin with a blocking
        // thread and a hand-off per read, which a profile under load showed
        // as a third of this process's CPU. Anything else (a terminal, a
        // file) falls back to it.
        let service = match pipes() {
            Ok(io) => EchoServer.serve(io).await?,
            Err(_) => EchoServer.serve(rmcp::transport::stdio()).await?,
        };
        service.waiting().await?;
        Ok(())
    })
}

/// Stdin and stdout as non-blocking pipe ends, when both are pipes.
fn pipes() -> std::io::Result<(pipe::Receiver, pipe::Sender)> {
    let stdin = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    Ok((
        pipe::Receiver::from_file(stdin)?,
        pipe::Sender::from_file(stdout)?,
    ))
}
