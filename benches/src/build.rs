//! Building what the harness runs: the proxy and `bench-server` with the
//! harness's own profile, and `bench-echo-server`, the proxies' stdio
//! backend, lean and statically linked.
//!
//! Why the backend is built apart: the proxy in per-session mode runs one
//! backend per session (32 in a run), and `VmRSS` counts every page a process
//! maps, shared or not. A dynamically linked, speed-optimised
//! `bench-echo-server` mapped about 5 MB (2.8 MB of its own code, 1.3 MB of
//! libc, the loader); built with the [`ECHO_PROFILE`] and [`STATIC_LINK`] it
//! maps about 2.0 MB, and about 1.2 MB with the functions it runs linked
//! first ([`layout`]), so the tree's RSS says more about the proxy than
//! about 32 copies of a web stack's code.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
};

use crate::{elf::Elf, layout};

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
/// [`ECHO_PROFILE`], the [`STATIC_LINK`] flags and its hot functions first
/// ([`layout::link_flags`] with [`layout::HOT_SYMBOLS`]), all given to the
/// binary's own compile only, through `cargo rustc`. Each of those the
/// toolchain cannot do (a linker that is not lld, no `libc.a`) is dropped in
/// turn, with a warning. Returns its path. With `$BENCH_NO_BUILD` set, only
/// the path.
pub fn build_echo_server(target_dir: &Path) -> Result<PathBuf, String> {
    let path = target_dir.join(ECHO_PROFILE).join("bench-echo-server");
    if no_build() {
        return Ok(path);
    }
    let cargo_rustc = |flags: &[String]| {
        let mut cmd = cargo(&["rustc", "--profile", ECHO_PROFILE]);
        cmd.args(["-p", "bench-echo-server", "--bin", "bench-echo-server"]);
        if !flags.is_empty() {
            cmd.arg("--").args(flags);
        }
        run(cmd).map(|status| status.success())
    };
    let static_link: Vec<String> = STATIC_LINK.iter().map(|f| f.to_string()).collect();
    let mut attempts = Vec::new();
    if let Some(list) = layout::linker_copy(&target_dir.join(ECHO_PROFILE))? {
        let flags = [static_link.clone(), layout::link_flags(&list)].concat();
        attempts.push((flags, "without its hot functions first"));
    }
    attempts.push((static_link, "dynamically"));
    attempts.push((Vec::new(), ""));
    for (flags, otherwise) in &attempts {
        if cargo_rustc(flags)? {
            return Ok(path);
        }
        if !otherwise.is_empty() {
            eprintln!(
                "bench: warning: that build of bench-echo-server failed; linking it {otherwise}"
            );
        }
    }
    Err("cargo could not build bench-echo-server".into())
}

/// The report's line on how the proxies' backend at `path` was built.
pub fn echo_server_context(path: &Path) -> (String, String) {
    let elf = Elf::read(path);
    let linked = match &elf {
        Some(elf) if elf.interpreter => "dynamically linked",
        Some(_) => "statically linked",
        None => "not an ELF file the harness can read",
    };
    let list = std::fs::read_to_string(layout::hot_symbols_path()).unwrap_or_default();
    let layout = match elf.and_then(|elf| layout::check(&elf, &layout::read_list(&list))) {
        Some(c) if c.applied() => format!(
            "its hot functions first ({} of the {} in `benches/{}`, {:.2} MB in the first {:.2} MB of its {:.2} MB of code)",
            c.found,
            c.listed,
            layout::HOT_SYMBOLS,
            c.hot_bytes as f64 / 1e6,
            c.span as f64 / 1e6,
            c.text_bytes as f64 / 1e6
        ),
        Some(c) if c.listed == 0 => {
            format!("no `benches/{}` to lay it out by", layout::HOT_SYMBOLS)
        }
        Some(c) => format!(
            "**not** laid out by `benches/{}` ({} of its {} functions found, in the first {:.2} MB of {:.2} MB of code: regenerate it with `-- hot-symbols`)",
            layout::HOT_SYMBOLS,
            c.found,
            c.listed,
            c.span as f64 / 1e6,
            c.text_bytes as f64 / 1e6
        ),
        None => "layout unknown (no symbol table)".into(),
    };
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    (
        "Proxies' stdio backend".into(),
        format!(
            "`bench-echo-server`, profile `{ECHO_PROFILE}`, {linked}, {layout}, {:.1} MB",
            size as f64 / 1e6
        ),
    )
}
