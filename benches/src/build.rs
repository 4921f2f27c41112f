//! Building what the harness runs: the proxy and `bench-server` with the
//! harness's own profile, and `bench-echo-server`, the proxies' stdio
//! backend, lean and statically linked. Cargo is run through the test
//! harness's helpers (`tests::binaries`), the one implementation of both.
//!
//! Why the backend is built apart: the proxy in per-session mode runs one
//! backend per session (32 in a run). Built with the [`ECHO_PROFILE`] (size
//! first, fat LTO, no unwinding) and the [`STATIC_LINK`] flags, each child
//! maps its own small code and no shared libc or loader, so the tree's memory
//! says more about the proxy than about 32 copies of a web stack's code.

use std::path::{Path, PathBuf};

use tests::binaries::{CargoOutput, cargo, cargo_build, run_cargo};

/// Whether `$BENCH_NO_BUILD` asks to use the binaries already built.
fn no_build() -> bool {
    std::env::var_os("BENCH_NO_BUILD").is_some()
}

/// Builds `bench-server` and the `mcp-bastion` proxy with the profile of the
/// running harness (`--release` when it is a release build).
pub fn build_binaries() -> Result<(), String> {
    if no_build() {
        return Ok(());
    }
    cargo_build(
        &["-p", "benches", "--bins", "-p", "mcp-bastion-cli"],
        CargoOutput::Shown,
    )
}

/// The profile `bench-echo-server` is built with (workspace `Cargo.toml`):
/// optimised for size, fat LTO, one codegen unit, no unwinding.
pub const ECHO_PROFILE: &str = "bench-echo";

/// `rustc` flags for a non-PIE static executable: no dynamic loader, no
/// shared libc mapped, no start-up relocations dirtying its pages.
pub const STATIC_LINK: [&str; 4] = [
    "-C",
    "target-feature=+crt-static",
    "-C",
    "relocation-model=static",
];

/// How the echo server at [`EchoServer::path`] was linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linking {
    /// With the [`STATIC_LINK`] flags.
    Static,
    /// Without them: the toolchain could not link it statically (no `libc.a`).
    Dynamic,
    /// Not built by this run (`$BENCH_NO_BUILD`): as it was built before.
    Unknown,
}

/// The proxies' backend, as built for this run.
#[derive(Debug, Clone)]
pub struct EchoServer {
    /// Its executable.
    pub path: PathBuf,
    /// How it was linked.
    pub linking: Linking,
}

impl EchoServer {
    /// The report's line on how the proxies' backend was built.
    pub fn context(&self) -> (String, String) {
        let linked = match self.linking {
            Linking::Static => "statically linked",
            Linking::Dynamic => "dynamically linked (the static link failed)",
            Linking::Unknown => "as built before the run (`BENCH_NO_BUILD`)",
        };
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        (
            "Proxies' stdio backend".into(),
            format!(
                "`bench-echo-server`, profile `{ECHO_PROFILE}`, {linked}, {:.1} MB",
                size as f64 / 1e6
            ),
        )
    }
}

/// Builds `bench-echo-server` into `target_dir/`[`ECHO_PROFILE`]`/` with the
/// [`ECHO_PROFILE`] and the [`STATIC_LINK`] flags, given to the binary's own
/// compile only, through `cargo rustc`. A toolchain that cannot link it
/// statically gets a dynamic build, with a warning. With `$BENCH_NO_BUILD`
/// set, only the path.
pub fn build_echo_server(target_dir: &Path) -> Result<EchoServer, String> {
    let path = target_dir.join(ECHO_PROFILE).join("bench-echo-server");
    if no_build() {
        return Ok(EchoServer {
            path,
            linking: Linking::Unknown,
        });
    }
    let cargo_rustc = |flags: &[&str]| {
        let mut cmd = cargo(&["rustc", "--profile", ECHO_PROFILE]);
        cmd.args(["-p", "bench-echo-server", "--bin", "bench-echo-server"]);
        if !flags.is_empty() {
            cmd.arg("--").args(flags);
        }
        run_cargo(cmd, CargoOutput::Shown)
    };
    let linking = match cargo_rustc(&STATIC_LINK) {
        Ok(()) => Linking::Static,
        Err(e) => {
            eprintln!("bench: warning: {e}; linking bench-echo-server dynamically");
            cargo_rustc(&[])?;
            Linking::Dynamic
        }
    };
    Ok(EchoServer { path, linking })
}
