//! Black-box test harness for mcp-bastion: real processes, real clients.
//!
//! - [`Server::bastion`] builds (once per test process) and spawns the `mcp-bastion` binary on
//!   `127.0.0.1:0`, reads the `… listening on http://…` line from its stderr, keeps draining
//!   stderr into a log you can print on failure, and stops it (SIGTERM, then SIGKILL of its
//!   whole process group) when dropped.
//! - [`everything_stdio`] is the command line that runs `@modelcontextprotocol/server-everything`
//!   over stdio from `tests/node/node_modules`, without any network.
//! - [`upstream`] serves server-everything over HTTP as a process, and records what reaches it
//!   through a reverse proxy (tests of `mcp-bastion --upstream`).
//! - [`ClientRun`] runs one of the SDK client scripts in `tests/clients/` (official Python SDK or
//!   official TypeScript SDK) against a URL, with a timeout, and [`ClientOutcome::assert_ok`]
//!   turns a failure into a panic that shows the client's output and the server's log.
//!
//! Test dependencies are installed by `bash .ci/test` (`pip install -r tests/requirements.txt`,
//! `npm ci --prefix tests/node`).
//!
//! | module | what it holds |
//! |---|---|
//! | [`binaries`] | the workspace's directories, `cargo` (also used by `benches`), the binaries under test |
//! | [`server`] | [`Server`]: a server process under test, its log, its children, its stop |
//! | [`clients`] | the SDK client runners ([`ClientRun`], [`ClientOutcome`], [`CallInFlight`]) and their summaries |
//! | [`processes`] | `/proc` inspection: [`child_processes`], [`process_gone`] |
//! | [`sse`] | SSE bodies read with the workspace's one decoder |
//! | [`audit`] | the audit log a binary writes: its records, read as they land |
//! | [`oauth`] | the binary as an OAuth authorization server, a real identity provider, the SDKs' OAuth clients |
//! | [`upstream`], [`nginx`], [`redis`], [`raw`], [`certs`] | fixtures: an HTTP upstream, nginx, Redis, hostile raw clients, TLS certificates |

pub mod audit;
pub mod binaries;
pub mod certs;
pub mod clients;
pub mod nginx;
pub mod oauth;
pub mod otlp;
pub mod processes;
pub mod raw;
pub mod raw2026;
pub mod redis;
pub mod server;
pub mod sse;
pub mod upstream;

pub use binaries::{
    bastion_bin, clients_dir, everything_stdio, example_bin, node_modules_dir, python,
    refused_start, scratch_dir, tests_dir, workspace_dir,
};
pub use clients::{
    CLIENT_TIMEOUT, CallInFlight, ClientOutcome, ClientRun, FULL_STEPS, Sdk, Transport,
    assert_full_summary, assert_input_round_trip, assert_summary, script_report,
};
pub use processes::{child_processes, process_gone};
pub use server::{SHUTDOWN_GRACE, STARTUP_TIMEOUT, Server, SessionMode};
