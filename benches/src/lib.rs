//! The load harness of issue 8: N concurrent MCP clients against each target
//! (a bare axum echo, mcp-bastion's transports, rmcp's own service, the
//! `mcp-bastion` proxy and its peers), measured alternately in one run, with
//! the results written to `docs/benchmarks.md` and `docs/benchmarks.svg`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`build`] | building the proxy, `bench-server` and the lean, static `bench-echo-server` |
//! | [`echo`] | the rmcp `echo` handler every target serves (the `bench-echo-server` package) |
//! | [`jwt`] | the throwaway RS256 key, JWKS and tokens of target 3 and the JWT bench |
//! | [`oauth`] | target 3 with mcp-bastion's own access tokens: its authorization server (throwaway ES256 key, one grant) and tokens |
//! | [`observed`] | the audit log and OTLP trace export of the `full-stack-observed` target, in `bench-server` |
//! | [`otlp_sink`] | the OTLP/HTTP receiver the harness runs for that target: answers 200, counts what arrives |
//! | [`servers`] | the in-process HTTP targets that `bench-server` runs |
//! | [`client`] | a lean MCP client over raw hyper: Streamable HTTP and legacy SSE |
//! | [`load`] | the load loop (requests/s, hdrhistogram latencies) and the idle mode |
//! | [`process_tree`] | peak PSS (and summed RSS) and CPU seconds of a process and its descendants (`/proc`) |
//! | [`targets`] | what is measured and how each target is started and stopped |
//! | [`peers`] | installing the peer proxies from npm and PyPI into `target/bench-peers/` |
//! | [`report`] | the markdown table, the target checks and the SVG chart |

pub mod build;
pub mod client;
pub use bench_echo_server as echo;
pub mod jwt;
pub mod load;
pub mod oauth;
pub mod observed;
pub mod otlp_sink;
pub mod peers;
pub mod process_tree;
pub mod report;
pub mod servers;
pub mod targets;
