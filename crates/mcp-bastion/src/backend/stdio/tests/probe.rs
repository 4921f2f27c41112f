//! The protocol probe of `probe.rs` against real children (inline Python
//! scripts that log what they receive to a file): asked once and cached,
//! asked again after a failure, never asked when pinned or shared.

use std::path::{Path, PathBuf};

use super::python;
use crate::{
    backend::{
        Backend, handshake_versions,
        stdio::{StdioBackend, StdioMode},
    },
    protocol::ProtocolVersion,
};

/// Logs each line's method to `argv[1]`; answers every request with `answer`
/// (a Python expression of the message `m`).
fn server(answer: &str) -> String {
    format!(
        "import sys, json\n\
         for line in sys.stdin:\n\
         \x20   m = json.loads(line)\n\
         \x20   open(sys.argv[1], 'a').write(m.get('method', '') + '\\n')\n\
         \x20   if 'id' in m:\n\
         \x20       print(json.dumps({answer}), flush=True)\n"
    )
}

fn log_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "mcp-bastion-probe-{name}-{}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

fn received(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn backend(script: &str, log: &Path) -> crate::backend::stdio::StdioBackendBuilder {
    StdioBackend::builder(python()).args([
        "-u".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        log.to_string_lossy().into_owned(),
    ])
}

#[tokio::test]
async fn a_child_that_speaks_2026_is_asked_once() {
    let log = log_file("speaks");
    let script = server(
        "{'jsonrpc': '2.0', 'id': m['id'], 'result': \
         {'supportedVersions': ['2026-07-28'], 'capabilities': {}}}",
    );
    let backend = backend(&script, &log).build().unwrap();
    for _ in 0..2 {
        assert_eq!(backend.connection_versions().await.unwrap(), ["2026-07-28"]);
    }
    assert_eq!(received(&log), ["server/discover"]);
}

#[tokio::test]
async fn a_child_that_refuses_server_discover_speaks_the_handshake_revisions() {
    let log = log_file("refuses");
    let script = server(
        "{'jsonrpc': '2.0', 'id': m['id'], 'error': {'code': -32601, 'message': 'Method not found'}}",
    );
    let backend = backend(&script, &log).build().unwrap();
    for _ in 0..2 {
        assert_eq!(
            backend.connection_versions().await.unwrap(),
            handshake_versions()
        );
    }
    assert_eq!(received(&log), ["server/discover"], "cached");
}

#[tokio::test]
async fn a_probe_that_fails_is_not_cached() {
    let log = log_file("fails");
    // logs its start, then exits before answering
    let script = "import sys\nopen(sys.argv[1], 'a').write('started\\n')\nsys.exit(3)\n";
    let backend = backend(script, &log).build().unwrap();
    for _ in 0..2 {
        assert!(backend.connection_versions().await.is_err());
    }
    assert_eq!(received(&log), ["started", "started"], "asked again");
}

#[tokio::test]
async fn a_pinned_or_shared_child_is_never_asked() {
    let log = log_file("pinned");
    let script = server(
        "{'jsonrpc': '2.0', 'id': m['id'], 'result': {'supportedVersions': ['2026-07-28']}}",
    );
    let direct = backend(&script, &log)
        .protocol_version(ProtocolVersion::V2026_07_28)
        .build()
        .unwrap();
    assert_eq!(direct.connection_versions().await.unwrap(), ["2026-07-28"]);
    let bridged = backend(&script, &log)
        .protocol_version(ProtocolVersion::V2025_11_25)
        .build()
        .unwrap();
    assert_eq!(
        bridged.connection_versions().await.unwrap(),
        handshake_versions()
    );
    let shared = backend(&script, &log)
        .mode(StdioMode::Shared)
        .build()
        .unwrap();
    assert_eq!(
        shared.connection_versions().await.unwrap(),
        handshake_versions()
    );
    assert!(received(&log).is_empty(), "{:?}", received(&log));
    assert!(
        backend(&script, &log)
            .mode(StdioMode::Shared)
            .protocol_version(ProtocolVersion::V2026_07_28)
            .build()
            .is_err()
    );
}
