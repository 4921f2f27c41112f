//! A fast stdio MCP echo server (rmcp over stdin/stdout, one `echo` tool):
//! the backend of every proxy the harness compares.

use benches::echo::EchoServer;
use rmcp::ServiceExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One session per process: a single-threaded runtime is all it needs,
    // and keeps per-session children small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let service = EchoServer.serve(rmcp::transport::stdio()).await?;
        service.waiting().await?;
        Ok(())
    })
}
