//! Building what the harness runs: the proxy and `bench-server` with the
//! harness's own profile, and `bench-echo-server`, the proxies' stdio
//! backend, lean and statically linked.
//!
//! Why the backend is built apart: the proxy in per-session mode runs one
//! backend per session (32 in a run), and `VmRSS` counts every page a process
//! maps, shared or not. A dynamically linked, speed-optimised
//! `bench-echo-server` mapped about 5 MB (2.8 MB of its own code, 1.3 MB of
//! libc, the loader); built with the [`ECHO_PROFILE`] and [`STATIC_LINK`] it
//! maps about 2.0 MB, so the tree's RSS says more about the proxy than about
//! 32 copies of a web stack's code.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
};

/// The workspace root (the parent of the `benches` package).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The workspace's target directory: `$CARGO_TARGET_DIR`, else `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_dir().join("target"),
    }
}

/// `cargo <args>`, run in the workspace (`$CARGO` when cargo started us).
pub fn cargo(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(workspace_dir());
    cmd
}

/// Runs `cmd` (a [`cargo`] command), echoing it to stderr; its exit status.
pub fn run(mut cmd: Command) -> Result<ExitStatus, String> {
    eprintln!("bench: {cmd:?}");
    cmd.status().map_err(|e| format!("cannot run cargo: {e}"))
}

/// Whether `$BENCH_NO_BUILD` asks to use the binaries already built.
fn no_build() -> bool {
    std::env::var_os("BENCH_NO_BUILD").is_some()
}

/// Builds `bench-server` and the `mcp-bastion` proxy with the harness's own
/// profile (`--release` when `release`).
pub fn build_binaries(release: bool) -> Result<(), String> {
    if no_build() {
        return Ok(());
    }
    let mut cmd = cargo(&["build", "-p", "benches", "--bins", "-p", "mcp-bastion-cli"]);
    if release {
        cmd.arg("--release");
    }
    let status = run(cmd)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build failed ({status})"))
    }
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

/// Builds `bench-echo-server` into `target_dir/`[`ECHO_PROFILE`]`/` with the
/// [`ECHO_PROFILE`] and the [`STATIC_LINK`] flags (given to the binary's own
/// compile only, through `cargo rustc`); where the toolchain cannot link
/// statically (no `libc.a`), dynamically, with a warning. Returns its path.
/// With `$BENCH_NO_BUILD` set, only the path.
pub fn build_echo_server(target_dir: &Path) -> Result<PathBuf, String> {
    let path = target_dir.join(ECHO_PROFILE).join("bench-echo-server");
    if no_build() {
        return Ok(path);
    }
    let cargo_rustc = |flags: &[&str]| {
        let mut cmd = cargo(&["rustc", "--profile", ECHO_PROFILE]);
        cmd.args(["-p", "bench-echo-server", "--bin", "bench-echo-server"]);
        if !flags.is_empty() {
            cmd.arg("--").args(flags);
        }
        run(cmd).map(|status| status.success())
    };
    if cargo_rustc(&STATIC_LINK)? {
        return Ok(path);
    }
    eprintln!("bench: warning: cannot link bench-echo-server statically; linking it dynamically");
    if cargo_rustc(&[])? {
        Ok(path)
    } else {
        Err("cargo could not build bench-echo-server".into())
    }
}

/// Whether the ELF executable at `path` is statically linked: it has no
/// `PT_INTERP` program header naming a dynamic loader. `None` if it cannot
/// be read as a 64-bit little-endian ELF file.
pub fn statically_linked(path: &Path) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let elf = std::fs::read(path).ok()?;
    let bytes = |at: usize, n: usize| elf.get(at..at.checked_add(n)?);
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes(at, 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes(at, 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes(at, 8)?.try_into().ok()?));
    // the magic number, ELFCLASS64, ELFDATA2LSB
    if bytes(0, 6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    // e_phoff, e_phentsize, e_phnum
    let table = usize::try_from(u64_at(0x20)?).ok()?;
    let entry = usize::from(u16_at(0x36)?);
    let count = usize::from(u16_at(0x38)?);
    for i in 0..count {
        let header = table.checked_add(i.checked_mul(entry)?)?;
        if u32_at(header)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// The report's line on how the proxies' backend at `path` was built.
pub fn echo_server_context(path: &Path) -> (String, String) {
    let linked = match statically_linked(path) {
        Some(true) => "statically linked",
        Some(false) => "dynamically linked",
        None => "not an ELF file the harness can read",
    };
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    (
        "Proxies' stdio backend".into(),
        format!(
            "`bench-echo-server`, profile `{ECHO_PROFILE}`, {linked}, {:.1} MB",
            size as f64 / 1e6
        ),
    )
}
