//! Where things are, and the binaries under test: the workspace's directories, `cargo` run from
//! inside a test or the load harness (`benches` builds with the same helpers), the `mcp-bastion`
//! binary and the examples (built once per test process), and the command lines of the Node
//! and Python programs the tests run.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
};

/// The `tests/` package directory.
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root (parent of `tests/`).
pub fn workspace_dir() -> PathBuf {
    tests_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(tests_dir)
}

/// The client scripts directory, `tests/clients`.
pub fn clients_dir() -> PathBuf {
    tests_dir().join("clients")
}

/// The Node packages of the tests, `tests/node/node_modules`.
pub fn node_modules_dir() -> PathBuf {
    tests_dir().join("node").join("node_modules")
}

/// The cargo profile directory the running executable lives in: `target/debug` for a test
/// executable `target/debug/deps/clients-…`, `target/release` for `target/release/benches`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable's path");
    let deps = exe.parent().expect("the running executable's directory");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    dir.to_path_buf()
}

/// The workspace's target directory: the parent of [`profile_dir`] (so `$CARGO_TARGET_DIR` when
/// cargo built the running executable there).
pub fn target_dir() -> PathBuf {
    let profile = profile_dir();
    profile
        .parent()
        .map_or_else(|| profile.clone(), Path::to_path_buf)
}

/// Whether the running executable is a release build (its [`profile_dir`] is `release`):
/// [`cargo_build`] then builds with `--release` too.
pub fn release_build() -> bool {
    profile_dir().file_name().is_some_and(|n| n == "release")
}

/// `cargo <args>` (`$CARGO` when cargo started us), run in the workspace, without the variables
/// cargo set for the crate that runs it.
///
/// Those variables (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, `OUT_DIR`…) would reach the build
/// scripts' `rerun-if-env-changed` checks (ring's has them), making this build and the one that
/// built the caller rebuild the TLS stack for each other.
pub fn cargo(args: &[&str]) -> Command {
    let program: OsString = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(workspace_dir());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || name == "OUT_DIR"
            || name == "CARGO_TARGET_TMPDIR"
        {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd
}

/// What becomes of cargo's own output in [`run_cargo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CargoOutput {
    /// Kept, and returned in the error when cargo fails (tests: quiet unless it matters).
    Captured,
    /// Shown as it comes (the load harness: a release build takes minutes).
    Shown,
}

/// Runs a [`cargo`] command to completion; on failure the error names the command and, when
/// [`CargoOutput::Captured`], carries cargo's output.
pub fn run_cargo(mut cmd: Command, output: CargoOutput) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null());
    let (status, stderr) = match output {
        CargoOutput::Captured => {
            let out = cmd
                .output()
                .map_err(|e| format!("could not run {shown}: {e}"))?;
            (
                out.status,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        CargoOutput::Shown => {
            eprintln!("running {shown}");
            let status = cmd
                .status()
                .map_err(|e| format!("could not run {shown}: {e}"))?;
            (status, String::new())
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status}):\n{stderr}"))
    }
}

/// `cargo build <args>` in the workspace, with `--release` when the running executable is a
/// release build ([`release_build`]).
pub fn cargo_build(args: &[&str], output: CargoOutput) -> Result<(), String> {
    let mut cmd = cargo(&["build"]);
    cmd.args(args);
    if release_build() {
        cmd.arg("--release");
    }
    run_cargo(cmd, output)
}

/// Builds (once per test process and key) and returns a binary; `$env` overrides it.
fn built_binary(key: &str, env: &str, build_args: &[&str], path: PathBuf) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, Result<PathBuf, String>>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let result = built
        .entry(key.to_owned())
        .or_insert_with(|| {
            if let Some(bin) = std::env::var_os(env) {
                let bin = PathBuf::from(bin);
                return if bin.is_file() {
                    Ok(bin)
                } else {
                    Err(format!("{env}={} is not a file", bin.display()))
                };
            }
            // Always (re)build: a no-op when fresh, and `cargo test` does not rebuild another
            // package's binary, so a stale one would otherwise be tested.
            cargo_build(build_args, CargoOutput::Captured)?;
            if path.is_file() {
                Ok(path.clone())
            } else {
                Err(format!(
                    "`cargo build {}` succeeded but {} does not exist",
                    build_args.join(" "),
                    path.display()
                ))
            }
        })
        .clone();
    drop(built);
    match result {
        Ok(path) => path,
        Err(e) => panic!("cannot get the binary under test: {e}"),
    }
}

/// The `mcp-bastion` binary: `$MCP_BASTION_BIN` if set, else `target/<profile>/mcp-bastion`,
/// built with `cargo build -p mcp-bastion-cli` first (once per test process).
pub fn bastion_bin() -> PathBuf {
    built_binary(
        "mcp-bastion",
        "MCP_BASTION_BIN",
        &["-p", "mcp-bastion-cli", "--bin", "mcp-bastion"],
        profile_dir().join("mcp-bastion"),
    )
}

/// An example of the `examples` package, `target/<profile>/examples/NAME`, built with
/// `cargo build -p examples --example NAME` first; `$MCP_BASTION_EXAMPLE_<NAME>` overrides it.
pub fn example_bin(name: &str) -> PathBuf {
    let env = format!("MCP_BASTION_EXAMPLE_{}", name.to_uppercase());
    built_binary(
        &format!("example {name}"),
        &env,
        &["-p", "examples", "--example", name],
        profile_dir().join("examples").join(name),
    )
}

/// The command that runs `@modelcontextprotocol/server-everything` over stdio from
/// `tests/node/node_modules` (no network, no `npx`): `node …/dist/index.js stdio`.
pub fn everything_stdio() -> Vec<String> {
    let entry = node_modules_dir().join("@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.is_file(),
        "{} is missing: install the test dependencies with `npm ci --prefix tests/node` (or run `bash .ci/test`)",
        entry.display()
    );
    vec![node(), entry.display().to_string(), "stdio".to_owned()]
}

/// The Node.js interpreter the client scripts and server-everything run with: `$NODE`, else
/// `node`.
pub fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

/// The Python interpreter the client scripts run with: `$PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A new empty directory under the system's temporary directory, named after `tag`, this test
/// process and a counter: each call gets its own, so tests running in parallel threads of one
/// process never write over each other's files (a certificate rewritten while another test's
/// binary reads it).
pub fn scratch_dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mcp-bastion-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Runs `mcp-bastion --listen 127.0.0.1:0 <args…>` (with `env`), which must refuse to start:
/// asserts the exit status of a configuration error (2) and returns what it wrote on stderr.
pub fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(bastion_bin())
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bastion_bin().display()));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}
